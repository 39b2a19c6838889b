"""Sensors, schedules and batched backfills of a dataset (pipelines/automation.py).

Sensors and schedules are evaluated with Dagster's public test utilities
(``build_sensor_context`` / ``build_schedule_context`` and ``evaluate_tick``);
what they request is then executed in-process, in the order the daemon would
(tests/helpers_dagster.py), and the output compared with a fresh conversion.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dagster import AddDynamicPartitionsRequest, BackfillPolicy, build_schedule_context, build_sensor_context, instance_for_test

from lerobot_lance.source import LocalSource
from pipelines.automation import (
    SensorCursor,
    register_sensor_name,
    reconvert_job_name,
    schedule_name,
    sensor_name,
)
from pipelines.config import DatasetConfig
from pipelines.dagster_compat import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from pipelines.definitions import build_definitions, default_resources
from pipelines.runner import run_conversion
from tests.conftest import sample
from tests.helpers_dagster import assert_same_tables, execute_backfill_request, make_v2_dataset
from tests.verify import verify_output

SAMPLE = "g1_v21"  # v2.1, 6 episodes, one mp4 per episode: episodes can be added one file at a time


@pytest.fixture()
def instance() -> Any:
    with instance_for_test() as inst:  # on disk, so schedule contexts get an instance ref
        yield inst


def _cfg(src: Path | str, out: Path, **kw: Any) -> DatasetConfig:
    return DatasetConfig(name="g1", source=str(src), output=str(out), options={"backfill_batch_size": 100}, **kw)


def _tick(defs: Any, cfg: DatasetConfig, instance: Any, cursor: str | None) -> Any:
    sensor = defs.get_repository_def().get_sensor_def(sensor_name(cfg))
    with build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=default_resources()) as context:
        return sensor.evaluate_tick(context)


def _requested(data: Any) -> tuple[list[str], set[str]]:
    """(episode partition keys, unpartitioned asset names) of the tick's one backfill request."""
    assert len(data.run_requests) == 1, data.run_requests
    req = data.run_requests[0]
    assert req.requires_backfill_daemon()
    keys: set[str] = set()
    plain: set[str] = set()
    for ap in req.asset_graph_subset.iterate_asset_partitions():
        if ap.partition_key is None:
            plain.add(ap.asset_key.path[-1])
        else:
            assert ap.asset_key.path[-1] in ("episode_frames", "episode_videos", "episode_stats")
            keys.add(ap.partition_key)
    return sorted(keys), plain


def _added(data: Any) -> list[str]:
    return [k for r in data.dynamic_partitions_requests if isinstance(r, AddDynamicPartitionsRequest) for k in r.partition_keys]


TABLES = {"source_meta", "source_videos", "frames_table", "episodes_table", "videos_table", "dataset_stats", "lance_dataset"}


def test_definitions_expose_sensor_schedule_retries_and_batched_backfills(tmp_path: Path) -> None:
    off = _cfg(tmp_path / "src", tmp_path / "out")
    on = DatasetConfig(name="g2", source=str(tmp_path / "src"), output=str(tmp_path / "out2"), schedule="15 2 * * *",
                       options={"backfill_batch_size": 25})
    repo = build_definitions([off, on]).get_repository_def()
    sensors = {s.name: s for s in repo.sensor_defs}
    schedules = {s.name: s for s in repo.schedule_defs}
    assert set(sensors) == {"g1__source_change", "g2__source_change", "g1__register_episodes", "g2__register_episodes"}
    # the change sensors launch runs: off until switched on; the registration sensors launch nothing: on
    assert {n: s.default_status.value for n, s in sensors.items()} == {
        "g1__source_change": "STOPPED", "g2__source_change": "STOPPED",
        "g1__register_episodes": "RUNNING", "g2__register_episodes": "RUNNING",
    }
    assert set(schedules) == {"g2__full_reconversion"}  # g1 sets no schedule: it has none
    assert schedules["g2__full_reconversion"].cron_schedule == "15 2 * * *"
    assert schedules["g2__full_reconversion"].execution_timezone == "UTC"
    assert schedules["g2__full_reconversion"].default_status.value == "RUNNING"
    assert schedules["g2__full_reconversion"].job_name == "g2__reconvert"
    job = repo.get_job("g1__reconvert")
    assert len(job.asset_layer.executable_asset_keys) == 10
    for name, batch in (("g1", 100), ("g2", 25)):
        for asset in ("episode_frames", "episode_videos", "episode_stats"):
            ad = repo.assets_defs_by_key[next(k for k in repo.assets_defs_by_key if k.path == [name, asset])]
            assert ad.backfill_policy == BackfillPolicy.multi_run(batch)
            assert ad.op.retry_policy is not None and ad.op.retry_policy.max_retries >= 1


