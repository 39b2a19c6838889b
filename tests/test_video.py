"""Tests of lerobot_lance.video on the real G1 samples in ../shared/datasets.

Decoding AV1 640x480 to RGB runs at a few hundred frames/s here, so the
full pixel comparison is kept to two episodes; the others compare decoded
frame counts plus the first and last frames.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_lance.errors import SourceDataError
from lerobot_lance.video import (
    Segment,
    VideoProbe,
    cut_segment,
    first_last_frames_decode,
    iter_frames_rgb,
    probe_video,
    sample_frames_rgb,
    sha256_file,
    window_packet_count,
)

from tests.conftest import SHARED as DATASETS  # ../shared/datasets, or $LEROBOT_LANCE_SHARED
CAM = "observation.images.cam_high"
LENGTHS = [393, 343, 357, 368, 410, 445]
FPS = 30



def v21_episode(k: int) -> Path:
    return DATASETS / "g1_v21" / "videos" / "chunk-000" / CAM / f"episode_{k:06d}.mp4"


def v30_shard(dataset: str, k: int) -> Path:
    return DATASETS / dataset / "videos" / CAM / "chunk-000" / f"file-{k // 2:03d}.mp4"


def v30_windows(dataset: str) -> dict[int, tuple[float, float, int]]:
    """episode -> (from_timestamp, to_timestamp, length) from the v3.0 episodes metadata."""
    rows = pq.read_table(DATASETS / dataset / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    return {
        int(r["episode_index"]): (
            float(r[f"videos/{CAM}/from_timestamp"]),
            float(r[f"videos/{CAM}/to_timestamp"]),
            int(r["length"]),
        )
        for r in rows
    }


def decoded_count(path: Path) -> int:
    """Frames PyAV decodes from the whole file (no RGB conversion)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        return sum(1 for _ in c.decode(s))


def packet_times(path: Path) -> tuple[list[int], Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert s.time_base is not None
        return sorted(int(p.pts) for p in c.demux(s) if p.size), Fraction(s.time_base)


def assert_frames_equal(a: Iterator[np.ndarray], b: Iterator[np.ndarray]) -> int:
    n = 0
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype == np.uint8
        assert np.array_equal(x, y), f"frame {n} differs"
        n += 1
    return n


def no_temp_left(directory: Path) -> bool:
    return not any(".tmp-" in p.name for p in directory.iterdir())


# --------------------------------------------------------------------------- #
# probe / counting / hashing
# --------------------------------------------------------------------------- #


def test_probe_v21_episode() -> None:
    p = probe_video(v21_episode(0))
    assert isinstance(p, VideoProbe)
    assert (p.codec, p.width, p.height, p.pix_fmt) == ("av1", 640, 480, "yuv420p")
    assert p.frame_count == 393
    assert p.fps == pytest.approx(30.0)
    assert p.duration_s == pytest.approx(393 / FPS)
    assert p.has_audio is False


def test_probe_shards_match_metadata() -> None:
    p = probe_video(v30_shard("g1_v30", 0))
    assert (p.codec, p.frame_count) == ("av1", 393 + 343)
    assert p.duration_s == pytest.approx((393 + 343) / FPS)
    h = probe_video(v30_shard("g1_v30_h264_gop30", 2))
    assert (h.codec, h.frame_count) == ("h264", 357 + 368)


@pytest.mark.parametrize("dataset", ["g1_v30", "g1_v30_h264_gop30"])
def test_window_packet_count_is_episode_length(dataset: str) -> None:
    for k, (a, b, length) in v30_windows(dataset).items():
        assert length == LENGTHS[k]
        assert window_packet_count(v30_shard(dataset, k), a, b) == length


def test_sha256_matches_readme() -> None:
    assert sha256_file(v21_episode(1)) == "0de5519d74dfb2a369dd63e9dcb1bed9ca53613657e2f11393b25fa5e04fed00"
    assert (
        sha256_file(v30_shard("g1_v30", 0), chunk_bytes=4096)
        == "6b9b7d597bcb2125a85648d18e82b0c68bd63b6a9098a443cb90395909ddf72c"
    )


def test_first_last_frames_decode() -> None:
    a, b, _ = v30_windows("g1_v30")[1]
    first, last = first_last_frames_decode(v30_shard("g1_v30", 1), a, b)
    assert first == pytest.approx(393 / FPS)
    assert last == pytest.approx(735 / FPS)
    assert first_last_frames_decode(v21_episode(2)) == (0.0, pytest.approx(356 / FPS))


# --------------------------------------------------------------------------- #
# cutting g1_v30 (AV1, keyframe every 2 frames): stream copy
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def v30_cuts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, Segment]]:
    out = tmp_path_factory.mktemp("v30_cuts")
    cuts = {}
    for k, (a, b, length) in v30_windows("g1_v30").items():
        dst = out / f"episode_{k:06d}.mp4"
        cuts[k] = (dst, cut_segment(v30_shard("g1_v30", k), a, b, length, dst))
    assert no_temp_left(out)
    return cuts


