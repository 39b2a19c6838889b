"""The executor of the code location's runs (UI, daemon, sensors, schedules, backfills).

Dagster's default, ``multi_or_in_process_executor`` in multiprocess mode,
starts one cold Python process per step; each imports Dagster, Lance, PyAV
and the code location (about 4 s on a 2-core machine), so the publish run of
the 2-episode sample took 28 s, nearly all of it start-up. Our steps are
already batched (one step handles ``backfill_batch_size`` episodes and uses
threads for video work), so the code location defaults to **in-process**:
one process per run, every step in it, Great Expectations imported once.

The multiprocess mode stays selectable in a run's config (Launchpad, a
backfill's or schedule's run config), e.g. for step isolation on a large
worker; add ``start_method: forkserver`` so step processes fork from one
process that already imported the code location instead of starting cold::

    execution:
      config:
        multiprocess:
          max_concurrent: 2
          start_method:
            forkserver:
              preload_modules: [pipelines.definitions]

``in_process: {}`` selects the default explicitly. The CLI and the Python API
run jobs with ``execute_in_process``, which always runs in-process.
"""

from typing import Any

from dagster import ExecutorDefinition, Field, Permissive, multi_or_in_process_executor

#: Run config of the default mode.
IN_PROCESS: dict[str, Any] = {"in_process": {}}


def _in_process_unless_configured(config: dict[str, Any] | None) -> dict[str, Any]:
    """An empty or missing ``execution.config`` means in-process; anything else
    is handed to ``multi_or_in_process_executor``, which validates it."""
    return dict(config) if config else dict(IN_PROCESS)


#: ``multi_or_in_process_executor`` with in-process as the default mode.
code_location_executor: ExecutorDefinition = multi_or_in_process_executor.configured(
    _in_process_unless_configured,
    name="lerobot_lance_executor",
    config_schema=Field(Permissive(), is_required=False, default_value={}),
    description="In-process by default (one process per run); `multiprocess: {...}` runs each step in its own process.",
)
