"""Camera-statistics samples and the one-pass window inspection: the
sampled keyframes decoded from the window's own packets
(:func:`sample_frames_rgb`, :func:`inspect_window`)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import av
import av.error
import numpy as np
from av.packet import Packet
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from lerobot_lance.errors import SourceDataError
from lerobot_lance.video.decode import _decode_at
from lerobot_lance.video.streams import PathLike, _open, _video_stream, _window_label
from lerobot_lance.video.window import _Scan, _scan_window


def sample_frames_rgb(
    path: PathLike,
    n: int,
    from_timestamp: float | None = None,
    to_timestamp: float | None = None,
) -> np.ndarray:
    """Decode a deterministic sample of ``n`` frames of a window, cheaply.

    The sample is ``n`` positions spread evenly over the window (first and last
    included), each snapped to the nearest keyframe at or before it, so every
    sampled frame decodes on its own. The window is demuxed once (its packets
    kept) and only the chosen keyframe packets are handed to the decoder
    (:func:`_decode_from_packets`): no seek, no decoding of frames that are
    not sampled. Windows with fewer keyframes
    than ``n`` use the exact positions instead (decoding forward from the
    previous keyframe). Used for camera statistics, where LeRobot also
    samples frames (``sample_indices`` in ``lerobot/datasets/compute_stats.py``).

    Returns:
        ``uint8`` array of shape ``(k, height, width, 3)``, RGB, ``k <= n``
        distinct frames in presentation order (``k == 0`` for an empty window).

    Raises:
        SourceDataError: missing/unreadable file or a frame that fails to decode.
    """
    if n <= 0:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    with _open(path) as container:
        stream = _video_stream(container, path)
        scan = _scan_window(container, stream, path, from_timestamp, to_timestamp, keep_packets=True)
        if not scan.pts:
            return np.zeros((0, 0, 0, 3), dtype=np.uint8)
        targets, on_keyframes = _sample_targets(scan, n)
        if on_keyframes:
            try:
                got = _decode_from_packets(stream, scan.packets, targets, path)
                return np.stack(_rgb([got[t] for t in targets]))
            except _NotFromPackets:
                pass
    return np.stack(_rgb([f for _, f in _decode_at(path, targets, scan.keyframes, threaded=False)]))


def _sample_targets(scan: _Scan, n: int) -> tuple[list[int], bool]:
    """(pts to sample, ascending; whether each is a keyframe of the window):
    see :func:`sample_frames_rgb`."""
    positions = sorted({round(float(x)) for x in np.linspace(0, len(scan.pts) - 1, min(n, len(scan.pts)))})
    lo, hi = scan.pts[0], scan.pts[-1]
    window_keys = [k for k in scan.keyframes if lo <= k <= hi]
    if len(window_keys) >= len(positions):
        return sorted({window_keys[max(0, bisect.bisect_right(window_keys, scan.pts[p]) - 1)] for p in positions}), True
    return [scan.pts[p] for p in positions], False


class _NotFromPackets(Exception):
    """A wanted frame did not come out of the window's own packets (it needs
    packets before the window, or the stream is unusual): use the seeking decoder."""


def _decode_from_packets(stream: VideoStream, packets: Sequence[Packet], targets: Sequence[int], path: PathLike) -> dict[int, VideoFrame]:
    """Decode the frames whose pts are ``targets`` from a window's packets
    (decode order), on one thread, without seeking: for each target, from the
    keyframe packet at or before it (the target itself when it is a
    keyframe), feeding packets until its frame comes out, continuing the same
    run when the next target lies ahead in it; the decoder is drained and
    flushed only when a run ends without its frame. A keyframe needs no other
    packet, so a keyframe target costs its own packet (checked pixel for
    pixel against seek-and-decode on the shared samples by
    tests/test_perf_camera_stats.py and tests/test_speed_window_pass.py).

    Raises:
        _NotFromPackets: a target is not among the packets, has no keyframe
            before it in the window, or did not come out.
        SourceDataError: the decoder fails.
    """
    index = {int(pkt.pts): i for i, pkt in enumerate(packets) if pkt.pts is not None}
    keys = [i for i, pkt in enumerate(packets) if pkt.is_keyframe]
    want = set(targets)
    ctx = stream.codec_context
    ctx.thread_count = 1
    got: dict[int, VideoFrame] = {}
    run_start: int | None = None  # decode-order index of the current run's keyframe
    fed = 0  # next packet of the current run

    def take(frames: Sequence[VideoFrame]) -> None:
        for f in frames:
            if f.pts in want and f.pts not in got:
                got[int(f.pts)] = f

    try:
        for target in sorted(want):
            if target in got:
                continue
            i = index.get(target)
            if i is None:
                raise _NotFromPackets(target)
            j = bisect.bisect_right(keys, i) - 1
            while j >= 0 and packets[keys[j]].pts > target:
                j -= 1
            if j < 0:
                raise _NotFromPackets(target)
            start = keys[j]
            if run_start is None or not (run_start <= start < fed):
                run_start, fed = start, start
            while target not in got and fed < len(packets):
                take(ctx.decode(packets[fed]))
                fed += 1
            if target not in got:
                take(ctx.decode(None))
                ctx.flush_buffers()
                run_start = None
            if target not in got:
                raise _NotFromPackets(target)
    except av.error.FFmpegError as exc:
        raise SourceDataError(
            str(path), f"cannot decode video: {exc.strerror or exc}", expected="decodable frames", found=type(exc).__name__
        ) from exc
    return got


def _rgb(frames: Sequence[VideoFrame]) -> list[np.ndarray]:
    """``rgb24`` arrays of ``frames``, through one reused scaler (half the cost
    of ``to_ndarray(format="rgb24")`` per frame, same pixels)."""
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    return [reformatter.reformat(f, format="rgb24").to_ndarray() for f in frames]


@dataclass(frozen=True)
class WindowFacts:
    """What one pass over a window gives (:func:`inspect_window`).

    Attributes:
        frame_count: video packets (== frames) in the window, by demuxing.
        endpoints: ``(first_s, last_s)``, seconds on the file's timeline, of
            the window's first and last frames, both decoded; ``None`` when
            either fails to decode (``endpoint_error`` says why) or the window
            is empty.
        endpoint_error: why the endpoints did not decode, else ``None``.
        sample: the camera-statistics sample, uint8 ``(k, H, W, 3)`` RGB, as
            :func:`sample_frames_rgb` gives it; ``None`` when not asked for or
            when the window does not decode.
    """

    frame_count: int
    endpoints: tuple[float, float] | None
    endpoint_error: SourceDataError | None = None
    sample: np.ndarray | None = None


def inspect_window(
    path: PathLike, from_timestamp: float | None = None, to_timestamp: float | None = None, *, sample_frames: int = 0
) -> WindowFacts:
    """Count, check and sample a window in one pass: one open, one demux.

    Does what :func:`window_packet_count`, :func:`first_last_frames_decode`
    and :func:`sample_frames_rgb` do, with the same results, reading the
    window's packets once and decoding each needed frame from them (the
    keyframes sampled, the first frame and the last frame with the packets
    from its keyframe); only frames that need packets outside the window go
    through the seeking decoder.

    Args:
        path: the video file.
        from_timestamp / to_timestamp: the window, seconds (``None``: from the
            start / to the end of the file), half-frame tolerance.
        sample_frames: frames to sample for camera statistics (0: none).

    Returns:
        A :class:`WindowFacts`.

    Raises:
        SourceDataError: missing, empty or unreadable file, no video stream,
            or the demux fails (decode failures go in ``endpoint_error``).
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        scan = _scan_window(container, stream, path, from_timestamp, to_timestamp, keep_packets=True)
        facts = _window_facts(stream, scan, path, sample_frames, _window_label(from_timestamp, to_timestamp))
        scan.packets.clear()
    return facts


