"""Each episode window demuxed once in ``episode_videos`` (issue 11): per
camera, ``_stage_one_episode_videos`` opens the source file once and demuxes
it once (cut, count, endpoints and camera-statistics sample from the same
packets); the segment is opened for its header only (no demux, no decode).
The segments are the ones ``main`` wrote before the one-pass change: the same
bytes for stream copy (now the staged header followed by the shard's bytes,
nothing else staged), the same decoded pixels for the re-encode."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from lerobot_lance import episode_stages, video
from lerobot_lance.conversion import Conversion, ConvertOptions, resolve_source
from lerobot_lance.readers import read_dataset_meta
from tests.conftest import sample

#: sha256 of the staged segments checked, from ``video.cut_segment`` on main at
#: e3a4271 (before this change; PyAV 18.1.0's bundled FFmpeg): the file
#: bytes for stream copy, the decoded ``rgb24`` frames concatenated for the
#: re-encode (method, sha256).
MAIN_SEGMENTS = {
    ("g1_v30", 0): ("stream_copy", "dcf74b84de6b5796098942c083fc39f6e402bed4ad168fbf331293a071b6d50d"),
    ("g1_v30", 1): ("stream_copy", "0aa65ddab2954958936cba8ef2748311d00b4d4febfae788b40076b3adb57528"),
    ("g1_v30", 2): ("stream_copy", "59ca5af4561079c6fd1eb6d2d37290a9ee6946e9a728c688ea79a9bc89ae2489"),
    ("g1_v30", 3): ("stream_copy", "31e7bcb65d69ae2d2ea697d8386f3e94037f974fec9a8d5a53d3e4a5b9fefdec"),
    ("g1_v30", 4): ("stream_copy", "7ebe4e6786a299af1accaff53e09e0195d7b454cfd757157ded9c5f9de5da2da"),
    ("g1_v30", 5): ("stream_copy", "82810b64d8737023e65fe260e8125326dccaa30257718ca40108635b0c913597"),
    ("g1_v30_h264_gop30", 0): ("stream_copy", "62ced40b1ecf315daaadc48ebf28e10651b6db5ed50faf65791f59480f452af7"),
    ("g1_v30_h264_gop30", 1): ("reencode", "791fadf68cd8b1a1effca8f9d2fce323bc1ce186ae13867e3eedff35824ff874"),
}


class _Counted:
    """An opened container that counts its ``demux`` and ``decode`` calls."""

    def __init__(self, container: Any, calls: Counter, path: str) -> None:
        self._c, self._calls, self._path = container, calls, path

    def __getattr__(self, name: str) -> Any:
        if name in ("demux", "decode"):
            self._calls[(self._path, name)] += 1
        return getattr(self._c, name)

    def __enter__(self) -> _Counted:
        self._c.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._c.__exit__(*exc)


@pytest.fixture
def counted_opens(monkeypatch: pytest.MonkeyPatch) -> Counter:
    """``av.open`` wrapped: (path, "open"/"demux"/"decode") -> calls, for files opened to read."""
    calls: Counter = Counter()
    lock = threading.Lock()
    real = av.open

    def wrapper(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        c = real(file, mode, *args, **kwargs)
        if mode != "r":
            return c
        with lock:
            calls[(str(file), "open")] += 1
        return _Counted(c, calls, str(file))

    monkeypatch.setattr(av, "open", wrapper)
    return calls


def _window_rgb(path: Path, lo: float, hi: float, fps: float) -> bytes:
    """The window's frames decoded straight through with plain PyAV (no
    seek), ``rgb24`` bytes concatenated: the reference pixels."""
    out = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for f in c.decode(s):
            t = float(f.pts * s.time_base)
            if t >= hi - 0.5 / fps:
                break
            if lo - 0.5 / fps <= t:
                out.append(f.to_ndarray(format="rgb24").tobytes())
    return b"".join(out)


@pytest.mark.parametrize(("name", "episodes"), [("g1_v30", range(6)), ("g1_v30_h264_gop30", (0, 1))])
def test_each_window_demuxed_once_and_segments_equal_main(name: str, episodes: Any, tmp_path: Path, counted_opens: Counter) -> None:
    """g1_v30: every window stream-copied; g1_v30_h264_gop30: episode 0
    stream-copied, episode 1 (not starting on a keyframe) re-encoded."""
    root = sample(name)
    # 8 frames sampled for camera statistics (fewer than the default) keeps the test short
    conv = Conversion.at(tmp_path / "out", tmp_path / "stg", ConvertOptions(camera_stats_samples=8))
    resolve_source(conv, str(root))
    meta = read_dataset_meta(root)
    for e in (meta.episode(i) for i in episodes):
        counted_opens.clear()
        cams, endpoints = episode_stages._stage_one_episode_videos(conv, e)
        (key, ref), = e.videos.items()
        cam = cams[key]
        src = str(Path(conv.source.fetch([ref.relative_path])) / ref.relative_path)
        # the source: one open, one demux; the segment (a stream copy muxed in
        # memory, a re-encode written under a temporary name, then renamed):
        # opened for its header, nothing demuxed or decoded
        assert counted_opens[(src, "open")] == 1, (e.episode_index, dict(counted_opens))
        assert counted_opens[(src, "demux")] == 1, (e.episode_index, dict(counted_opens))
        assert counted_opens[(src, "decode")] == 0, dict(counted_opens)
        written = {p for p, _ in counted_opens} - {src}
        assert len(written) <= 1 and sum(counted_opens[(p, "open")] for p in written) <= 1, dict(counted_opens)
        assert not any(counted_opens[(p, k)] for p in written for k in ("demux", "decode")), dict(counted_opens)
        counted_opens.clear()

        method, want = MAIN_SEGMENTS[(name, e.episode_index)]
        staged_mp4 = conv.staging.segment_path(meta.features[key].column, e.episode_index)
        if method == "stream_copy":
            # kept in the shard: the staged header + the shard's bytes are the segment main wrote
            assert cam["path"] == src and not staged_mp4.exists()
            assert all(p.startswith("<_io.BytesIO") for p in written), written
            offset, length = cam["source_range"]
            with open(src, "rb") as f:
                f.seek(offset)
                data = Path(cam["header"]).read_bytes() + f.read(length)
            assert len(data) == cam["size_bytes"] and hashlib.sha256(data).hexdigest() == want, e.episode_index
            assert cam["source_identity"] == f"{Path(src).stat().st_size}:{Path(src).stat().st_mtime_ns}"
            seg = tmp_path / f"segment_{e.episode_index}.mp4"
            seg.write_bytes(data)
            lo, _ = ref.window(e.length, meta.fps)  # endpoints on the shard's timeline
        else:
            seg = Path(cam["path"])
            assert seg == staged_mp4 and "source_range" not in cam
            assert all(Path(p).parent == seg.parent and Path(p).name.startswith(f".{seg.name}.tmp-") for p in written), written
            lo = 0.0
        assert cam["method"] == method and cam["frame_count"] == e.length == video.probe_video(seg).frame_count
        assert endpoints[key] == pytest.approx((lo, lo + (e.length - 1) / meta.fps), abs=0.5 / meta.fps)
        if method != "stream_copy":
            pixels = b"".join(f.tobytes() for f in video.iter_frames_rgb(seg))
            assert hashlib.sha256(pixels).hexdigest() == want, e.episode_index
            lo, hi = ref.window(e.length, meta.fps)
            assert pixels == _window_rgb(Path(src), lo, hi, meta.fps)
        # the camera-statistics sample is the one the stats stage would decode
        # (the segment's keyframes; for a re-encoded segment, the source window's)
        samples = episode_stages._stats_samples(conv, e.length)
        if method == "stream_copy":
            ref_frames = video.sample_frames_rgb(seg, samples)
        else:
            lo, hi = ref.window(e.length, meta.fps)
            ref_frames = video.sample_frames_rgb(src, samples, lo, hi)
        from lerobot_lance.stats import image_stats, stats_to_json

        assert cam["camera_stats_samples"] == samples
        assert cam["camera_stats"] == stats_to_json({key: image_stats(ref_frames)})[key]


def test_a_v2_episode_file_is_demuxed_once_and_its_probe_recorded(tmp_path: Path, counted_opens: Counter) -> None:
    """v2.x: the episode's own file is probed and inspected from one demux,
    and a later probe_video of it (the source checks) demuxes nothing."""
    root = sample("g1_v21")
    conv = Conversion.at(tmp_path / "out", tmp_path / "stg", ConvertOptions())
    resolve_source(conv, str(root))
    e = read_dataset_meta(root).episode(1)
    (key, ref), = e.videos.items()
    video.probe._PROBES.clear()
    cams, endpoints = episode_stages._stage_one_episode_videos(conv, e)
    src = str(Path(conv.source.fetch([ref.relative_path])) / ref.relative_path)
    assert counted_opens[(src, "open")] == 1 and counted_opens[(src, "demux")] == 1, dict(counted_opens)
    assert cams[key]["method"] == "copy" and cams[key]["frame_count"] == e.length == 343
    assert endpoints[key] == video.first_last_frames_decode(src)
    counted_opens.clear()
    assert video.probe_video(src).frame_count == 343 and not counted_opens
    probe, facts = video.inspect_file(src, sample_frames=10)
    assert facts.frame_count == 343 and np.array_equal(facts.sample, video.sample_frames_rgb(src, 10))


def test_a_reencode_whose_frames_do_not_all_come_from_the_kept_packets_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the kept decode run cannot give every window frame, the re-encode
    decodes the window again with the seeking decoder: same segment."""
    from lerobot_lance.video import cut

    root = sample("g1_v30_h264_gop30")
    meta = read_dataset_meta(root)
    e = meta.episode(1)
    (ref,) = e.videos.values()
    lo, hi = ref.window(e.length, meta.fps)
    first = video.stage_window(root / ref.relative_path, lo, hi, e.length, tmp_path / "a.mp4", sample_frames=8, preset="ultrafast")

    real = cut._frames_from_run

    def incomplete(stream: Any, scan: Any, path: Any) -> Any:  # 10 frames encoded, then the run gives out
        for i, frame in enumerate(real(stream, scan, path)):
            if i == 10:
                raise cut._RunIncomplete(i)
            yield frame

    monkeypatch.setattr(cut, "_frames_from_run", incomplete)
    again = video.stage_window(root / ref.relative_path, lo, hi, e.length, tmp_path / "b.mp4", sample_frames=8, preset="ultrafast")
    assert first.segment.method == again.segment.method == "reencode"
    assert again.segment.frame_count == e.length
    assert video.sha256_file(tmp_path / "a.mp4") == video.sha256_file(tmp_path / "b.mp4")
    assert np.array_equal(first.facts.sample, again.facts.sample) and first.facts.endpoints == again.facts.endpoints
