"""The code location: one Definitions object built from ``datasets.yaml``.

Each configured dataset contributes its asset group, jobs, sensors and, if
its config sets ``schedule:``, its reconversion schedule; resources are
shared. ``dagster dev`` (via ``workspace.yaml``) and the CLI both load
:data:`defs`.
"""

from __future__ import annotations

import os

from dagster import Definitions, EnvVar, ExecutorDefinition, ResourceDefinition

from assets import build_dataset_assets
from pipelines.automation import build_automation_jobs, build_schedules, build_sensors
from pipelines.config import DatasetConfig, load_dataset_configs, load_executor_settings
from pipelines.executor import code_location_executor, executor_from_settings
from pipelines.jobs import build_jobs
from pipelines.tools_jobs import build_tools_jobs
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
    configs: list[DatasetConfig], resources: dict[str, object] | None = None, executor: ExecutorDefinition | None = None
) -> Definitions:
    """Definitions for these datasets (every asset, job, schedule and sensor);
    ``executor`` (default in-process, :mod:`pipelines.executor`) runs their steps."""
    assets, jobs, schedules, sensors = [], [], [], []
    for cfg in configs:
        assets += build_dataset_assets(cfg)
        jobs += build_jobs(cfg)
        jobs += build_automation_jobs(cfg)
        schedules += build_schedules(cfg)
        sensors += build_sensors(cfg)
    jobs += build_tools_jobs()  # dataset tools on outputs (delete, split, merge, features, push), run from the Launchpad
    return Definitions(
        assets=assets, jobs=jobs, schedules=schedules, sensors=sensors, resources=resources or default_resources(),
        executor=executor or code_location_executor,  # in-process unless datasets.yaml or a run's config says otherwise
    )


defs = build_definitions(load_dataset_configs(), executor=executor_from_settings(load_executor_settings()))
