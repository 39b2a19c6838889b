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

Every value is validated before it is used, so malformed metadata never
surfaces as a ``KeyError`` or ``TypeError``: JSON files must be UTF-8
(RFC 8259) and parse within Python's nesting limit; each JSON Lines row must
be an object; indices (``episode_index``, ``task_index``, chunk and file
indices, ``length``) must be integers in range (``episode_index >= 0``,
``length >= 1``: LeRobot numbers episodes from 0 and saves no empty one);
``fps`` a finite positive whole number; ``chunks_size`` a positive integer;
path templates' format specs at most
:data:`~lerobot_lance.formats.MAX_TEMPLATE_FIELD_WIDTH` wide (checked before
formatting); v3.0 video windows finite with ``from_timestamp <
to_timestamp``; declared statistics ``{feature: {stat: (nested) list of
numbers}}``; and every entry under ``meta/`` a regular readable file or a
folder (``meta/`` is copied to the output). Faults of every row are collected
and raised once, as :class:`~lerobot_lance.errors.MetadataErrors`, each
naming the file, the line or episode, what was expected and what was found.
"""

from __future__ import annotations

import json
import math
import os
import stat as stat_mode
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lerobot_lance import formats
from lerobot_lance.errors import LeRobotLanceError, MetadataErrors, SourceDataError, UnsupportedFormatError
from lerobot_lance.model import DatasetMeta, EpisodeMeta, Feature, VideoRef

#: Deepest nesting a declared statistic may have (camera stats are ``(3, 1, 1)``).
MAX_STATS_DIMS = 8


# --- small validators ------------------------------------------------------------
def _short(value: Any, limit: int = 80) -> str:
    """``repr`` of a found value, cut to ``limit`` characters (a found value may be a whole row)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: Any) -> bool:
    """True for an integer that is not a bool (JSON ``true`` is not an index)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), type(value).__name__)


class _Faults:
    """Located faults of the metadata files, collected and raised once."""

    def __init__(self) -> None:
        self.errors: list[SourceDataError] = []

    def add(self, rel: str, detail: str, *, episode_index: int | None = None, expected: Any = None, found: Any = None) -> None:
        self.errors.append(SourceDataError(rel, detail, episode_index=episode_index, expected=expected, found=found))

    def extend(self, err: SourceDataError) -> None:
        self.errors.extend(err.errors if isinstance(err, MetadataErrors) else [err])

    @contextmanager
    def section(self, rel: str, episode_index: int | None = None) -> Iterator[None]:
        """Run a parsing step; a located error is recorded, and any unexpected
        exception becomes a located one naming ``rel`` (never a traceback)."""
        try:
            yield
        except SourceDataError as e:
            self.extend(e)
        except LeRobotLanceError:
            raise
        except (RecursionError, MemoryError) as e:
            self.add(rel, f"cannot be parsed ({type(e).__name__})", episode_index=episode_index)
        except Exception as e:  # noqa: BLE001 - malformed content of any shape is a defect of this file
            self.add(rel, f"cannot be parsed ({type(e).__name__}: {e})", episode_index=episode_index)

    def raise_if_any(self) -> None:
        if self.errors:
            raise MetadataErrors(self.errors)


def file_kind(path: Path) -> str | None:
    """``None`` for a regular file (symbolic links followed), else what is there
    instead (``"missing file"``, ``"a FIFO"``, ``"a dangling symbolic link"``, ...).
    Nothing is opened, so a FIFO cannot block the caller."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "a dangling symbolic link" if path.is_symlink() else "missing file"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if stat_mode.S_ISREG(st.st_mode):
        return None
    for test, name in ((stat_mode.S_ISDIR, "a directory"), (stat_mode.S_ISFIFO, "a FIFO"), (stat_mode.S_ISSOCK, "a socket"),
                       (stat_mode.S_ISCHR, "a character device"), (stat_mode.S_ISBLK, "a block device")):
        if test(st.st_mode):
            return name
    return "not a regular file"


