"""The ``card`` layout (the default): the three-table layout of the
lance-format Hub dataset cards (DESIGN.md "Output layout", seed 002).

Its writers are :func:`lerobot_lance.layouts.card_writer.write_frames_table`,
``write_episodes_table`` and ``write_videos_table``; its output checks
:func:`lerobot_lance.quality.output_rules.check_output`.
"""

from __future__ import annotations

from lerobot_lance import formats

NAME = "card"
FRAMES_TABLE = formats.FRAMES_TABLE
EPISODES_TABLE = formats.EPISODES_TABLE
VIDEOS_TABLE = formats.VIDEOS_TABLE
#: The tables one conversion writes and commits, in commit order.
TABLE_NAMES: tuple[str, ...] = formats.TABLE_NAMES
#: Blob column of ``videos`` (the source mp4 verbatim) and its camera column.
VIDEO_BLOB_COLUMN = "video_blob"
VIDEO_KEY_COLUMN = "camera_angle"
#: Per camera, the episodes table's blob column is ``<camera column>`` + this.
EPISODE_BLOB_SUFFIX = "_video_blob"

#: Scalar indexes built at publish (DESIGN.md "Output layout").
INDEXES: dict[str, dict[str, str]] = {
    formats.FRAMES_TABLE: {"episode_index": "BTREE", "task_index": "BITMAP"},
    formats.EPISODES_TABLE: {"episode_index": "BTREE", "task_index": "BITMAP"},
}
