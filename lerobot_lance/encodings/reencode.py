"""Fidelity gate of the v3.0 re-encode fallback: a segment re-encoded
(``method == "reencode"``: its window does not start on a keyframe) is
compared with its source window on a deterministic sample of frames.

``reencode_crf == 0`` (the default, libx264 ``qp=0``) claims pixel-identical
frames, so the sample must match exactly; ``reencode_crf > 0`` (lossy) must
reach ``LOSSY_MIN_PSNR_DB``. The frame count is ``segment_frame_count``'s
(packets, checked by the cut itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lerobot_lance.encodings.fidelity import Fidelity, sample_positions

if TYPE_CHECKING:
    from lerobot_lance.model import EpisodeMeta

#: A :class:`lerobot_lance.conversion.Conversion` (not imported: the
#: conversion imports this module).
Conversion = Any

#: Frames compared per re-encoded segment (evenly spread, first and last included).
REENCODE_SAMPLE_FRAMES = 8


def check_reencoded(conv: Conversion, e: EpisodeMeta, cams: Mapping[str, dict[str, Any]]) -> list[Any]:
    """``decoded_pixels_match_source`` outcomes for the re-encoded segments of
    episode ``e`` (none when no camera was re-encoded). Adds ``fidelity`` to
    each re-encoded camera's record.

    Raises:
        SourceDataError: a sampled frame of the segment or the source fails to decode.
    """
    from lerobot_lance import video
    from lerobot_lance.quality.encoding_rules import check_encoded

    out: list[Any] = []
    for key, cam in cams.items():
        if cam.get("method") != "reencode":
            continue
        root = conv.source.fetch([cam["source_path"]])
        pos = sample_positions(int(cam["frame_count"]), REENCODE_SAMPLE_FRAMES)
        fid = Fidelity()
        src = video.iter_frames_rgb(root / cam["source_path"], cam["from_timestamp"], cam["to_timestamp"], indices=pos)
        seg = video.iter_frames_rgb(cam["path"], indices=pos)
        for a, b in zip(src, seg, strict=True):
            fid.add(a, b)
        cam["fidelity"] = fid.to_dict()
        _, pixels = check_encoded(e.episode_index, key, cam["source_path"], "re-encoded segment", e.length, int(cam["frame_count"]),
                                  fid, lossless=conv.options.reencode_crf == 0, min_psnr_db=conv.options.min_psnr_db)
        out.append(pixels)
    return out