def meta_tree_faults(root: str | Path) -> list[SourceDataError]:
    """Entries under ``<root>/meta/`` that are not regular readable files or folders.

    ``meta/`` is copied verbatim to the output, so a FIFO, socket, device,
    dangling symbolic link or unreadable file anywhere in it would fail the
    copy after the tables were committed; it is refused here, before anything
    is written. Symbolic links are followed (the Hugging Face cache links
    every file to its blob); nothing is opened, so a FIFO cannot block.

    Returns:
        One located error per offending entry, paths relative to ``root``.
    """
    root = Path(root)
    out: list[SourceDataError] = []
    top = root / "meta"
    if not top.is_dir():
        return out
    stack = [top]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            out.append(SourceDataError(str(d.relative_to(root)), "folder cannot be listed", expected="a readable folder", found=e.strerror or str(e)))
            continue
        for entry in entries:
            p = Path(entry.path)
            rel = str(p.relative_to(root))
            kind = file_kind(p)
            if kind == "a directory":
                if not p.is_symlink():
                    stack.append(p)
                continue
            if kind is None:
                if not os.access(p, os.R_OK):
                    out.append(SourceDataError(rel, "file is not readable", expected="a readable regular file", found="permission denied"))
                continue
            target = f" (to {os.readlink(p)})" if p.is_symlink() else ""
            out.append(SourceDataError(rel, "not a regular file (meta/ is copied to the output)", expected="a regular readable file", found=f"{kind}{target}"))
    return out


