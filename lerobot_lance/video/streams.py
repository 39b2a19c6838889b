"""Opening a video file and reading its first video stream's timing
(the helpers every stage of :mod:`lerobot_lance.video` shares); conventions
in the package docstring."""

from __future__ import annotations

import os
from fractions import Fraction
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
from av.container import InputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from lerobot_lance.errors import SourceDataError
from lerobot_lance.lfs import FETCH_HINT, is_lfs_pointer, pointer_detail


PathLike = str | os.PathLike[str]


def _check_file(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise SourceDataError(str(p), "video file not found", expected="an existing file", found="no file")
    if not p.is_file():
        raise SourceDataError(str(p), "not a regular file", expected="a video file", found="a directory or special file")
    if p.stat().st_size == 0:
        raise SourceDataError(str(p), "video file is empty", expected="an mp4 video", found="0 bytes")
    if is_lfs_pointer(p):
        raise SourceDataError(str(p), f"video file is {pointer_detail(p)}; {FETCH_HINT}", expected="an mp4 video", found="a Git LFS pointer")
    return p


def _open(path: PathLike) -> InputContainer:
    """Open ``path`` for reading; every failure becomes a SourceDataError."""
    p = _check_file(path)
    try:
        return av.open(str(p), mode="r")
    except av.error.FFmpegError as exc:
        raise SourceDataError(
            str(p),
            f"cannot open video (truncated or not a video file?): {exc.strerror or exc}",
            expected="a readable video container",
            found=f"{type(exc).__name__}",
        ) from exc


def _video_stream(container: InputContainer, path: PathLike) -> VideoStream:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise SourceDataError(str(path), "file holds no video stream", expected="a video stream", found=", ".join(kinds))
    return container.streams.video[0]


def _rate(stream: VideoStream) -> Fraction | None:
    for r in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if r:
            return Fraction(r)
    return None


def _half_frame_s(stream: VideoStream) -> float:
    rate = _rate(stream)
    # Without a usable rate, fall back to a tolerance of one time-base tick.
    return 0.5 / float(rate) if rate else float(stream.time_base or 0)


def _pkt_pts(pkt: Packet, path: PathLike) -> tuple[int, int]:
    pts = pkt.pts if pkt.pts is not None else pkt.dts
    if pts is None:
        raise SourceDataError(str(path), "video packet without a timestamp", expected="packets with pts", found="pts=None")
    dts = pkt.dts if pkt.dts is not None else pts
    return int(pts), int(dts)


def _demux_all(container: InputContainer, stream: VideoStream, path: PathLike) -> Iterator[tuple[Packet, int]]:
    """Every non-empty packet of ``stream`` from the start, with its pts (stream
    time base); the flush packets PyAV yields at the end (size 0) are skipped.

    Raises:
        SourceDataError: a packet has no timestamp, or demuxing fails (a
            truncated or corrupt file).
    """
    try:
        for pkt in container.demux(stream):
            if pkt.size:
                yield pkt, _pkt_pts(pkt, path)[0]
    except av.error.FFmpegError as exc:
        raise _demux_error(path, exc) from exc


def _demux_error(path: PathLike, exc: av.error.FFmpegError) -> SourceDataError:
    """The located error for a demux that FFmpeg broke off (truncated or corrupt file)."""
    return SourceDataError(
        str(path),
        f"cannot demux video (truncated or corrupt file?): {exc.strerror or exc}",
        expected="a readable video stream",
        found=type(exc).__name__,
    )


def _window_label(from_timestamp: float | None, to_timestamp: float | None) -> str:
    a = "start" if from_timestamp is None else f"{from_timestamp:.6f}"
    b = "end" if to_timestamp is None else f"{to_timestamp:.6f}"
    return f"[{a}, {b}) s"
