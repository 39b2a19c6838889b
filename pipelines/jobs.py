"""Jobs per dataset: the partitioned episode stages, and the table + publish stages."""

from __future__ import annotations

from dagster import AssetKey, AssetSelection, DynamicPartitionsDefinition, define_asset_job

from assets import partitions_name
from pipelines.config import DatasetConfig
from pipelines.dagster_compat import UnresolvedAssetJobDefinition

#: Run tag of the jobs that write a dataset's output root (resolve: recovery and
#: the source snapshot; publish: tables, tags, meta/). ``dagster.yaml``
#: (the repo's, read by ``dagster dev``, and ``deploy/dagster.yaml``) limits runs
#: to one per value, so two such runs of one dataset never overlap in the queue;
#: the output's writer lock (lerobot_lance.output_lock) refuses any that do.
OUTPUT_WRITER_TAG = "lerobot_lance/output_writer"

EPISODE_ASSETS = ("episode_frames", "episode_videos", "episode_stats")
TABLE_ASSETS = ("source_videos", "frames_table", "episodes_table", "videos_table", "dataset_stats", "lance_dataset")


def source_job_name(cfg: DatasetConfig) -> str:
    return f"{cfg.name}__resolve_source"


def episodes_job_name(cfg: DatasetConfig) -> str:
    return f"{cfg.name}__convert_episodes"


def publish_job_name(cfg: DatasetConfig) -> str:
    return f"{cfg.name}__publish"


def _keys(cfg: DatasetConfig, names: tuple[str, ...]) -> AssetSelection:
    return AssetSelection.assets(*(AssetKey([cfg.name, n]) for n in names))


def build_jobs(cfg: DatasetConfig) -> list[UnresolvedAssetJobDefinition]:
    """Three jobs: resolve the source; convert a range of episode partitions;
    build and publish the tables. Together they are one full conversion."""
    return [
        define_asset_job(
            source_job_name(cfg), selection=_keys(cfg, ("source_meta",)), tags={OUTPUT_WRITER_TAG: cfg.name},
            description=f"Resolve {cfg.name}'s source and register its episodes.",
        ),
        define_asset_job(
            episodes_job_name(cfg),
            selection=_keys(cfg, EPISODE_ASSETS),
            partitions_def=DynamicPartitionsDefinition(name=partitions_name(cfg)),
            description=f"Stage frames, videos and stats of a range of {cfg.name}'s episodes.",
        ),
        define_asset_job(
            publish_job_name(cfg), selection=_keys(cfg, TABLE_ASSETS), tags={OUTPUT_WRITER_TAG: cfg.name},
            description=f"Build and publish {cfg.name}'s Lance tables.",
        ),
    ]
