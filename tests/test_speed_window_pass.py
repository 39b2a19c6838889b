"""One pass per episode window (issue 11): ``video.inspect_window`` gives what
``window_packet_count``, ``first_last_frames_decode`` and ``sample_frames_rgb``
give, from one open and one demux, on every window of the shared video
samples and on a synthetic B-frame file; and the window scan's integer bounds
equal the float test they replace."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from lerobot_lance import video
from lerobot_lance.video import sample as video_sample
from lerobot_lance.video import streams, window
from lerobot_lance.readers import read_dataset_meta
from tests.conftest import sample

VIDEO_SAMPLES = ("g1_v21", "g1_v30", "g1_v30_h264_gop30", "g1_multicam_v30")


def _windows(name: str) -> list[tuple[Path, float | None, float | None, int]]:
    root = sample(name)
    meta = read_dataset_meta(root)
    out = []
    for e in meta.episodes:
        for ref in e.videos.values():
            lo, hi = (None, None) if ref.whole_file else ref.window(e.length, meta.fps)
            out.append((root / ref.relative_path, lo, hi, e.length))
    return out


@pytest.mark.parametrize("name", VIDEO_SAMPLES)
def test_inspect_window_equals_the_three_separate_passes(name: str) -> None:
    for path, lo, hi, length in _windows(name):
        facts = video.inspect_window(path, lo, hi, sample_frames=10)
        assert facts.frame_count == length
        if lo is not None:
            assert facts.frame_count == video.window_packet_count(path, lo, hi)
        assert facts.endpoint_error is None
        assert facts.endpoints == video.first_last_frames_decode(path, lo, hi)
        ref = video.sample_frames_rgb(path, 10, lo, hi)
        assert facts.sample is not None and facts.sample.dtype == np.uint8
        assert np.array_equal(facts.sample, ref), (path, lo)
        # and the sample is the frames a plain forward decode gives at those positions
        with streams._open(path) as c:
            scan = window._scan_window(c, streams._video_stream(c, path), path, lo, hi)
        targets, _ = video_sample._sample_targets(scan, 10)
        forward = np.stack(list(video.iter_frames_rgb(path, lo, hi, indices=[scan.pts.index(t) for t in targets])))
        assert np.array_equal(facts.sample, forward), (path, lo)


def test_inspect_window_with_bframes_and_exact_positions(tmp_path: Path) -> None:
    """B-frames (decode order != presentation order) and a sample larger than
    the keyframes: the last frame and the exact positions decode from the
    packets or through the seeking decoder, equal to a forward decode."""
    path = tmp_path / "bf.mp4"
    with av.open(str(path), "w", format="mp4") as oc:
        s = oc.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"g": "10", "bf": "2", "sc_threshold": "0", "crf": "30", "preset": "fast"}
        base = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
        for i in range(90):
            f = av.VideoFrame.from_ndarray(np.roll(base, i, axis=1), format="rgb24")
            f.pts = i
            for pkt in s.encode(f):
                oc.mux(pkt)
        for pkt in s.encode(None):
            oc.mux(pkt)
    every = list(video.iter_frames_rgb(path))
    for a, b, n in ((10, 30, 2), (20, 90, 7), (5, 25, 12), (33, 34, 1), (0, 90, 10)):
        facts = video.inspect_window(path, a / 30, b / 30, sample_frames=n)
        assert facts.frame_count == b - a
        assert facts.endpoints == pytest.approx((a / 30, (b - 1) / 30))
        assert np.array_equal(facts.sample, video.sample_frames_rgb(path, n, a / 30, b / 30)), (a, b, n)
        assert all(any(np.array_equal(f, g) for g in every[a:b]) for f in facts.sample)


def test_inspect_window_reports_an_empty_window() -> None:
    path, lo, _, _ = _windows("g1_v30")[0]
    facts = video.inspect_window(path, 1e6, 1e6 + 1, sample_frames=10)
    assert facts.frame_count == 0 and facts.endpoints is None and facts.sample is None
    assert "holds no frames" in str(facts.endpoint_error)


@pytest.mark.parametrize("tb", [Fraction(1, 15360), Fraction(1, 30), Fraction(1001, 30000), Fraction(1, 90000)])
def test_first_tick_at_is_the_float_comparison(tb: Fraction) -> None:
    rng = np.random.default_rng(1)
    for t in [0.0, 1 / 60, *rng.uniform(0, 600, 200).tolist(), *(k * float(tb) for k in range(0, 5000, 37))]:
        k = window._first_tick_at(t, tb)
        assert float(k * tb) >= t and not float((k - 1) * tb) >= t, (t, k)
    assert window._first_tick_at(float("inf"), tb) is None and window._first_tick_at(float("-inf"), tb) is None


def test_byte_index_from_the_probe_demux_equals_a_fresh_demux(tmp_path: Path) -> None:
    """The lerobot layout's keyframe index of a file comes from the demux
    ``probe_video`` did (cached per version of the file): equal to demuxing
    the bytes afresh, and a replaced file is demuxed again."""
    import io
    import shutil

    from lerobot_lance.layouts.lerobot_writer import keyframe_index

    files = sorted({p for name in VIDEO_SAMPLES for p, *_ in _windows(name)})
    for f in files:
        assert keyframe_index(f) == keyframe_index(io.BytesIO(f.read_bytes())), f
    a, b = files[0], next(f for f in files if f.stat().st_size != files[0].stat().st_size)
    target = tmp_path / "v.mp4"
    shutil.copy(a, target)
    first = (video.probe_video(target), keyframe_index(target))
    shutil.copy(b, target)  # same path, other bytes
    assert (video.probe_video(target), keyframe_index(target)) == (video.probe_video(b), keyframe_index(b)) != first