@pytest.mark.parametrize("k", range(6))
def test_cut_v30_episode_stream_copy(v30_cuts: dict[int, tuple[Path, Segment]], k: int) -> None:
    dst, seg = v30_cuts[k]
    n = LENGTHS[k]
    assert seg.method == "stream_copy"
    assert seg.frame_count == n
    assert seg.size_bytes == dst.stat().st_size > 0
    # standalone file: timestamps from 0, one frame period apart, right duration
    pts, tb = packet_times(dst)
    assert len(pts) == n and pts[0] == 0
    assert float(pts[-1] * tb) == pytest.approx((n - 1) / FPS)
    p = probe_video(dst)
    assert (p.codec, p.frame_count, p.width, p.height) == ("av1", n, 640, 480)
    assert p.duration_s == pytest.approx(n / FPS)
    with av.open(str(dst)) as c:
        assert c.duration is not None and c.duration / av.time_base == pytest.approx(n / FPS)
        assert (c.streams.video[0].start_time or 0) == 0
    ref = v21_episode(k)
    if k in (1, 5):  # full pixel check: second episode of its shard, 5 ends at the shard end
        assert assert_frames_equal(iter_frames_rgb(dst), iter_frames_rgb(ref)) == n
    else:
        assert decoded_count(dst) == n
        assert assert_frames_equal(
            iter_frames_rgb(dst, indices=[0, n - 1]), iter_frames_rgb(ref, indices=[0, n - 1])
        ) == 2


def test_cut_whole_file_is_verbatim_copy(tmp_path: Path) -> None:
    dst = tmp_path / "sub" / "ep1.mp4"
    seg = cut_segment(v21_episode(1), 0.0, 343 / FPS, 343, dst)
    assert seg == Segment("copy", 343, v21_episode(1).stat().st_size)
    assert sha256_file(dst) == sha256_file(v21_episode(1))


def test_cut_replaces_existing_dst(tmp_path: Path, v30_cuts: dict[int, tuple[Path, Segment]]) -> None:
    dst = tmp_path / "ep.mp4"
    dst.write_bytes(b"stale")
    a, b, n = v30_windows("g1_v30")[3]
    seg = cut_segment(v30_shard("g1_v30", 3), a, b, n, dst)
    assert seg.frame_count == n
    assert sha256_file(dst) == sha256_file(v30_cuts[3][0])  # deterministic output
    assert no_temp_left(tmp_path)


def test_reencode_always_av1_is_lossless(tmp_path: Path) -> None:
    # 20 frames from the start of episode 1 in shard 0, forced through libx264 qp=0
    dst = tmp_path / "re.mp4"
    seg = cut_segment(v30_shard("g1_v30", 1), 393 / FPS, 413 / FPS, 20, dst, reencode="always")
    assert (seg.method, seg.frame_count) == ("reencode", 20)
    assert probe_video(dst).codec == "h264"
    assert assert_frames_equal(iter_frames_rgb(dst), iter_frames_rgb(v21_episode(1), indices=range(20))) == 20


# --------------------------------------------------------------------------- #
# g1_v30_h264_gop30: keyframe windows are copied, the others re-encoded
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("k", [0, 2, 3, 4])
def test_h264_keyframe_windows_stream_copy(tmp_path: Path, k: int) -> None:
    a, b, n = v30_windows("g1_v30_h264_gop30")[k]
    src = v30_shard("g1_v30_h264_gop30", k)
    dst = tmp_path / "ep.mp4"
    seg = cut_segment(src, a, b, n, dst, reencode="never")
    assert (seg.method, seg.frame_count) == ("stream_copy", n)
    assert decoded_count(dst) == n
    assert assert_frames_equal(
        iter_frames_rgb(dst, indices=[0, n - 1]), iter_frames_rgb(src, a, b, indices=[0, n - 1])
    ) == 2