def _decode_utf8(raw: bytes, rel: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise SourceDataError(
            rel, f"not UTF-8 text (line {line}, byte offset {e.start})", expected="UTF-8 JSON (RFC 8259)", found=f"byte 0x{raw[e.start]:02x}"
        ) from None


def _parse_json(text: str, rel: str, where: str = "") -> Any:
    """``json.loads`` with every failure located (``where``: e.g. ``"line 3"``)."""
    at = f"{where} " if where else ""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SourceDataError(rel, f"{at}is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})".strip()) from None
    except RecursionError:
        raise SourceDataError(
            rel, f"{at}is JSON nested too deep to parse".strip(), expected="nesting of a few levels (LeRobot writes at most 4)", found="deeper nesting"
        ) from None


def _check_stats(obj: Any, rel: str, faults: _Faults, *, episode_index: int | None = None, what: str = "statistics") -> dict[str, dict[str, Any]] | None:
    """Validate declared statistics ``{feature: {stat: number or (nested) list of numbers or null}}``;
    record a fault per malformed entry and return the object when it is sound."""
    if not isinstance(obj, dict):
        faults.add(rel, f"{what} are not a JSON object", episode_index=episode_index, expected="{feature: {stat: [numbers]}}", found=_type_name(obj))
        return None
    ok = True
    for feature, stats in obj.items():
        if not isinstance(stats, dict):
            faults.add(rel, f"{what} of {feature!r} are not an object", episode_index=episode_index,
                       expected="{stat: [numbers]}", found=_type_name(stats))
            ok = False
            continue
        for name, value in stats.items():
            problem = _numeric_problem(value)
            if problem:
                faults.add(rel, f"{what} {feature}/{name}: {problem}", episode_index=episode_index,
                           expected="a number or a (nested) list of numbers", found=_short(value, 60))
                ok = False
    return obj if ok else None


def _numeric_problem(value: Any) -> str | None:
    """Why ``value`` is not ``None``, a number, or a rectangular nested list of numbers."""
    if value is None or isinstance(value, (int, float)):
        return None
    if not isinstance(value, list):
        return f"a {_type_name(value)}"
    level: list[Any] = [value]
    for _ in range(MAX_STATS_DIMS):
        if all(isinstance(v, (int, float)) for v in level):
            return None
        if not all(isinstance(v, list) for v in level):
            return "mixes numbers and lists, or holds non-numbers"
        if len({len(v) for v in level}) > 1:
            return "ragged nested lists"
        level = [x for v in level for x in v]
    return f"nested deeper than {MAX_STATS_DIMS} levels"


# --- info.json --------------------------------------------------------------------
def _info_faults(info: dict[str, Any]) -> list[SourceDataError]:
    """Located faults of an ``info.json`` object whose version is supported."""
    faults = _Faults()
    rel = formats.INFO_PATH
    missing = [k for k in formats.REQUIRED_INFO_KEYS if k not in info]
    if missing:
        faults.add(rel, f"required keys missing: {missing}", expected=list(formats.REQUIRED_INFO_KEYS), found=sorted(info))
    if "features" in info and (not isinstance(info["features"], dict) or not info["features"]):
        faults.add(rel, "'features' must be a non-empty object", found=_type_name(info["features"]))
    if "fps" in info:
        fps = info["fps"]
        if not _is_number(fps) or not math.isfinite(fps) or fps <= 0:
            faults.add(rel, "'fps' must be a finite positive number", expected="e.g. 30", found=_short(fps))
        elif fps != int(fps):
            # LeRobot's fps is an int (create_empty_dataset_info); 29.97 would be truncated silently
            faults.add(rel, "'fps' must be a whole number of frames per second", expected="an integer, e.g. 30", found=fps)
    cs = info.get("chunks_size")
    if cs is not None and (not _is_int(cs) or cs <= 0):
        faults.add(rel, "'chunks_size' must be a positive integer", expected=f"e.g. {formats.DEFAULT_CHUNKS_SIZE}", found=_short(cs))
    for key in ("data_path", "video_path"):
        t = info.get(key)
        if t is None:
            continue
        if not isinstance(t, str):
            faults.add(rel, f"{key!r} template is not a string", expected="a relative path template", found=_short(t))
            continue
        for problem in formats.template_spec_problems(t):
            faults.add(rel, f"{key!r} template: {problem}", expected=f"format specs at most {formats.MAX_TEMPLATE_FIELD_WIDTH} wide", found=_short(t))
    return faults.errors


def read_info(root: Path) -> dict[str, Any]:
    """Read and validate ``<root>/meta/info.json``.

    Returns:
        The parsed JSON object.

    Raises:
        UnsupportedFormatError: the file is missing, not a regular file, not
            UTF-8, empty, not JSON (or nested too deep to parse), not a JSON
            object, has no ``codebase_version``, or a version outside
            :data:`~lerobot_lance.formats.SUPPORTED_VERSIONS` (v1.x, v4+ ...).
        MetadataErrors: a required key (``fps``, ``features``, ``data_path``)
            is missing or malformed, ``fps`` is not a finite positive whole
            number, ``chunks_size`` not a positive integer, or a path template's
            format spec is malformed or wider than
            :data:`~lerobot_lance.formats.MAX_TEMPLATE_FIELD_WIDTH`.
    """
    path = Path(root) / formats.INFO_PATH
    supported = formats.SUPPORTED_VERSIONS
    kind = file_kind(path)
    if kind is not None:
        raise UnsupportedFormatError(str(path), kind, supported)
    raw = path.read_bytes()
    try:
        text = _decode_utf8(raw, formats.INFO_PATH)
    except SourceDataError as e:
        raise UnsupportedFormatError(str(path), "not UTF-8 text", supported, detail=f"{e.detail}: {e.found}") from None
    if not text.strip():
        raise UnsupportedFormatError(str(path), "empty file", supported)
    try:
        info = _parse_json(text, formats.INFO_PATH)
    except SourceDataError as e:
        found = "JSON nested too deep" if "too deep" in e.detail else "invalid JSON"
        raise UnsupportedFormatError(str(path), found, supported, detail=e.detail) from None
    if not isinstance(info, dict) or not info:
        raise UnsupportedFormatError(str(path), "no JSON object", supported)
    version = info.get("codebase_version")
    if not version:
        raise UnsupportedFormatError(str(path), "no codebase_version", supported)
    if not isinstance(version, str) or version not in supported:
        raise UnsupportedFormatError(str(path), f"codebase_version {_short(version)}", supported)
    errors = _info_faults(info)
    if errors:
        raise MetadataErrors(errors)
    return info


def parse_features(info: dict[str, Any]) -> dict[str, Feature]:
    """``info["features"]`` -> ``{key: Feature}``, in file order.

    Raises:
        MetadataErrors: a feature is not an object, has no ``dtype``, a
            ``shape`` that is not a list of positive integers, or an ``info``
            that is not an object.
    """
    faults = _Faults()
    out: dict[str, Feature] = {}
    rel = formats.INFO_PATH
    for key, spec in info["features"].items():
        if not isinstance(spec, dict) or not isinstance(spec.get("dtype"), str):
            faults.add(rel, f"feature {key!r} has no dtype", expected="an object with a dtype string", found=_short(spec))
            continue
        shape = spec.get("shape", [1])
        if not isinstance(shape, (list, tuple)) or not all(_is_int(d) and d > 0 for d in shape):
            faults.add(rel, f"feature {key!r} has a malformed shape", expected="list of positive ints", found=_short(shape))
            continue
        extra = spec.get("info")
        if extra is not None and not isinstance(extra, dict):
            faults.add(rel, f"feature {key!r} has an 'info' that is not an object", expected="an object or null", found=_type_name(extra))
            continue
        out[key] = Feature(key=key, dtype=spec["dtype"], shape=tuple(shape), names=spec.get("names"), info=dict(extra or {}))
    faults.raise_if_any()
    return out


# --- JSON files -------------------------------------------------------------------
def _read_jsonl(path: Path, rel: str, faults: _Faults) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` per non-blank line. Lines that are not JSON
    objects are recorded in ``faults`` and left out.

    Raises:
        SourceDataError: the file is missing, not a regular file, not UTF-8, or holds no line.
    """
    kind = file_kind(path)
    if kind is not None:
        raise SourceDataError(rel, "file missing" if kind == "missing file" else f"not a regular file: {kind}", expected="one JSON object per line")
    text = _decode_utf8(path.read_bytes(), rel)
    rows: list[tuple[int, dict[str, Any]]] = []
    seen = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        seen += 1
        try:
            obj = _parse_json(line, rel, f"line {lineno}")
        except SourceDataError as e:
            faults.extend(e)
            continue
        if not isinstance(obj, dict):
            faults.add(rel, f"line {lineno} is not a JSON object", expected="one JSON object per line", found=f"a JSON {_type_name(obj)}")
            continue
        rows.append((lineno, obj))
    if not seen:
        raise SourceDataError(rel, "file is empty", expected="one JSON object per line")
    return rows


def _read_json_optional(path: Path, rel: str) -> Any:
    """The parsed file, or ``None`` if it does not exist.

    Raises:
        SourceDataError: not a regular file, not UTF-8, empty or not JSON.
    """
    kind = file_kind(path)
    if kind == "missing file":
        return None
    if kind is not None:
        raise SourceDataError(rel, f"not a regular file: {kind}", expected="a JSON file")
    text = _decode_utf8(path.read_bytes(), rel)
    if not text.strip():
        raise SourceDataError(rel, "file is empty", expected="a JSON object")
    return _parse_json(text, rel)


def read_dataset_meta(root: str | Path) -> DatasetMeta:
    """Parse the ``meta/`` folder under ``root`` into one :class:`DatasetMeta`.

    Only ``meta/`` is read; data and video files are not touched.

    Raises:
        UnsupportedFormatError: see :func:`read_info`.
        MetadataErrors: (a :class:`SourceDataError`) every malformed row or
            value found in ``info.json``, the episodes, tasks and stats files,
            and every entry of ``meta/`` that is not a regular readable file,
            each located (see the module docstring).
        SourceDataError: an episodes or tasks file is missing or empty.
    """
    root = Path(root)
    info = read_info(root)
    features = parse_features(info)
    faults = _Faults()
    faults.errors += meta_tree_faults(root)
    version = info["codebase_version"]
    episodes: list[EpisodeMeta] = []
    tasks: dict[int, str] = {}
    if version == "v3.0":
        episodes, tasks = _read_v30(root, info, features, faults)
    else:
        episodes, tasks = _read_v2(root, info, features, faults)
    declared = None
    with faults.section(formats.STATS_PATH):
        obj = _read_json_optional(root / formats.STATS_PATH, formats.STATS_PATH)
        if obj is not None:
            declared = _check_stats(obj, formats.STATS_PATH, faults)
    faults.raise_if_any()
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


def _fill(template: str, key: str, **fields: Any) -> str:
    """One path from a template whose format specs :func:`read_info` validated.

    Raises:
        SourceDataError: the template cannot be filled with these fields.
    """
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError, TypeError, AttributeError) as e:
        raise SourceDataError(
            formats.INFO_PATH, f"{key} template {template!r} cannot be filled ({type(e).__name__}: {e})", expected=f"fields {sorted(fields)}"
        ) from None


def _video_ref_v2(
    info: dict[str, Any], video_key: str, episode_index: int, chunk: int, length: int, fps: float
) -> VideoRef:
    template = _template(info, "video_path", formats.V2_VIDEO_PATH) or formats.V2_VIDEO_PATH
    rel = _fill(template, "video_path", episode_chunk=chunk, video_key=video_key, episode_index=episode_index)
    return VideoRef(
        video_key=video_key,
        relative_path=rel,
        chunk_index=chunk,
        file_index=episode_index,
        from_timestamp=0.0,
        to_timestamp=length / fps,
        whole_file=True,
    )


def _tasks_list(value: Any) -> tuple[str, ...] | None:
    """An episode's ``tasks`` as a tuple, or ``None`` when it is not a list of strings."""
    if value is None:
        return ()
    if isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value):
        return tuple(value)
    return None


def _read_v2_tasks(root: Path, faults: _Faults) -> dict[int, str]:
    rel = formats.TASKS_JSONL_PATH
    tasks: dict[int, str] = {}
    lines: dict[int, int] = {}
    with faults.section(rel):
        for lineno, r in _read_jsonl(root / rel, rel, faults):
            i, text = r.get("task_index"), r.get("task")
            if not _is_int(i) or i < 0:
                what = "has no task_index" if "task_index" not in r else "has a task_index that is not an integer >= 0"
                faults.add(rel, f"line {lineno} {what}", expected="task_index: an integer >= 0", found=_short(i) if "task_index" in r else sorted(r))
                continue
            if not isinstance(text, str):
                faults.add(rel, f"line {lineno} (task_index {i}) has no task string", expected="task: a string", found=_short(text))
                continue
            if i in tasks:
                faults.add(rel, f"line {lineno}: task_index {i} already listed on line {lines[i]}", expected="each task_index once", found=f"{tasks[i]!r} and {text!r}")
                continue
            tasks[i], lines[i] = text, lineno
    return tasks


def _read_v21_episode_stats(root: Path, faults: _Faults) -> dict[int, dict[str, Any]]:
    rel = formats.EPISODES_STATS_JSONL_PATH
    out: dict[int, dict[str, Any]] = {}
    with faults.section(rel):
        for lineno, r in _read_jsonl(root / rel, rel, faults):
            ep = r.get("episode_index")
            if not _is_int(ep) or ep < 0:
                faults.add(rel, f"line {lineno} has no episode_index >= 0", expected="episode_index: an integer >= 0", found=_short(ep))
                continue
            if "stats" not in r:
                faults.add(rel, f"line {lineno} has no 'stats'", episode_index=ep, expected="stats: {feature: {stat: [numbers]}}", found=sorted(r))
                continue
            stats = _check_stats(r["stats"], rel, faults, episode_index=ep)
            if stats is not None:
                out[ep] = stats
    return out


def _read_v2(
    root: Path, info: dict[str, Any], features: dict[str, Feature], faults: _Faults
) -> tuple[list[EpisodeMeta], dict[int, str]]:
    rel = formats.EPISODES_JSONL_PATH
    rows: list[tuple[int, dict[str, Any]]] = []
    with faults.section(rel):
        rows = _read_jsonl(root / rel, rel, faults)
    tasks = _read_v2_tasks(root, faults)
    ep_stats: dict[int, dict[str, Any]] = {}
    if info["codebase_version"] == "v2.1" and (root / formats.EPISODES_STATS_JSONL_PATH).is_file():
        ep_stats = _read_v21_episode_stats(root, faults)
    chunks_size = info.get("chunks_size") or formats.DEFAULT_CHUNKS_SIZE
    data_template = _template(info, "data_path", formats.V2_DATA_PATH) or formats.V2_DATA_PATH
    video_keys = [k for k, f in features.items() if f.is_video]
    fps = float(info["fps"])
    valid: list[tuple[int, int, int, tuple[str, ...]]] = []
    for lineno, r in rows:
        ep, length, ep_tasks = r.get("episode_index"), r.get("length"), _tasks_list(r.get("tasks"))
        if not _is_int(ep) or ep < 0:
            what = "has no episode_index" if "episode_index" not in r else "has an episode_index that is not an integer >= 0"
            faults.add(rel, f"line {lineno} {what}", expected="episode_index: an integer >= 0 (LeRobot numbers episodes from 0)",
                       found=_short(ep) if "episode_index" in r else sorted(r))
            continue
        if not _is_int(length) or length < 1:
            faults.add(rel, f"line {lineno}: length missing or not an integer >= 1", episode_index=ep, expected="length: frames, >= 1", found=_short(length))
            continue
        if ep_tasks is None:
            faults.add(rel, f"line {lineno}: tasks is not a list of strings", episode_index=ep, expected="tasks: [strings]", found=_short(r.get("tasks")))
            continue
        valid.append((ep, length, lineno, ep_tasks))
    episodes: list[EpisodeMeta] = []
    start = 0
    with faults.section(formats.INFO_PATH):
        for ep, length, _, ep_tasks in sorted(valid):
            chunk = ep // chunks_size
            episodes.append(
                EpisodeMeta(
                    episode_index=ep,
                    length=length,
                    tasks=ep_tasks,
                    dataset_from_index=start,
                    dataset_to_index=start + length,
                    data_path=_fill(data_template, "data_path", episode_chunk=chunk, episode_index=ep),
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


def _read_v30_tasks(root: Path, faults: _Faults) -> dict[int, str]:
    rel = formats.TASKS_PARQUET_PATH
    path = root / rel
    kind = file_kind(path)
    if kind is not None:
        faults.add(rel, "file missing" if kind == "missing file" else f"not a regular file: {kind}", expected="a parquet table of task_index and task")
        return {}
    try:
        table = _read_parquet(path)
    except Exception as e:  # noqa: BLE001 - any reader error is a defect of this file
        faults.add(rel, f"unreadable parquet ({type(e).__name__}: {e})")
        return {}
    names = table.column_names
    # lerobot 0.4 writes the task strings as the pandas index (``__index_level_0__``
    # in the file, ``task`` once restored); accept an explicit ``task`` column too.
    text_col = "task" if "task" in names else next((n for n in names if n != "task_index"), None)
    if "task_index" not in names or text_col is None:
        faults.add(rel, "columns missing", expected=["task_index", "task"], found=names)
        return {}
    if not pa.types.is_integer(table.schema.field("task_index").type):
        faults.add(rel, "task_index column is not of an integer type", expected="int64", found=str(table.schema.field("task_index").type))
        return {}
    tasks: dict[int, str] = {}
    for row, (i, t) in enumerate(zip(table["task_index"].to_pylist(), table[text_col].to_pylist())):
        if i is None or i < 0:
            faults.add(rel, f"row {row}: task_index null or negative", expected="an integer >= 0", found=i)
        elif not isinstance(t, str):
            faults.add(rel, f"row {row} (task_index {i}): task is not a string", expected="a string", found=_short(t))
        elif i in tasks:
            faults.add(rel, f"row {row}: task_index {i} listed twice", expected="each task_index once", found=f"{tasks[i]!r} and {t!r}")
        else:
            tasks[i] = t
    return tasks


def _stats_from_row(row: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    stats: dict[str, dict[str, Any]] = {}
    for col, value in row.items():
        if not col.startswith("stats/") or value is None:
            continue
        feature, _, stat = col[len("stats/"):].rpartition("/")
        if feature and stat:
            stats.setdefault(feature, {})[stat] = value
    return stats or None


def _read_v30(
    root: Path, info: dict[str, Any], features: dict[str, Feature], faults: _Faults
) -> tuple[list[EpisodeMeta], dict[int, str]]:
    files = sorted(root.glob(formats.EPISODES_PARQUET_GLOB))
    tasks = _read_v30_tasks(root, faults)
    if not files:
        faults.add("meta/episodes/", "no episode metadata parquet", expected=formats.EPISODES_PARQUET_GLOB)
        return [], tasks
    data_template = _template(info, "data_path", formats.V3_DATA_PATH) or formats.V3_DATA_PATH
    video_template = _template(info, "video_path", formats.V3_VIDEO_PATH)
    video_keys = [k for k, f in features.items() if f.is_video]
    episodes: list[EpisodeMeta] = []
    for f in files:
        rel = str(f.relative_to(root))
        kind = file_kind(f)
        if kind is not None:
            faults.add(rel, f"not a regular file: {kind}", expected="a parquet file")
            continue
        try:
            rows = _read_parquet(f).to_pylist()
        except Exception as e:  # noqa: BLE001 - any reader error is a defect of this file
            faults.add(rel, f"unreadable parquet ({type(e).__name__}: {e})")
            continue
        for r in rows:
            ep = r.get("episode_index")
            with faults.section(rel, ep if _is_int(ep) else None):
                e = _episode_v30(r, rel, data_template, video_template, video_keys, faults)
                if e is not None:
                    episodes.append(e)
    return episodes, tasks


def _episode_v30(
    r: dict[str, Any],
    rel: str,
    data_template: str,
    video_template: str | None,
    video_keys: Iterable[str],
    faults: _Faults,
) -> EpisodeMeta | None:
    """One v3.0 episode row, or ``None`` (its faults recorded) when it is malformed."""
    required = ["episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index"]
    missing = [k for k in required if r.get(k) is None]
    ep = r.get("episode_index")
    ep_loc = ep if _is_int(ep) else None
    if missing:
        faults.add(rel, f"episode row lacks {missing}", episode_index=ep_loc, expected=required)
        return None
    n = len(faults.errors)
    if not _is_int(ep) or ep < 0:
        faults.add(rel, "episode_index is not an integer >= 0", episode_index=ep_loc,
                   expected="an integer >= 0 (LeRobot numbers episodes from 0)", found=_short(ep))
        return None
    for k in required[1:]:
        low = 1 if k == "length" else 0
        if not _is_int(r[k]) or r[k] < low:
            faults.add(rel, f"{k} is not an integer >= {low}", episode_index=ep, expected=f"an integer >= {low}", found=_short(r[k]))
    ep_tasks = _tasks_list(r.get("tasks"))
    if ep_tasks is None:
        faults.add(rel, "tasks is not a list of strings", episode_index=ep, expected="tasks: [strings]", found=_short(r.get("tasks")))
    videos: dict[str, VideoRef] = {}
    for key in video_keys:
        cols = [f"videos/{key}/{s}" for s in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
        if any(r.get(c) is None for c in cols):
            faults.add(rel, f"no video window for camera {key!r}", episode_index=ep, expected=cols)
            continue
        if not video_template:
            faults.add(formats.INFO_PATH, "video_path template missing", expected="a template for video features")
            return None
        chunk, file_idx, t0, t1 = (r[c] for c in cols)
        if not (_is_int(chunk) and _is_int(file_idx) and chunk >= 0 and file_idx >= 0):
            faults.add(rel, f"camera {key!r}: chunk_index / file_index not integers >= 0", episode_index=ep,
                       expected="integers >= 0", found=f"{_short(chunk)}, {_short(file_idx)}")
            continue
        if not (_is_number(t0) and _is_number(t1) and math.isfinite(t0) and math.isfinite(t1)):
            faults.add(rel, f"camera {key!r}: video window is not a pair of finite numbers", episode_index=ep,
                       expected="from_timestamp and to_timestamp in seconds", found=f"[{_short(t0)}, {_short(t1)})")
            continue
        if t0 < 0 or t1 < t0 or (t1 == t0 and r["length"] != 1):
            faults.add(rel, f"camera {key!r}: video window is {'inverted' if t1 < t0 else 'empty' if t1 == t0 else 'negative'}",
                       episode_index=ep, expected="0 <= from_timestamp < to_timestamp", found=f"[{t0}, {t1})")
            continue
        videos[key] = VideoRef(
            video_key=key,
            relative_path=_fill(video_template, "video_path", video_key=key, chunk_index=chunk, file_index=file_idx),
            chunk_index=chunk,
            file_index=file_idx,
            from_timestamp=float(t0),
            to_timestamp=float(t1),
            whole_file=False,
        )
    stats = _stats_from_row(r)
    if stats is not None:
        stats = _check_stats(stats, rel, faults, episode_index=ep, what="stats/ columns")
    if len(faults.errors) > n:
        return None
    return EpisodeMeta(
        episode_index=ep,
        length=r["length"],
        tasks=ep_tasks or (),
        dataset_from_index=r["dataset_from_index"],
        dataset_to_index=r["dataset_to_index"],
        data_path=_fill(data_template, "data_path", chunk_index=r["data/chunk_index"], file_index=r["data/file_index"]),
        videos=videos,
        declared_stats=stats,
    )
