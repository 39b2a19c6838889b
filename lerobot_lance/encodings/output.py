"""What the output looks like once cameras are encoded: the metadata view the
table writers and ``meta/`` writers read, the frames schema, the encoded mp4s
of the ``lerobot`` layout's ``videos`` table, and the per-camera figures of
the conversion summary.

``encode_images="video"``: each ``dtype: image`` camera becomes, in the
output, a ``dtype: video`` feature with LeRobot's ``info`` block
(``video.height``, ``video.width``, ``video.codec``, ``video.pix_fmt``,
``video.is_depth_map``, ``video.fps``, ``video.channels``, ``has_audio``:
lerobot ``datasets/video_utils.py`` ``get_video_info``, as in the v3.0
samples' ``info.json``), whose frames are no longer a ``frames`` column; each
episode gets a video of it, one mp4 per episode (window ``0 .. length / fps``)
at ``videos/<camera>/chunk-CCC/file-<episode_index>.mp4`` of the v3.0
template (v2.x sources: the v2 template).

``frames_format="jpeg"``: every camera has a ``binary`` column of ``frames``
named after it (:func:`lerobot_lance.formats.column_name`, the column an image
camera already has) holding one JPEG per frame.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from lerobot_lance import formats
from lerobot_lance.model import DatasetMeta, Feature, VideoRef

#: A :class:`lerobot_lance.conversion.Conversion` (not imported: the
#: conversion imports this module).
Conversion = Any

V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


def encoded_image_keys(meta: DatasetMeta, options: Any) -> list[str]:
    """Image cameras encoded to video by this conversion (``[]`` unless
    ``encode_images == "video"`` and videos are not skipped)."""
    if getattr(options, "encode_images", "none") != "video" or getattr(options, "skip_videos", False):
        return []
    return list(meta.image_keys)


def jpeg_keys(meta: DatasetMeta, options: Any) -> list[str]:
    """Cameras that get a JPEG per frame in ``frames`` (every camera with ``frames_format == "jpeg"``)."""
    return list(meta.camera_keys) if getattr(options, "frames_format", "source") == "jpeg" else []


def video_info(height: int, width: int, fps: int, codec: str, pix_fmt: str) -> dict[str, Any]:
    """LeRobot's ``info`` block of a video feature (lerobot ``get_video_info``)."""
    if pix_fmt.startswith("gray"):
        channels = 1
    elif pix_fmt.startswith(("yuva", "gbrap", "rgba", "bgra", "argb", "abgr")):
        channels = 4
    else:
        channels = 3
    return {
        "video.height": int(height), "video.width": int(width), "video.codec": codec, "video.pix_fmt": pix_fmt,
        "video.is_depth_map": False, "video.fps": int(fps), "video.channels": channels, "has_audio": False,
    }


def _video_ref(meta: DatasetMeta, key: str, episode_index: int, length: int) -> VideoRef:
    size = int(meta.info.get("chunks_size") or formats.DEFAULT_CHUNKS_SIZE)
    chunk = episode_index // size
    if meta.one_file_per_episode:
        rel = V2_VIDEO_PATH.format(episode_chunk=chunk, video_key=key, episode_index=episode_index)
    else:
        rel = V3_VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=episode_index)
    return VideoRef(key, rel, chunk, episode_index, 0.0, length / float(meta.fps), whole_file=True)


def _stream_of(conv: Conversion, key: str) -> dict[str, Any]:
    """Codec and pixel format of the encoded stream (from the first staged
    episode that has it; the settings' own names before anything is staged)."""
    from lerobot_lance.encodings.settings import video_settings
    from lerobot_lance.staging import VIDEOS

    for ep in conv.selected():
        rec = conv.staging.current(VIDEOS, ep, conv.revision)
        cam = (rec or {}).get("cameras", {}).get(key)
        if cam and cam.get("stream"):
            return cam["stream"]
    s = video_settings(conv.options)
    return {"codec": s.codec, "pix_fmt": s.pix_fmt}


def output_meta(conv: Conversion) -> DatasetMeta:
    """The metadata the output describes: ``conv.meta`` itself, or with
    ``encode_images="video"`` a copy in which every image camera is a video
    feature (``info`` from the encoded stream) and every episode has a
    :class:`~lerobot_lance.model.VideoRef` of its encoded mp4 (see the module
    docstring). Source-side stages keep reading ``conv.meta``."""
    meta = conv.meta
    keys = encoded_image_keys(meta, conv.options)
    if not keys:
        return meta
    from lerobot_lance.camera_shape import camera_dims

    info = json.loads(json.dumps(meta.info))
    features = dict(meta.features)
    for key in keys:
        f = meta.features[key]
        dims = camera_dims(f.shape, f.names)
        stream = _stream_of(conv, key)
        vi = video_info(dims.height, dims.width, meta.fps, stream["codec"], stream["pix_fmt"])
        features[key] = Feature(key, "video", f.shape, f.names, vi)
        info["features"][key] = {**info["features"][key], "dtype": "video", "info": vi}
    if not info.get("video_path"):
        info["video_path"] = V2_VIDEO_PATH if meta.one_file_per_episode else V3_VIDEO_PATH
    episodes = tuple(
        dataclasses.replace(e, videos={**e.videos, **{k: _video_ref(meta, k, e.episode_index, e.length) for k in keys}})
        for e in meta.episodes
    )
    return dataclasses.replace(meta, features=features, episodes=episodes, info=info)