def test_h264_episode1_reencode_is_pixel_identical(tmp_path: Path) -> None:
    a, b, n = v30_windows("g1_v30_h264_gop30")[1]
    src = v30_shard("g1_v30_h264_gop30", 1)
    dst = tmp_path / "ep1.mp4"
    seg = cut_segment(src, a, b, n, dst)
    assert (seg.method, seg.frame_count) == ("reencode", 343)
    pts, _ = packet_times(dst)
    assert len(pts) == n and pts[0] == 0
    p = probe_video(dst)
    assert (p.codec, p.frame_count) == ("h264", n)
    assert p.duration_s == pytest.approx(n / FPS)
    assert assert_frames_equal(iter_frames_rgb(dst), iter_frames_rgb(src, a, b)) == n
    assert no_temp_left(tmp_path)


def test_h264_non_keyframe_window_never_raises(tmp_path: Path) -> None:
    a, b, n = v30_windows("g1_v30_h264_gop30")[5]
    src = v30_shard("g1_v30_h264_gop30", 5)
    dst = tmp_path / "ep5.mp4"
    with pytest.raises(SourceDataError, match="keyframe") as ei:
        cut_segment(src, a, b, n, dst, reencode="never")
    assert ei.value.path == str(src)
    assert not dst.exists() and no_temp_left(tmp_path)


def test_cut_wrong_expected_frames_raises(tmp_path: Path) -> None:
    a, b, n = v30_windows("g1_v30")[1]
    src = v30_shard("g1_v30", 1)
    dst = tmp_path / "ep.mp4"
    with pytest.raises(SourceDataError) as ei:
        cut_segment(src, a, b, n + 1, dst)
    e = ei.value
    assert e.path == str(src) and (e.expected, e.found) == (n + 1, n)
    assert "13.1" in str(e) and "24.53" in str(e)  # names the window
    assert not dst.exists() and no_temp_left(tmp_path)


def test_cut_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        cut_segment(v21_episode(0), 0.0, 1.0, 30, tmp_path / "x.mp4", reencode="sometimes")
    with pytest.raises(ValueError):
        cut_segment(v21_episode(0), 1.0, 1.0, 0, tmp_path / "x.mp4")


# --------------------------------------------------------------------------- #
# B-frames (synthetic, tiny): reordered packets are cut exactly
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def bframes_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bframes") / "bf.mp4"
    with av.open(str(path), "w", format="mp4") as oc:
        s = oc.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"g": "10", "bf": "2", "sc_threshold": "0", "crf": "30", "preset": "fast"}
        base = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        for i in range(90):
            img = np.roll(base, i, axis=1)
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for pkt in s.encode(f):
                oc.mux(pkt)
        for pkt in s.encode(None):
            oc.mux(pkt)
    with av.open(str(path)) as c:  # the point of the fixture: decode order != presentation order
        assert any(p.dts != p.pts for p in c.demux(c.streams.video[0]) if p.size)
    return path


@pytest.mark.parametrize(
    ("a", "b", "method"),
    [(10, 30, "stream_copy"), (20, 90, "stream_copy"), (5, 25, "reencode"), (33, 34, "reencode"), (0, 90, "copy")],
)
def test_bframes_cut_exact(bframes_mp4: Path, tmp_path: Path, a: int, b: int, method: str) -> None:
    dst = tmp_path / "cut.mp4"
    seg = cut_segment(bframes_mp4, a / FPS, b / FPS, b - a, dst)
    assert (seg.method, seg.frame_count) == (method, b - a)
    assert probe_video(dst).duration_s == pytest.approx((b - a) / FPS)
    ref = list(iter_frames_rgb(bframes_mp4))[a:b]
    assert assert_frames_equal(iter_frames_rgb(dst), iter(ref)) == b - a
    assert first_last_frames_decode(bframes_mp4, a / FPS, b / FPS) == (
        pytest.approx(a / FPS),
        pytest.approx((b - 1) / FPS),
    )


