"""The output's meta/ describes what was published (after --exclude-failed-episodes,
--episodes, --skip-videos), --episodes over an existing output keeps the other
episodes, and the output root holds nothing but the tables, meta/ and the lock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lance
import lancedb
import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_lance import convert
from lerobot_lance.lance_io import JOURNAL
from tests.conftest import EPISODE_LENGTHS
from tests.faults import copy_sample, make_fault

FAST = {"camera_stats_samples": 0}


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_meta_matches_tables(out: Path) -> dict[str, Any]:
    """Every meta file of ``out`` agrees with its published tables; returns conversion.json."""
    conv = json.loads((out / "meta" / "conversion.json").read_text())
    info = json.loads((out / "meta" / "info.json").read_text())
    db = lancedb.connect(str(out))
    assert sorted(db.table_names()) == sorted(conv["tables"])
    episodes = lance.dataset(str(out / "episodes.lance"), version=conv["tag"]).to_table(columns=["episode_index", "length"]).sort_by("episode_index")
    frames = lance.dataset(str(out / "frames.lance"), version=conv["tag"])
    published = episodes["episode_index"].to_pylist()
    assert published == conv["episodes"]
    lengths = dict(zip(published, episodes["length"].to_pylist()))
    assert info["storage_format"] == "lance"
    assert info["total_episodes"] == len(published)
    assert info["total_frames"] == frames.count_rows() == sum(lengths.values())
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    if "total_videos" in info:
        assert info["total_videos"] == len(published) * len(video_keys)  # v2.x: one mp4 per episode and camera
    if "total_chunks" in info:
        assert info["total_chunks"] == len({e // info["chunks_size"] for e in published})
    splits = {e for text in info["splits"].values() for part in text.split(",") for e in range(*map(int, part.split(":")))}
    assert splits == set(published)
    # video features <-> tables
    blob_cols = {f.name for f in lance.dataset(str(out / "episodes.lance")).schema if f.name.endswith("_video_blob")}
    assert blob_cols == {k.replace(".", "_") + "_video_blob" for k in video_keys}
    if video_keys:
        videos = lance.dataset(str(out / "videos.lance"), version=conv["tag"]).to_table(columns=["camera_angle"])
        assert set(videos["camera_angle"].to_pylist()) == set(video_keys)
    else:
        assert "videos" not in db.table_names() and info.get("video_path") is None
    # per-episode meta
    meta = out / "meta"
    if (meta / "episodes.jsonl").exists():
        rows = _jsonl(meta / "episodes.jsonl")
        assert [r["episode_index"] for r in rows] == published
        assert {r["episode_index"]: r["length"] for r in rows} == lengths
    if (meta / "episodes_stats.jsonl").exists():
        stats_rows = _jsonl(meta / "episodes_stats.jsonl")
        assert [r["episode_index"] for r in stats_rows] == published
        assert all(set(r["stats"]) & set(info["features"]) == set(r["stats"]) for r in stats_rows)
    shards = sorted((meta / "episodes").rglob("*.parquet")) if (meta / "episodes").exists() else []
    if shards:
        t = pq.read_table(shards[0]) if len(shards) == 1 else None
        eps = sorted(i for s in shards for i in pq.read_table(s, columns=["episode_index"])["episode_index"].to_pylist())
        assert eps == published
        if t is not None and not video_keys:
            assert not [c for c in t.column_names if c.startswith("videos/")]
    # stats.json: the aggregate over the published episodes
    stats = json.loads((meta / "stats.json").read_text())
    assert set(stats) <= set(info["features"])
    assert int(np.asarray(stats["action"]["count"]).ravel()[0]) == sum(lengths.values())
    assert not (out / JOURNAL).exists()
    assert_output_root_clean(out, conv["tables"])
    return conv


#: Hidden files a published output root may hold: the writer lock and the marker of ours.
ALLOWED_HIDDEN = {".lerobot-lance.lock", ".lerobot-lance.json"}


def assert_output_root_clean(out: Path, tables: list[str]) -> None:
    """After a publish the output root holds the tables and meta/ only (plus the lock
    and marker files): no staging, no journal, no pending or prepared folders."""
    names = {p.name for p in out.iterdir()}
    assert {n for n in names if not n.startswith(".")} == {"meta", "README.md", *(f"{t}.lance" for t in tables)}  # README.md: the dataset card
    assert {n for n in names if n.startswith(".")} <= ALLOWED_HIDDEN, names


def test_excluded_episode_is_absent_from_every_meta_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    fault = make_fault("nan_in_action", src)
    out = tmp_path / "out"
    summary = convert(str(src), str(out), exclude_failed_episodes=True, **FAST)
    conv = assert_meta_matches_tables(out)
    ep = fault.episode_index
    assert conv["episodes"] == [i for i in range(6) if i != ep] and list(conv["excluded_episodes"]) == [str(ep)]
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["splits"] == {"train": f"0:{ep},{ep + 1}:6"}
    assert info["total_frames"] == sum(EPISODE_LENGTHS) - EPISODE_LENGTHS[ep]
    # a subset is compared with the aggregate of its own declared per-episode stats,
    # not with the full dataset's: no stats_match_source warning for the subset alone
    assert not [w for w in summary.warnings if "dataset_stats / stats_match_source" in w and "count" in w]


def test_episodes_over_an_existing_output_keeps_the_other_episodes(tmp_path: Path) -> None:
    src = copy_sample("g1_multicam_v30", tmp_path / "src")
    out = tmp_path / "out"
    first = convert(str(src), str(out), episodes=[1], **FAST)
    conv = assert_meta_matches_tables(out)
    assert conv["episodes"] == [1] and first.kept_episodes == []
    shard = pq.read_table(next((out / "meta" / "episodes").rglob("*.parquet")))
    assert shard["episode_index"].to_pylist() == [1]
    frames1 = lance.dataset(str(out / "frames.lance")).to_table().sort_by("index")
    ep1 = lance.dataset(str(out / "episodes.lance")).to_table(columns=["episode_index", "length", "actions", "stats"])

    second = convert(str(src), str(out), episodes=[0], **FAST)  # no --overwrite needed: a partial update
    assert second.kept_episodes == [1]
    assert any("kept 1 previously published episode(s) (1)" in n for n in second.notes)
    conv = assert_meta_matches_tables(out)
    assert conv["episodes"] == [0, 1] and conv["kept_episodes"] == [1] and conv["requested_episodes"] == [0]
    frames = lance.dataset(str(out / "frames.lance")).to_table().sort_by("index")
    import pyarrow.compute as pc

    assert frames.filter(pc.equal(frames["episode_index"], 1)) == frames1  # identical rows
    eps = lance.dataset(str(out / "episodes.lance")).to_table(columns=["episode_index", "length", "actions", "stats"]).sort_by("episode_index")
    assert eps.slice(1, 1) == ep1


def test_skip_videos_publishes_no_videos_table_and_says_so(tmp_path: Path) -> None:
    src = copy_sample("g1_multicam_v30", tmp_path / "src")
    out = tmp_path / "out"
    convert(str(src), str(out), **FAST)
    assert "videos" in lancedb.connect(str(out)).table_names()
    # videos unusable, as --skip-videos is for (the mp4s removed: the orphan rule on
    # skipped videos is another issue's item)
    import shutil

    shutil.rmtree(src / "videos")
    summary = convert(str(src), str(out), overwrite=True, skip_videos=True, **FAST)
    assert "videos" not in summary.rows
    conv = assert_meta_matches_tables(out)
    assert conv["skipped_videos"] is True and conv["tables"] == ["frames", "episodes"]
    assert conv["dropped_video_features"] == ["observation.images.cam_high", "observation.images.cam_high_crop"]
    info = json.loads((out / "meta" / "info.json").read_text())
    assert not [k for k, f in info["features"].items() if f["dtype"] == "video"]
    stats = json.loads((out / "meta" / "stats.json").read_text())
    assert not [k for k in stats if k.startswith("observation.images")]
    assert any("videos skipped" in n for n in summary.notes)


@pytest.mark.parametrize("kind", ["fifo"])
def test_unreadable_meta_file_fails_before_any_commit(tmp_path: Path, kind: str) -> None:
    import os

    from pipelines.runner import ConversionFailed

    src = copy_sample("g1_multicam_v30", tmp_path / "src")
    out = tmp_path / "out"
    convert(str(src), str(out), **FAST)
    tag = json.loads((out / "meta" / "conversion.json").read_text())["tag"]
    versions = {t: lance.dataset(str(out / f"{t}.lance")).version for t in ("frames", "episodes", "videos")}
    os.mkfifo(src / "meta" / "notes.fifo")
    with pytest.raises(ConversionFailed) as err:
        convert(str(src), str(out), overwrite=True, **FAST)
    assert "meta/notes.fifo" in str(err.value) and "regular file" in str(err.value)
    assert {t: lance.dataset(str(out / f"{t}.lance")).version for t in versions} == versions  # nothing committed
    assert json.loads((out / "meta" / "conversion.json").read_text())["tag"] == tag
    assert_meta_matches_tables(out)


def test_a_failed_first_conversion_leaves_no_table_folder(tmp_path: Path) -> None:
    import os

    from pipelines.runner import ConversionFailed

    src = copy_sample("g1_multicam_v30", tmp_path / "src")
    os.mkfifo(src / "meta" / "notes.fifo")  # fails the publish after every table stage wrote its fragments
    out = tmp_path / "out"
    with pytest.raises(ConversionFailed):
        convert(str(src), str(out), **FAST)
    assert lancedb.connect(str(out)).table_names() == []
    assert {p.name for p in out.iterdir()} <= ALLOWED_HIDDEN
