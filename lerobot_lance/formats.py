"""LeRobot on-disk format facts, kept in one place.

Every reader in this package takes file names, path templates and version
strings from here. Sources: LeRobot ``lerobot/datasets/utils.py`` (v2.0 and
v2.1 constants, lerobot 0.2/0.3) and ``lerobot/datasets/utils.py`` of
lerobot 0.4.4 (v3.0 constants), checked against ``../shared/datasets``.
"""

from __future__ import annotations

#: Versions this converter reads (``meta/info.json`` ``codebase_version``).
SUPPORTED_VERSIONS: tuple[str, ...] = ("v2.0", "v2.1", "v3.0")

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
#: v2.x episode metadata, one JSON object per line.
EPISODES_JSONL_PATH = "meta/episodes.jsonl"
#: v2.1 per-episode statistics, one JSON object per line.
EPISODES_STATS_JSONL_PATH = "meta/episodes_stats.jsonl"
TASKS_JSONL_PATH = "meta/tasks.jsonl"
#: v3.0 episode metadata shards and task table.
EPISODES_PARQUET_GLOB = "meta/episodes/*/*.parquet"
TASKS_PARQUET_PATH = "meta/tasks.parquet"

#: Default templates, used only when ``info.json`` omits them.
V2_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V2_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V3_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V3_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
DEFAULT_CHUNKS_SIZE = 1000

#: Keys ``info.json`` must carry for this converter to work.
REQUIRED_INFO_KEYS: tuple[str, ...] = ("codebase_version", "fps", "features", "data_path")

#: Per-frame bookkeeping columns every LeRobot dataset carries.
INDEX_COLUMNS: tuple[str, ...] = ("timestamp", "frame_index", "episode_index", "index", "task_index")

#: Feature dtypes of cameras.
CAMERA_DTYPES: tuple[str, ...] = ("video", "image")

#: Statistics LeRobot stores per feature (v3.0 adds the quantiles).
STAT_NAMES: tuple[str, ...] = ("min", "max", "mean", "std", "count")
QUANTILE_NAMES: tuple[str, ...] = ("q01", "q10", "q50", "q90", "q99")

#: Default timestamp tolerance (seconds), LeRobot's ``tolerance_s`` default.
DEFAULT_TOLERANCE_S = 1e-4

#: Output layout (see DESIGN.md).
FRAMES_TABLE = "frames"
EPISODES_TABLE = "episodes"
VIDEOS_TABLE = "videos"
TABLE_NAMES: tuple[str, ...] = (FRAMES_TABLE, EPISODES_TABLE, VIDEOS_TABLE)
STORAGE_FORMAT = "lance"


def column_name(feature_key: str) -> str:
    """Output column name of a LeRobot feature: dots become underscores.

    ``"observation.state"`` -> ``"observation_state"``.
    """
    return feature_key.replace(".", "_")
