"""The ``lerobot`` layout: what LeRobot's own Lance reader serves.

Every name and type here is the contract of ``lerobot_lancedb`` 0.3.1
(``reader.py``: ``FRAMES_TABLE``, ``VIDEOS_TABLE``, ``META_TABLE``,
``VIDEO_BLOB_COLUMN``, ``VIDEO_INDEX_COLUMNS``; ``convert.py``: the videos
schema), the reader vendored from huggingface/lerobot PR #4363, which routes
``"storage_format": "lance"`` in ``meta/info.json`` to it. The layout's writer
(:mod:`lerobot_lance.layouts.lerobot_writer`), its output checks
(:mod:`lerobot_lance.layouts.lerobot_checks`) and its tests import these
constants, so they cannot disagree.

::

    <out>/frames.lance   one row per frame; row i is the frame with index i
    <out>/videos.lance   one row per source mp4 (video_key, chunk_index, file_index)
    <out>/meta.lance     one row per meta/ file (path relative to meta/, bytes)
    <out>/meta/          v3.0 metadata, whatever the source version

The reader's facts this layout must meet (``LanceDBDataset.__init__`` and
``_ensure_open`` of reader.py 0.3.1):

- ``frames`` holds exactly ``info.json["total_frames"]`` rows, in ``index``
  order (it reads rows by position);
- ``meta/episodes`` rows, in ``episode_index`` order 0..N-1, have
  ``dataset_from_index``/``dataset_to_index`` tiling ``[0, total_frames)``;
- every ``(video_key, chunk_index, file_index)`` an episode names under
  ``videos/<key>/...`` has a ``videos`` row; the camera frame of row i is read
  at ``from_timestamp + timestamp_i`` of that file;
- ``kf_indices``/``kf_positions`` give each keyframe's frame number and its
  packet's byte offset in the file, ``moov_offset``/``moov_size`` the mp4
  ``moov`` box, ``file_size`` the file's bytes: the reader fetches byte ranges
  of the blob from these.
"""

from __future__ import annotations

import pyarrow as pa

from lerobot_lance.lance_io import blob_field

#: Layout name (``--layout lerobot``, ``ConvertOptions.layout``).
NAME = "lerobot"

FRAMES_TABLE = "frames"
VIDEOS_TABLE = "videos"
META_TABLE = "meta"
#: The tables one conversion writes and commits, in commit order.
TABLE_NAMES: tuple[str, ...] = (FRAMES_TABLE, VIDEOS_TABLE, META_TABLE)

#: Blob column of ``videos`` holding the source mp4 verbatim.
VIDEO_BLOB_COLUMN = "video_bytes"
#: Columns identifying a ``videos`` row (what episode metadata refers to).
VIDEO_KEY_COLUMNS: tuple[str, ...] = ("video_key", "chunk_index", "file_index")
#: Byte-index columns of ``videos`` (reader.py ``VIDEO_INDEX_COLUMNS``).
VIDEO_INDEX_COLUMNS: tuple[str, ...] = ("file_size", "moov_offset", "moov_size", "kf_indices", "kf_positions")
#: Our provenance columns beside the reader's (ignored by the reader).
PROVENANCE_COLUMNS: tuple[str, ...] = ("relative_path", "sha256")

#: ``frames`` column keeping each row's episode_index in the source (the
#: output renumbers episodes 0..N-1; not a feature, so the reader ignores it).
SOURCE_EPISODE_COLUMN = "source_episode_index"

VIDEOS_SCHEMA = pa.schema(
    [
        pa.field("video_key", pa.string()),
        pa.field("chunk_index", pa.int64()),
        pa.field("file_index", pa.int64()),
        pa.field("file_size", pa.int64()),
        pa.field("moov_offset", pa.int64()),
        pa.field("moov_size", pa.int64()),
        pa.field("kf_indices", pa.list_(pa.int64())),
        pa.field("kf_positions", pa.list_(pa.int64())),
        pa.field("relative_path", pa.string()),
        pa.field("sha256", pa.string()),
        blob_field(VIDEO_BLOB_COLUMN),
    ]
)

#: ``meta`` table: ``path`` relative to ``meta/`` (``"info.json"``,
#: ``"episodes/chunk-000/file-000.parquet"``), ``data`` the file's bytes.
META_SCHEMA = pa.schema([pa.field("path", pa.string()), pa.field("data", pa.large_binary())])

#: meta/ is always written in LeRobot v3.0 form (lerobot 0.6.1 ``datasets/utils.py``).
CODEBASE_VERSION = "v3.0"
EPISODES_META_PATH = "meta/episodes/chunk-000/file-000.parquet"
TASKS_PATH = "meta/tasks.parquet"
STATS_PATH = "meta/stats.json"
INFO_PATH = "meta/info.json"
CONVERSION_PATH = "meta/conversion.json"
V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
#: lerobot 0.6.1 ``DEFAULT_DATA_FILE_SIZE_IN_MB`` / ``DEFAULT_VIDEO_FILE_SIZE_IN_MB``.
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
#: ``info.json`` keys of v2.x that v3.0 drops (lerobot 0.6.1 ``convert_info``).
V2_ONLY_INFO_KEYS: tuple[str, ...] = ("total_chunks", "total_videos")

#: Scalar indexes built at publish (user-side SQL; the reader reads by row id).
INDEXES: dict[str, dict[str, str]] = {
    FRAMES_TABLE: {"episode_index": "BTREE", "task_index": "BITMAP"},
    VIDEOS_TABLE: {"video_key": "BITMAP"},
}

#: What each blocking output check of this layout asserts (``layouts/lerobot_checks.py``;
#: also read by the publish for ``tables_share_tag``).
CHECK_DESCRIPTIONS = {
    "reader_frames_rows": "frames holds total_frames rows and row i has index i",
    "reader_episodes_tile": "episode ranges 0..N-1 tile [0, total_frames)",
    "reader_videos_present": "every (video_key, chunk_index, file_index) of the episode metadata has one videos row",
    "reader_byte_index": "file_size, moov_offset/moov_size and kf_indices/kf_positions match the stored blob",
    "reader_videos_sha256": "videos.sha256 equals the sha256 of the stored blob and of the source file",
    "meta_table_matches": "the meta table holds the files of meta/ byte for byte",
    "tables_share_tag": "frames, videos and meta carry the same tag on their latest version",
}