def test_sensor_converts_everything_once_then_does_nothing(tmp_path: Path, instance: Any) -> None:
    src = make_v2_dataset(sample(SAMPLE), tmp_path / "src", 4)
    cfg = _cfg(src, tmp_path / "out")
    defs = build_definitions([cfg])

    first = _tick(defs, cfg, instance, None)
    keys, plain = _requested(first)
    assert keys == ["000000", "000001", "000002", "000003"] and plain == TABLES
    assert _added(first) == keys
    assert SensorCursor.parse(first.cursor).revision == LocalSource(src).revision()
    log = execute_backfill_request(defs, cfg, first.run_requests[0], instance, first.dynamic_partitions_requests)
    assert [ok for *_, ok in log.runs] == [True, True, True]
    assert log.episode_runs() == [keys]  # one batched run for the four episodes
    verify_output(tmp_path / "out", src, decode=False)

    again = _tick(defs, cfg, instance, first.cursor)
    assert again.run_requests == [] and "unchanged" in again.skip_message
    assert again.cursor is None or again.cursor == first.cursor


def test_sensor_backfills_exactly_the_new_and_changed_episodes(tmp_path: Path, instance: Any) -> None:
    src = make_v2_dataset(sample(SAMPLE), tmp_path / "src", 4)
    cfg = _cfg(src, tmp_path / "out")
    defs = build_definitions([cfg])
    first = _tick(defs, cfg, instance, None)
    execute_backfill_request(defs, cfg, first.run_requests[0], instance, first.dynamic_partitions_requests)
    from lerobot_lance.staging import default_staging_dir

    staged = default_staging_dir(str(tmp_path / "out")) / "frames"  # staging lives outside the output
    assert not (tmp_path / "out" / "_staging").exists()
    def checked() -> dict[str, str]:  # when episode_frames last checked each episode (carried-forward records keep it)
        return {p.name: json.loads(p.read_text())["checked_at"] for p in staged.glob("episode_*.json")}

    before = checked()

    # Two episodes are appended to the source.
    make_v2_dataset(sample(SAMPLE), src, 6)
    grown = _tick(defs, cfg, instance, first.cursor)
    keys, plain = _requested(grown)
    assert keys == ["000004", "000005"] and plain == TABLES
    assert _added(grown) == ["000004", "000005"]
    log = execute_backfill_request(defs, cfg, grown.run_requests[0], instance, grown.dynamic_partitions_requests)
    assert all(ok for *_, ok in log.runs) and log.episode_runs() == [["000004", "000005"]]
    # Episodes 0-3 were carried forward, not converted again.
    assert {k: v for k, v in checked().items() if k in before} == before and len(before) == 4
    assert _tick(defs, cfg, instance, grown.cursor).run_requests == []

    # One episode's file is rewritten (same rows, new file): only that episode again.
    data = src / "data" / "chunk-000" / "episode_000002.parquet"
    tmp = data.with_suffix(".new")
    shutil.copyfile(data, tmp)
    time.sleep(0.01)
    os.replace(tmp, data)
    changed = _tick(defs, cfg, instance, grown.cursor)
    keys, _ = _requested(changed)
    assert keys == ["000002"] and _added(changed) == []
    log = execute_backfill_request(defs, cfg, changed.run_requests[0], instance, changed.dynamic_partitions_requests)
    assert all(ok for *_, ok in log.runs) and log.episode_runs() == [["000002"]]

    # The incrementally maintained tables equal a fresh full conversion.
    fresh = tmp_path / "fresh"
    run_conversion(str(src), str(fresh))
    assert_same_tables(tmp_path / "out", fresh)
    verify_output(tmp_path / "out", src, decode=False)


