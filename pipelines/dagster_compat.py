"""The Dagster names lerobot-lance needs that Dagster 1.13 does not export publicly.

Everything else comes from ``dagster``'s top-level API. These few have no
public import path, so this module is the one place that imports Dagster's
private ``dagster._core`` modules; code and tests import them from here.
A Dagster upgrade that moves or renames one breaks the import of this
module (and tests/test_perf_structure.py says which name), not a run.

* :data:`ASSET_PARTITION_RANGE_START_TAG`, :data:`ASSET_PARTITION_RANGE_END_TAG`:
  the run tags (``dagster/asset_partition_range_start`` / ``_end``) that make
  one run cover a range of partitions, as a ``BackfillPolicy.multi_run``
  backfill's runs do; ``execute_in_process`` and ``RunRequest`` take no
  partition range argument, only these tags.
* :class:`AssetGraphSubset`, :class:`AssetKeyPartitionKey`: what
  ``RunRequest.for_asset_graph_subset`` (public) takes, to let a sensor
  launch an asset backfill.
* :class:`UnresolvedAssetJobDefinition`: the type ``define_asset_job`` returns
  (annotations only).
* :class:`InstanceRef`: an instance configured from a directory's
  ``dagster.yaml`` the way ``dagster dev`` without ``DAGSTER_HOME`` builds one
  (tests of the repo's default run-queue limits).
* :func:`is_valid_cron_string`: Dagster's own cron grammar, to refuse a
  ``schedule:`` in ``datasets.yaml`` when the file loads rather than when the
  schedule is built.
* :class:`ReconstructableRepository`: a job a step subprocess can rebuild by
  importing a module (tests running the multiprocess executor outside the
  daemon).
* :func:`ephemeral_instance`: what ``DagsterInstance.ephemeral()`` builds
  (Dagster 1.13 ``dagster._core.instance.factory.create_ephemeral_instance``),
  with an in-memory event log (:class:`_ThrowawayEventLog`) that does less,
  for the CLI's and the API's in-process runs (without ``DAGSTER_HOME``):

  - a run generates one ``ASSET_MATERIALIZATION_PLANNED`` event per asset,
    holding the run's partition subset, instead of one per partition.
    Dagster's own storages do that only under the
    ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS`` variable
    (``EventLogStorage.supports_partition_subset_in_asset_materialization_planned_events``),
    process-wide; a 300-episode range otherwise makes 900 planned events.
  - it stores none of the events of :data:`UNSTORED_EVENT_TYPES`: asset
    events (materializations, observations, planned materializations), asset
    check evaluations and their planned events, step outputs. On the
    300-episode benchmark (five runs) they were 1,308 of the 1,375 events
    stored and 98% of the 5.2-6.4 s the main thread spent storing events
    (about 4.5 ms each: the event row, then an index transaction for the
    asset's tags and ``asset_keys`` row or the check's
    ``asset_check_executions`` row); 67 events, 0.15 s, are left. The
    runs' results still hold every event: ``execute_in_process`` returns
    those of its execution stream, not of the storage, and that is where
    ``pipelines/runner.py`` reads failures, warnings, failed episodes and
    step seconds. Run and step events (start, success, failure, engine and
    resource events, log messages) are stored as before.
  - with no asset event stored its asset tables stay empty, so the reads a
    step makes of them (below) answer empty without a query.

  Nothing needs the unstored events in such a conversion (Dagster 1.13
  read): the run's status is in the run storage; ``STEP_OUTPUT`` records
  are read only to re-execute a run from a parent run
  (``execution/plan/state.py``) or to skip a lone step in its own process
  (``plan.should_skip_step``), neither of which an in-process run does;
  asset records, materializations and observations are read by a step only
  to fill the provenance tags of the materializations it emits
  (``execution/context/data_version_cache.py``: upstream data versions and
  event pointers) and the ``target_materialization_data`` of its check
  evaluations (``AssetCheckResult.to_asset_check_evaluation``), which
  nothing in a conversion reads; planned materializations and check
  executions are read by the UI, the asset daemon, sensors and
  ``FROM_ASSET_FAILURE`` re-execution, none of which sees a throwaway
  instance. So in the results those tags say "no upstream version"
  (``INITIAL``) and the check evaluations name no target materialization;
  what the conversion writes and reports is the same
  (tests/test_evlight_events.py compares a conversion with one on
  ``DagsterInstance.ephemeral()``). The instance dies with the conversion.
  A ``DAGSTER_HOME`` instance (the UI, the daemon) stores every event as
  Dagster does.
* :func:`clear_current_defs_state_storage`: forget the context-local
  defs-state storage that entering a ``DagsterInstance`` sets (tests: a
  storage left behind by a context exited out of order or by the garbage
  collector makes every later ``Definitions`` resolution fail with
  "Attempted to resolve undefined DagsterInstance weakref").
"""

from collections.abc import Sequence
from typing import Any

