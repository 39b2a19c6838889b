"""LeRobot on-disk format facts, kept in one place.

Every reader in this package takes file names, path templates and version
strings from here. Sources: LeRobot ``lerobot/datasets/utils.py`` (v2.0 and
v2.1 constants, lerobot 0.2/0.3) and ``lerobot/datasets/utils.py`` of
lerobot 0.4.4 (v3.0 constants), checked against ``../shared/datasets``.
"""

from __future__ import annotations

import re
import string

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


#: Widest field a path template may format (``{episode_index:06d}`` is 6;
#: LeRobot's templates pad to 3 and 6 digits). A format spec wider than this
#: is refused before anything is formatted: ``{episode_index:100000000d}``
#: would build a 100 MB string per path.
MAX_TEMPLATE_FIELD_WIDTH = 64

# Python's format-spec mini-language (``[[fill]align][sign][z][#][0][width][grouping][.precision][type]``).
_FORMAT_SPEC = re.compile(
    r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?z?#?0?(?P<width>\d*)[,_]?(?:\.(?P<precision>\d*))?(?P<type>[a-zA-Z%]?)",
    re.DOTALL,
)


def template_spec_problems(template: str) -> list[str]:
    """What makes a path template's format specs unusable, one sentence each
    (empty when they are fine).

    Checked without formatting anything: every replacement field's spec must
    follow Python's format-spec grammar, hold no nested ``{...}`` field, and ask
    for a width and precision of at most :data:`MAX_TEMPLATE_FIELD_WIDTH`.
    Which field names are allowed is the caller's business.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        return [f"malformed template ({e})"]
    out = []
    for _, name, spec, _ in parsed:
        if name is None or not spec:
            continue
        if "{" in spec or "}" in spec:
            out.append(f"field {{{name}}} has a nested replacement field in its format spec {spec!r}")
            continue
        m = _FORMAT_SPEC.fullmatch(spec)
        if m is None:
            out.append(f"field {{{name}}} has a malformed format spec {spec!r}")
            continue
        for part in ("width", "precision"):
            digits = m.group(part) or ""
            if len(digits) > 4 or (digits and int(digits) > MAX_TEMPLATE_FIELD_WIDTH):
                out.append(
                    f"field {{{name}}} asks for a {part} of {digits if len(digits) <= 12 else digits[:12] + '...'} "
                    f"characters (at most {MAX_TEMPLATE_FIELD_WIDTH})"
                )
    return out