def _window_facts(
    stream: VideoStream, scan: _Scan, path: PathLike, sample_frames: int, label: str, *, origin: int = 0
) -> WindowFacts:
    """The :class:`WindowFacts` of a scanned window (its packets kept), decoding
    the endpoints and the keyframes sampled from those packets (one thread);
    only frames that need packets outside the window go through the seeking
    decoder (which opens ``path`` again). ``origin`` (pts ticks) is subtracted
    from the endpoints: the pts a segment cut from the window starts at.
    ``label`` names the window in the error for an empty one."""
    n = len(scan.pts)
    if n == 0:
        err = SourceDataError(str(path), f"video window {label} holds no frames", expected="at least 1 frame", found=0)
        return WindowFacts(0, None, err)
    ends = sorted({scan.pts[0], scan.pts[-1]})
    samples, on_keyframes = _sample_targets(scan, sample_frames) if sample_frames > 0 else ([], True)
    wanted = sorted(set(ends) | (set(samples) if on_keyframes else set()))
    try:
        try:
            got = _decode_from_packets(stream, scan.packets, wanted, path)
        except _NotFromPackets:
            got = dict(_decode_at(path, wanted, scan.keyframes))
        sample = None
        if samples:
            if on_keyframes:
                sample = np.stack(_rgb([got[t] for t in samples]))
            else:
                sample = np.stack(_rgb([f for _, f in _decode_at(path, samples, scan.keyframes, threaded=False)]))
    except SourceDataError as err:
        return WindowFacts(n, None, err)
    tb = scan.time_base
    return WindowFacts(n, (float((scan.pts[0] - origin) * tb), float((scan.pts[-1] - origin) * tb)), None, sample)
