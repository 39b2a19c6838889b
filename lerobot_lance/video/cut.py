"""Cutting an episode window into a standalone mp4: stream copy when it
starts on a keyframe, else a re-encode (:func:`cut_segment`)."""

from __future__ import annotations

import io
import os
import shutil
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import av.error
from av.container import InputContainer
from av.video.frame import PictureType, VideoFrame
from av.video.stream import VideoStream

from lerobot_lance.errors import SourceDataError
from lerobot_lance.video.decode import _decode_at
from lerobot_lance.video.streams import PathLike, _open, _pkt_pts, _rate, _video_stream, _window_label
from lerobot_lance.video.window import _Scan, _scan_window


#: Muxer options of every mp4 this module writes: ``moov`` first, so that a
#: player reading the blob sequentially (or over HTTP) can start at once.
_MP4_OPTIONS: dict[str, str] = {"movflags": "faststart"}


#: libx264 preset of the re-encode path. Measured on the 2-core machine for a
#: 343-frame 640x480 lossless window: ultrafast 0.9 s / 15.5 MB, veryfast
#: 2.1 s / 9.6 MB, medium 3.6 s / 9.0 MB.
_DEFAULT_PRESET = "veryfast"


_REENCODE_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class SourceRange:
    """A segment whose video data are a run of its source file's bytes: the
    segment is ``header`` followed by the ``length`` bytes of the source from
    byte ``offset`` (a stream copy of a window whose packets lie back to back
    in the source, as in LeRobot v3.0 shards; or the whole source file, with
    an empty header).

    Attributes:
        header: the segment's bytes before its video data: the mp4 boxes
            ``ftyp`` and ``moov`` and the ``mdat`` box header (a few KB:
            about 8 bytes per frame).
        offset: byte offset in the source file of the window's first packet.
        length: bytes of video data (the ``mdat`` payload).
    """

    header: bytes
    offset: int
    length: int

    @property
    def size_bytes(self) -> int:
        """Bytes of the whole segment."""
        return len(self.header) + self.length


@dataclass(frozen=True)
class Segment:
    """The result of :func:`cut_segment`.

    Attributes:
        method: ``"copy"`` (the source file copied verbatim: the window was
            the whole file), ``"stream_copy"`` (the window's packets remuxed
            without decoding) or ``"reencode"`` (decoded and re-encoded with
            libx264; lossless when ``crf_or_qp == 0``).
        frame_count: number of video packets (== frames) written to the file
            (counted while muxing; the file's own index must list as many).
        size_bytes: size of the segment in bytes.
        source_range: when the cut was asked to keep a stream copy in its
            source (``in_source=True``) and its video data are bytes of the
            source: where; nothing was written then. ``None`` when the
            segment was written to its file.
    """

    method: str
    frame_count: int
    size_bytes: int
    source_range: SourceRange | None = None


