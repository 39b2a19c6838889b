"""Every frame and segment byte written once: staging holds no copy of the
source's rows or video data (issue #11, target 6).

``episode_frames`` checks each episode's rows and records the identity of the
data file it read; the frames table is then written from the source itself
(:func:`lerobot_lance.source_frames.read_frames`). ``episode_videos`` cuts
each v3.0 window by stream copy in memory and stages only the segment's mp4
header, with the shard's byte range and identity; the ``episodes`` table
then reads the video data from the shard
(:func:`lerobot_lance.episode_stages.segment_buffer`). On a copy of ``g1_v30``
(one parquet for all six episodes, three shards) and of ``g1_v21`` (one
parquet and one mp4 per episode), converted once per module:

- the staging area holds records, segment headers and stats, no frames data
  file and no mp4, and each frames record names its data file with the
  file's size and mtime;
- ``frames.lance`` equals the source parquet rows, value for value, and each
  segment blob of ``episodes.lance`` has the sha256 of the mp4
  :func:`lerobot_lance.video.cut_segment` writes for its window (v2.x: of
  the episode's file);
- a data file rewritten after ``episode_frames`` checked it, or a shard
  rewritten after ``episode_videos`` cut it (between the episode runs and the
  publish run of the runner), stops the publish with a located message
  naming the file and the episode, no traceback, and the output keeps its
  tables, versions and tag.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.faults import copy_sample

TABLES = ("frames", "episodes", "videos")


@pytest.fixture(scope="module", params=["g1_v30", "g1_v21"])
def converted_copy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A copy of the sample converted once with the runner (default options)."""
    from pipelines.runner import run_conversion

    name = request.param
    tmp = tmp_path_factory.mktemp(f"wo_{name}")
    src = copy_sample(name, tmp / "src")
    out, staging = tmp / "out", tmp / "staging"
    summary = run_conversion(str(src), str(out), staging_dir=str(staging))
    return {"name": name, "src": src, "out": out, "staging": staging, "tag": summary.tag}


def _state(out: Path) -> dict[str, Any]:
    """Each table's versions and tags, and meta/conversion.json."""
    import lance

    state: dict[str, Any] = {}
    for t in TABLES:
        ds = lance.dataset(str(out / f"{t}.lance"))
        state[t] = ([v["version"] for v in ds.versions()], sorted(ds.tags.list()), ds.count_rows())
    state["conversion.json"] = (out / "meta" / "conversion.json").read_bytes()
    return state


def test_staging_holds_no_copy_of_the_frames_rows(converted_copy: dict[str, Any]) -> None:
    staging = converted_copy["staging"]  # the runner's staging_dir is the staging area itself
    assert (staging / "source.json").is_file()
    files = [p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()]
    assert [f for f in files if f.endswith(".arrow")] == [], files
    frames_files = sorted(f for f in files if f.startswith("frames/"))
    info = json.loads((converted_copy["src"] / "meta" / "info.json").read_text())
    n_episodes = info["total_episodes"]
    assert frames_files == [f"frames/episode_{ep:06d}.json" for ep in range(n_episodes)]
    src = converted_copy["src"]
    for ep in range(n_episodes):
        rec = json.loads((staging / "frames" / f"episode_{ep:06d}.json").read_text())
        assert rec["status"] == "ok" and rec["bytes"] == 0
        [(rel, identity)] = rec["source_files"].items()
        st = (src / rel).stat()
        assert identity == f"{st.st_size}:{st.st_mtime_ns}", (rel, identity)
    # frames.lance equals the source rows, column by column
    import lance

    frames = lance.dataset(str(converted_copy["out"] / "frames.lance")).to_table().sort_by("index")
    source = pa.concat_tables(
        [pq.read_table(p) for p in sorted((src / "data").rglob("*.parquet"))], promote_options="default"
    ).sort_by("index")
    assert frames.num_rows == source.num_rows == info["total_frames"]
    keys = [k for k, f in info["features"].items() if f["dtype"] != "video"]
    assert len(keys) >= 6
    for key in keys:
        assert frames[key.replace(".", "_")].to_pylist() == source[key].to_pylist(), key


