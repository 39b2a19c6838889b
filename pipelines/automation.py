"""Sensors and schedules per dataset: re-convert when the source changes, or on a cron.

Per configured dataset ``<name>``:

* ``<name>__source_change`` (sensor, stopped until switched on in the UI):
  each tick resolves the source's revision -- on the Hub the commit sha the
  configured revision points to (``HfApi().dataset_info(...).sha``), for a
  local directory :meth:`LocalSource.revision` (a fingerprint of ``meta/`` and
  the file list), for an ``s3://`` prefix a hash of its listing (keys, ETags,
  sizes: :func:`lerobot_lance.object_store_source.listing_revision`). If it
  equals the cursor's, nothing happens. Otherwise it fingerprints every
  episode (:func:`lerobot_lance.conversion.episode_fingerprints`), compares
  them with what is staged, registers new episode partitions, and requests
  one asset backfill of exactly the new or changed episodes
  (``source_meta`` first, which re-pins the revision and carries the unchanged
  episodes' staged output forward, then those partitions in batches of
  ``backfill_batch_size``, then the table assets). The cursor then holds the
  revision it acted on.
* ``<name>__full_reconversion`` (schedule on ``<name>__reconvert``), only for a
  dataset whose config sets ``schedule:`` (a cron string, evaluated in UTC):
  one run of every asset over every episode partition, on from the start. A
  dataset without ``schedule:`` has no schedule at all; its
  ``<name>__reconvert`` job is still defined, to launch by hand.

* ``<name>__register_episodes`` (sensor, running from the start; launches
  nothing): while the dataset has no episode partition, each tick reads the
  source's ``meta/`` and registers one partition per episode; once there are
  partitions its ticks only count them. Without it a fresh instance has zero
  partitions, and Dagster 1.13's asset graph draws a partitioned asset with
  zero partitions as complete (green, "0 partitions": it counts 0 missing of
  0); with them the per-episode assets read as never materialized (0 of N)
  until their first run.

The sensor's backfill request uses ``RunRequest.for_asset_graph_subset``: the
way Dagster 1.13's own automation sensors launch backfills (``AssetGraphSubset``
is not a top-level export; it comes from :mod:`pipelines.dagster_compat`). Schedules cannot launch backfills in 1.13, hence
the one-run reconversion job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    define_asset_job,
    schedule,
    sensor,
)

from assets import partitions_name
import lerobot_lance.conversion as convert
import lerobot_lance.episode_stages as stages
from lerobot_lance.errors import LeRobotLanceError
from lerobot_lance.readers import read_dataset_meta
from lerobot_lance.source import DatasetSource, HubSource
from lerobot_lance.staging import partition_key, read_json
from pipelines.config import DatasetConfig
from pipelines.dagster_compat import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    AssetGraphSubset,
    AssetKeyPartitionKey,
    UnresolvedAssetJobDefinition,
)
from pipelines.episode_ranges import ranges_text
from pipelines.jobs import EPISODE_ASSETS, TABLE_ASSETS
from resources import LanceStorageResource, LeRobotSourceResource

#: Seconds between two ticks of the change sensor (``options.sensor_interval_seconds`` overrides).
DEFAULT_SENSOR_INTERVAL_S = 120
#: Seconds between two ticks of the episode registration sensor.
REGISTER_SENSOR_INTERVAL_S = 60
#: Tags on every run the sensor or schedule starts (usable in run-queue concurrency limits).
DATASET_TAG = "lerobot_lance/dataset"
TRIGGER_TAG = "lerobot_lance/trigger"


def reconvert_job_name(cfg: DatasetConfig) -> str:
    return f"{cfg.name}__reconvert"


def sensor_name(cfg: DatasetConfig) -> str:
    return f"{cfg.name}__source_change"


def register_sensor_name(cfg: DatasetConfig) -> str:
    return f"{cfg.name}__register_episodes"


def schedule_name(cfg: DatasetConfig) -> str:
    return f"{cfg.name}__full_reconversion"


def _key(cfg: DatasetConfig, asset: str) -> AssetKey:
    return AssetKey([cfg.name, asset])


def dataset_selection(cfg: DatasetConfig) -> AssetSelection:
    """Every asset of the dataset's group."""
    return AssetSelection.assets(*(_key(cfg, n) for n in ("source_meta", *EPISODE_ASSETS, *TABLE_ASSETS)))


