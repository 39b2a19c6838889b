"""Staged fragments, one-commit-per-table publish, shared tags, interrupted publishes, the writer lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import lance
import lancedb
import pyarrow as pa
import pytest

from lerobot_lance.lance_io import (
    JOURNAL,
    LATEST_TAG,
    PENDING_TABLES_DIR,
    PublishRefused,
    publish,
    read_pending,
    recover_interrupted_publish,
    write_pending,
)
from lerobot_lance.output_lock import LOCK_FILE, OutputLockedError, output_lock
from lerobot_lance.staging import Staging, write_json_atomic

SCHEMA = pa.schema([pa.field("episode_index", pa.int64()), pa.field("x", pa.float32())])


def _stage(staging: Staging, out: Path, table: str, n: int, value: float, batches: int = 1) -> None:
    def batch(k: int) -> pa.RecordBatch:
        return pa.record_batch([pa.array(range(k * n, (k + 1) * n), pa.int64()), pa.array([value] * n, pa.float32())], schema=SCHEMA)

    write_pending(staging, table, str(out / f"{table}.lance"), SCHEMA, [batch(k) for k in range(batches)])


def _publish(st: Staging, out: Path, tables: str, **kw):
    return publish({t: read_pending(st, t) for t in tables}, journal=out / JOURNAL, staging=st, **kw)


def test_pending_fragments_are_invisible_until_publish(tmp_path: Path) -> None:
    st = Staging(tmp_path / "staging")
    out = tmp_path / "out"
    _stage(st, out, "a", 5, 1.0)
    _stage(st, out, "b", 3, 1.0)
    # A table without a version gets no <table>.lance folder before its commit.
    assert not (out / "a.lance").exists() and lancedb.connect(str(out)).table_names() == []
    res = _publish(st, out, "ab")
    a = lance.dataset(str(out / "a.lance"))
    assert a.count_rows() == 5 and lance.dataset(str(out / "b.lance")).count_rows() == 3
    assert res.tag in a.tags.list() and a.tags.list()[LATEST_TAG]["version"] == a.version
    assert not (out / PENDING_TABLES_DIR).exists() and not (out / JOURNAL).exists()
    v1 = a.version

    # A second conversion staged but not published: readers still see version v1.
    _stage(st, out, "a", 7, 2.0)
    a = lance.dataset(str(out / "a.lance"))
    assert a.version == v1 and a.count_rows() == 5

    # Restaging replaces the pending table, never adds to it.
    _stage(st, out, "a", 7, 2.0)
    _stage(st, out, "b", 4, 2.0)
    res2 = _publish(st, out, "ab")
    a = lance.dataset(str(out / "a.lance"))
    assert a.count_rows() == 7
    assert lance.dataset(str(out / "a.lance"), version=res.tag).count_rows() == 5  # old tag still readable
    assert a.tags.list()[LATEST_TAG]["version"] == res2.versions["a"]


def test_many_batches_make_one_fragment(tmp_path: Path) -> None:
    """max_rows_per_file >= 2**32 made Lance close a data file per batch (300 fragments for 300 episodes)."""
    st = Staging(tmp_path / "staging")
    _stage(st, tmp_path / "out", "a", 10, 1.0, batches=50)
    p = read_pending(st, "a")
    assert p.rows == 500 and len(p.fragments) == 1


def test_interrupted_publish_rolls_back_to_the_tagged_version(tmp_path: Path) -> None:
    st, out = Staging(tmp_path / "staging"), tmp_path / "out"
    _stage(st, out, "a", 5, 1.0)
    _stage(st, out, "b", 3, 1.0)
    first = _publish(st, out, "ab")
    before = {t: lance.dataset(str(out / f"{t}.lance")).version for t in "ab"}

    # Simulate a publish killed after committing table a but before b and the tags.
    _stage(st, out, "a", 9, 3.0)
    pa_ = read_pending(st, "a")
    write_json_atomic(out / JOURNAL, {"state": "committing", "tag": "dead",
                                      "tables": {t: {"uri": str(out / f"{t}.lance"), "before": before[t]} for t in "ab"}})
    lance.LanceDataset.commit(pa_.uri, lance.LanceOperation.Overwrite(pa_.commit_schema(), [lance.fragment.FragmentMetadata.from_json(f) for f in pa_.fragments]), read_version=before["a"])
    assert lance.dataset(str(out / "a.lance")).count_rows() == 9

    assert recover_interrupted_publish(out / JOURNAL) == ["a"]
    a = lance.dataset(str(out / "a.lance"))
    assert a.count_rows() == 5
    assert a.to_table()["x"].to_pylist() == [1.0] * 5
    assert not (out / JOURNAL).exists()
    assert lance.dataset(str(out / "a.lance"), version=first.tag).to_table() == a.to_table()
    assert a.tags.list()[LATEST_TAG]["version"] == a.version  # latest follows the restored head
    assert "dead" not in a.tags.list()


def test_publish_of_a_fully_committed_dead_run_rolls_forward(tmp_path: Path) -> None:
    st, out = Staging(tmp_path / "staging"), tmp_path / "out"
    _stage(st, out, "a", 2, 1.0)
    _publish(st, out, "a")
    a = lance.dataset(str(out / "a.lance"))
    write_json_atomic(out / JOURNAL, {"state": "committed", "tag": "t-dead", "tables": {"a": {"uri": str(out / "a.lance"), "before": a.version - 1}},
                                      "committed": {"a": a.version}})
    assert recover_interrupted_publish(out / JOURNAL) == []
    assert "t-dead" in lance.dataset(str(out / "a.lance")).tags.list()
    assert not (out / JOURNAL).exists()


def test_failed_verification_rolls_every_commit_back(tmp_path: Path) -> None:
    st, out = Staging(tmp_path / "staging"), tmp_path / "out"
    _stage(st, out, "a", 2, 1.0)
    _stage(st, out, "b", 2, 1.0)
    first = _publish(st, out, "ab")
    _stage(st, out, "a", 4, 2.0)
    _stage(st, out, "c", 4, 2.0)  # a new table: removed again

    def refuse(versions: dict[str, int]) -> list:
        raise PublishRefused("row count")

    with pytest.raises(PublishRefused):
        publish({t: read_pending(st, t) for t in "ac"}, journal=out / JOURNAL, verify=refuse)
    assert lance.dataset(str(out / "a.lance")).to_table() == lance.dataset(str(out / "a.lance"), version=first.tag).to_table()
    assert not (out / "c.lance").exists() and not (out / JOURNAL).exists()
    assert sorted(lancedb.connect(str(out)).table_names()) == ["a", "b"]


def test_a_table_folder_without_a_version_is_removed_by_recovery(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "frames.lance" / "data").mkdir(parents=True)
    (out / "frames.lance" / "data" / "x.lance").write_bytes(b"uncommitted")
    assert recover_interrupted_publish(out / JOURNAL) == ["frames"]
    assert not (out / "frames.lance").exists()


def test_writer_lock_is_exclusive_reentrant_and_released_by_a_dead_holder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with output_lock(str(out), command="first"):
        with output_lock(str(out)):  # re-entrant within the process
            pass
        # Another process cannot take it and is told who holds it.
        code = (
            "import sys; from lerobot_lance.output_lock import output_lock, OutputLockedError\n"
            "try:\n    output_lock(sys.argv[1]).__enter__()\nexcept OutputLockedError as e:\n    print(e); sys.exit(3)\n"
        )
        p = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 3, p.stderr
        assert f"pid {os.getpid()}" in p.stdout and "first" in p.stdout and "since" in p.stdout
    holder = json.loads((out / LOCK_FILE).read_text())
    assert holder["pid"] == os.getpid()
    # A holder killed with SIGKILL leaves the file; the kernel released the flock.
    child = subprocess.Popen([sys.executable, "-c", "import sys,time; from lerobot_lance.output_lock import output_lock\n"
                              "cm = output_lock(sys.argv[1], command='doomed'); cm.__enter__(); print('held', flush=True); time.sleep(600)", str(out)],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    with pytest.raises(OutputLockedError, match="doomed"):
        with output_lock(str(out)):
            pass
    child.kill()
    child.wait(timeout=30)
    with output_lock(str(out), command="after"):
        assert json.loads((out / LOCK_FILE).read_text())["command"] == "after"


def test_writer_lock_wait_takes_the_lock_once_the_holder_releases_it(tmp_path: Path) -> None:
    """``wait_s``: what the Dagster steps of one run use, since the multiprocess
    and Celery executors run them in different processes (the publish run's
    table steps at once). A waiter takes the lock as soon as the holder lets
    go; a shorter wait still fails, naming the holder; ``0`` refuses at once."""
    out = tmp_path / "out"
    hold_s = 3.0
    child = subprocess.Popen([sys.executable, "-c", "import sys,time; from lerobot_lance.output_lock import output_lock\n"
                              "with output_lock(sys.argv[1], command='step one'):\n"
                              "    print('held', flush=True); time.sleep(float(sys.argv[2]))\n"
                              "print('released', flush=True)", str(out), str(hold_s)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with pytest.raises(OutputLockedError, match="step one"):
            with output_lock(str(out)):
                pass
        assert time.monotonic() - t0 < 1.0
        with pytest.raises(OutputLockedError, match="step one"):
            with output_lock(str(out), wait_s=0.6):
                pass
        assert 0.6 <= time.monotonic() - t0 < hold_s
        with output_lock(str(out), command="step two", wait_s=120):
            waited = time.monotonic() - t0
            assert child.stdout.readline().strip() == "released"
            assert json.loads((out / LOCK_FILE).read_text())["command"] == "step two"
        assert hold_s - 1.0 <= waited < hold_s + 30
    finally:
        child.kill()
        child.wait(timeout=30)


def test_dagster_steps_wait_for_the_lock_and_the_cli_does_not(tmp_path: Path) -> None:
    """The resource Dagster runs build their conversion with waits (600 s by
    default); ``ConvertOptions`` alone (the CLI, the Python API) refuses at once."""
    from lerobot_lance.conversion import ConvertOptions
    from pipelines.config import DatasetConfig
    from resources import LanceStorageResource

    cfg = DatasetConfig(name="g1", source="g1_v21", output=str(tmp_path / "out"), options={})
    storage = {"staging_root": str(tmp_path / "staging")}
    assert LanceStorageResource(**storage).conversion(cfg).options.lock_wait_s == 600.0
    assert LanceStorageResource(**storage, lock_wait_s=5).conversion(cfg).options.lock_wait_s == 5
    assert ConvertOptions().lock_wait_s == 0.0
