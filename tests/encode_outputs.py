"""Conversions the ``tests/test_encode_*.py`` modules share: each is run once
per test session (memoized here, as module-scoped fixtures would run again in
each module)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sample

_DONE: dict[str, Path] = {}
_SUMMARIES: dict[str, Any] = {}

#: name -> (sample, convert options)
CONVERSIONS: dict[str, tuple[str, dict[str, Any]]] = {
    # card layout, lossless image-to-video, plus JPEG frames at the near-lossless setting
    "image_lossless_q100": ("g1_image_v30", {"encode_images": "video", "video_preset": "lossless",
                                             "frames_format": "jpeg", "jpeg_quality": 100, "jpeg_subsampling": "4:4:4"}),
    # lerobot layout, LeRobot's default image-to-video settings
    "image_lerobot_default": ("g1_image_v30", {"layout": "lerobot", "encode_images": "video"}),
    # JPEG frames at the defaults (q95 4:2:0)
    "image_jpeg_q95": ("g1_image_v30", {"frames_format": "jpeg"}),
    "v30_jpeg_q95": ("g1_v30", {"frames_format": "jpeg"}),
    # episode 1 of g1_v30 at q100 4:4:4 (the same frames as in v30_jpeg_q95)
    "v30_ep1_jpeg_q100": ("g1_v30", {"frames_format": "jpeg", "jpeg_quality": 100, "jpeg_subsampling": "4:4:4", "episodes": [1]}),
}


def converted(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Output root of conversion ``name`` of :data:`CONVERSIONS` (converted on first use)."""
    if name not in _DONE:
        from lerobot_lance.api import convert

        src, opts = CONVERSIONS[name]
        out = tmp_path_factory.mktemp("encode") / name
        _SUMMARIES[name] = convert(str(sample(src)), str(out), **opts)
        _DONE[name] = out
    return _DONE[name]


def summary_of(name: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The :class:`~pipelines.runner.ConversionSummary` that conversion ``name`` returned."""
    converted(name, tmp_path_factory)
    return _SUMMARIES[name]
