"""Memory that does not grow with the number of episodes (issue #11, target 7).

One conversion of the 6-episode ``g1_v21`` sample, in batches of 2 episodes
(three episode runs), with the staged-record cache bounded at 2 records:

* ``staging._RECORDS`` ends with at most 2 records, while the published
  tables still hold every episode (rows and per-episode stats equal to the
  staged records, which equal the files);
* the throwaway Dagster instance of the CLI keeps no event of a finished
  episode run (runner deletes them), but keeps the source and publish runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lance
import pytest
from dagster import DagsterInstance

from tests.conftest import EPISODE_LENGTHS, sample


@pytest.fixture(scope="module")
def bounded_conversion(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    import pipelines.runner as runner
    from lerobot_lance import staging

    mp = pytest.MonkeyPatch()
    instance = DagsterInstance.ephemeral()  # held here, so it outlives the conversion
    mp.setattr(runner, "_instance", lambda stack: instance)
    mp.setattr(staging, "_RECORDS_MAX", 2)
    staging._RECORDS.clear()
    staging._STATES.clear()
    tmp = tmp_path_factory.mktemp("mem_bounded")
    out, stage_dir = tmp / "out", tmp / "staging"
    try:
        summary = runner.run_conversion(
            str(sample("g1_v21")), str(out), options={"backfill_batch_size": 2}, staging_dir=str(stage_dir)
        )
        yield {
            "summary": summary, "out": out, "instance": instance, "records": dict(staging._RECORDS),
            "staging": next(stage_dir.iterdir()) if not (stage_dir / "source.json").exists() else stage_dir,
        }
    finally:
        mp.undo()
        instance.dispose()


def test_record_cache_stays_within_its_bound(bounded_conversion: dict[str, Any]) -> None:
    records = bounded_conversion["records"]
    assert 1 <= len(records) <= 2
    for path, (_, rec) in records.items():  # what the cache holds is the file's content
        assert rec == json.loads(Path(path).read_text())


def test_bounded_cache_publishes_every_episode_with_its_stats(bounded_conversion: dict[str, Any]) -> None:
    out, root = bounded_conversion["out"], bounded_conversion["staging"]
    assert bounded_conversion["summary"].rows["frames"] == sum(EPISODE_LENGTHS)
    eps = lance.dataset(str(out / "episodes.lance")).to_table(columns=["episode_index", "length", "stats"]).to_pylist()
    assert [e["episode_index"] for e in eps] == list(range(6))
    assert [e["length"] for e in eps] == list(EPISODE_LENGTHS)
    for e in eps:  # each row's stats are its own episode's staged stats, not a neighbour's
        staged = json.loads((root / "stats" / f"episode_{e['episode_index']:06d}.json").read_text())
        stats = e["stats"] if isinstance(e["stats"], dict) else json.loads(e["stats"])
        count = staged["stats"]["action"]["count"]
        assert stats["action"]["count"] == count and count[0] == e["length"]


def test_episode_run_events_are_not_kept(bounded_conversion: dict[str, Any]) -> None:
    summary, instance = bounded_conversion["summary"], bounded_conversion["instance"]
    assert len(summary.runs) == 5  # source, three batches of 2 episodes, publish
    source_run, *episode_runs, publish_run = summary.runs
    for run_id in episode_runs:
        assert instance.get_run_by_id(run_id) is None
        assert instance.all_logs(run_id) == []
    for run_id in (source_run, publish_run):
        assert instance.get_run_by_id(run_id).is_success
        assert instance.all_logs(run_id)
