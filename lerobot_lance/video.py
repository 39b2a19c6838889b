"""Video probing, episode segment cutting and frame decoding, with PyAV.

Everything on the default conversion path only *demuxes* and *remuxes*
(reads and writes compressed packets); nothing is decoded unless a window
does not start on a keyframe (then :func:`cut_segment` re-encodes it) or a
caller asks for pixels (:func:`iter_frames_rgb`, :func:`first_last_frames_decode`).

Conventions used throughout:

* Timestamps are in **seconds** (``float``), measured on the source file's
  presentation timeline (packet/frame ``pts`` times the stream ``time_base``).
* A window ``[from_timestamp, to_timestamp)`` holds the frames whose
  timestamp ``t`` satisfies ``from_timestamp - h <= t < to_timestamp - h``
  where ``h`` is half a frame period (``0.5 / fps``). This absorbs the float
  rounding of the timestamps LeRobot stores (e.g. ``24.533333`` for frame 736
  at 30 fps) without ever admitting a neighbouring frame.
* ``None`` for ``from_timestamp`` / ``to_timestamp`` means "from the start" /
  "to the end" of the file.
* Only the first video stream of a file is considered; audio is ignored
  (and never copied into cut segments).
* Every fault in the *data* (missing, empty, truncated or undecodable file,
  window holding the wrong number of frames) raises
  :class:`lerobot_lance.errors.SourceDataError` naming the file. Misuse of
  the API (bad argument values) raises :class:`ValueError`.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.container import InputContainer
from av.packet import Packet
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from lerobot_lance.errors import SourceDataError
from lerobot_lance.lfs import FETCH_HINT, is_lfs_pointer, pointer_detail

__all__ = [
    "Segment",
    "VideoProbe",
    "cut_segment",
    "WindowFacts",
    "first_last_frames_decode",
    "inspect_window",
    "keyframe_packets",
    "iter_frames_rgb",
    "probe_video",
    "sha256_file",
    "window_packet_count",
]

PathLike = str | os.PathLike[str]

#: Muxer options of every mp4 this module writes: ``moov`` first, so that a
#: player reading the blob sequentially (or over HTTP) can start at once.
_MP4_OPTIONS: dict[str, str] = {"movflags": "faststart"}
#: libx264 preset of the re-encode path. Measured on the 2-core machine for a
#: 343-frame 640x480 lossless window: ultrafast 0.9 s / 15.5 MB, veryfast
#: 2.1 s / 9.6 MB, medium 3.6 s / 9.0 MB.
_DEFAULT_PRESET = "veryfast"
#: When decoding selected frames, seek instead of decoding forward if the next
#: keyframe before the wanted frame is more than this many frames ahead.
_SEEK_GAP_FRAMES = 12
#: How many times a seek that landed too late is retried further back before
#: falling back to reading the file from its start.
_SEEK_RETRIES = 3
_REENCODE_MODES = ("auto", "always", "never")


# --------------------------------------------------------------------------- #
# Public data types
# --------------------------------------------------------------------------- #


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


@dataclass(frozen=True)
class Segment:
    """The result of :func:`cut_segment`.

    Attributes:
        method: ``"copy"`` (the source file copied verbatim: the window was
            the whole file), ``"stream_copy"`` (the window's packets remuxed
            without decoding) or ``"reencode"`` (decoded and re-encoded with
            libx264; lossless when ``crf_or_qp == 0``).
        frame_count: number of video packets (== frames) in the written file.
        size_bytes: size of the written file in bytes.
    """

    method: str
    frame_count: int
    size_bytes: int


# --------------------------------------------------------------------------- #
# Internal helpers
# --------------------------------------------------------------------------- #


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


def _window_label(from_timestamp: float | None, to_timestamp: float | None) -> str:
    a = "start" if from_timestamp is None else f"{from_timestamp:.6f}"
    b = "end" if to_timestamp is None else f"{to_timestamp:.6f}"
    return f"[{a}, {b}) s"


@dataclass
class _Scan:
    """Packets of one window, found by demuxing (no decoding)."""

    time_base: Fraction
    #: pts of the window's packets, ascending (presentation order).
    pts: list[int] = field(default_factory=list)
    #: the window's packets in decode order (only when asked to keep them).
    packets: list[Packet] = field(default_factory=list)
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
    keyframes, window_pts, kept = scan.keyframes, scan.pts, scan.packets
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
        raise SourceDataError(
            str(path),
            f"cannot demux video (truncated or corrupt file?): {exc.strerror or exc}",
            expected="a readable video stream",
            found=type(exc).__name__,
        ) from exc
    scan.pts.sort()
    scan.keyframes.sort()
    scan.starts_on_keyframe = bool(seen_window and first_window_key and first_window_pts == scan.pts[0])
    return scan


def _count_video_packets(path: PathLike) -> tuple[int, int | None]:
    """(number of video packets, smallest pts) of ``path``, by demuxing."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        n = 0
        first: int | None = None
        try:
            for pkt in container.demux(stream):
                if pkt.size == 0:
                    continue
                pts, _ = _pkt_pts(pkt, path)
                n += 1
                first = pts if first is None else min(first, pts)
        except av.error.FFmpegError as exc:
            raise SourceDataError(str(path), f"cannot demux video: {exc.strerror or exc}") from exc
        return n, first


