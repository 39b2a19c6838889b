"""Build a :class:`dagster.Definitions` for some datasets: what the code
location (:mod:`pipelines.definitions`, from ``datasets.yaml``) and the
in-process runner (:mod:`pipelines.runner`, one dataset per conversion) both
call.

Kept apart from :mod:`pipelines.definitions` because importing that module
builds the code location's own Definitions (reading ``datasets.yaml``), which a
shell conversion never uses.
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, ExecutorDefinition, ResourceDefinition

from assets import build_dataset_assets
from pipelines.automation import build_automation_jobs, build_schedules, build_sensors
from pipelines.config import DatasetConfig
from pipelines.executor import code_location_executor
from pipelines.jobs import build_jobs
from resources import LanceStorageResource, LeRobotSourceResource, ProgressReporter, VideoCodecResource


def default_resources() -> dict[str, object]:
    """Resources of the code location; the Hub token comes from ``HF_TOKEN`` at launch."""
    return {
        "lerobot_source": LeRobotSourceResource(
            hf_token=EnvVar("HF_TOKEN") if os.environ.get("HF_TOKEN") else None,
            cache_dir=os.environ.get("HF_HUB_CACHE"),
        ),
        "lance_storage": LanceStorageResource(staging_root=os.environ.get("LEROBOT_LANCE_STAGING")),
        "video_codec": VideoCodecResource(),
        "progress": ResourceDefinition.hardcoded_resource(ProgressReporter(), "Progress sink (the CLI's bars); no-op here."),
    }


def build_definitions(
    configs: list[DatasetConfig],
    resources: dict[str, object] | None = None,
    executor: ExecutorDefinition | None = None,
    *,
    tools: bool = True,
) -> Definitions:
    """Definitions for these datasets (every asset, job, schedule and sensor);
    ``executor`` (default in-process, :mod:`pipelines.executor`) runs their steps.

    ``tools``: also the dataset tools' jobs (:mod:`pipelines.tools_jobs`,
    launched from the UI on outputs); the in-process runner, which never runs
    them, passes False and so does not import the tools.
    """
    assets, jobs, schedules, sensors = [], [], [], []
    for cfg in configs:
        assets += build_dataset_assets(cfg)
        jobs += build_jobs(cfg)
        jobs += build_automation_jobs(cfg)
        schedules += build_schedules(cfg)
        sensors += build_sensors(cfg)
    if tools:
        from pipelines.tools_jobs import build_tools_jobs

        jobs += build_tools_jobs()  # dataset tools on outputs (delete, split, merge, features, push), run from the Launchpad
    return Definitions(
        assets=assets, jobs=jobs, schedules=schedules, sensors=sensors, resources=resources or default_resources(),
        executor=executor or code_location_executor,  # in-process unless datasets.yaml or a run's config says otherwise
    )
