"""The code location's executor (issue 11, target 3): a launched run executes
its steps in its own process by default; ``multiprocess`` in the run config
still gives one process per step. Real runs through ``execute_job`` (what a
run worker does), on a throwaway persistent instance."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import Definitions, asset, define_asset_job, execute_job, instance_for_test

from pipelines.dagster_compat import ReconstructableRepository
from pipelines.definitions import defs as code_location
from pipelines.executor import code_location_executor

REPO = Path(__file__).resolve().parents[1]


@asset
def first() -> int:
    return os.getpid()


@asset
def second(first: int) -> int:
    return os.getpid()


defs = Definitions(assets=[first, second], jobs=[define_asset_job("two_steps", selection=[first, second])], executor=code_location_executor)


def _step_pids(run_config: dict) -> tuple[bool, set[int]]:
    job = ReconstructableRepository.for_module("tests.test_perf_executor", "defs", str(REPO)).get_reconstructable_job("two_steps")
    with instance_for_test() as instance:
        result = execute_job(job, instance, run_config=run_config)
        return result.success, {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}


def test_the_code_location_uses_the_in_process_default() -> None:
    assert code_location.executor is code_location_executor


def test_steps_run_in_the_run_process_by_default() -> None:
    for config in ({}, {"execution": {"config": {"in_process": {}}}}):
        ok, pids = _step_pids(config)
        assert ok and pids == {os.getpid()}, (config, pids)


def test_multiprocess_stays_selectable() -> None:
    ok, pids = _step_pids({"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}})
    assert ok and len(pids) == 2 and os.getpid() not in pids
