"""The executor of the code location's runs (UI, daemon, sensors, schedules, backfills).

Which executor runs the steps is set once for the code location by the
``executor:`` section of ``datasets.yaml`` (:func:`pipelines.config.load_executor_settings`),
one key naming the kind and its config; without the section runs are
**in-process**::

    executor:
      in_process: {}                # the default: one process per run, every step in it
    # or
    executor:
      celery:                       # dagster-celery: each step a Celery task on a worker
        broker: {env: LEROBOT_LANCE_CELERY_BROKER}      # e.g. redis://redis.internal:6379/0
        backend: {env: LEROBOT_LANCE_CELERY_BACKEND}    # e.g. redis://redis.internal:6379/1
        config_source: {task_acks_late: true, task_reject_on_worker_lost: true}
        retries: {enabled: {}}
    # or  dask: {cluster: {existing: {address: tcp://scheduler:8786}}}
    # or  k8s_job: {max_concurrent: 4, retries: {enabled: {}}, job_namespace: dagster}
    # or  multiprocess: {max_concurrent: 2, start_method: {forkserver: {preload_modules: [pipelines.definitions]}}}

The section's config is the *default* config of that executor: a run's own
``execution: config:`` (Launchpad, a backfill's run config) is merged over it
key by key. See deploy/README.md ("The executor") for why in-process is the
default and which distributed executor is tested (Celery with a Redis broker).

In-process (the default): Dagster's own default, ``multi_or_in_process_executor``
in multiprocess mode, starts one cold Python process per step; each imports
Dagster, Lance, PyAV and the code location (about 4 s on a 2-core machine),
so the publish run of the 2-episode sample took 28 s, nearly all of it
start-up. Our steps are already batched (one step handles a range of
episodes and uses threads for video work), so the code location runs every
step of a run in the run's process, Great Expectations imported once. The
multiprocess mode stays selectable in a run's config (``multiprocess: {...}``;
``in_process: {}`` selects the default explicitly). The CLI and the Python
API run jobs with ``execute_in_process``, which always runs in-process.
"""

from collections.abc import Callable, Mapping
from typing import Any

from dagster import ExecutorDefinition, Field, Permissive, multi_or_in_process_executor

#: Run config of the default mode.
IN_PROCESS: dict[str, Any] = {"in_process": {}}

#: The kinds the ``executor:`` section of ``datasets.yaml`` can name, and the
#: package each needs (installed with the ``distributed`` extra, or ``dagster-k8s``).
EXECUTOR_KINDS: dict[str, str] = {
    "in_process": "dagster",
    "multiprocess": "dagster",
    "celery": "dagster-celery",
    "dask": "dagster-dask",
    "k8s_job": "dagster-k8s",
}


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


def _merged_over(defaults: Mapping[str, Any]) -> Callable[[dict[str, Any] | None], dict[str, Any]]:
    """A config function: the run's ``execution.config`` merged over ``defaults``
    (top-level keys of the run's config win)."""

    def merge(config: dict[str, Any] | None) -> dict[str, Any]:
        return {**dict(defaults), **dict(config or {})}

    return merge


def _base_executor(kind: str) -> ExecutorDefinition:
    """The Dagster executor definition of ``kind`` (imported only when selected)."""
    if kind == "celery":
        from dagster_celery import celery_executor

        return celery_executor
    if kind == "dask":
        from dagster_dask import dask_executor

        return dask_executor
    if kind == "k8s_job":
        from dagster_k8s import k8s_job_executor  # type: ignore[import-not-found]

        return k8s_job_executor
    raise AssertionError(kind)


def executor_from_settings(settings: Mapping[str, Any] | None) -> ExecutorDefinition:
    """The code location's executor for the ``executor:`` section of ``datasets.yaml``.

    Args:
        settings: ``None`` or ``{}`` (in-process), or a mapping with exactly one
            key of :data:`EXECUTOR_KINDS` whose value is that executor's config
            (Dagster's own schema: ``celery_executor``, ``dask_executor``,
            ``k8s_job_executor``, ``multi_or_in_process_executor``'s modes).
            Values may use Dagster's ``{env: VAR}`` form where the executor's
            schema takes a ``StringSource`` (broker URLs, addresses).

    Returns:
        An :class:`ExecutorDefinition` whose config defaults to ``settings``'
        value; a run's ``execution: config:`` is merged over it key by key.

    Raises:
        ValueError: more than one key, or a kind not in :data:`EXECUTOR_KINDS`.
        ImportError: the kind's package is not installed (the message names it).
    """
    if not settings:
        return code_location_executor
    if len(settings) != 1:
        raise ValueError(f"executor: expected one of {sorted(EXECUTOR_KINDS)} as the only key, found {sorted(settings)}")
    ((kind, config),) = settings.items()
    if kind not in EXECUTOR_KINDS:
        raise ValueError(f"executor: unknown kind {kind!r}; expected one of {sorted(EXECUTOR_KINDS)}")
    config = dict(config or {})
    if kind in ("in_process", "multiprocess"):
        return multi_or_in_process_executor.configured(
            lambda c: dict(c) if c else {kind: config},
            name="lerobot_lance_executor",
            config_schema=Field(Permissive(), is_required=False, default_value={}),
            description=f"{kind} by default (datasets.yaml executor:); a run's config may pick the other mode.",
        )
    try:
        base = _base_executor(kind)
    except ImportError as e:
        raise ImportError(
            f"executor: {kind!r} needs the {EXECUTOR_KINDS[kind]} package "
            f"(pip install \"lerobot-lance[distributed]\" or {EXECUTOR_KINDS[kind]}): {e}"
        ) from e
    return base.configured(
        _merged_over(config),
        name=f"lerobot_lance_{kind}",
        config_schema=Field(Permissive(), is_required=False, default_value={}),
        description=f"{EXECUTOR_KINDS[kind]} ({kind}) configured in datasets.yaml; a run's execution config is merged over it.",
    )
