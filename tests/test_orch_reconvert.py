"""One run for the whole graph (issue 11, target 3): ``<name>__reconvert`` over
every episode partition of the bundled sample converts and publishes in one
run; with ``backfill_policy: single_run`` a rerun of one episode partition (what the UI's
rerun of a failed partition launches) is a run of a range of one, and the
published tables hold every frame of the source."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import DagsterInstance

from lerobot_lance.staging import partition_key
from pipelines.automation import reconvert_job_name
from pipelines.config import REPO_ROOT, DatasetConfig
from pipelines.definitions import build_definitions
from pipelines.jobs import episodes_job_name, publish_job_name
from tests.helpers_dagster import _execute, RunLog

SAMPLE = REPO_ROOT / "examples" / "g1_multicam_v30"


def test_reconvert_is_one_run_and_a_single_partition_rerun_works(tmp_path: Path) -> None:
    import lance

    info = json.loads((SAMPLE / "meta" / "info.json").read_text())
    cfg = DatasetConfig(name="g1s", source=str(SAMPLE), output=str(tmp_path / "out"),
                        options={"backfill_policy": "single_run", "staging_dir": str(tmp_path / "staging"), "stats_plot": False})
    defs = build_definitions([cfg])
    log = RunLog()
    with DagsterInstance.ephemeral() as instance:
        keys = [partition_key(e) for e in range(info["total_episodes"])]
        instance.add_dynamic_partitions("g1s_episodes", keys)
        result = _execute(defs, reconvert_job_name(cfg), instance, log, keys)
        assert result.success
        steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert len(steps) == 10, steps  # every asset of the graph, in this one run
        frames = lance.dataset(str(tmp_path / "out" / "frames.lance"))
        assert frames.count_rows() == info["total_frames"]

        # the UI's rerun of one partition: a run over the range [last, last]
        rerun = _execute(defs, episodes_job_name(cfg), instance, log, keys[-1:])
        assert rerun.success
        mats = [e for e in rerun.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
        assert {m.event_specific_data.materialization.partition for m in mats} == {keys[-1]}
        assert _execute(defs, publish_job_name(cfg), instance, log).success
    assert lance.dataset(str(tmp_path / "out" / "frames.lance")).count_rows() == info["total_frames"]
