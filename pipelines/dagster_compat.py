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
  with an in-memory event log that records one
  ``ASSET_MATERIALIZATION_PLANNED`` event per asset and run, holding the
  run's partition subset, instead of one per partition. Dagster's own
  storages do that only under the ``DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS``
  variable (``EventLogStorage.supports_partition_subset_in_asset_materialization_planned_events``),
  process-wide; the CLI's in-process runs of a 300-episode range otherwise
  store 900 planned rows, 2.3 s of the main thread. Nothing reads them: the
  instance dies with the run, and failed episodes come from the
  ``episodes_staged`` check evaluations (``pipelines/runner.py``).
* :func:`clear_current_defs_state_storage`: forget the context-local
  defs-state storage that entering a ``DagsterInstance`` sets (tests: a
  storage left behind by a context exited out of order or by the garbage
  collector makes every later ``Definitions`` resolution fail with
  "Attempted to resolve undefined DagsterInstance weakref").
"""

from dagster import DagsterInstance
from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.instance.ref import InstanceRef
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.instance import InstanceType
from dagster._core.launcher.sync_in_memory_run_launcher import SyncInMemoryRunLauncher
from dagster._core.run_coordinator import DefaultRunCoordinator
from dagster._core.storage.defs_state import base as _defs_state_base
from dagster._core.storage.event_log import InMemoryEventLogStorage
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



class _PartitionSubsetPlannedEventLog(InMemoryEventLogStorage):
    """Dagster's in-memory event log, with one planned event per asset and run
    (see :func:`ephemeral_instance`)."""

    @property
    def supports_partition_subset_in_asset_materialization_planned_events(self) -> bool:
        return True


def ephemeral_instance() -> DagsterInstance:
    """An ephemeral instance (in-memory runs and event log, temporary artifact
    folder, runs launched synchronously) like ``DagsterInstance.ephemeral()``,
    whose event log stores one materialization-planned event per asset and run
    rather than one per partition. Use it as ``DagsterInstance.ephemeral()``:
    ``with ephemeral_instance() as instance: ...``."""
    return DagsterInstance(
        instance_type=InstanceType.EPHEMERAL,
        local_artifact_storage=TemporaryLocalArtifactStorage(),
        run_storage=InMemoryRunStorage(),
        event_storage=_PartitionSubsetPlannedEventLog(),
        compute_log_manager=NoOpComputeLogManager(),
        run_coordinator=DefaultRunCoordinator(),
        run_launcher=SyncInMemoryRunLauncher(),
    )
