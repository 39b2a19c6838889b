"""Which axis of a camera feature's ``shape`` is height, width and channels.

LeRobot writes camera features as ``{"shape": [480, 640, 3], "names":
["height", "width", "channels"]}`` (``lerobot/datasets/utils.py``,
``hw_to_dataset_features``; v2.x datasets also spell it ``"channel"``), but
datasets written by other tools store channel-first shapes (``[3, 224, 224]``)
and often no ``names``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

_AXIS_NAMES = {
    "height": "height", "h": "height",
    "width": "width", "w": "width",
    "channels": "channels", "channel": "channels", "c": "channels",
}
#: Channel counts of the pixel formats cameras use (grey, RGB, RGBA).
CHANNEL_COUNTS = (1, 3, 4)


class CameraDims(NamedTuple):
    """A camera frame's size in pixels and its channel count (``None`` when the
    shape does not say)."""

    height: int | None
    width: int | None
    channels: int | None


def camera_dims(shape: Sequence[int], names: Any = None) -> CameraDims:
    """Height, width and channels of a camera feature.

    Rules, in order:

    1. ``names`` naming the three axes (``height``/``width``/``channels``,
       also ``channel``, ``h``, ``w``, ``c``; any order, any case) decide.
    2. Otherwise, for a 3-dim shape the channel axis is the one of size 1, 3
       or 4 at either end: the last (channel-last, LeRobot's own layout) when
       both ends qualify, the first when only it does (``[3, 224, 224]`` is
       224x224 with 3 channels); height comes before width.
    3. A 2-dim shape is ``[height, width]`` without channels.

    Args:
        shape: the feature's ``shape`` (positive integers).
        names: the feature's ``names`` entry, verbatim (ignored unless it is a
            list of three axis names matching ``shape``).

    Returns:
        A :class:`CameraDims`; fields are ``None`` when the shape is not 2- or 3-dim.
    """
    dims = [int(d) for d in shape]
    if isinstance(names, (list, tuple)) and len(names) == len(dims) == 3 and all(isinstance(n, str) for n in names):
        axes = [_AXIS_NAMES.get(n.strip().lower()) for n in names]
        if sorted(a for a in axes if a) == ["channels", "height", "width"]:
            by = dict(zip(axes, dims))
            return CameraDims(by["height"], by["width"], by["channels"])
    if len(dims) == 3:
        if dims[2] in CHANNEL_COUNTS or dims[0] not in CHANNEL_COUNTS:
            return CameraDims(dims[0], dims[1], dims[2])
        return CameraDims(dims[1], dims[2], dims[0])
    if len(dims) == 2:
        return CameraDims(dims[0], dims[1], None)
    return CameraDims(None, None, None)