def build_reconvert_job(cfg: DatasetConfig) -> UnresolvedAssetJobDefinition:
    """``<name>__reconvert``: every asset of the dataset in one run over a range of
    episode partitions (``source_meta``, the per-episode stages for the whole
    range, then the tables)."""
    return define_asset_job(
        reconvert_job_name(cfg),
        selection=dataset_selection(cfg),
        partitions_def=DynamicPartitionsDefinition(name=partitions_name(cfg)),
        tags={DATASET_TAG: cfg.name},
        description=f"Re-convert every episode of {cfg.name} and publish, in one run (what the schedule launches).",
    )


# --- revisions ----------------------------------------------------------------------
def current_revision(
    cfg: DatasetConfig, source: LeRobotSourceResource, storage_options: dict[str, str] | None = None
) -> tuple[str, DatasetSource]:
    """(revision, source pinned to it): the Hub commit sha of the configured
    revision, a local directory's fingerprint, or an ``s3://`` prefix's listing
    hash (``storage_options``: the run's object-store options; default the
    dataset's own). Reads no data files."""
    so = storage_options if storage_options is not None else cfg.options.get("storage_options")
    src = source.open(cfg.source, cfg.revision, so)
    if isinstance(src, HubSource):
        sha = src.commit_sha()
        return sha, source.open(cfg.source, sha)
    return src.revision(), src


# --- what changed --------------------------------------------------------------------
@dataclass
class ChangePlan:
    """What a conversion must redo to bring the output to the source's revision.

    Attributes:
        revision: the source revision planned for.
        episodes: every episode of the source, sorted.
        to_convert: new or changed episodes, and episodes whose staged output is
            missing or failed.
        removed: episodes staged before that the source no longer has.
        publish: whether the tables must be (re)published.
    """

    revision: str
    episodes: list[int]
    to_convert: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    publish: bool = False


def plan_changes(cfg: DatasetConfig, src: DatasetSource, storage: LanceStorageResource, revision: str) -> ChangePlan:
    """Compare the source (at ``revision``) with the staged snapshot of the last resolve.

    An episode counts as converted when its fingerprint equals the one in
    ``<staging>/source.json`` and its staged records (frames, stats, and
    videos if the dataset has video cameras) are ``ok`` for that snapshot's
    revision: exactly the records ``source_meta`` carries forward.
    """
    meta = read_dataset_meta(src.meta_root())
    fps = convert.episode_fingerprints(src, meta)
    conv = storage.conversion(cfg)
    snap = read_json(conv.staging.json_file("source.json")) or {}
    old_rev = snap.get("revision")
    old_fps = {int(k): v for k, v in (snap.get("fingerprints") or {}).items()}
    kinds = stages.required_kinds(meta, conv.options)
    conv.staging.prefetch(kinds, sorted(fps))  # shared staging: every record at once

    def converted(ep: int) -> bool:
        return old_fps.get(ep) == fps[ep] and all(conv.staging.current(k, ep, old_rev) for k in kinds)

    plan = ChangePlan(revision=revision, episodes=sorted(fps))
    plan.to_convert = [ep for ep in plan.episodes if not converted(ep)]
    plan.removed = sorted(set(old_fps) - set(fps))
    plan.publish = bool(plan.to_convert or plan.removed) or not _published(conv, old_rev, plan.episodes)
    return plan


def _published(conv: convert.Conversion, revision: str | None, episodes: list[int]) -> bool:
    """Whether the output holds a publish of these episodes at that revision."""
    done = convert.published_record(conv)  # meta/conversion.json, local or on the object store
    return bool(done) and done.get("revision") == revision and sorted(done.get("episodes") or []) == episodes