from dagster import DagsterEventType, DagsterInstance, EventRecordsResult
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.events import ASSET_CHECK_EVENTS as _ASSET_CHECK_EVENTS
from dagster._core.events import ASSET_EVENTS as _ASSET_EVENTS
from dagster._core.instance.ref import InstanceRef
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.instance import InstanceType
from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
from dagster._core.run_coordinator import DefaultRunCoordinator
from dagster._core.storage.defs_state import base as _defs_state_base
from dagster._core.storage.event_log import InMemoryEventLogStorage
from dagster._core.storage.event_log.base import EventLogCursor as _EventLogCursor
from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager
from dagster._core.storage.root import TemporaryLocalArtifactStorage
from dagster._core.storage.runs import InMemoryRunStorage
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._utils.schedules import is_valid_cron_string

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "AssetGraphSubset",
    "AssetKeyPartitionKey",
    "InstanceRef",
    "ReconstructableRepository",
    "UNSTORED_EVENT_TYPES",
    "UnresolvedAssetJobDefinition",
    "clear_current_defs_state_storage",
    "ephemeral_instance",
    "is_valid_cron_string",
]


def clear_current_defs_state_storage() -> None:
    """Set Dagster's current defs-state storage (a ``ContextVar`` of
    ``dagster._core.storage.defs_state.base``, Dagster 1.13) to ``None`` in the
    calling context, with no token to restore: a ``set_defs_state_storage()``
    left open would put the stale storage back when it is collected."""
    _defs_state_base._current_storage.set(None)



#: The events :func:`ephemeral_instance`'s event log does not store: every
#: asset event (Dagster 1.13 ``dagster._core.events.ASSET_EVENTS``:
#: materializations, observations, materialization-planned,
#: failed-to-materialize, freshness changes), every asset check event
#: (``ASSET_CHECK_EVENTS``: evaluations and planned evaluations) and step
#: outputs. What reads them and why a throwaway instance needs none: the
#: module docstring.
UNSTORED_EVENT_TYPES: frozenset[DagsterEventType] = frozenset(
    {*_ASSET_EVENTS, *_ASSET_CHECK_EVENTS, DagsterEventType.STEP_OUTPUT}
)


def _stored(event: Any) -> bool:
    """Whether the throwaway event log keeps ``event`` (an ``EventLogEntry``):
    every log message and every Dagster event not of :data:`UNSTORED_EVENT_TYPES`."""
    return event.dagster_event is None or event.dagster_event.event_type not in UNSTORED_EVENT_TYPES


def _no_records(limit: int, cursor: str | None) -> EventRecordsResult:
    """What ``SqlEventLogStorage.fetch_materializations``/``fetch_observations``
    return when no event matches (Dagster 1.13 ``_get_event_records_result``)."""
    return EventRecordsResult([], cursor=cursor or _EventLogCursor.from_storage_id(-1).to_string(), has_more=limit == 0)


class _ThrowawayEventLog(InMemoryEventLogStorage):
    """Dagster's in-memory event log that generates one planned event per asset
    and run and stores no event of :data:`UNSTORED_EVENT_TYPES` (see
    :func:`ephemeral_instance`).

    ``DagsterInstance.handle_new_event`` stores through ``store_event``, or
    ``store_event_batch`` under ``DAGSTER_EVENT_BATCH_SIZE`` (Dagster 1.13
    ``instance/methods/event_methods.py``); both filter here. A skipped event
    still reaches the instance's run listeners and the run's result.

    With no asset event stored, the asset tables (``asset_keys``, asset
    event rows) stay empty, so the reads each step makes of them for
    provenance (``get_asset_records``, then ``fetch_observations``;
    ``fetch_materializations`` for a check's target) answer empty here
    without a query: the answer the query would give
    (tests/test_perf_structure.py compares them)."""

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        return True

    def store_event(self, event: Any) -> None:
        if _stored(event):
            super().store_event(event)

    def store_event_batch(self, events: Sequence[Any]) -> None:
        kept = [e for e in events if _stored(e)]
        if kept:
            super().store_event_batch(kept)

    def get_asset_records(self, asset_keys: Sequence[Any] | None = None) -> Sequence[Any]:
        return []

    def fetch_materializations(self, records_filter: Any, limit: int, cursor: str | None = None, ascending: bool = False) -> EventRecordsResult:
        return _no_records(limit, cursor)

    def fetch_observations(self, records_filter: Any, limit: int, cursor: str | None = None, ascending: bool = False) -> EventRecordsResult:
        return _no_records(limit, cursor)


def ephemeral_instance() -> DagsterInstance:
    """An ephemeral instance (in-memory runs and event log, temporary artifact
    folder, runs launched synchronously) like ``DagsterInstance.ephemeral()``,
    whose event log generates one materialization-planned event per asset and
    run rather than one per partition, and stores no event of
    :data:`UNSTORED_EVENT_TYPES` (asset and asset check events, step
    outputs): read them from the run's result (``result.all_events``), not
    from ``instance``. Use it as ``DagsterInstance.ephemeral()``:
    ``with ephemeral_instance() as instance: ...``."""
    return DagsterInstance(
        instance_type=InstanceType.EPHEMERAL,
        local_artifact_storage=TemporaryLocalArtifactStorage(),
        run_storage=InMemoryRunStorage(),
        event_storage=_ThrowawayEventLog(),
        compute_log_manager=NoOpComputeLogManager(),
        run_coordinator=DefaultRunCoordinator(),
        run_launcher=SyncInMemoryRunLauncher(),
    )
