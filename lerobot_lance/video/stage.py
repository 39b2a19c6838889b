"""An episode window staged in one pass: the source opened and the window
demuxed once, its packets serving the cut (stream copy or re-encode), the
frame count and the endpoint and camera-statistics decodes
(:func:`stage_window`); a whole episode file probed and inspected from one
demux (:func:`inspect_file`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from av.video.frame import VideoFrame

from lerobot_lance.errors import SourceDataError
from lerobot_lance.video.probe import VideoProbe, _probe_packets
from lerobot_lance.video.cut import _DEFAULT_PRESET, Segment, _planned_window, _write_segment
from lerobot_lance.video.sample import WindowFacts, _rgb, _sample_targets, _window_facts
from lerobot_lance.video.streams import PathLike, _open, _pkt_pts, _video_stream, _window_label
from lerobot_lance.video.window import _scan_window


@dataclass(frozen=True)
class StagedWindow:
    """What :func:`stage_window` gives.

    Attributes:
        segment: the segment written (:class:`Segment`: method, frames
            muxed, bytes).
        facts: the window's :class:`WindowFacts`, on the *segment's* timeline
            (endpoints in seconds from its first frame, 0.0): frame count,
            decoded endpoints (or why they did not decode) and the
            camera-statistics sample (uint8 ``(k, H, W, 3)`` RGB, equal to
            :func:`sample_frames_rgb` on the source window), or ``None``.
    """

    segment: Segment
    facts: WindowFacts


def stage_window(
    src: PathLike,
    from_timestamp: float,
    to_timestamp: float,
    expected_frames: int,
    dst: PathLike,
    *,
    sample_frames: int = 0,
    reencode: str = "auto",
    crf_or_qp: int = 0,
    preset: str = _DEFAULT_PRESET,
    in_source: bool = False,
) -> StagedWindow:
    """Cut a window into ``dst`` as :func:`cut_segment` does (same method,
    same bytes), and give what :func:`inspect_window` gives on the window,
    from one open of ``src`` and one demux of the window.

    * stream copy (and ``"copy"``): the endpoints and the sampled keyframes
      are decoded from the window's packets (one thread), then the same
      packets are muxed into the segment: the segment's frames are these
      packets, so the sample is the segment's.
    * re-encode: the packets from the keyframe before the window are
      decoded once (threaded); each window frame goes to the encoder, and
      the sampled ones (positions chosen as :func:`sample_frames_rgb` chooses
      them on the source window) are kept as RGB. The endpoints are the
      first and last source frames encoded; the re-encoded file itself is
      decoded by the re-encode fidelity gate
      (:func:`lerobot_lance.encodings.reencode.check_reencoded`), which
      samples its first and last frames.

    The count comes from the packets muxed; the segment is reopened for its
    header only (its index must list as many frames, starting at 0). A
    stream copy is muxed in memory (the segment's bytes held once, e.g.
    3.3 MB for 343 frames of the 640x480 AV1 sample), then written.

    ``in_source=True``: a copy, or a stream copy whose video data are a run
    of the source's bytes (checked byte for byte), is not written:
    ``segment.source_range`` says where its bytes are (the header, and the
    source byte range), and nothing is written at ``dst``. A re-encode, or a
    stream copy whose data are not the source's bytes, is written as without
    it.

    Args:
        src, from_timestamp, to_timestamp, expected_frames, dst, reencode,
            crf_or_qp, preset: as :func:`cut_segment`.
        sample_frames: frames to sample for camera statistics (0: none).
        in_source: keep a copy or stream copy in its source (see above).

    Returns:
        A :class:`StagedWindow`.

    Raises:
        ValueError: as :func:`cut_segment`.
        SourceDataError: as :func:`cut_segment` (decode failures of the
            endpoints or the sample of a stream-copied window go in
            ``facts.endpoint_error`` instead, as with :func:`inspect_window`).
    """
    with _planned_window(src, from_timestamp, to_timestamp, expected_frames, reencode, crf_or_qp) as (stream, scan, src_p, window, method):
        origin = scan.pts[0]
        if method != "reencode":
            facts = _window_facts(stream, scan, src_p, sample_frames, window, origin=origin)
            segment = _write_segment(stream, scan, src_p, Path(dst), window, method, expected_frames, crf_or_qp, preset,
                                     in_source=in_source)
            scan.packets.clear()
            scan.run.clear()
            return StagedWindow(segment, facts)
        n = len(scan.pts)
        targets = set(_sample_targets(scan, sample_frames)[0]) if sample_frames > 0 else set()
        kept: dict[int, VideoFrame] = {}

        def keep(frame: VideoFrame) -> None:
            if frame.pts in targets:
                kept[int(frame.pts)] = frame

        segment = _write_segment(stream, scan, src_p, Path(dst), window, method, expected_frames, crf_or_qp, preset, keep)
    sample = np.stack(_rgb([kept[t] for t in sorted(targets)])) if targets else None
    if targets and len(kept) != len(targets):  # every window frame was encoded: a guard
        raise SourceDataError(str(src_p), f"sampled frames of window {window} did not decode", expected=len(targets), found=len(kept))
    tb = scan.time_base
    return StagedWindow(segment, WindowFacts(n, (0.0, float((scan.pts[-1] - origin) * tb)), None, sample))


def inspect_file(path: PathLike, *, sample_frames: int = 0) -> tuple[VideoProbe, WindowFacts]:
    """:func:`probe_video` and :func:`inspect_window` of a whole file (a
    LeRobot v2.x episode video), from one open and one demux: the packets
    demuxed give the probe (recorded, so a later :func:`probe_video` or
    :func:`keyframe_packets` of the same file version does not demux it
    again) and are then decoded for the endpoints and the sample.

    Returns:
        ``(probe, facts)``, equal to ``probe_video(path)`` and
        ``inspect_window(path, sample_frames=sample_frames)``.

    Raises:
        SourceDataError: as :func:`probe_video` (missing, empty, unreadable or
            truncated file, no video stream or no frame); decode failures go
            in ``facts.endpoint_error``.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        scan = _scan_window(container, stream, path, None, None, keep_packets=True)
        probe = _probe_packets(container, stream, path, ((p, _pkt_pts(p, path)[0]) for p in scan.packets))
        facts = _window_facts(stream, scan, path, sample_frames, _window_label(None, None))
        scan.packets.clear()
    return probe, facts