class _FakeHub:
    """Stands in for the Hugging Face Hub at the huggingface_hub boundary
    (``HfApi.dataset_info`` and ``snapshot_download``, monkeypatched): the Hub
    is unreachable from the test machine. Serves a local sample as the repo,
    at a commit sha and per-file blob ids the test sets."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sha = "a" * 40
        self.blob_ids = {str(p.relative_to(root)): f"blob-{p.name}-0" for p in root.rglob("*") if p.is_file()}
        self.calls: list[tuple[str, str | None, bool]] = []

    def dataset_info(self, api: Any, repo_id: str, *, revision: str | None = None, files_metadata: bool = False, **_: Any) -> Any:
        self.calls.append((repo_id, revision, files_metadata))
        siblings = [SimpleNamespace(rfilename=k, blob_id=v, lfs=None) for k, v in self.blob_ids.items()]
        return SimpleNamespace(id=repo_id, sha=self.sha if revision in (None, "main", self.sha) else revision, siblings=siblings)

    def snapshot_download(self, repo_id: str, **_: Any) -> str:
        return str(self.root)

    def list_repo_files(self, api: Any, repo_id: str, *, revision: str | None = None, **_: Any) -> list[str]:
        return sorted(self.blob_ids)


def test_hub_sensor_follows_the_commit_sha_of_the_configured_revision(tmp_path: Path, instance: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    hub = _FakeHub(make_v2_dataset(sample(SAMPLE), tmp_path / "repo", 4))
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda self, repo_id, **kw: hub.dataset_info(self, repo_id, **kw))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda self, repo_id, **kw: hub.list_repo_files(self, repo_id, **kw))
    cfg = _cfg("acme/g1-sample", tmp_path / "out")
    defs = build_definitions([cfg])

    first = _tick(defs, cfg, instance, None)
    assert ("acme/g1-sample", "main", False) in hub.calls  # the configured revision (default main) resolved to a sha
    assert SensorCursor.parse(first.cursor).revision == hub.sha
    keys, _ = _requested(first)
    assert keys == ["000000", "000001", "000002", "000003"]
    log = execute_backfill_request(defs, cfg, first.run_requests[0], instance, first.dynamic_partitions_requests)
    assert all(ok for *_, ok in log.runs)

    assert _tick(defs, cfg, instance, first.cursor).run_requests == []  # same sha: nothing to do

    hub.sha = "b" * 40  # a new commit that touches no episode file (say, the README)
    quiet = _tick(defs, cfg, instance, first.cursor)
    assert quiet.run_requests == [] and SensorCursor.parse(quiet.cursor).revision == hub.sha

    hub.sha = "c" * 40  # a new commit that rewrites episode 1's parquet
    hub.blob_ids["data/chunk-000/episode_000001.parquet"] = "blob-episode_000001.parquet-1"
    changed = _tick(defs, cfg, instance, quiet.cursor)
    keys, _ = _requested(changed)
    assert keys == ["000001"]


def test_schedule_runs_one_full_reconversion_over_every_episode(tmp_path: Path, instance: Any) -> None:
    src = make_v2_dataset(sample(SAMPLE), tmp_path / "src", 6)
    cfg = _cfg(src, tmp_path / "out", schedule="0 4 * * *")
    defs = build_definitions([cfg])
    sched = defs.get_repository_def().get_schedule_def(schedule_name(cfg))
    with build_schedule_context(instance=instance, repository_def=defs.get_repository_def(), resources=default_resources()) as context:
        data = sched.evaluate_tick(context)
    assert len(data.run_requests) == 1
    req = data.run_requests[0]
    assert req.tags[ASSET_PARTITION_RANGE_START_TAG] == "000000" and req.tags[ASSET_PARTITION_RANGE_END_TAG] == "000005"
    assert instance.get_dynamic_partitions("g1_episodes") == [f"{i:06d}" for i in range(6)]
    result = defs.resolve_job_def(reconvert_job_name(cfg)).execute_in_process(instance=instance, tags=req.tags, raise_on_error=False)
    assert result.success
    verify_output(tmp_path / "out", src, decode=False)


def test_a_dataset_without_schedule_has_no_schedule(tmp_path: Path) -> None:
    """No ``schedule:`` key, ``schedule: null`` or ``schedule: ""``: no schedule at all
    (not a stopped one on some default cron); the reconversion job stays, to launch by hand."""
    import yaml

    from pipelines.config import load_dataset_configs

    yml = tmp_path / "datasets.yaml"
    yml.write_text(yaml.safe_dump({"datasets": [
        {"name": "absent", "source": str(sample(SAMPLE)), "output": str(tmp_path / "o1")},
        {"name": "null", "source": str(sample(SAMPLE)), "output": str(tmp_path / "o2"), "schedule": None},
        {"name": "empty", "source": str(sample(SAMPLE)), "output": str(tmp_path / "o3"), "schedule": ""},
        {"name": "weekly", "source": str(sample(SAMPLE)), "output": str(tmp_path / "o4"), "schedule": "0 3 * * 0"},
    ]}))
    cfgs = load_dataset_configs(yml)
    assert [c.schedule for c in cfgs] == [None, None, None, "0 3 * * 0"]
    repo = build_definitions(cfgs).get_repository_def()
    assert [(s.name, s.cron_schedule, s.default_status.value) for s in repo.schedule_defs] == [
        ("weekly__full_reconversion", "0 3 * * 0", "RUNNING")
    ]
    assert {j.name for j in repo.get_all_jobs() if j.name.endswith("__reconvert")} == {
        "absent__reconvert", "null__reconvert", "empty__reconvert", "weekly__reconvert"
    }


@pytest.mark.parametrize("value", ["every sunday", "0 3 * *", 5])
def test_a_schedule_that_is_not_a_cron_string_is_refused_naming_the_file_and_dataset(tmp_path: Path, value: Any) -> None:
    import yaml

    from pipelines.config import load_dataset_configs

    yml = tmp_path / "datasets.yaml"
    yml.write_text(yaml.safe_dump({"datasets": [{"name": "g1", "source": "x", "output": "y", "schedule": value}]}))
    with pytest.raises(ValueError) as err:
        load_dataset_configs(yml)
    assert str(yml) in str(err.value) and "'g1'" in str(err.value) and repr(value) in str(err.value)


def test_register_sensor_registers_every_episode_once_and_launches_nothing(tmp_path: Path, instance: Any) -> None:
    """A fresh instance: the first tick registers one partition per episode of
    the source (so the UI shows 0 of 4 materialized, not Dagster's green 0 of 0);
    the next tick sees them and leaves the source alone."""
    src = make_v2_dataset(sample(SAMPLE), tmp_path / "src", 4)
    cfg = _cfg(src, tmp_path / "out")
    defs = build_definitions([cfg])
    sensor = defs.get_repository_def().get_sensor_def(register_sensor_name(cfg))

    def tick() -> Any:
        with build_sensor_context(instance=instance, definitions=defs, resources=default_resources()) as context:
            return sensor.evaluate_tick(context)

    assert instance.get_dynamic_partitions("g1_episodes") == []
    first = tick()
    assert first.run_requests == [] and _added(first) == ["000000", "000001", "000002", "000003"]
    for req in first.dynamic_partitions_requests:
        instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
    second = tick()
    assert second.run_requests == [] and second.dynamic_partitions_requests == []
    assert "4 episode partition(s) registered" in second.skip_message
    (src / "meta" / "info.json").unlink()  # not read again once registered
    assert "registered" in tick().skip_message


def test_register_sensor_skips_with_the_reason_when_the_source_is_unreadable(tmp_path: Path, instance: Any) -> None:
    src = make_v2_dataset(sample(SAMPLE), tmp_path / "src", 2)
    (src / "meta" / "info.json").write_text("{not json")
    cfg = _cfg(src, tmp_path / "out")
    defs = build_definitions([cfg])
    sensor = defs.get_repository_def().get_sensor_def(register_sensor_name(cfg))
    with build_sensor_context(instance=instance, definitions=defs, resources=default_resources()) as context:
        data = sensor.evaluate_tick(context)
    assert data.run_requests == [] and data.dynamic_partitions_requests == []
    assert "episodes not registered" in data.skip_message and "info.json" in data.skip_message, data.skip_message
