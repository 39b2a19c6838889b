"""Staged fragments, one-commit-per-table publish, shared tags, interrupted publishes."""

from __future__ import annotations

from pathlib import Path

import lance
import pyarrow as pa

from lerobot_lance.lance_io import LATEST_TAG, JOURNAL, publish, read_pending, recover_interrupted_publish, write_pending
from lerobot_lance.staging import Staging, write_json_atomic

SCHEMA = pa.schema([pa.field("episode_index", pa.int64()), pa.field("x", pa.float32())])


def _stage(staging: Staging, out: Path, table: str, n: int, value: float) -> None:
    batch = pa.record_batch([pa.array(range(n), pa.int64()), pa.array([value] * n, pa.float32())], schema=SCHEMA)
    write_pending(staging, table, str(out / f"{table}.lance"), SCHEMA, [batch])


def test_pending_fragments_are_invisible_until_publish(tmp_path: Path) -> None:
    st = Staging(tmp_path / "_staging")
    _stage(st, tmp_path, "a", 5, 1.0)
    _stage(st, tmp_path, "b", 3, 1.0)
    res = publish(st, {"a": read_pending(st, "a"), "b": read_pending(st, "b")})
    a = lance.dataset(str(tmp_path / "a.lance"))
    assert a.count_rows() == 5 and lance.dataset(str(tmp_path / "b.lance")).count_rows() == 3
    assert res.tag in a.tags.list() and a.tags.list()[LATEST_TAG]["version"] == a.version
    v1 = a.version

    # A second conversion staged but not published: readers still see version v1.
    _stage(st, tmp_path, "a", 7, 2.0)
    a = lance.dataset(str(tmp_path / "a.lance"))
    assert a.version == v1 and a.count_rows() == 5

    # Restaging replaces the pending table, never adds to it.
    _stage(st, tmp_path, "a", 7, 2.0)
    _stage(st, tmp_path, "b", 4, 2.0)
    res2 = publish(st, {"a": read_pending(st, "a"), "b": read_pending(st, "b")})
    a = lance.dataset(str(tmp_path / "a.lance"))
    assert a.count_rows() == 7
    assert lance.dataset(str(tmp_path / "a.lance"), version=res.tag).count_rows() == 5  # old tag still readable
    assert a.tags.list()[LATEST_TAG]["version"] == res2.versions["a"]


def test_interrupted_publish_rolls_back_to_the_tagged_version(tmp_path: Path) -> None:
    st = Staging(tmp_path / "_staging")
    _stage(st, tmp_path, "a", 5, 1.0)
    _stage(st, tmp_path, "b", 3, 1.0)
    first = publish(st, {"a": read_pending(st, "a"), "b": read_pending(st, "b")})
    before = {t: lance.dataset(str(tmp_path / f"{t}.lance")).version for t in "ab"}

    # Simulate a publish killed after committing table a but before b and the tags.
    _stage(st, tmp_path, "a", 9, 3.0)
    pa_ = read_pending(st, "a")
    write_json_atomic(st.root / JOURNAL, {"tag": "dead", "before": before, "uris": {t: str(tmp_path / f"{t}.lance") for t in "ab"}})
    lance.LanceDataset.commit(pa_.uri, lance.LanceOperation.Overwrite(pa_.schema, [lance.fragment.FragmentMetadata.from_json(f) for f in pa_.fragments]), read_version=before["a"])
    assert lance.dataset(str(tmp_path / "a.lance")).count_rows() == 9

    assert recover_interrupted_publish(st) == ["a"]
    a = lance.dataset(str(tmp_path / "a.lance"))
    assert a.count_rows() == 5
    assert a.to_table()["x"].to_pylist() == [1.0] * 5
    assert not (st.root / JOURNAL).exists()
    assert a.tags.list()[LATEST_TAG]["version"] == first.versions["a"]


def test_publish_of_a_fully_committed_dead_run_rolls_forward(tmp_path: Path) -> None:
    st = Staging(tmp_path / "_staging")
    _stage(st, tmp_path, "a", 2, 1.0)
    publish(st, {"a": read_pending(st, "a")})
    a = lance.dataset(str(tmp_path / "a.lance"))
    write_json_atomic(st.root / JOURNAL, {"tag": "t-dead", "before": {"a": a.version - 1}, "uris": {"a": str(tmp_path / "a.lance")}, "committed": {"a": a.version}})
    assert recover_interrupted_publish(st) == []
    assert "t-dead" in lance.dataset(str(tmp_path / "a.lance")).tags.list()