def test_staging_holds_no_copy_of_the_video_data(converted_copy: dict[str, Any], tmp_path: Path) -> None:
    import hashlib

    import lance

    from lerobot_lance import video
    from lerobot_lance.readers import read_dataset_meta

    staging, src = converted_copy["staging"], converted_copy["src"]
    files = [p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()]
    assert [f for f in files if f.endswith(".mp4")] == [], files
    meta = read_dataset_meta(src)
    (key,) = meta.video_keys
    column = meta.features[key].column
    headers = sorted(f for f in files if f.endswith(".mp4.header"))
    if meta.one_file_per_episode:  # v2.x: the episode's file is the segment, nothing staged
        assert headers == []
    else:
        assert headers == [f"videos/{column}/episode_{ep:06d}.mp4.header" for ep in meta.episode_indices]
    ds = lance.dataset(str(converted_copy["out"] / "episodes.lance"))
    order = ds.to_table(columns=["episode_index"])["episode_index"].to_pylist()
    assert sorted(order) == meta.episode_indices
    for i, blob in enumerate(ds.take_blobs(f"{column}_video_blob", indices=list(range(len(order))))):
        e = meta.episode(order[i])
        ref = e.videos[key]
        if meta.one_file_per_episode:
            want = video.sha256_file(src / ref.relative_path)
        else:
            lo, hi = ref.window(e.length, meta.fps)
            cut = video.cut_segment(src / ref.relative_path, lo, hi, e.length, tmp_path / f"{e.episode_index}.mp4")
            assert cut.method == "stream_copy"
            want = video.sha256_file(tmp_path / f"{e.episode_index}.mp4")
            rec = json.loads((staging / "videos" / f"episode_{e.episode_index:06d}.json").read_text())["cameras"][key]
            assert rec["size_bytes"] == cut.size_bytes == (staging / rec["header"]).stat().st_size + rec["source_range"][1]
        with blob as f:
            assert hashlib.sha256(f.read()).hexdigest() == want, e.episode_index


def _publish_refused(converted_copy: dict[str, Any], rel: str, rewrite: Any, message: str) -> None:
    """Convert again, replacing the source file ``rel`` with ``rewrite(path)``
    once the episode runs are done (before the table steps): the publish must
    fail with ``message`` (located, no traceback) and leave the output as it
    was. The file is put back afterwards."""
    from pipelines.runner import ConversionFailed, run_conversion

    src, out = converted_copy["src"], converted_copy["out"]
    before = _state(out)
    path = src / rel
    original = path.read_bytes()
    st = path.stat()

    def on_stage(stage: str, total: int) -> None:
        if stage == "frames_table":  # the episode runs are done: their rows checked, their windows cut
            data = rewrite(path)
            path.unlink()  # a hard link to the shared sample: replace, never edit
            path.write_bytes(data)

    try:
        with pytest.raises(ConversionFailed) as err:
            run_conversion(str(src), str(out), staging_dir=str(converted_copy["staging"]), overwrite=True, on_stage=on_stage)
        text = "\n".join(err.value.failures)
        assert message in text, text
        assert "Traceback" not in text and "File \"" not in text, text
        assert _state(out) == before  # nothing committed, no tag moved, meta/ untouched
    finally:
        path.unlink()
        path.write_bytes(original)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("converted_copy", ["g1_v30"], indirect=True)
