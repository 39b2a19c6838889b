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
* :func:`clear_current_defs_state_storage`: forget the context-local
  defs-state storage that entering a ``DagsterInstance`` sets (tests: a
  storage left behind by a context exited out of order or by the garbage
  collector makes every later ``Definitions`` resolution fail with
  "Attempted to resolve undefined DagsterInstance weakref").
"""

from dagster._core.definitions.assets.graph.asset_graph_subset import AssetGraphSubset
from dagster._core.definitions.events import AssetKeyPartitionKey
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.instance.ref import InstanceRef
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition
from dagster._core.storage.defs_state import base as _defs_state_base
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
    "is_valid_cron_string",
]


def clear_current_defs_state_storage() -> None:
    """Set Dagster's current defs-state storage (a ``ContextVar`` of
    ``dagster._core.storage.defs_state.base``, Dagster 1.13) to ``None`` in the
    calling context, with no token to restore: a ``set_defs_state_storage()``
    left open would put the stale storage back when it is collected."""
    _defs_state_base._current_storage.set(None)