def test_iter_frames_indices(bframes_mp4: Path) -> None:
    a, b = 7 / FPS, 77 / FPS
    window = list(iter_frames_rgb(bframes_mp4, a, b))
    assert len(window) == 70
    assert window[0].shape == (48, 64, 3) and window[0].dtype == np.uint8
    idx = [0, 1, 1, 2, 40, 69]
    sel = list(iter_frames_rgb(bframes_mp4, a, b, indices=idx))
    assert len(sel) == len(idx)
    for i, frame in zip(idx, sel, strict=True):
        assert np.array_equal(frame, window[i])
    with pytest.raises(ValueError):
        iter_frames_rgb(bframes_mp4, a, b, indices=[3, 2])
    with pytest.raises(SourceDataError):
        iter_frames_rgb(bframes_mp4, a, b, indices=[70])
    assert list(iter_frames_rgb(bframes_mp4, 10.0, 11.0)) == []


# --------------------------------------------------------------------------- #
# broken files
# --------------------------------------------------------------------------- #


def _truncated(tmp_path: Path, src: Path, name: str) -> Path:
    data = src.read_bytes()
    p = tmp_path / name
    p.write_bytes(data[: len(data) // 2])
    return p


def _broken_files(tmp_path: Path) -> list[Path]:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    return [
        empty,
        garbage,
        tmp_path / "missing.mp4",
        # moov first: opens, but the demuxer runs out of samples half-way
        _truncated(tmp_path, v30_shard("g1_v30", 0), "trunc_moov_first.mp4"),
        # moov last: the index is gone, the file does not open
        _truncated(tmp_path, v30_shard("g1_v30_h264_gop30", 0), "trunc_moov_last.mp4"),
    ]


def test_probe_broken_files_raise(tmp_path: Path) -> None:
    for p in _broken_files(tmp_path):
        with pytest.raises(SourceDataError) as ei:
            probe_video(p)
        assert ei.value.path == str(p)
        assert p.name in str(ei.value)


def test_cut_and_decode_broken_files_raise(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for p in _broken_files(tmp_path):
        if p.name == "trunc_moov_first.mp4":
            # the cut window lies past the truncation point: too few frames
            a, b, n = v30_windows("g1_v30")[1]
        else:
            a, b, n = 0.0, 1.0, 30
        with pytest.raises(SourceDataError) as ei:
            cut_segment(p, a, b, n, out / "x.mp4")
        assert ei.value.path == str(p)
        with pytest.raises(SourceDataError):
            first_last_frames_decode(p, a, b)
        if p.name == "trunc_moov_first.mp4":
            assert window_packet_count(p, a, b) < n  # counting is not checking
        else:
            with pytest.raises(SourceDataError):
                window_packet_count(p, a, b)
            with pytest.raises(SourceDataError):
                iter_frames_rgb(p)
    assert list(out.iterdir()) == []
    with pytest.raises(SourceDataError):
        sha256_file(tmp_path / "missing.mp4")


def test_file_without_video_stream_raises(tmp_path: Path) -> None:
    path = tmp_path / "audio_only.mp4"
    with av.open(str(path), "w", format="mp4") as oc:
        s = oc.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        frame.pts = 0
        for pkt in s.encode(frame):
            oc.mux(pkt)
        for pkt in s.encode(None):
            oc.mux(pkt)
    with pytest.raises(SourceDataError, match="no video stream"):
        probe_video(path)


def test_copy_of_shard_is_read_only_safe(tmp_path: Path) -> None:
    # cutting never writes next to the source
    src = tmp_path / "shard.mp4"
    shutil.copyfile(v30_shard("g1_v30", 2), src)
    a, b, n = v30_windows("g1_v30")[2]
    cut_segment(src, a, b, n, tmp_path / "out" / "ep2.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "shard.mp4"]
    assert sha256_file(src) == "c5cd8d4108db6cf7b8d07aa63cecf1f2014f195398d598922ae7cab9d57254db"


def test_sample_frames_rgb_are_keyframe_frames_of_the_window() -> None:
    """The camera-stats sample: 10 distinct frames, each equal to the decoded frame
    at its (keyframe) position of the v3.0 window, deterministic across calls."""
    frm, to, n = v30_windows("g1_v30")[1]
    sample = sample_frames_rgb(v30_shard("g1_v30", 1), 10, frm, to)
    assert sample.shape == (10, 480, 640, 3) and sample.dtype == np.uint8
    assert np.array_equal(sample, sample_frames_rgb(v30_shard("g1_v30", 1), 10, frm, to))
    full = list(iter_frames_rgb(v21_episode(1)))
    assert len(full) == n
    for frame in sample:
        assert any(np.array_equal(frame, f) for f in full)
    assert np.array_equal(sample[0], full[0])
