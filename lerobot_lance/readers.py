"""Readers: LeRobot ``meta/`` folders (v2.0, v2.1, v3.0) -> :class:`DatasetMeta`.

Format facts (see :mod:`lerobot_lance.formats` and ``../shared/DESIGN.md``):

* v2.0 / v2.1 (lerobot 0.1-0.3): one parquet and one mp4 per episode, located by
  the ``data_path`` / ``video_path`` templates with ``episode_chunk =
  episode_index // chunks_size``; ``meta/episodes.jsonl`` (``episode_index``,
  ``tasks``, ``length``), ``meta/tasks.jsonl``; v2.0 has ``meta/stats.json``,
  v2.1 ``meta/episodes_stats.jsonl``.
* v3.0 (lerobot 0.4): ``meta/episodes/chunk-*/file-*.parquet`` with
  ``data/chunk_index``, ``data/file_index``, ``dataset_from_index``,
  ``dataset_to_index``, per camera ``videos/<key>/{chunk_index,file_index,
  from_timestamp,to_timestamp}`` and ``stats/<feature>/<stat>`` columns;
  ``meta/tasks.parquet`` (task strings as the pandas index), ``meta/stats.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_lance import formats
from lerobot_lance.errors import SourceDataError, UnsupportedFormatError
from lerobot_lance.model import DatasetMeta, EpisodeMeta, Feature, VideoRef


def read_info(root: Path) -> dict[str, Any]:
    """Read and validate ``<root>/meta/info.json``.

    Returns:
        The parsed JSON object.

    Raises:
        UnsupportedFormatError: the file is missing, empty, not a JSON object,
            has no ``codebase_version``, or a version outside
            :data:`~lerobot_lance.formats.SUPPORTED_VERSIONS` (v1.x, v4+ ...).
        SourceDataError: a required key (``fps``, ``features``, ``data_path``)
            is missing or malformed.
    """
    path = Path(root) / formats.INFO_PATH
    supported = formats.SUPPORTED_VERSIONS
    if not path.is_file():
        raise UnsupportedFormatError(str(path), "missing file", supported)
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise UnsupportedFormatError(str(path), "empty file", supported)
    try:
        info = json.loads(text)
    except json.JSONDecodeError as e:
        raise UnsupportedFormatError(str(path), "invalid JSON", supported, detail=str(e)) from None
    if not isinstance(info, dict) or not info:
        raise UnsupportedFormatError(str(path), "no JSON object", supported)
    version = info.get("codebase_version")
    if not version:
        raise UnsupportedFormatError(str(path), "no codebase_version", supported)
    if version not in supported:
        raise UnsupportedFormatError(str(path), f"codebase_version {version!r}", supported)
    missing = [k for k in formats.REQUIRED_INFO_KEYS if k not in info]
    if missing:
        raise SourceDataError(
            formats.INFO_PATH, "required keys missing", expected=list(formats.REQUIRED_INFO_KEYS), found=sorted(info)
        )
    if not isinstance(info["features"], dict) or not info["features"]:
        raise SourceDataError(formats.INFO_PATH, "'features' must be a non-empty object", found=type(info["features"]).__name__)
    fps = info["fps"]
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or fps <= 0:
        raise SourceDataError(formats.INFO_PATH, "'fps' must be a positive number", found=fps)
    return info


def parse_features(info: dict[str, Any]) -> dict[str, Feature]:
    """``info["features"]`` -> ``{key: Feature}``, in file order.

    Raises:
        SourceDataError: a feature has no ``dtype`` or a ``shape`` that is not a
            list of positive integers.
    """
    out: dict[str, Feature] = {}
    for key, spec in info["features"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("dtype"), str):
            raise SourceDataError(formats.INFO_PATH, f"feature {key!r} has no dtype", found=spec)
        shape = spec.get("shape", [1])
        if not isinstance(shape, (list, tuple)) or not all(isinstance(d, int) and d > 0 for d in shape):
            raise SourceDataError(
                formats.INFO_PATH, f"feature {key!r} has a malformed shape", expected="list of positive ints", found=shape
            )
        out[key] = Feature(
            key=key, dtype=spec["dtype"], shape=tuple(shape), names=spec.get("names"), info=dict(spec.get("info") or {})
        )
    return out


def _read_jsonl(path: Path, rel: str) -> list[dict[str, Any]]:
    if not path.is_file():
        raise SourceDataError(rel, "file missing")
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise SourceDataError(rel, f"line {lineno} is not valid JSON ({e})") from None
    if not rows:
        raise SourceDataError(rel, "file is empty", expected="one JSON object per line")
    return rows


def _read_json_optional(path: Path, rel: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise SourceDataError(rel, "file is empty", expected="a JSON object")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceDataError(rel, f"invalid JSON ({e})") from None


def read_dataset_meta(root: str | Path) -> DatasetMeta:
    """Parse the ``meta/`` folder under ``root`` into one :class:`DatasetMeta`.

    Only ``meta/`` is read; data and video files are not touched.

    Raises:
        UnsupportedFormatError: see :func:`read_info`.
        SourceDataError: episodes or tasks metadata missing, empty or malformed.
    """
    root = Path(root)
    info = read_info(root)
    features = parse_features(info)
    version = info["codebase_version"]
    if version == "v3.0":
        episodes, tasks = _read_v30(root, info, features)
    else:
        episodes, tasks = _read_v2(root, info, features)
    declared = _read_json_optional(root / formats.STATS_PATH, formats.STATS_PATH)
    return DatasetMeta(
        codebase_version=version,
        fps=int(info["fps"]),
        features=features,
        tasks=tasks,
        episodes=tuple(sorted(episodes, key=lambda e: e.episode_index)),
        info=info,
        declared_stats=declared,
    )


def _template(info: dict[str, Any], key: str, default: str | None) -> str | None:
    value = info.get(key)
    return value if value else default


def _video_ref_v2(
    info: dict[str, Any], video_key: str, episode_index: int, chunk: int, length: int, fps: float
) -> VideoRef:
    template = _template(info, "video_path", formats.V2_VIDEO_PATH)
    assert template is not None
    try:
        rel = template.format(episode_chunk=chunk, video_key=video_key, episode_index=episode_index)
    except (KeyError, IndexError, ValueError) as e:
        raise SourceDataError(formats.INFO_PATH, f"video_path template {template!r} cannot be filled ({e})") from None
    return VideoRef(
        video_key=video_key,
        relative_path=rel,
        chunk_index=chunk,
        file_index=episode_index,
        from_timestamp=0.0,
        to_timestamp=length / fps,
        whole_file=True,
    )


def _read_v2(
    root: Path, info: dict[str, Any], features: dict[str, Feature]
) -> tuple[list[EpisodeMeta], dict[int, str]]:
    rows = _read_jsonl(root / formats.EPISODES_JSONL_PATH, formats.EPISODES_JSONL_PATH)
    task_rows = _read_jsonl(root / formats.TASKS_JSONL_PATH, formats.TASKS_JSONL_PATH)
    tasks = {int(r["task_index"]): str(r["task"]) for r in task_rows}
    ep_stats: dict[int, dict[str, Any]] = {}
    if info["codebase_version"] == "v2.1" and (root / formats.EPISODES_STATS_JSONL_PATH).is_file():
        for r in _read_jsonl(root / formats.EPISODES_STATS_JSONL_PATH, formats.EPISODES_STATS_JSONL_PATH):
            ep_stats[int(r["episode_index"])] = r["stats"]
    chunks_size = int(info.get("chunks_size") or formats.DEFAULT_CHUNKS_SIZE)
    data_template = _template(info, "data_path", formats.V2_DATA_PATH)
    assert data_template is not None
    video_keys = [k for k, f in features.items() if f.is_video]
    fps = float(info["fps"])
    episodes: list[EpisodeMeta] = []
    start = 0
    for r in sorted(rows, key=lambda r: int(r.get("episode_index", -1))):
        try:
            ep = int(r["episode_index"])
            length = int(r["length"])
        except (KeyError, TypeError, ValueError):
            raise SourceDataError(
                formats.EPISODES_JSONL_PATH, "episode row lacks episode_index or length", found=r
            ) from None
        chunk = ep // chunks_size
        try:
            data_path = data_template.format(episode_chunk=chunk, episode_index=ep)
        except (KeyError, IndexError, ValueError) as e:
            raise SourceDataError(formats.INFO_PATH, f"data_path template {data_template!r} cannot be filled ({e})") from None
        episodes.append(
            EpisodeMeta(
                episode_index=ep,
                length=length,
                tasks=tuple(r.get("tasks") or ()),
                dataset_from_index=start,
                dataset_to_index=start + length,
                data_path=data_path,
                videos={k: _video_ref_v2(info, k, ep, chunk, length, fps) for k in video_keys},
                declared_stats=ep_stats.get(ep),
            )
        )
        start += length
    return episodes, tasks


def _read_parquet(path: Path) -> pa.Table:
    """One parquet file, whole. ``ParquetFile.read`` rather than ``pq.read_table``:
    the same table without loading ``pyarrow.dataset`` (which imports pandas,
    ~0.6 s of ``scan``'s start-up)."""
    with pq.ParquetFile(path) as f:
        return f.read()


def _read_v30_tasks(root: Path) -> dict[int, str]:
    path = root / formats.TASKS_PARQUET_PATH
    if not path.is_file():
        raise SourceDataError(formats.TASKS_PARQUET_PATH, "file missing")
    try:
        table = _read_parquet(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise SourceDataError(formats.TASKS_PARQUET_PATH, f"unreadable parquet ({e})") from None
    names = table.column_names
    # lerobot 0.4 writes the task strings as the pandas index (``__index_level_0__``
    # in the file, ``task`` once restored); accept an explicit ``task`` column too.
    text_col = "task" if "task" in names else next((n for n in names if n != "task_index"), None)
    if "task_index" not in names or text_col is None:
        raise SourceDataError(formats.TASKS_PARQUET_PATH, "columns missing", expected=["task_index", "task"], found=names)
    return {int(i): str(t) for i, t in zip(table["task_index"].to_pylist(), table[text_col].to_pylist())}


def _stats_from_row(row: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    stats: dict[str, dict[str, Any]] = {}
    for col, value in row.items():
        if not col.startswith("stats/") or value is None:
            continue
        _, rest = col.split("/", 1)
        feature, stat = rest.rsplit("/", 1)
        stats.setdefault(feature, {})[stat] = value
    return stats or None


def _read_v30(
    root: Path, info: dict[str, Any], features: dict[str, Feature]
) -> tuple[list[EpisodeMeta], dict[int, str]]:
    files = sorted(root.glob(formats.EPISODES_PARQUET_GLOB))
    if not files:
        raise SourceDataError("meta/episodes/", "no episode metadata parquet", expected=formats.EPISODES_PARQUET_GLOB)
    tasks = _read_v30_tasks(root)
    data_template = _template(info, "data_path", formats.V3_DATA_PATH)
    video_template = _template(info, "video_path", formats.V3_VIDEO_PATH)
    assert data_template is not None
    video_keys = [k for k, f in features.items() if f.is_video]
    episodes: list[EpisodeMeta] = []
    for f in files:
        rel = str(f.relative_to(root))
        try:
            rows = _read_parquet(f).to_pylist()
        except (pa.ArrowInvalid, OSError) as e:
            raise SourceDataError(rel, f"unreadable parquet ({e})") from None
        for r in rows:
            episodes.append(_episode_v30(r, rel, info, data_template, video_template, video_keys))
    return episodes, tasks


def _episode_v30(
    r: dict[str, Any],
    rel: str,
    info: dict[str, Any],
    data_template: str,
    video_template: str | None,
    video_keys: Iterable[str],
) -> EpisodeMeta:
    required = ["episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index"]
    missing = [k for k in required if r.get(k) is None]
    if missing:
        raise SourceDataError(rel, f"episode row lacks {missing}", episode_index=r.get("episode_index"))
    ep = int(r["episode_index"])
    try:
        data_path = data_template.format(chunk_index=int(r["data/chunk_index"]), file_index=int(r["data/file_index"]))
    except (KeyError, IndexError, ValueError) as e:
        raise SourceDataError(formats.INFO_PATH, f"data_path template {data_template!r} cannot be filled ({e})") from None
    videos: dict[str, VideoRef] = {}
    for key in video_keys:
        cols = [f"videos/{key}/{s}" for s in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
        if any(r.get(c) is None for c in cols):
            raise SourceDataError(rel, f"no video window for camera {key!r}", episode_index=ep, expected=cols)
        if not video_template:
            raise SourceDataError(formats.INFO_PATH, "video_path template missing", expected="a template for video features")
        chunk, file_idx = int(r[cols[0]]), int(r[cols[1]])
        try:
            vrel = video_template.format(video_key=key, chunk_index=chunk, file_index=file_idx)
        except (KeyError, IndexError, ValueError) as e:
            raise SourceDataError(formats.INFO_PATH, f"video_path template {video_template!r} cannot be filled ({e})") from None
        videos[key] = VideoRef(
            video_key=key,
            relative_path=vrel,
            chunk_index=chunk,
            file_index=file_idx,
            from_timestamp=float(r[cols[2]]),
            to_timestamp=float(r[cols[3]]),
            whole_file=False,
        )
    return EpisodeMeta(
        episode_index=ep,
        length=int(r["length"]),
        tasks=tuple(r.get("tasks") or ()),
        dataset_from_index=int(r["dataset_from_index"]),
        dataset_to_index=int(r["dataset_to_index"]),
        data_path=data_path,
        videos=videos,
        declared_stats=_stats_from_row(r),
    )
