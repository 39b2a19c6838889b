"""Camera statistics made cheaper, not different (issue 11, item d).

``video.sample_frames_rgb`` demuxes the window once and decodes only the
sampled keyframe packets, each alone; ``stats.image_stats`` takes every
statistic from one bincount. Checked here on every video window of the
shared samples against independent decodes and a plain numpy computation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lerobot_lance import video
from lerobot_lance.video import decode, streams, window
from lerobot_lance.video import sample as video_sample
from lerobot_lance.readers import read_dataset_meta
from lerobot_lance.stats import downsample_frames, feature_stats, image_stats
from tests.conftest import sample

VIDEO_SAMPLES = ("g1_v20", "g1_v21", "g1_v30", "g1_v30_h264_gop30", "g1_multicam_v30")


def _windows(name: str) -> list[tuple[Path, float | None, float | None, int]]:
    root = sample(name)
    meta = read_dataset_meta(root)
    out = []
    for e in meta.episodes:
        for ref in e.videos.values():
            lo, hi = (None, None) if ref.whole_file else (ref.from_timestamp, ref.to_timestamp)
            out.append((root / ref.relative_path, lo, hi, e.length))
    return out


def _scan(path: Path, lo: float | None, hi: float | None) -> window._Scan:
    with streams._open(path) as container:
        return window._scan_window(container, streams._video_stream(container, path), path, lo, hi)


@pytest.mark.parametrize("name", VIDEO_SAMPLES)
def test_sampled_frames_equal_the_frames_a_forward_decode_gives(name: str) -> None:
    """Each sampled frame is the window's frame at its (keyframe) position, as
    the threaded forward decode of ``iter_frames_rgb`` gives it, and the
    same frames the seek-per-frame path (``_decode_at``) gives."""
    for path, lo, hi, length in _windows(name):
        sampled = video.sample_frames_rgb(path, 10, lo, hi)
        scan = _scan(path, lo, hi)
        assert len(scan.pts) == length
        targets, on_keyframes = video_sample._sample_targets(scan, 10)
        assert on_keyframes and set(targets) <= set(scan.keyframes)  # the default 10 land on keyframes here
        assert sampled.shape[0] == len(targets) and sampled.dtype == np.uint8
        forward = np.stack(list(video.iter_frames_rgb(path, lo, hi, indices=[scan.pts.index(t) for t in targets])))
        assert np.array_equal(sampled, forward), (path, lo)
        seeked = np.stack([f.to_ndarray(format="rgb24") for _, f in decode._decode_at(path, targets, scan.keyframes, threaded=False)])
        assert np.array_equal(sampled, seeked), (path, lo)


def test_exact_positions_when_keyframes_are_too_few() -> None:
    """Asking for more samples than the window has keyframes falls back to the
    exact evenly spread positions, equal to the forward decode there."""
    path, lo, hi, length = _windows("g1_v30_h264_gop30")[1]
    scan = _scan(path, lo, hi)
    n = len([k for k in scan.keyframes if scan.pts[0] <= k <= scan.pts[-1]]) + 5
    sampled = video.sample_frames_rgb(path, n, lo, hi)
    positions = sorted({round(float(x)) for x in np.linspace(0, length - 1, n)})
    assert sampled.shape[0] == len(positions)
    assert np.array_equal(sampled, np.stack(list(video.iter_frames_rgb(path, lo, hi, indices=positions))))


def _reference_image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel stats the plain way: numpy over the downsampled pixels, the
    quantiles by the numeric features' histogram code (feature_stats)."""
    pixels = downsample_frames(frames).reshape(-1, 3)
    ref = feature_stats(pixels)
    ref = {k: (v / 255.0 if k != "count" else v) for k, v in ref.items()}
    ref["count"] = np.array([frames.shape[0]])
    return ref


@pytest.mark.parametrize("name", VIDEO_SAMPLES)
def test_image_stats_equal_the_plain_numpy_computation(name: str) -> None:
    for path, lo, hi, _ in _windows(name)[:2]:
        frames = video.sample_frames_rgb(path, 10, lo, hi)
        got, ref = image_stats(frames), _reference_image_stats(frames)
        assert set(got) == set(ref)
        for stat in ("min", "max", "q01", "q10", "q50", "q90", "q99", "count"):
            assert np.array_equal(got[stat].ravel(), ref[stat].ravel()), stat
        for stat in ("mean", "std"):
            assert_allclose(got[stat].ravel(), ref[stat].ravel(), rtol=1e-12, atol=0)


def test_image_stats_on_edge_cases() -> None:
    rng = np.random.default_rng(7)
    for frames in (
        np.full((2, 8, 8, 3), 7, np.uint8),  # one value: min = max = every quantile's bin
        rng.integers(0, 256, (3, 320, 301, 3), dtype=np.uint8),  # downsampled by stride 2
        rng.integers(0, 256, (1, 1, 2, 3), dtype=np.uint8),  # two pixels
    ):
        got, ref = image_stats(frames), _reference_image_stats(frames)
        for stat in ("min", "max", "q01", "q50", "q99"):
            assert np.array_equal(got[stat].ravel(), ref[stat].ravel()), stat
        assert_allclose(got["mean"].ravel(), ref["mean"].ravel(), rtol=1e-12)