def reconversion_subset(
    cfg: DatasetConfig, asset_graph: Any, episodes: Sequence[int], *, tables: bool = True
) -> AssetGraphSubset:
    """``source_meta`` + the per-episode assets of ``episodes`` + (optionally) the table assets."""
    wanted = {AssetKeyPartitionKey(_key(cfg, "source_meta"), None)}
    wanted |= {AssetKeyPartitionKey(_key(cfg, a), partition_key(e)) for a in EPISODE_ASSETS for e in episodes}
    if tables:
        wanted |= {AssetKeyPartitionKey(_key(cfg, a), None) for a in TABLE_ASSETS}
    return AssetGraphSubset.from_asset_partition_set(wanted, asset_graph)


@dataclass(frozen=True)
class SensorCursor:
    """What the change sensor last acted on (JSON in the sensor's cursor)."""

    revision: str
    episodes: int = 0
    requested: tuple[int, ...] = ()
    evaluated_at: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {"revision": self.revision, "episodes": self.episodes, "requested": list(self.requested), "evaluated_at": self.evaluated_at}
        )

    @classmethod
    def parse(cls, text: str | None) -> SensorCursor | None:
        if not text:
            return None
        d = json.loads(text)
        return cls(d["revision"], int(d.get("episodes", 0)), tuple(d.get("requested", ())), d.get("evaluated_at", ""))


def make_source_change_sensor(cfg: DatasetConfig, *, minimum_interval_seconds: int | None = None) -> SensorDefinition:
    """The change sensor of one dataset (see the module docstring)."""
    parts = DynamicPartitionsDefinition(name=partitions_name(cfg))
    interval = minimum_interval_seconds or int(cfg.options.get("sensor_interval_seconds", DEFAULT_SENSOR_INTERVAL_S))

    @sensor(
        name=sensor_name(cfg),
        asset_selection=dataset_selection(cfg),
        minimum_interval_seconds=interval,
        default_status=DefaultSensorStatus.STOPPED,
        description=(
            f"Watch {cfg.source} for a new revision or new episodes; backfill exactly the new or changed "
            "episodes, then re-publish the tables."
        ),
    )
    def _source_change(
        context: SensorEvaluationContext, lerobot_source: LeRobotSourceResource, lance_storage: LanceStorageResource
    ) -> SensorResult | SkipReason:
        last = SensorCursor.parse(context.cursor)
        revision, src = current_revision(cfg, lerobot_source, lance_storage.conversion(cfg).options.storage_options)
        if last is not None and last.revision == revision:
            return SkipReason(f"{cfg.source}: revision {revision} unchanged")
        plan = plan_changes(cfg, src, lance_storage, revision)
        registered = set(context.instance.get_dynamic_partitions(parts.name))
        add = [partition_key(e) for e in plan.episodes if partition_key(e) not in registered]
        drop = [partition_key(e) for e in plan.removed if partition_key(e) in registered]
        dyn = ([parts.build_add_request(add)] if add else []) + ([parts.build_delete_request(drop)] if drop else [])
        now = datetime.now(timezone.utc).isoformat()
        cursor = SensorCursor(revision, len(plan.episodes), tuple(plan.to_convert), now).to_json()
        if not plan.publish:
            return SensorResult(
                skip_reason=SkipReason(f"{cfg.source}: revision {revision}: every episode already converted and published"),
                cursor=cursor,
                dynamic_partitions_requests=dyn,
            )
        context.log.info(
            f"{cfg.name}: revision {revision}: converting {len(plan.to_convert)} episode(s) "
            f"{ranges_text(plan.to_convert)}; removed {plan.removed or 'none'}"
        )
        subset = reconversion_subset(cfg, context.repository_def.asset_graph, plan.to_convert)
        request = RunRequest.for_asset_graph_subset(
            subset, tags={DATASET_TAG: cfg.name, TRIGGER_TAG: "sensor", "lerobot_lance/revision": revision[:63]}
        )
        return SensorResult(run_requests=[request], cursor=cursor, dynamic_partitions_requests=dyn)

    return _source_change