def _tmp_name(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.tmp-{uuid.uuid4().hex[:12]}")


def _unlink_quiet(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass


class _ReadBack:
    """A second, read-only handle on the muxer's in-memory output: the mp4
    muxer re-opens what it wrote (through ``io_open``) to move ``moov`` in
    front of the data (``movflags=faststart``), reading ahead of where it
    writes, as it would with the file opened twice."""

    def __init__(self, buf: io.BytesIO) -> None:
        self._buf, self._pos = buf, 0

    def read(self, n: int) -> bytes:
        view = self._buf.getbuffer()
        try:
            out = bytes(view[self._pos : self._pos + n])
        finally:
            view.release()  # an exported buffer would stop the muxer's writes from growing it
        self._pos += len(out)
        return out

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._buf.getbuffer().nbytes}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        pass


def _remux(stream: VideoStream, scan: _Scan) -> tuple[bytes, int]:
    """Mux the window's packets (``scan.packets``, decode order) into an mp4
    in memory, without decoding, timestamps rebased to the first frame: the
    same bytes the mp4 muxer writes to a file with the same options. Returns
    (the mp4's bytes, the number of packets muxed). The packets are rebased
    in place: decode them before, not after."""
    offset = scan.pts[0]
    n = 0
    buf = io.BytesIO()

    def read_back(url: str, flags: int, options: dict[str, str]) -> _ReadBack:
        return _ReadBack(buf)

    with av.open(buf, mode="w", format="mp4", options=dict(_MP4_OPTIONS), io_open=read_back) as out:
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
            n += 1
    return buf.getvalue(), n


def _mdat_payload_start(data: bytes) -> int | None:
    """Offset in ``data`` (an mp4) of the payload of its last top-level box
    when that box is ``mdat``, else ``None``. Box header per ISO/IEC 14496-12
    section 4.2: a 32-bit big-endian size and a four-character type; size 1
    means a 64-bit size follows, size 0 means "to the end of the file"."""
    i, n = 0, len(data)
    while i + 8 <= n:
        size, kind = struct.unpack_from(">I4s", data, i)
        head = 8
        if size == 1:
            if i + 16 > n:
                return None
            size, head = struct.unpack_from(">Q", data, i + 8)[0], 16
        elif size == 0:
            size = n - i
        if size < head or i + size > n:
            return None
        if i + size == n:
            return i + head if kind == b"mdat" else None
        i += size
    return None


def _source_range(data: bytes, src_p: Path, first_packet_pos: int | None) -> SourceRange | None:
    """Where the video data of the muxed segment ``data`` lie in ``src_p``:
    its ``mdat`` payload compared byte for byte with the source's bytes from
    the window's first packet (``first_packet_pos``, from the demuxer).
    ``None`` when they differ (packets not back to back in the source, or
    changed by the muxer) or the position is unknown."""
    start = _mdat_payload_start(data)
    if start is None or first_packet_pos is None or first_packet_pos < 0:
        return None
    length = len(data) - start
    with open(src_p, "rb") as f:
        f.seek(first_packet_pos)
        source = f.read(length)
    # bytes.endswith compares with memcmp and copies nothing; comparing with a
    # memoryview goes byte by byte (about 25 times slower: 5.5 ms for a 3.3 MB segment)
    same = len(source) == length and data.endswith(source)
    return SourceRange(data[:start], first_packet_pos, length) if same else None


class _RunIncomplete(Exception):
    """The window's frames did not all come out of the kept decode run, in
    order: decode them with the seeking decoder instead."""


def _frames_from_run(stream: VideoStream, scan: _Scan, path: PathLike) -> Iterator[VideoFrame]:
    """The window's frames in presentation order (pts ``scan.pts``), decoded
    from the packets kept by the scan (``scan.run``: from the keyframe before
    the window), threaded, without opening or seeking the file again.

    Raises:
        _RunIncomplete: a window frame is missing or out of order (e.g. the
            run does not start on a keyframe).
        SourceDataError: the decoder fails.
    """
    want = scan.pts
    lo, hi = want[0], want[-1]
    stream.thread_type = "AUTO"
    ctx = stream.codec_context
    i = 0
    try:
        for pkt in [*scan.run, None]:
            for frame in ctx.decode(pkt):
                fpts = frame.pts
                if i < len(want) and fpts == want[i]:
                    i += 1
                    yield frame
                elif fpts is None or lo <= fpts <= hi:
                    raise _RunIncomplete(fpts)
    except av.error.FFmpegError as exc:
        raise SourceDataError(
            str(path), f"cannot decode video: {exc.strerror or exc}", expected="decodable frames", found=type(exc).__name__
        ) from exc
    if i < len(want):
        raise _RunIncomplete(i)


def _reencode(
    stream: VideoStream,
    scan: _Scan,
    frames: Iterable[VideoFrame],
    tmp: Path,
    crf_or_qp: int,
    preset: str,
    on_frame: Callable[[VideoFrame], None] | None = None,
) -> int:
    """Encode ``frames`` (the window's, presentation order) with libx264 into
    ``tmp``, timestamps rebased to the first frame; ``on_frame`` sees each
    decoded frame first. Returns the number of packets muxed."""
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
    n = 0
    with av.open(str(tmp), mode="w", format="mp4", options=dict(_MP4_OPTIONS)) as out:
        enc = out.add_stream("libx264", rate=rate)
        enc.width = cc.width
        enc.height = cc.height
        enc.pix_fmt = pix_fmt
        enc.time_base = tb
        enc.codec_context.time_base = tb
        enc.options = options
        first = True
        for frame in frames:
            if on_frame is not None:
                on_frame(frame)
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
                n += 1
        for pkt in enc.encode(None):
            out.mux(pkt)
            n += 1
    return n


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
            ``expected_frames`` (checked before writing, then on the packets
            muxed and on the segment's index, nothing then left at ``dst``); with
            ``reencode="never"``, the window does not start on a keyframe;
            decoding fails while re-encoding.
    """
    with _planned_window(src, from_timestamp, to_timestamp, expected_frames, reencode, crf_or_qp) as (stream, scan, src_p, window, method):
        return _write_segment(stream, scan, src_p, Path(dst), window, method, expected_frames, crf_or_qp, preset)


@contextmanager
def _planned_window(
    src: PathLike, from_timestamp: float, to_timestamp: float, expected_frames: int, reencode: str, crf_or_qp: int
) -> Iterator[tuple[VideoStream, _Scan, Path, str, str]]:
    """The source opened, its window scanned once (packets and the run from
    the keyframe before it kept) and the cut's method chosen, for
    :func:`cut_segment` and :func:`lerobot_lance.video.stage_window`: yields
    (stream, scan, source path, window label, method) while the container is
    open. Raises as :func:`cut_segment`, before anything is written."""
    _check_args(reencode, from_timestamp, to_timestamp, crf_or_qp)
    src_p = Path(src)
    window = _window_label(from_timestamp, to_timestamp)
    with _open(src_p) as container:
        stream = _video_stream(container, src_p)
        scan = _scan_window(container, stream, src_p, from_timestamp, to_timestamp, keep_packets=True, keep_run=True)
        yield stream, scan, src_p, window, _choose_method(container, stream, scan, src_p, window, expected_frames, reencode)


def _check_args(reencode: str, from_timestamp: float, to_timestamp: float, crf_or_qp: int) -> None:
    """The ``ValueError`` checks of :func:`cut_segment`'s arguments."""
    if reencode not in _REENCODE_MODES:
        raise ValueError(f"reencode must be one of {_REENCODE_MODES}, got {reencode!r}")
    if not to_timestamp > from_timestamp:
        raise ValueError(f"empty window: to_timestamp {to_timestamp} <= from_timestamp {from_timestamp}")
    if crf_or_qp < 0:
        raise ValueError(f"crf_or_qp must be >= 0, got {crf_or_qp}")


def _choose_method(
    container: InputContainer, stream: VideoStream, scan: _Scan, src_p: Path, window: str, expected_frames: int, reencode: str
) -> str:
    """``"copy"``, ``"stream_copy"`` or ``"reencode"`` for a scanned window
    (see :func:`cut_segment`).

    Raises:
        SourceDataError: the window does not hold ``expected_frames``, or it
            cannot be stream-copied and ``reencode == "never"``.
    """
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
        return "reencode"
    if can_copy:
        whole = (
            stream.frames == n
            and scan.pts[0] == 0
            and len(container.streams) == 1
            and "mp4" in (container.format.name or "")
        )
        return "copy" if whole else "stream_copy"
    if reencode == "never":
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
    return "reencode"


def _write_segment(
    stream: VideoStream,
    scan: _Scan,
    src_p: Path,
    dst_p: Path,
    window: str,
    method: str,
    expected_frames: int,
    crf_or_qp: int,
    preset: str,
    on_frame: Callable[[VideoFrame], None] | None = None,
    *,
    in_source: bool = False,
) -> Segment:
    """Write the scanned window to ``dst_p`` by ``method`` from the packets the
    scan kept (the re-encode decodes them; only a window whose frames do not
    all come out of them is decoded again from ``src_p`` by the seeking
    decoder), check the segment's header, and rename it into place.
    ``on_frame`` sees each decoded frame of a re-encode.

    ``in_source``: a copy, or a stream copy whose video data are bytes of
    ``src_p`` (:class:`SourceRange`), is not written at all: the returned
    segment says where its bytes are. A stream copy is muxed in memory first
    either way (its header checked there), so both give the same bytes.

    Raises:
        SourceDataError: writing fails, or the segment's index does not
            list the frames muxed, or it does not start at timestamp 0.
    """
    if method == "copy" and in_source:
        size = src_p.stat().st_size
        return Segment(method, len(scan.pts), size, SourceRange(b"", 0, size))
    dst_p.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(dst_p)
    data: bytes | None = None
    try:
        try:
            if method == "copy":
                shutil.copyfile(src_p, tmp)
                written = len(scan.pts)
            elif method == "stream_copy":
                first_pos = scan.packets[0].pos if scan.packets else None
                data, written = _remux(stream, scan)
            else:
                scan.packets.clear()
                try:
                    written = _reencode(stream, scan, _frames_from_run(stream, scan, src_p), tmp, crf_or_qp, preset, on_frame)
                except _RunIncomplete:
                    frames = (f for _, f in _decode_at(src_p, scan.pts, scan.keyframes))
                    written = _reencode(stream, scan, frames, tmp, crf_or_qp, preset, on_frame)
                scan.run.clear()
        except av.error.FFmpegError as exc:
            raise SourceDataError(
                str(src_p), f"writing the segment of window {window} failed ({method}): {exc.strerror or exc}"
            ) from exc
        if written != expected_frames:
            raise SourceDataError(
                str(src_p),
                f"segment cut from video window {window} ({method}) holds the wrong number of frames",
                expected=expected_frames,
                found=written,
            )
        _check_header(data if data is not None else tmp, src_p, window, method, written)
        if data is not None:
            kept = _source_range(data, src_p, first_pos) if in_source else None
            if kept is not None:
                return Segment(method, written, len(data), kept)
            with open(tmp, "wb") as f:
                f.write(data)
        os.replace(tmp, dst_p)
    except BaseException:
        _unlink_quiet(tmp)
        raise
    return Segment(method=method, frame_count=written, size_bytes=dst_p.stat().st_size)


def _check_header(segment: Path | bytes, src_p: Path, window: str, method: str, written: int) -> None:
    """The segment (its file, or its bytes) reopened, its header only (the
    mp4 index, read when the file is opened; no packet is demuxed): it must
    list the ``written`` frames muxed and start at timestamp 0.

    Raises:
        SourceDataError: the segment does not open, lists another number of
            frames, or its stream starts elsewhere than 0.
    """
    if isinstance(segment, bytes):
        try:
            container = av.open(io.BytesIO(segment), mode="r", format="mp4")
        except av.error.FFmpegError as exc:
            raise SourceDataError(
                str(src_p), f"segment cut from video window {window} ({method}) does not open: {exc.strerror or exc}"
            ) from exc
    else:
        container = _open(segment)
    with container:
        stream = _video_stream(container, src_p)
        listed, start = stream.frames, stream.start_time
    if listed != written:
        raise SourceDataError(
            str(src_p),
            f"segment cut from video window {window} ({method}) holds the wrong number of frames",
            expected=f"{written} frames (muxed)",
            found=f"{listed} frames (the segment's index)",
        )
    if start != 0:
        raise SourceDataError(
            str(src_p),
            f"segment cut from video window {window} ({method}) does not start at timestamp 0",
            expected=0,
            found=start,
        )