def frames_output_schema(conv: Conversion, base: pa.Schema | None = None) -> pa.Schema:
    """The published ``frames`` schema: ``base`` (default
    :func:`lerobot_lance.frames.frames_schema` of :func:`output_meta`: encoded
    image cameras have no column) plus, with ``frames_format="jpeg"``, a
    ``binary`` column per camera that does not have one yet (video cameras),
    named after it."""
    from lerobot_lance.frames import frames_schema

    schema = base if base is not None else frames_schema(output_meta(conv))
    for key in jpeg_keys(conv.meta, conv.options):
        col = conv.meta.features[key].column
        if col not in schema.names:
            schema = schema.append(pa.field(col, pa.binary()))
    return schema


def encoded_video_files(conv: Conversion, episodes: Sequence[int]) -> list[tuple[VideoRef, Path]]:
    """``(ref, staged mp4)`` of every encoded camera video of these episodes, in
    camera then episode order (the ``lerobot`` layout's ``videos`` rows)."""
    from lerobot_lance.staging import VIDEOS

    keys = encoded_image_keys(conv.meta, conv.options)
    if not keys:
        return []
    view = output_meta(conv)
    out = []
    for key in keys:
        for ep in sorted(episodes):
            rec = conv.staging.current(VIDEOS, ep, conv.revision)
            out.append((view.episode(ep).videos[key], conv.staging.local_file(rec["cameras"][key]["path"])))  # shared staging: fetched
    return out


def encodings_summary(conv: Conversion, episodes: Sequence[int]) -> dict[str, Any]:
    """Per encoding and camera, over these episodes' staged records: the
    settings, PSNR, share of pixels differing by more than the threshold,
    max abs diff, frames compared, bytes and bytes per frame
    (:func:`lerobot_lance.encodings.fidelity.summarize`). ``{}`` when nothing
    is encoded."""
    from lerobot_lance.encodings.fidelity import summarize
    from lerobot_lance.staging import FRAMES, VIDEOS

    out: dict[str, Any] = {}
    keys = encoded_image_keys(conv.meta, conv.options)
    if keys:
        video: dict[str, Any] = {}
        for key in keys:
            recs = [(conv.staging.current(VIDEOS, ep, conv.revision) or {}).get("cameras", {}).get(key) for ep in episodes]
            recs = [r for r in recs if r]
            if recs:
                video[key] = {"settings": recs[0]["encoding"], "stream": recs[0].get("stream"), **summarize([r["fidelity"] for r in recs])}
        out["image_video"] = video
    jk = jpeg_keys(conv.meta, conv.options)
    if jk:
        jpeg: dict[str, Any] = {}
        for key in jk:
            recs = [((conv.staging.current(FRAMES, ep, conv.revision) or {}).get("jpeg") or {}).get(key) for ep in episodes]
            recs = [r for r in recs if r]
            if recs:
                jpeg[key] = {"settings": {"quality": conv.options.jpeg_quality, "subsampling": conv.options.jpeg_subsampling},
                             **summarize(recs)}
        out["jpeg_frames"] = jpeg
    return out


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """One text line per encoded camera (the CLI summary)."""
    lines = []
    for kind, label in (("image_video", "video"), ("jpeg_frames", "jpeg")):
        for key, d in summary.get(kind, {}).items():
            s = d["settings"]
            how = (f"{s['codec']} {s['pix_fmt']} g={s['gop']} " + (f"qp={s['qp']}" if s.get("qp") is not None else f"crf={s['crf']}")
                   if kind == "image_video" else f"q{s['quality']} {s['subsampling']}")
            psnr = "exact (pixel-identical)" if d["exact"] else f"PSNR {d['psnr_db']:.2f} dB"
            lines.append(
                f"{label} {key} ({how}): {psnr}, {100 * d['share_differing']:.3f}% of pixels differ by > {d['diff_threshold']}/255, "
                f"{d['bytes_per_frame']:.0f} bytes/frame, {d['frames_compared']} frames compared over {d['episodes']} episodes"
            )
    return lines
