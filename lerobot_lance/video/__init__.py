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

Modules, by stage:

* :mod:`~lerobot_lance.video.streams`: opening a file, its video stream's timing;
* :mod:`~lerobot_lance.video.probe`: a whole file demuxed (:func:`probe_video`,
  :func:`keyframe_packets`), :func:`sha256_file`;
* :mod:`~lerobot_lance.video.window`: one window demuxed (:func:`window_packet_count`);
* :mod:`~lerobot_lance.video.cut`: a window cut into an mp4 (:func:`cut_segment`);
* :mod:`~lerobot_lance.video.decode`: chosen frames decoded (:func:`iter_frames_rgb`,
  :func:`first_last_frames_decode`);
* :mod:`~lerobot_lance.video.sample`: the camera-statistics sample and the
  one-pass inspection of a window (:func:`sample_frames_rgb`, :func:`inspect_window`);
* :mod:`~lerobot_lance.video.stage`: a window cut, counted, its endpoints and
  sample decoded, from one demux (:func:`stage_window`, the conversion's
  ``episode_videos`` step); a whole episode file probed and inspected from
  one demux (:func:`inspect_file`).

The public names below are importable from the package itself.
"""

from __future__ import annotations

from lerobot_lance.video.cut import Segment, SourceRange, cut_segment
from lerobot_lance.video.decode import first_last_frames_decode, iter_frames_rgb
from lerobot_lance.video.probe import KeyframePackets, VideoProbe, keyframe_packets, probe_video, sha256_file
from lerobot_lance.video.sample import WindowFacts, inspect_window, sample_frames_rgb
from lerobot_lance.video.stage import StagedWindow, inspect_file, stage_window
from lerobot_lance.video.window import window_packet_count

__all__ = [
    "KeyframePackets",
    "Segment",
    "SourceRange",
    "StagedWindow",
    "VideoProbe",
    "WindowFacts",
    "cut_segment",
    "first_last_frames_decode",
    "inspect_file",
    "inspect_window",
    "iter_frames_rgb",
    "keyframe_packets",
    "probe_video",
    "sample_frames_rgb",
    "sha256_file",
    "stage_window",
    "window_packet_count",
]
