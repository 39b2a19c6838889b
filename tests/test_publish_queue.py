"""Runs that write one dataset's output are kept from overlapping by default: the
jobs carry a per-dataset tag and the repo's dagster.yaml (what ``dagster dev``
reads without DAGSTER_HOME) and deploy/dagster.yaml limit it to one run per value."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from dagster import DagsterInstance

from pipelines.config import DatasetConfig
from pipelines.dagster_compat import InstanceRef
from pipelines.definitions import build_definitions
from pipelines.jobs import OUTPUT_WRITER_TAG, publish_job_name, source_job_name

REPO = Path(__file__).resolve().parents[1]
LIMIT = {"key": OUTPUT_WRITER_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": 1}


def test_writer_jobs_are_tagged_and_limited_to_one_run_per_dataset(tmp_path: Path) -> None:
    cfg = DatasetConfig(name="g1", source=str(tmp_path / "src"), output=str(tmp_path / "out"))
    defs = build_definitions([cfg])
    for job in (source_job_name(cfg), publish_job_name(cfg)):
        assert defs.resolve_job_def(job).tags[OUTPUT_WRITER_TAG] == "g1"
    # `dagster dev` without DAGSTER_HOME: a temporary instance configured from the working directory.
    with DagsterInstance.from_ref(InstanceRef.from_dir(tempfile.mkdtemp(dir=tmp_path), config_dir=str(REPO))) as instance:
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert LIMIT in instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
    deploy = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    assert LIMIT in deploy["concurrency"]["runs"]["tag_concurrency_limits"]
