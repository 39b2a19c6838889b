"""Probing a whole file by demuxing it (no decoding): :func:`probe_video`,
its keyframe packets (:func:`keyframe_packets`, one demux per file version in
a process) and :func:`sha256_file`."""

from __future__ import annotations

import hashlib
import os
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import av
from av.container import InputContainer
from av.packet import Packet
from av.video.stream import VideoStream

from lerobot_lance.errors import SourceDataError
from lerobot_lance.video.streams import PathLike, _demux_all, _open, _rate, _video_stream


@dataclass(frozen=True)
class VideoProbe:
    """What :func:`probe_video` learned about a file's first video stream.

    Attributes:
        codec: codec name as LeRobot writes it in ``info.json``
            ``video.codec`` (FFmpeg's canonical codec name): ``"av1"``,
            ``"h264"``, ``"hevc"``, ... -- not the decoder name (``libdav1d``).
        width: frame width in pixels.
        height: frame height in pixels.
        pix_fmt: pixel format (``"yuv420p"``, ...), or ``None`` if unknown.
        fps: average frame rate of the stream, frames per second.
        frame_count: number of video packets in the stream (== frames),
            counted by demuxing, without decoding.
        duration_s: stream duration in seconds, from the demuxed packets
            (last ``pts + duration`` minus first ``pts``); falls back to the
            container header when packets carry no durations.
        has_audio: whether the container also holds an audio stream.
    """

    codec: str
    width: int
    height: int
    pix_fmt: str | None
    fps: float
    frame_count: int
    duration_s: float
    has_audio: bool


def probe_video(path: PathLike) -> VideoProbe:
    """Describe the first video stream of ``path`` by demuxing it (no decoding).

    Args:
        path: a video file (mp4 in LeRobot datasets).

    Returns:
        A :class:`VideoProbe`; ``frame_count`` is the number of video packets
        (frames), ``fps`` in frames/s, ``duration_s`` in seconds.

    Raises:
        SourceDataError: the file is missing, empty (0 bytes), cannot be opened
            (truncated before its index, not a video), has no video stream,
            fails while demuxing, or holds fewer/more packets than its own
            container index lists (a file truncated after its index).
    """
    key = _file_key(path)
    hit = _PROBES.get(key) if key is not None else None
    if hit is not None:
        return hit[0]
    with _open(path) as container:
        stream = _video_stream(container, path)
        return _probe_packets(container, stream, path, _demux_all(container, stream, path))


def _probe_packets(
    container: InputContainer, stream: VideoStream, path: PathLike, packets: Iterable[tuple[Packet, int]]
) -> VideoProbe:
    """The :class:`VideoProbe` of ``stream`` from every one of its non-empty
    packets with its pts (``packets``, demux order, e.g. :func:`_demux_all`),
    recorded for :func:`keyframe_packets`. Raises as :func:`probe_video`."""
    key = _file_key(path)
    tb = stream.time_base
    n = 0
    first: int | None = None
    end: int | None = None
    keyframes: list[tuple[int, int]] = []
    for pkt, pts in packets:
        n += 1
        first = pts if first is None else min(first, pts)
        if pkt.duration:
            e = pts + int(pkt.duration)
            end = e if end is None else max(end, e)
        if pkt.is_keyframe and pkt.pts is not None and pkt.pos is not None and pkt.pos >= 0:
            keyframes.append((int(pkt.pts), int(pkt.pos)))
    if n == 0:
        raise SourceDataError(str(path), "video stream holds no frames", expected="at least 1 frame", found=0)
    listed = stream.frames
    if listed and listed != n:
        raise SourceDataError(
            str(path),
            "video is truncated or corrupt: the container index and the demuxed packets disagree",
            expected=f"{listed} frames (container index)",
            found=f"{n} packets",
        )
    if tb is not None and first is not None and end is not None:
        duration_s = float((end - first) * tb)
    elif stream.duration is not None and tb is not None:
        duration_s = float(stream.duration * tb)
    elif container.duration is not None:
        duration_s = container.duration / av.time_base
    else:
        duration_s = 0.0
    rate = _rate(stream)
    fps = float(rate) if rate else (n / duration_s if duration_s > 0 else 0.0)
    cc = stream.codec_context
    codec_name = cc.codec.canonical_name if cc.codec is not None else cc.name
    probe = VideoProbe(
        codec=str(codec_name),
        width=int(cc.width),
        height=int(cc.height),
        pix_fmt=cc.pix_fmt,
        fps=fps,
        frame_count=n,
        duration_s=duration_s,
        has_audio=bool(container.streams.audio),
    )
    if key is not None and tb is not None:
        if len(_PROBES) >= _PROBES_MAX:
            _PROBES.clear()
        nominal = float(stream.average_rate or stream.guessed_rate or 0)
        _PROBES[key] = (probe, Fraction(tb), nominal, array("q", [v for kf in keyframes for v in kf]))
    return probe


@dataclass(frozen=True)
class KeyframePackets:
    """The keyframe packets of a file's first video stream (:func:`keyframe_packets`).

    Attributes:
        time_base: the stream's time base (seconds per pts tick).
        nominal_fps: ``average_rate`` (else ``guessed_rate``, else 0) as a float,
            frames per second.
        packets: ``(pts, byte offset in the file)`` of each keyframe packet, in
            demux (decode) order; packets without a pts or a position are left out.
    """

    time_base: Fraction
    nominal_fps: float
    packets: tuple[tuple[int, int], ...]


#: Demux results by file version (:func:`_file_key`): the source checks, the
#: episode stages and the lerobot layout's byte index all demux the same files.
#: The keyframes are kept flat (pts, offset, pts, offset, ...) in an int64
#: array, 16 bytes a keyframe instead of about 120 as a tuple of pairs: one
#: entry per source file and staged segment, 1,200 of them for 600 episodes
#: (29 MB as tuples). :func:`keyframe_packets` builds the pairs when asked.
_PROBES: dict[tuple[str, int, int, int, int], tuple[VideoProbe, Fraction, float, array]] = {}


_PROBES_MAX = 20_000


def _file_key(path: PathLike) -> tuple[str, int, int, int, int] | None:
    """(real path, inode, size, mtime ns, ctime ns): any write to the file
    changes its ctime, which (unlike the mtime) cannot be set back."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def keyframe_packets(path: PathLike) -> KeyframePackets:
    """The keyframe packets of ``path``, from the demux :func:`probe_video` does
    (one demux per version of the file in a process).

    Raises:
        SourceDataError: as :func:`probe_video`.
    """
    probe_video(path)
    hit = _PROBES.get(_file_key(path))  # type: ignore[arg-type]
    if hit is None:  # the file changed between the two calls: demux once more
        _PROBES.clear()
        probe_video(path)
        hit = _PROBES[_file_key(path)]  # type: ignore[index]
    _, tb, nominal, flat = hit
    return KeyframePackets(tb, nominal, tuple(zip(flat[0::2], flat[1::2])))


def sha256_file(path: PathLike, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks of ``chunk_bytes`` bytes.

    Returns:
        The digest as 64 lowercase hex characters.

    Raises:
        SourceDataError: the file is missing or cannot be read.
        ValueError: ``chunk_bytes`` < 1.
    """
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(chunk_bytes):
                h.update(chunk)
    except OSError as exc:
        raise SourceDataError(str(path), f"cannot read file: {exc.strerror or exc}") from exc
    return h.hexdigest()
