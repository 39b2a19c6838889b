"""Staged per-episode output is only reused with the encodings it was made with.

Staged records count for the pinned source revision
(:meth:`lerobot_lance.staging.Staging.current`), whatever the options. A
conversion into the same output with other encoding options (``--frames-format
jpeg`` after a plain run, another ``--video-preset``, another
``--reencode-crf``) must not publish episodes staged the old way, so
:func:`lerobot_lance.conversion.resolve_source` records :func:`encoding_key`
in ``source.json`` and, when it differs from the previous one, drops the
staged records of the kinds it changes (frames for the JPEG options, videos
for the video options, statistics for both); those episodes are converted
again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: A :class:`lerobot_lance.conversion.Conversion` (not imported: the
#: conversion imports this module).
Conversion = Any


def encoding_key(options: Any) -> dict[str, Any]:
    """What staged frames and videos depend on among the encoding options."""
    from lerobot_lance.encodings.settings import video_settings

    frames: dict[str, Any] = {"frames_format": options.frames_format}
    if options.frames_format == "jpeg":
        frames.update(jpeg_quality=options.jpeg_quality, jpeg_subsampling=options.jpeg_subsampling)
    videos: dict[str, Any] = {"encode_images": options.encode_images, "reencode_crf": options.reencode_crf,
                              "reencode_preset": options.reencode_preset}
    if options.encode_images == "video":
        videos["video"] = video_settings(options).to_dict()
    return {"frames": frames, "videos": videos}


def invalidate_changed(conv: Conversion, previous: Mapping[str, Any]) -> list[str]:
    """Drop the staged records whose encodings differ from ``conv.options``'
    (``previous``: the last ``source.json``; one written before encodings
    existed was made with the defaults).

    Returns:
        The record kinds dropped (``[]`` when nothing changed).
    """
    from lerobot_lance.staging import FRAMES, STATS, VIDEOS

    old = previous.get("encodings") or DEFAULT_KEY
    new = encoding_key(conv.options)
    kinds: list[str] = []
    if old.get("frames") != new["frames"]:
        kinds += [FRAMES, STATS]
    if old.get("videos") != new["videos"]:
        kinds += [VIDEOS, STATS]
    kinds = list(dict.fromkeys(kinds))
    for kind in kinds:
        conv.staging.remove_records(kind)  # here and in a shared staging area
    return kinds


#: The key of a conversion with the default options (``ConvertOptions()``'s
#: encoding fields): what a ``source.json`` written before encodings existed
#: was staged with. ``tests/test_encode_reencode.py`` checks it equals
#: ``encoding_key(ConvertOptions())``.
DEFAULT_KEY: dict[str, Any] = {
    "frames": {"frames_format": "source"},
    "videos": {"encode_images": "none", "reencode_crf": 0, "reencode_preset": "veryfast"},
}