def make_register_episodes_sensor(cfg: DatasetConfig) -> SensorDefinition:
    """The episode registration sensor of one dataset (see the module docstring).

    A tick that finds partitions registered returns a skip without touching the
    source. Otherwise it reads ``meta/`` only (on the Hub: downloads it) and
    requests one partition per episode; a source that cannot be read gives a
    skip naming the source and the error (``source_meta`` and its checks report
    bad data), never a failed tick.
    """
    parts = DynamicPartitionsDefinition(name=partitions_name(cfg))

    @sensor(
        name=register_sensor_name(cfg),
        minimum_interval_seconds=REGISTER_SENSOR_INTERVAL_S,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            f"Register one partition per episode of {cfg.source} (meta/ only) while {cfg.name} has none, so the "
            "per-episode assets read as never materialized (0 of N) before their first run. Launches nothing."
        ),
    )
    def _register_episodes(context: SensorEvaluationContext, lerobot_source: LeRobotSourceResource) -> SensorResult | SkipReason:
        registered = context.instance.get_dynamic_partitions(parts.name)
        if registered:
            return SkipReason(f"{len(registered)} episode partition(s) registered")
        try:
            src = lerobot_source.open(cfg.source, cfg.revision, cfg.options.get("storage_options"))
            keys = [partition_key(e) for e in read_dataset_meta(src.meta_root()).episode_indices]
        except (LeRobotLanceError, OSError) as e:
            return SkipReason(f"{cfg.source}: episodes not registered: {e}")
        if not keys:
            return SkipReason(f"{cfg.source}: the source lists no episodes")
        return SensorResult(
            skip_reason=SkipReason(f"{cfg.source}: registered {len(keys)} episode partition(s)"),
            dynamic_partitions_requests=[parts.build_add_request(keys)],
        )

    return _register_episodes


def make_full_reconversion_schedule(cfg: DatasetConfig) -> ScheduleDefinition:
    """The reconversion schedule of one dataset (see the module docstring), on
    ``cfg.schedule`` in UTC and running from the start.

    Each tick registers every episode of the source as a partition (dropping
    partitions of episodes the source no longer has) and requests one run of
    ``<name>__reconvert`` over the whole partition range. Large datasets are
    better served by the sensor or a UI backfill, which batch episodes into
    runs of ``backfill_batch_size``.

    Raises:
        ValueError: ``cfg.schedule`` is not set.
    """
    if not cfg.schedule:
        raise ValueError(f"dataset {cfg.name!r} sets no schedule: it has no reconversion schedule")
    parts = DynamicPartitionsDefinition(name=partitions_name(cfg))

    @schedule(
        name=schedule_name(cfg),
        cron_schedule=cfg.schedule,
        job_name=reconvert_job_name(cfg),
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Full re-conversion of {cfg.name} (every episode, then publish) on a cron.",
    )
    def _full_reconversion(context: ScheduleEvaluationContext, lerobot_source: LeRobotSourceResource) -> RunRequest | SkipReason:
        src = lerobot_source.open(cfg.source, cfg.revision, cfg.options.get("storage_options"))
        keys = [partition_key(e) for e in read_dataset_meta(src.meta_root()).episode_indices]
        if not keys:
            return SkipReason(f"{cfg.source}: no episodes")
        instance = context.instance
        registered = instance.get_dynamic_partitions(parts.name)
        for stale in sorted(set(registered) - set(keys)):
            instance.delete_dynamic_partition(parts.name, stale)
        missing = [k for k in keys if k not in set(registered)]
        if missing:
            instance.add_dynamic_partitions(parts.name, missing)
        ordered = instance.get_dynamic_partitions(parts.name)  # registration order: the range's order
        return RunRequest(
            tags={
                ASSET_PARTITION_RANGE_START_TAG: ordered[0],
                ASSET_PARTITION_RANGE_END_TAG: ordered[-1],
                DATASET_TAG: cfg.name,
                TRIGGER_TAG: "schedule",
            }
        )

    return _full_reconversion


def build_sensors(cfg: DatasetConfig) -> list[SensorDefinition]:
    return [make_source_change_sensor(cfg), make_register_episodes_sensor(cfg)]


def build_schedules(cfg: DatasetConfig) -> list[ScheduleDefinition]:
    """The dataset's reconversion schedule if its config sets ``schedule:``, else none."""
    return [make_full_reconversion_schedule(cfg)] if cfg.schedule else []


def build_automation_jobs(cfg: DatasetConfig) -> list[UnresolvedAssetJobDefinition]:
    """``<name>__reconvert``, defined whether or not a schedule launches it."""
    return [build_reconvert_job(cfg)]
