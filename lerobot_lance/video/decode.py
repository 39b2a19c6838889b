"""Decoding chosen frames of a window: the seeking decoder
(:func:`_decode_at`), :func:`iter_frames_rgb` and
:func:`first_last_frames_decode`."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence

import av
import av.error
import numpy as np
from av.video.frame import VideoFrame

from lerobot_lance.errors import SourceDataError
from lerobot_lance.video.streams import PathLike, _half_frame_s, _open, _video_stream, _window_label
from lerobot_lance.video.window import _scan_window


#: When decoding selected frames, seek instead of decoding forward if the next
#: keyframe before the wanted frame is more than this many frames ahead.
_SEEK_GAP_FRAMES = 12


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