def _decode_at(
    path: PathLike,
    targets: Sequence[int],
    keyframes: Sequence[int],
    *,
    threaded: bool = True,
) -> Iterator[tuple[int, VideoFrame]]:
    """Decode the frames whose pts are ``targets`` (ascending), yielding (pts, frame).

    Seeks to the keyframe before a target when that saves decoding more than
    ``_SEEK_GAP_FRAMES`` frames; otherwise decodes forward. A seek that lands
    after its target (decode-timestamp seeking with B-frames) falls back to
    decoding from the start of the file. ``threaded=False`` decodes on one
    thread: faster when every target needs its own seek (frame threading
    pays a pipeline fill after each seek).
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        if threaded:
            stream.thread_type = "AUTO"
        else:
            stream.codec_context.thread_count = 1
        tb = stream.time_base
        assert tb is not None
        frame_ticks = 2.0 * _half_frame_s(stream) / float(tb)  # one frame, in pts ticks
        frames: Iterator[VideoFrame] | None = None
        pos: int | None = None  # pts of the last frame decoded
        from_start = False
        current: VideoFrame | None = None
        try:
            for target in targets:
                if current is not None and pos == target:
                    yield target, current
                    continue
                i = bisect.bisect_right(keyframes, target) - 1
                kf = keyframes[i] if i >= 0 else None
                seek = frames is None
                if not seek and not from_start and kf is not None and pos is not None:
                    # a keyframe lies far enough ahead of where we are: jump to it
                    seek = kf > pos and (kf - pos) > _SEEK_GAP_FRAMES * frame_ticks
                if seek:
                    if kf is None or from_start:
                        container.seek(0, stream=stream, backward=True, any_frame=False)
                        from_start = True
                    else:
                        container.seek(kf, stream=stream, backward=True, any_frame=False)
                    frames = container.decode(stream)
                    pos = None
                    current = None
                assert frames is not None
                while True:
                    fr = next(frames, None)
                    if fr is None:
                        raise SourceDataError(
                            str(path),
                            f"frame at {float(target * tb):.6f} s did not decode (stream ended first)",
                            expected=f"a frame with pts {target}",
                            found=f"last decoded pts {pos}",
                        )
                    fpts = fr.pts
                    if fpts is None:
                        raise SourceDataError(str(path), "decoded frame without a timestamp", expected="pts", found=None)
                    if pos is None and fpts > target and not from_start:
                        # landed too late: decode from the start of the file instead
                        container.seek(0, stream=stream, backward=True, any_frame=False)
                        from_start = True
                        frames = container.decode(stream)
                        continue
                    pos = fpts
                    if fpts == target:
                        current = fr
                        yield target, fr
                        break
                    if fpts > target:
                        raise SourceDataError(
                            str(path),
                            f"frame at {float(target * tb):.6f} s did not decode",
                            expected=f"a frame with pts {target}",
                            found=f"next frame pts {fpts}",
                        )
        except av.error.FFmpegError as exc:
            raise SourceDataError(
                str(path), f"cannot decode video: {exc.strerror or exc}", expected="decodable frames", found=type(exc).__name__
            ) from exc


def _tmp_name(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.tmp-{uuid.uuid4().hex[:12]}")


def _unlink_quiet(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass


def _remux(container: InputContainer, stream: VideoStream, scan: _Scan, tmp: Path) -> None:
    offset = scan.pts[0]
    with av.open(str(tmp), mode="w", format="mp4", options=dict(_MP4_OPTIONS)) as out:
        # opaque=True: copy codec parameters as they are. Without it PyAV looks
        # for an *encoder* named like the decoder (UnknownCodecError: libdav1d).
        ostream = out.add_stream_from_template(stream, opaque=True)
        ostream.time_base = stream.time_base
        for pkt in scan.packets:
            pts, dts = _pkt_pts(pkt, "")
            pkt.pts = pts - offset
            pkt.dts = dts - offset
            pkt.stream = ostream
            out.mux(pkt)


def _reencode(
    src: Path,
    stream: VideoStream,
    scan: _Scan,
    tmp: Path,
    crf_or_qp: int,
    preset: str,
) -> None:
    tb = stream.time_base
    assert tb is not None
    offset = scan.pts[0]
    rate = _rate(stream) or Fraction(30)
    cc = stream.codec_context
    src_fmt = cc.pix_fmt or "yuv420p"
    x264_formats = {f.name for f in (av.codec.Codec("libx264", "w").video_formats or ())}
    pix_fmt = src_fmt if src_fmt in x264_formats else "yuv420p"
    options = {"preset": preset}
    if crf_or_qp == 0:
        options["qp"] = "0"
    else:
        options["crf"] = str(crf_or_qp)
    with av.open(str(tmp), mode="w", format="mp4", options=dict(_MP4_OPTIONS)) as out:
        enc = out.add_stream("libx264", rate=rate)
        enc.width = cc.width
        enc.height = cc.height
        enc.pix_fmt = pix_fmt
        enc.time_base = tb
        enc.codec_context.time_base = tb
        enc.options = options
        first = True
        for _, frame in _decode_at(src, scan.pts, scan.keyframes):
            if first:
                # carry the colour description over, so RGB conversion matches
                ecc = enc.codec_context
                ecc.color_range = frame.color_range
                ecc.colorspace = frame.colorspace
                ecc.color_primaries = frame.color_primaries
                ecc.color_trc = frame.color_trc
                first = False
            assert frame.pts is not None
            frame.pts = frame.pts - offset
            frame.time_base = tb
            # decoded keyframes carry pict_type I, which libx264 would honour
            # as forced keyframes (one every 2 frames for the AV1 samples)
            frame.pict_type = PictureType.NONE
            for pkt in enc.encode(frame):
                out.mux(pkt)
        for pkt in enc.encode(None):
            out.mux(pkt)


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


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
        tb = stream.time_base
        n = 0
        first: int | None = None
        end: int | None = None
        keyframes: list[tuple[int, int]] = []
        try:
            for pkt in container.demux(stream):
                if pkt.size == 0:
                    continue
                pts, _ = _pkt_pts(pkt, path)
                n += 1
                first = pts if first is None else min(first, pts)
                if pkt.duration:
                    e = pts + int(pkt.duration)
                    end = e if end is None else max(end, e)
                if pkt.is_keyframe and pkt.pts is not None and pkt.pos is not None and pkt.pos >= 0:
                    keyframes.append((int(pkt.pts), int(pkt.pos)))
        except av.error.FFmpegError as exc:
            raise SourceDataError(
                str(path),
                f"cannot demux video (truncated or corrupt file?): {exc.strerror or exc}",
                expected="a readable video stream",
                found=type(exc).__name__,
            ) from exc
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
            _PROBES[key] = (probe, KeyframePackets(Fraction(tb), nominal, tuple(keyframes)))
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
_PROBES: dict[tuple[str, int, int, int, int], tuple[VideoProbe, KeyframePackets]] = {}
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
    return hit[1]


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


def cut_segment(
    src: PathLike,
    from_timestamp: float,
    to_timestamp: float,
    expected_frames: int,
    dst: PathLike,
    *,
    reencode: str = "auto",
    crf_or_qp: int = 0,
    preset: str = _DEFAULT_PRESET,
) -> Segment:
    """Write the frames of ``[from_timestamp, to_timestamp)`` of ``src`` as a standalone mp4.

    The output holds exactly the window's frames (video only, no audio),
    frame 0 first, timestamps rebased so the first frame is at 0 s, with the
    source time base and the container duration equal to the frames' span.
    It is written to a temporary name next to ``dst`` and renamed over
    ``dst`` atomically, so ``dst`` never holds a partial or wrong file (a
    pre-existing ``dst`` is left untouched when the cut fails). Missing parent
    directories of ``dst`` are created.

    Method chosen:

    * ``"copy"``: the window is the whole of an mp4 holding only this video
      stream, starting at pts 0: the file is copied byte for byte.
    * ``"stream_copy"``: the window's first packet (in decode order) is a
      keyframe and the window is a contiguous run of packets: its packets are
      remuxed without decoding (AV1 included, via ``opaque=True``).
    * ``"reencode"``: otherwise (or when ``reencode="always"``), decode from
      the keyframe before the window, drop the frames before it and encode
      with libx264 (H.264, source pixel format when libx264 supports it, else
      yuv420p); ``crf_or_qp=0`` means ``qp=0``, lossless, pixel-identical
      to the decoded source; ``crf_or_qp>0`` means ``crf=crf_or_qp`` (lossy).

    Args:
        src: the source video (e.g. a LeRobot v3.0 shard).
        from_timestamp: window start in seconds (inclusive, half-frame tolerance).
        to_timestamp: window end in seconds (exclusive, half-frame tolerance).
            For a LeRobot episode pass ``from_timestamp + length / fps``
            (:meth:`lerobot_lance.model.VideoRef.window`): LeRobot reads frame
            ``i`` at ``from_timestamp + timestamp_i``, and some datasets
            declare ``to_timestamp`` as the last frame's timestamp, which
            would cut one frame short.
        expected_frames: the number of frames the window must hold (the
            episode length from the metadata).
        dst: where to write the mp4.
        reencode: ``"auto"`` (stream copy when possible, else re-encode),
            ``"always"`` (always re-encode) or ``"never"`` (refuse to
            re-encode).
        crf_or_qp: 0 for lossless (x264 ``qp=0``); N > 0 for x264 ``crf=N``.
        preset: libx264 preset for the re-encode path.

    Returns:
        A :class:`Segment` with the method used, the number of frames
        (packets) in ``dst`` and its size in bytes.

    Raises:
        ValueError: ``reencode`` not one of auto/always/never, a window with
            ``to_timestamp <= from_timestamp``, or a negative ``crf_or_qp``.
        SourceDataError: ``src`` is missing, empty, unreadable or has no video
            stream; the window holds a number of frames other than
            ``expected_frames`` (checked before writing, then again by
            demuxing the written file, which is then deleted); with
            ``reencode="never"``, the window does not start on a keyframe;
            decoding fails while re-encoding.
    """
    if reencode not in _REENCODE_MODES:
        raise ValueError(f"reencode must be one of {_REENCODE_MODES}, got {reencode!r}")
    if not to_timestamp > from_timestamp:
        raise ValueError(f"empty window: to_timestamp {to_timestamp} <= from_timestamp {from_timestamp}")
    if crf_or_qp < 0:
        raise ValueError(f"crf_or_qp must be >= 0, got {crf_or_qp}")
    src_p = Path(src)
    dst_p = Path(dst)
    window = _window_label(from_timestamp, to_timestamp)
    with _open(src_p) as container:
        stream = _video_stream(container, src_p)
        scan = _scan_window(container, stream, src_p, from_timestamp, to_timestamp, keep_packets=True)
        n = len(scan.pts)
        if n == 0 or n != expected_frames:
            raise SourceDataError(
                str(src_p),
                f"video window {window} does not hold the expected number of frames",
                expected=expected_frames,
                found=n,
            )
        can_copy = scan.starts_on_keyframe and scan.contiguous
        if reencode == "always":
            method = "reencode"
        elif can_copy:
            whole = (
                stream.frames == n
                and scan.pts[0] == 0
                and len(container.streams) == 1
                and "mp4" in (container.format.name or "")
            )
            method = "copy" if whole else "stream_copy"
        elif reencode == "never":
            tb = scan.time_base
            first_s = float(scan.pts[0] * tb)
            if not scan.starts_on_keyframe:
                prev = [k for k in scan.keyframes if k <= scan.pts[0]]
                found = (
                    f"first frame at {first_s:.6f} s is not a keyframe"
                    + (f" (previous keyframe at {float(prev[-1] * tb):.6f} s)" if prev else "")
                )
            else:
                found = "packets outside the window interleaved in decode order"
            raise SourceDataError(
                str(src_p),
                f"video window {window} cannot be stream-copied and reencode='never'",
                expected="a window starting on a keyframe",
                found=found,
            )
        else:
            method = "reencode"

        dst_p.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(dst_p)
        try:
            try:
                if method == "copy":
                    shutil.copyfile(src_p, tmp)
                elif method == "stream_copy":
                    _remux(container, stream, scan, tmp)
                else:
                    scan.packets.clear()
                    _reencode(src_p, stream, scan, tmp, crf_or_qp, preset)
            except av.error.FFmpegError as exc:
                raise SourceDataError(
                    str(src_p), f"writing the segment of window {window} failed ({method}): {exc.strerror or exc}"
                ) from exc
            written, first_pts = _count_video_packets(tmp)
            if written != expected_frames:
                raise SourceDataError(
                    str(src_p),
                    f"segment cut from video window {window} ({method}) holds the wrong number of frames",
                    expected=expected_frames,
                    found=written,
                )
            if first_pts != 0:
                raise SourceDataError(
                    str(src_p),
                    f"segment cut from video window {window} ({method}) does not start at timestamp 0",
                    expected=0,
                    found=first_pts,
                )
            os.replace(tmp, dst_p)
        except BaseException:
            _unlink_quiet(tmp)
            raise
    return Segment(method=method, frame_count=written, size_bytes=dst_p.stat().st_size)


def iter_frames_rgb(
    path: PathLike,
    from_timestamp: float | None = None,
    to_timestamp: float | None = None,
    indices: Sequence[int] | None = None,
) -> Iterator[np.ndarray]:
    """Decode frames of ``path`` in a window as RGB arrays.

    Demuxes the window first (cheap) to learn its frames and keyframes, then
    seeks to the keyframe before the first wanted frame and decodes forward,
    seeking again past long gaps between ``indices``.

    Args:
        path: the video file.
        from_timestamp: window start in seconds (inclusive, half-frame
            tolerance); ``None`` = start of file.
        to_timestamp: window end in seconds (exclusive); ``None`` = end of file.
        indices: optional frame positions within the window (0-based,
            non-decreasing; repeats yield the same frame again). ``None``
            yields every frame of the window.

    Returns:
        An iterator of ``numpy.ndarray`` of shape ``(height, width, 3)``,
        dtype ``uint8``, RGB (``rgb24``), one per frame, in presentation order
        (or in the order of ``indices``); empty if the window holds no frames.

    Raises:
        ValueError: ``indices`` negative or decreasing (at call time).
        SourceDataError: at call time, a missing/empty/unreadable file, no
            video stream, or an index at or beyond the number of frames in the
            window; while iterating, a frame that fails to decode.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        scan = _scan_window(container, stream, path, from_timestamp, to_timestamp)
    if indices is None:
        targets: list[int] = scan.pts
    else:
        idx = [int(i) for i in indices]
        if any(i < 0 for i in idx):
            raise ValueError(f"indices must be >= 0, got {idx}")
        if any(b < a for a, b in itertools.pairwise(idx)):
            raise ValueError("indices must be non-decreasing")
        if idx and idx[-1] >= len(scan.pts):
            raise SourceDataError(
                str(path),
                f"frame index {idx[-1]} out of range for video window {_window_label(from_timestamp, to_timestamp)}",
                expected=f"index < {len(scan.pts)}",
                found=idx[-1],
            )
        targets = [scan.pts[i] for i in idx]
    return _rgb_frames(path, targets, scan.keyframes)


