"""The code location: one Definitions object built from ``datasets.yaml``.

Each configured dataset contributes its asset group, jobs, sensors and, if
its config sets ``schedule:``, its reconversion schedule; resources are
shared. ``dagster dev`` (via ``workspace.yaml``) loads :data:`defs`; the
CLI's runner builds its own with :func:`pipelines.builder.build_definitions`
(re-exported here).
"""

from __future__ import annotations

from pipelines.builder import build_definitions, default_resources
from pipelines.config import load_dataset_configs, load_executor_settings
from pipelines.executor import executor_from_settings

__all__ = ["build_definitions", "default_resources", "defs"]

defs = build_definitions(load_dataset_configs(), executor=executor_from_settings(load_executor_settings()))