def test_a_shard_changed_after_episode_videos_stops_the_publish(converted_copy: dict[str, Any]) -> None:
    rel = "videos/observation.images.cam_high/chunk-000/file-001.mp4"  # episodes 2 and 3
    staging = converted_copy["staging"]

    def flip_a_byte(path: Path) -> bytes:
        cam = json.loads((staging / "videos" / "episode_000003.json").read_text())["cameras"]["observation.images.cam_high"]
        offset, length = cam["source_range"]
        data = bytearray(path.read_bytes())
        data[offset + length // 2] ^= 0xFF  # one byte of episode 3's video data, same size
        return bytes(data)

    _publish_refused(converted_copy, rel, flip_a_byte,
                     f"{rel} (episode 2): changed since episode_videos cut it; rerun episode_videos")


def test_a_data_file_changed_after_episode_frames_stops_the_publish(converted_copy: dict[str, Any]) -> None:
    import io

    rel = "data/chunk-000/file-000.parquet" if converted_copy["name"] == "g1_v30" else "data/chunk-000/episode_000001.parquet"

    def move_actions(path: Path) -> bytes:
        t = pq.read_table(path)
        action = t["action"].combine_chunks()
        flat = pc.add(action.flatten(), pa.scalar(1.0, action.type.value_type))  # every action moved by 1
        moved = type(action).from_arrays(flat, action.type.list_size) if pa.types.is_fixed_size_list(action.type) else \
            pa.ListArray.from_arrays(action.offsets, flat)
        sink = io.BytesIO()
        pq.write_table(t.set_column(t.column_names.index("action"), "action", moved), sink)
        return sink.getvalue()

    episode = 0 if converted_copy["name"] == "g1_v30" else 1
    _publish_refused(converted_copy, rel, move_actions,
                     f"{rel} (episode {episode}): changed since episode_frames checked it; rerun episode_frames")


def test_a_frames_record_without_source_files_is_staged_again(tmp_path: Path) -> None:
    """A frames record written by a version that staged a copy of the rows (no
    ``source_files``) is not current, for the coverage (``is_current``) as for
    the readers (``current``), so the episode is checked again rather than
    published from rows nobody recorded; other kinds need no ``source_files``."""
    from lerobot_lance.staging import FRAMES, VIDEOS, Staging

    staging = Staging(tmp_path / "staging")
    old = {"episode_index": 0, "status": "ok", "revision": "r1", "rows": 393, "bytes": 90_000}
    staging.write_record(FRAMES, 0, old)
    assert staging.current(FRAMES, 0, "r1") is None
    assert staging.is_current(FRAMES, 0, "r1") is False
    staging.write_record(FRAMES, 0, {**old, "source_files": {"data/chunk-000/episode_000000.parquet": "85377:1"}})
    assert staging.current(FRAMES, 0, "r1") is not None
    assert staging.is_current(FRAMES, 0, "r1") is True
    assert staging.is_current(FRAMES, 0, "r2") is False
    staging.write_record(VIDEOS, 0, {"episode_index": 0, "status": "ok", "revision": "r1"})
    assert staging.is_current(VIDEOS, 0, "r1") is True
    assert staging.current(VIDEOS, 0, "r1") is not None


def test_a_stream_copy_is_kept_in_its_shard_only_when_every_byte_matches(tmp_path: Path) -> None:
    """The byte comparison behind ``source_range`` (``video.cut._source_range``),
    on a real v3.0 window: the kept segment (header + shard range) is the
    segment ``cut_segment`` writes; the same segment against a copy of the shard
    with one byte changed at either end of the range, or cut short inside
    it, is not kept."""
    import shutil

    from lerobot_lance import video
    from lerobot_lance.readers import read_dataset_meta
    from lerobot_lance.video.cut import _source_range
    from tests.faults import SHARED

    src = SHARED / "g1_v30"
    meta = read_dataset_meta(src)
    (key,) = meta.video_keys
    e = meta.episode(1)  # the second window of file-000.mp4: its data start inside the shard
    shard = src / e.videos[key].relative_path
    lo, hi = e.videos[key].window(e.length, meta.fps)
    staged = video.stage_window(shard, lo, hi, e.length, tmp_path / "kept.mp4", in_source=True)
    kept = staged.segment.source_range
    assert kept is not None and not (tmp_path / "kept.mp4").exists()
    assert kept.offset > 0 and kept.offset + kept.length <= shard.stat().st_size
    with open(shard, "rb") as f:
        f.seek(kept.offset)
        data = kept.header + f.read(kept.length)
    video.cut_segment(shard, lo, hi, e.length, tmp_path / "cut.mp4")
    assert data == (tmp_path / "cut.mp4").read_bytes()

    assert _source_range(data, shard, kept.offset) == kept
    whole = shard.read_bytes()
    for name, changed in {
        "first byte": whole[: kept.offset] + bytes([whole[kept.offset] ^ 1]) + whole[kept.offset + 1 :],
        "last byte": whole[: kept.offset + kept.length - 1] + bytes([whole[kept.offset + kept.length - 1] ^ 1])
        + whole[kept.offset + kept.length :],
        "cut short": whole[: kept.offset + kept.length - 1],
    }.items():
        other = tmp_path / f"{name}.mp4"
        other.write_bytes(changed)
        assert _source_range(data, other, kept.offset) is None, name
    shutil.copyfile(shard, tmp_path / "same.mp4")
    assert _source_range(data, tmp_path / "same.mp4", kept.offset) == kept