def _rgb_frames(path: PathLike, targets: Sequence[int], keyframes: Sequence[int]) -> Iterator[np.ndarray]:
    if not targets:
        return
    for _, frame in _decode_at(path, targets, keyframes):
        yield frame.to_ndarray(format="rgb24")


def first_last_frames_decode(
    path: PathLike,
    from_timestamp: float | None = None,
    to_timestamp: float | None = None,
) -> tuple[float, float]:
    """Decode the first and the last frame of a window, as a cheap decodability check.

    Demuxes the window to find its first and last frames, then seeks to the
    keyframe before each and decodes only from there (never the whole file
    unless a seek misses).

    Args:
        path: the video file.
        from_timestamp: window start in seconds (inclusive, half-frame
            tolerance); ``None`` = start of file.
        to_timestamp: window end in seconds (exclusive); ``None`` = end of file.

    Returns:
        ``(first_s, last_s)``: the timestamps, in seconds on the file's own
        timeline, of the first and last frames of the window.

    Raises:
        SourceDataError: missing/empty/unreadable file, no video stream, an
            empty window, or either frame fails to decode.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        scan = _scan_window(container, stream, path, from_timestamp, to_timestamp)
    if not scan.pts:
        raise SourceDataError(
            str(path),
            f"video window {_window_label(from_timestamp, to_timestamp)} holds no frames",
            expected="at least 1 frame",
            found=0,
        )
    targets = sorted({scan.pts[0], scan.pts[-1]})
    decoded = [pts for pts, _ in _decode_at(path, targets, scan.keyframes)]
    if decoded != targets:  # _decode_at raises first; kept as a guard
        raise SourceDataError(str(path), "first/last frame did not decode", expected=targets, found=decoded)
    tb = scan.time_base
    return float(scan.pts[0] * tb), float(scan.pts[-1] * tb)


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
        n = len(scan.pts)
        if n == 0:
            err = SourceDataError(
                str(path), f"video window {_window_label(from_timestamp, to_timestamp)} holds no frames",
                expected="at least 1 frame", found=0,
            )
            return WindowFacts(0, None, err)
        ends = sorted({scan.pts[0], scan.pts[-1]})
        samples, on_keyframes = _sample_targets(scan, sample_frames) if sample_frames > 0 else ([], True)
        wanted = sorted(set(ends) | (set(samples) if on_keyframes else set()))
        try:
            try:
                got = _decode_from_packets(stream, scan.packets, wanted, path)
            except _NotFromPackets:
                got = None
        except SourceDataError as err:
            return WindowFacts(n, None, err)
        scan.packets.clear()
    try:
        if got is None:
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
    return WindowFacts(n, (float(scan.pts[0] * tb), float(scan.pts[-1] * tb)), None, sample)
