"""Dagster code location: Definitions, jobs, schedules, sensors, dataset config."""
