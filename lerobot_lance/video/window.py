"""One episode window of a file, demuxed (no decoding): which packets it
holds, its keyframes, whether it starts on one (:func:`_scan_window`), and
:func:`window_packet_count`. Window bounds: see the package docstring."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import av.error
from av.container import InputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from lerobot_lance.errors import SourceDataError
from lerobot_lance.video.streams import PathLike, _demux_all, _demux_error, _half_frame_s, _open, _pkt_pts, _video_stream


#: How many times a seek that landed too late is retried further back before
#: falling back to reading the file from its start.
_SEEK_RETRIES = 3


@dataclass
class _Scan:
    """Packets of one window, found by demuxing (no decoding)."""

    time_base: Fraction
    #: pts of the window's packets, ascending (presentation order).
    pts: list[int] = field(default_factory=list)
    #: the window's packets in decode order (only when asked to keep them).
    packets: list[Packet] = field(default_factory=list)
    #: (only with ``keep_run``) every packet demuxed, in decode order, from the
    #: last keyframe met before the window's first packet to the end of the
    #: scan: what a decoder needs to output every frame of the window without
    #: seeking (the window's own packets are the same objects as ``packets``).
    run: list[Packet] = field(default_factory=list)
    #: pts of the keyframes met from the scan start up to the window end, ascending.
    keyframes: list[int] = field(default_factory=list)
    #: the first window packet in decode order is a keyframe and has the smallest pts.
    starts_on_keyframe: bool = False
    #: no packet outside the window lies between the window's first and last
    #: packets in decode order (so the window is decodable on its own).
    contiguous: bool = True


def _seek_demux(
    container: InputContainer, stream: VideoStream, path: PathLike, lo_s: float
) -> Iterator[Packet]:
    """Demux ``stream`` from a keyframe whose pts is strictly before ``lo_s``.

    Seeking in mp4 finds a keyframe by *decode* timestamp, which with B-frames
    may be a keyframe displayed inside the window; such a landing is detected
    and the seek retried further back, then the file is read from its start.
    """
    tb = stream.time_base
    assert tb is not None
    step = 2.0 * _half_frame_s(stream)
    target = lo_s - step
    for attempt in range(_SEEK_RETRIES):
        if target <= 0:
            break
        container.seek(max(0, math.floor(target / tb)), stream=stream, backward=True, any_frame=False)
        it = container.demux(stream)
        for first in it:
            if first.size == 0:
                continue
            pts, _ = _pkt_pts(first, path)
            if first.is_keyframe and float(pts * tb) < lo_s:
                return itertools.chain([first], it)
            target = min(target, float(pts * tb)) - step * 30 * (attempt + 1)
            break
        else:  # nothing after the seek point at all: read from the start
            break
    container.seek(0, stream=stream, backward=True, any_frame=False)
    # After seek(0) some demuxers land on the first keyframe with dts <= 0,
    # which is the first packet of the stream for every mp4 we have seen.
    return container.demux(stream)


def _first_tick_at(t: float, tb: Fraction) -> int | None:
    """The smallest integer ``k`` with ``float(k * tb) >= t``, or ``None`` for
    ``t = -inf`` (every tick) and ``t = +inf`` (no tick).

    ``float(k * tb)`` is monotone in ``k``, so ``pts >= k`` is exactly the test
    ``float(pts * tb) >= t`` the window bounds are defined by.
    """
    if math.isinf(t):
        return None
    k = math.ceil(Fraction(t) / tb)
    while float((k - 1) * tb) >= t:
        k -= 1
    while float(k * tb) < t:
        k += 1
    return k


def _scan_window(
    container: InputContainer,
    stream: VideoStream,
    path: PathLike,
    from_timestamp: float | None,
    to_timestamp: float | None,
    *,
    keep_packets: bool = False,
    keep_run: bool = False,
) -> _Scan:
    tb = stream.time_base
    if tb is None:
        raise SourceDataError(str(path), "video stream without a time base", expected="a time base", found=None)
    h = _half_frame_s(stream)
    lo = -math.inf if from_timestamp is None else from_timestamp - h
    hi = math.inf if to_timestamp is None else to_timestamp - h
    scan = _Scan(time_base=Fraction(tb))
    packets = _seek_demux(container, stream, path, lo) if lo > 0 else container.demux(stream)
    # The window bounds in time-base ticks, exactly (see _first_tick_at): the
    # loop compares integers instead of doing Fraction arithmetic per packet.
    lo_tick = _first_tick_at(lo, scan.time_base)
    hi_tick = _first_tick_at(hi, scan.time_base)
    seen_window = False
    gap_after_window = False  # an out-of-window packet met after a window packet
    first_window_key = False
    first_window_pts: int | None = None
    keyframes, window_pts, kept, run = scan.keyframes, scan.pts, scan.packets, scan.run
    try:
        for pkt in packets:
            if pkt.size == 0:  # demuxer flush packet
                continue
            pts = pkt.pts
            dts = pkt.dts
            if pts is None:
                pts, dts = _pkt_pts(pkt, path)
            elif dts is None:
                dts = pts
            if hi_tick is not None and dts >= hi_tick:  # pts >= dts >= hi: nothing further can be inside
                break
            key = pkt.is_keyframe
            if key:
                keyframes.append(pts)
            if keep_run:
                if key and not seen_window:
                    run.clear()  # decoding can start here: drop the packets before
                run.append(pkt)
            if (lo_tick is None or pts >= lo_tick) and (hi_tick is None or pts < hi_tick):
                if not seen_window:
                    seen_window = True
                    first_window_key = bool(key)
                    first_window_pts = pts
                elif gap_after_window:
                    scan.contiguous = False
                window_pts.append(pts)
                if keep_packets:
                    kept.append(pkt)
            elif seen_window:
                gap_after_window = True
    except av.error.FFmpegError as exc:
        raise _demux_error(path, exc) from exc
    scan.pts.sort()
    scan.keyframes.sort()
    scan.starts_on_keyframe = bool(seen_window and first_window_key and first_window_pts == scan.pts[0])
    return scan


def _count_video_packets(path: PathLike) -> tuple[int, int | None]:
    """(number of video packets, smallest pts) of ``path``, by demuxing."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        pts = [p for _, p in _demux_all(container, stream, path)]
        return len(pts), min(pts, default=None)


def window_packet_count(path: PathLike, from_timestamp: float, to_timestamp: float) -> int:
    """Count the video packets (frames) of ``path`` whose pts falls in the window.

    A packet at time ``t`` (seconds) counts when
    ``from_timestamp - h <= t < to_timestamp - h``, ``h`` = half a frame
    period. Demux only: seeks to the keyframe before the window and reads
    packets up to its end.

    Args:
        path: the video file.
        from_timestamp: window start, seconds (inclusive).
        to_timestamp: window end, seconds (exclusive).

    Returns:
        The number of frames in the window (0 if none). A file truncated
        after its index simply yields fewer packets here; :func:`probe_video`
        is the call that detects truncation.

    Raises:
        SourceDataError: missing, empty, unreadable file, or no video stream.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        return len(_scan_window(container, stream, path, from_timestamp, to_timestamp).pts)
