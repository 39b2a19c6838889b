"""Source-side rules: what ``meta/`` promises, and whether the files keep it.

:func:`check_source_meta` reads only ``meta/`` (what the ``source_meta`` asset
has on the Hub); :func:`check_source_files` reads parquet footers, one
column pair of each data file and the mp4 containers' packets (never decodes).

Format facts come from LeRobot's ``lerobot/datasets/utils.py`` (v2.0/v2.1
in lerobot 0.1-0.3, v3.0 in lerobot 0.4.4) and the samples in
``../shared/datasets``: episodes tile the global ``index`` range
``[0, total_frames)`` in episode order (v3.0 stores ``dataset_from_index`` /
``dataset_to_index``; v2.x implies them from the lengths), ``info.json``
carries ``total_episodes`` / ``total_frames`` / ``total_tasks``, and camera
features of dtype ``video`` carry ``info["video.codec" | "video.width" |
"video.height" | "video.fps"]``.
"""

from __future__ import annotations

import json
import math
import string
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from lerobot_lance import formats
from lerobot_lance.camera_shape import camera_dims
from lerobot_lance.column_names import frames_column_collisions
from lerobot_lance.errors import LeRobotLanceError, MetadataErrors, SourceDataError, UnsupportedFormatError
from lerobot_lance.model import DatasetMeta
from lerobot_lance.quality import symlink_rules
from lerobot_lance.quality.meta_rules import META_VALUE_DESCRIPTIONS, META_VALUE_RULES, check_meta_values
from lerobot_lance.readers import file_kind
from lerobot_lance.quality.result import CheckOutcome, Offender

SOURCE_META_RULES: tuple[str, ...] = (
    "supported_version",
    "required_info_keys",
    "features_well_formed",
    "path_templates_safe",
    "meta_files_readable",
    "episode_ranges_tile",
    "totals_agree",
    "task_indices_exist",
    *META_VALUE_RULES,  # severity WARN (lerobot_lance/quality/meta_rules.py)
    symlink_rules.NAME,  # run first (see check_source_meta), listed last
)
SOURCE_FILE_RULES: tuple[str, ...] = (
    "files_exist",
    "files_non_empty",
    symlink_rules.NAME,
    "data_rows_match_episodes",
    "task_indices_exist",
    "no_orphan_files",
    "video_frames_cover_episodes",
    "episode_windows_match_length",
    "video_stream_matches_info",
    "video_codec_matches_info",
)
# episode_windows_match_length and video_codec_matches_info have severity WARN:
# what they compare changes neither which frames are read nor how they decode.

_DESCRIPTIONS = {
    "supported_version": f"meta/info.json is a JSON object whose codebase_version is one of {', '.join(formats.SUPPORTED_VERSIONS)}",
    "required_info_keys": "info.json carries codebase_version, fps (> 0), features (non-empty) and the path templates",
    "features_well_formed": "every feature has a known dtype and a shape of positive integers (cameras: 3 dims); no two keys give the same column",
    "path_templates_safe": "data_path / video_path are relative templates with known fields that cannot leave the dataset root",
    "meta_files_readable": "the episodes, tasks and stats metadata files exist, parse and hold well-typed values; every entry of meta/ is a regular readable file",
    "episode_ranges_tile": "episode index ranges tile [0, total_frames) with no gap or overlap",
    "totals_agree": "info.json totals agree with the episodes and tasks metadata",
    "task_indices_exist": "every task referenced (episodes metadata, data task_index) exists in the tasks table",
    "files_exist": "every data parquet and mp4 the metadata references exists",
    "files_non_empty": "no referenced file is empty or a Git LFS pointer (content not fetched)",
    "data_rows_match_episodes": "each data parquet holds exactly the rows of the episodes it stores",
    "no_orphan_files": "no parquet or mp4 outside meta/ (in any folder) that no episode references",
    "video_frames_cover_episodes": "each mp4's frames (packets) cover the frames its episodes imply (length frames from from_timestamp)",
    "episode_windows_match_length": "each v3.0 episode window's to_timestamp is from_timestamp + length / fps (WARN: length frames are read from from_timestamp)",
    "video_stream_matches_info": "each mp4's resolution and fps match info.json (they fix which frames are read and their shape)",
    "video_codec_matches_info": "each mp4's codec and pixel format match info.json video.codec / video.pix_fmt (WARN: decoding follows the stream)",
    symlink_rules.NAME: symlink_rules.DESCRIPTION,
    **META_VALUE_DESCRIPTIONS,
}

def _link_target(root: Path, rel: str) -> str | None:
    """``rel``'s target relative to ``root`` when ``rel`` is a symlink resolving
    inside the root (``files_inside_root`` refuses the others), else ``None``."""
    p = Path(root) / rel
    if not p.is_symlink():
        return None
    try:
        return p.resolve().relative_to(Path(root).resolve()).as_posix()
    except (OSError, ValueError):
        return None


#: Fields LeRobot's path templates may use (v2.x and v3.0).
TEMPLATE_FIELDS = frozenset({"episode_chunk", "episode_index", "video_key", "chunk_index", "file_index"})
_CAMERA_DTYPES = set(formats.CAMERA_DTYPES)
_OTHER_DTYPES = {"string", "bool"}


def _outcome(name: str, offenders: list[Offender], **kw: Any) -> CheckOutcome:
    return CheckOutcome.from_offenders(name, offenders, description=_DESCRIPTIONS[name], **kw)


def _skipped(names: Sequence[str], reason: str) -> list[CheckOutcome]:
    return [CheckOutcome.skip(n, reason, description=_DESCRIPTIONS[n], severity="WARN" if n in META_VALUE_RULES else "ERROR") for n in names]


def _dtype_known(dtype: Any) -> bool:
    if not isinstance(dtype, str):
        return False
    if dtype in _CAMERA_DTYPES or dtype in _OTHER_DTYPES:
        return True
    try:
        np.dtype(dtype)
    except TypeError:
        return False
    return dtype.startswith(("float", "int", "uint"))


def _template_offenders(info: dict[str, Any]) -> list[Offender]:
    out = []
    for key in ("data_path", "video_path"):
        t = info.get(key)
        if t is None:
            continue
        where = f"{formats.INFO_PATH} ({key})"
        if not isinstance(t, str) or not t:
            out.append(Offender(where, None, "template is not a string", expected="a relative path template", found=t))
            continue
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(t) if f is not None}
        except ValueError as e:
            out.append(Offender(where, None, f"malformed template ({e})", found=t))
            continue
        unknown = sorted(f.split(".")[0].split("[")[0] for f in fields if f.split(".")[0].split("[")[0] not in TEMPLATE_FIELDS)
        if unknown or any(f == "" or "." in f or "[" in f for f in fields):
            out.append(Offender(where, None, f"unknown template fields {unknown or sorted(fields)}", expected=sorted(TEMPLATE_FIELDS), found=t))
            continue
        spec_problems = formats.template_spec_problems(t)
        if spec_problems:  # checked before formatting: a huge width would build a huge string
            out.append(Offender(where, None, "; ".join(spec_problems), expected=f"format specs at most {formats.MAX_TEMPLATE_FIELD_WIDTH} wide", found=t))
            continue
        try:
            sample = t.format(episode_chunk=0, episode_index=0, video_key="cam", chunk_index=0, file_index=0)
        except (ValueError, IndexError, KeyError) as e:
            out.append(Offender(where, None, f"template cannot be filled ({e})", found=t))
            continue
        p = PurePosixPath(sample.replace("\\", "/"))
        if not p.parts or p.is_absolute() or ".." in p.parts or sample.startswith("~") or ":" in p.parts[0]:
            out.append(Offender(where, None, "template leaves the dataset root", expected="a path relative to the root without '..'", found=t))
    return out


def _meta_file_of(meta_version: str) -> str:
    return formats.EPISODES_JSONL_PATH if meta_version.startswith("v2") else "meta/episodes/"


def check_source_meta(root: str | Path) -> list[CheckOutcome]:
    """``files_inside_root`` first, then the other source metadata rules.

    No ``meta/`` file is read while one of them resolves outside the dataset
    root (every other rule is then returned skipped); the data and video
    files present under the root are checked the same way (locally: all of
    them, before any episode reads one), their offenders located by episode
    when the metadata parses.

    Returns:
        One :class:`CheckOutcome` per name in :data:`SOURCE_META_RULES`, in that order.
    """
    inside = symlink_rules.check_tree_inside_root(root, ("meta",))
    if not inside.passed:
        others = [n for n in SOURCE_META_RULES if n != symlink_rules.NAME]
        return [*_skipped(others, "a meta/ file resolves outside the dataset root"), inside]
    out = [o for o in _check_source_meta_rules(root) if o.name != symlink_rules.NAME]
    inside = symlink_rules.check_tree_inside_root(root)
    if not inside.passed and all(o.passed and not o.skipped for o in out if o.name == "meta_files_readable"):
        from lerobot_lance.readers import read_dataset_meta

        meta = read_dataset_meta(root)
        used = {r.relative_path: e.episode_index for e in reversed(meta.episodes) for r in e.videos.values()}
        used.update({e.data_path: e.episode_index for e in reversed(meta.episodes)})
        inside = symlink_rules.check_tree_inside_root(root, episode_of=used)
    return [*out, inside]


def _check_source_meta_rules(root: str | Path) -> list[CheckOutcome]:
    """Run the source metadata rules on the ``meta/`` folder under ``root``.

    Reads only ``meta/``. The rules run in order; when ``info.json`` cannot
    be read (missing, empty, invalid JSON, unsupported version) or lacks what
    parsing needs, the later rules are returned skipped (passed, with a note
    naming why), so exactly the rule at fault fails.

    Returns:
        One :class:`CheckOutcome` per name in :data:`SOURCE_META_RULES`, in that order.
    """
    root = Path(root)
    info_rel = formats.INFO_PATH
    path = root / info_rel
    supported = list(formats.SUPPORTED_VERSIONS)
    out: list[CheckOutcome] = []
    found: str | None = None
    info: Any = None
    kind = file_kind(path)
    if kind is not None:
        found = kind
    else:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            # RFC 8259: JSON exchanged between systems is UTF-8
            line = raw.count(b"\n", 0, e.start) + 1
            found = f"not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}, line {line})"
            text = None
        if text is None:
            pass
        elif not text.strip():
            found = "empty file (0 bytes)" if not text else "empty file (whitespace only)"
        else:
            try:
                info = json.loads(text)
            except json.JSONDecodeError as e:
                found = f"invalid JSON (line {e.lineno}, column {e.colno}: {e.msg})"
            except RecursionError:
                found = "JSON nested too deep to parse"
            else:
                if not isinstance(info, dict):
                    found = f"a JSON {type(info).__name__}, not an object"
                elif not info.get("codebase_version"):
                    found = "no codebase_version"
                elif not isinstance(info["codebase_version"], str) or info["codebase_version"] not in supported:
                    found = f"codebase_version {info['codebase_version']!r}"
    if found is not None:
        out.append(_outcome("supported_version", [Offender(info_rel, None, "unsupported or unreadable info.json", expected=supported, found=found)]))
        return out + _skipped(SOURCE_META_RULES[1:], "info.json unreadable or of an unsupported version")
    out.append(_outcome("supported_version", [], metadata={"codebase_version": info["codebase_version"]}))

    # required keys and their types
    offenders = [Offender(info_rel, None, f"required key {k!r} missing", expected=list(formats.REQUIRED_INFO_KEYS), found=sorted(info))
                 for k in formats.REQUIRED_INFO_KEYS if k not in info]
    fps = info.get("fps")
    if "fps" in info and (not isinstance(fps, (int, float)) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0):
        offenders.append(Offender(info_rel, None, "'fps' is not a finite positive number", expected="fps > 0", found=repr(fps)))
    elif "fps" in info and fps != int(fps):
        # LeRobot's fps is an int; a fractional one would be truncated
        offenders.append(Offender(info_rel, None, "'fps' is not a whole number", expected="an integer, e.g. 30", found=repr(fps)))
    cs = info.get("chunks_size")
    if cs is not None and (not isinstance(cs, int) or isinstance(cs, bool) or cs <= 0):
        offenders.append(Offender(info_rel, None, "'chunks_size' is not a positive integer", expected=f"e.g. {formats.DEFAULT_CHUNKS_SIZE}", found=repr(cs)))
    feats = info.get("features")
    if "features" in info and (not isinstance(feats, dict) or not feats):
        offenders.append(Offender(info_rel, None, "'features' is not a non-empty object", found=type(feats).__name__))
    has_video = isinstance(feats, dict) and any(isinstance(v, dict) and v.get("dtype") == "video" for v in feats.values())
    if has_video and not info.get("video_path"):
        # LeRobot's create_empty_dataset_info (lerobot/datasets/utils.py) sets
        # video_path to DEFAULT_VIDEO_PATH when the dataset has videos, else None.
        offenders.append(Offender(info_rel, None, "video features but no 'video_path' template", expected="video_path",
                                  found=repr(info.get("video_path", "missing"))))
    for k in ("total_episodes", "total_frames"):
        if k in info and (not isinstance(info[k], int) or isinstance(info[k], bool) or info[k] < 0):
            offenders.append(Offender(info_rel, None, f"{k!r} is not a non-negative integer", found=info[k]))
    out.append(_outcome("required_info_keys", offenders))

    # features
    f_off = []
    for key, spec in (feats.items() if isinstance(feats, dict) else []):
        where = f"{info_rel} (features.{key})"
        if not isinstance(spec, dict):
            f_off.append(Offender(where, None, "feature is not an object", found=spec))
            continue
        if not _dtype_known(spec.get("dtype")):
            f_off.append(Offender(where, None, "unknown dtype", expected="float32/int64/bool/string/video/image/...", found=spec.get("dtype")))
        shape = spec.get("shape")
        if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            f_off.append(Offender(where, None, "shape is not a list of positive integers", expected="e.g. [26]", found=shape))
        elif spec.get("dtype") in _CAMERA_DTYPES and len(shape) != 3:
            f_off.append(Offender(where, None, "camera shape must have 3 dims", expected="[H, W, C] or [C, H, W]", found=shape))
        if spec.get("info") is not None and not isinstance(spec.get("info"), dict):
            f_off.append(Offender(where, None, "'info' is not an object", expected="an object or null", found=type(spec["info"]).__name__))
    # output columns replace dots by underscores (lerobot_lance.column_names): two keys must not meet
    for col, keys in frames_column_collisions(list(feats) if isinstance(feats, dict) else []).items():
        f_off.append(Offender(f"{info_rel} (features.{keys[1]})", None,
                              f"features {keys} all become output column {col!r} (dots are replaced by underscores)",
                              expected="feature keys distinct after replacing '.' by '_'", found=keys))
    out.append(_outcome("features_well_formed", f_off, metadata={"features": len(feats) if isinstance(feats, dict) else 0}))
    out.append(_outcome("path_templates_safe", _template_offenders(info)))
    if any(not o.passed for o in out):
        return out + _skipped(SOURCE_META_RULES[len(out):], "info.json failed an earlier rule")

    # the episodes/tasks files parse
    from lerobot_lance.readers import read_dataset_meta

    try:
        meta = read_dataset_meta(root)
    except (SourceDataError, UnsupportedFormatError) as e:
        errors = e.errors if isinstance(e, MetadataErrors) else [e]
        out.append(_outcome("meta_files_readable", [_offender_of(err, root) for err in errors]))
        return out + _skipped(SOURCE_META_RULES[len(out):], "episodes or tasks metadata unreadable")
    except Exception as e:  # noqa: BLE001 - the readers locate what they know; never a traceback for data
        out.append(_outcome("meta_files_readable", [Offender("meta/", None, f"metadata cannot be parsed ({type(e).__name__}: {e})")]))
        return out + _skipped(SOURCE_META_RULES[len(out):], "episodes or tasks metadata unreadable")
    out.append(_outcome("meta_files_readable", [], metadata={"episodes": len(meta.episodes)}))
    files = _episode_meta_files(root, meta)
    out += _meta_consistency(meta, files)
    out += check_meta_values(meta, files)
    return out


def _offender_of(err: LeRobotLanceError, root: Path) -> Offender:
    """A reader error as an offender, its path relative to ``root``."""
    p = getattr(err, "path", str(root))
    try:
        p = str(Path(p).relative_to(root))
    except ValueError:
        pass
    detail = getattr(err, "detail", None) or str(err)
    return Offender(p, getattr(err, "episode_index", None), detail, getattr(err, "expected", None), getattr(err, "found", None))


def _episode_meta_files(root: Path, meta: DatasetMeta) -> dict[int, str]:
    """episode_index -> the metadata file that lists it (v2.x: ``meta/episodes.jsonl``;
    v3.0: its ``meta/episodes/chunk-*/file-*.parquet``)."""
    if meta.codebase_version != "v3.0":
        return {e.episode_index: formats.EPISODES_JSONL_PATH for e in meta.episodes}
    import pyarrow.parquet as pq

    out: dict[int, str] = {}
    for f in sorted(root.glob(formats.EPISODES_PARQUET_GLOB)):
        rel = str(f.relative_to(root))
        for i in pq.ParquetFile(f).read(columns=["episode_index"])["episode_index"].to_pylist():
            out.setdefault(int(i), rel)
    return out


def _meta_consistency(meta: DatasetMeta, files: dict[int, str]) -> list[CheckOutcome]:
    ep_file = _meta_file_of(meta.codebase_version)

    def where(ep: int | None) -> str:
        return files.get(ep, ep_file) if ep is not None else ep_file

    # tiling
    tile: list[Offender] = []
    seen: dict[int, int] = {}
    for e in meta.episodes:
        if e.episode_index in seen:
            tile.append(Offender(where(e.episode_index), e.episode_index, "episode listed twice"))
        seen[e.episode_index] = 1
        if e.dataset_to_index - e.dataset_from_index != e.length:
            tile.append(Offender(where(e.episode_index), e.episode_index, "index range length differs from the episode length",
                                 expected=e.length, found=f"[{e.dataset_from_index}, {e.dataset_to_index})"))
    expected_from = 0
    for e in sorted(meta.episodes, key=lambda e: (e.dataset_from_index, e.episode_index)):
        if e.dataset_from_index > expected_from:
            tile.append(Offender(where(e.episode_index), e.episode_index, f"gap of {e.dataset_from_index - expected_from} frames before the episode",
                                 expected=f"dataset_from_index {expected_from}", found=e.dataset_from_index))
        elif e.dataset_from_index < expected_from:
            tile.append(Offender(where(e.episode_index), e.episode_index, f"overlaps the previous episode by {expected_from - e.dataset_from_index} frames",
                                 expected=f"dataset_from_index {expected_from}", found=e.dataset_from_index))
        expected_from = max(expected_from, e.dataset_to_index)
    order = [e.episode_index for e in sorted(meta.episodes, key=lambda e: e.dataset_from_index)]
    if order != sorted(order):
        tile.append(Offender(ep_file, None, "index ranges are not in episode order", expected="ascending episode_index", found=order[:10]))
    # totals
    tot: list[Offender] = []
    info = meta.info
    if "total_episodes" in info and info["total_episodes"] != len(meta.episodes):
        tot.append(Offender(formats.INFO_PATH, None, f"total_episodes disagrees with {ep_file}", expected=len(meta.episodes), found=info["total_episodes"]))
    if "total_frames" in info and info["total_frames"] != meta.total_frames:
        tot.append(Offender(formats.INFO_PATH, None, f"total_frames disagrees with the episode lengths in {ep_file}", expected=meta.total_frames, found=info["total_frames"]))
    if "total_tasks" in info and info["total_tasks"] != len(meta.tasks):
        tot.append(Offender(formats.INFO_PATH, None, "total_tasks disagrees with the tasks table", expected=len(meta.tasks), found=info["total_tasks"]))
    if meta.episodes and meta.episodes[-1].dataset_to_index != meta.total_frames and not tile:
        tot.append(Offender(where(meta.episodes[-1].episode_index), meta.episodes[-1].episode_index, "last episode does not end at the frame total",
                            expected=meta.total_frames, found=meta.episodes[-1].dataset_to_index))
    # tasks named by the episodes metadata
    known = set(meta.tasks.values())
    tasks_file = formats.TASKS_PARQUET_PATH if meta.codebase_version == "v3.0" else formats.TASKS_JSONL_PATH
    task_off = [
        Offender(where(e.episode_index), e.episode_index, f"task {t!r} is not in {tasks_file}", expected=sorted(known)[:3], found=t)
        for e in meta.episodes for t in e.tasks if t not in known
    ]
    return [
        _outcome("episode_ranges_tile", tile, metadata={"episodes": len(meta.episodes), "total_frames": meta.total_frames}),
        _outcome("totals_agree", tot),
        _outcome("task_indices_exist", task_off, metadata={"tasks": len(meta.tasks)}),
    ]


def check_source_files(
    root: str | Path,
    meta: DatasetMeta,
    *,
    episodes: Sequence[int] | None = None,
    listing: Sequence[str] | None = None,
    orphans: bool = True,
    videos: bool = True,
) -> list[CheckOutcome]:
    """Run the source file rules.

    Args:
        root: local dataset root holding (at least) the files of ``episodes``.
        meta: the dataset's metadata (all episodes).
        episodes: check only the files these episodes use (Hub sources fetch
            only the selected episodes); ``None`` checks every episode.
        listing: every file of the dataset, relative to its root, when the
            local root is a partial copy (Hub: ``HubSource.list_files()``);
            ``None`` walks ``root`` (every folder but ``meta/`` and hidden ones).
        orphans: run ``no_orphan_files`` (False when no complete file list
            exists, e.g. the Hub could not list the repository: the rule is
            then reported as not run).
        videos: check the video files (False for a ``skip_videos``
            conversion: no mp4 is read or counted as an orphan, and the files
            the declared video features' ``video_path`` names stay the
            dataset's own).

    Returns:
        One :class:`CheckOutcome` per name in :data:`SOURCE_FILE_RULES`, in
        that order. Offenders name the file (relative to ``root``) and the
        first episode it concerns; the detail names every episode and camera
        that needs the file (v3.0 shards hold several episodes). A missing
        file's offender names the template that points to it and where a
        misplaced copy was found; orphans are any ``.parquet`` / ``.mp4``
        outside ``meta/`` that no template names for any episode. Git LFS
        pointer files (a clone without git-lfs) are reported by
        ``files_non_empty``, counted, with the command that fetches them.
        Cost: parquet footers, the ``episode_index`` and ``task_index``
        columns, and one demux pass per mp4 (about 20 ms for a 400-frame
        640x480 AV1 file); nothing is decoded.
    """
    from lerobot_lance import video
    from lerobot_lance.lfs import FETCH_HINT, is_lfs_pointer, pointer_detail
    from lerobot_lance.quality.file_locations import SimilarFiles, common_folder, dataset_listing, episode_list, is_dataset_file

    root = Path(root)
    keep = set(episodes) if episodes is not None else None
    sel = [e for e in meta.episodes if keep is None or e.episode_index in keep]
    data_eps: dict[str, list[int]] = defaultdict(list)
    for e in meta.episodes:
        data_eps[e.data_path].append(e.episode_index)
    video_eps: dict[str, list[Any]] = defaultdict(list)
    for e in meta.episodes:
        for ref in e.videos.values():
            video_eps[ref.relative_path].append((e, ref))
    want_data = list(dict.fromkeys(e.data_path for e in sel))
    want_video = list(dict.fromkeys(r.relative_path for e in sel for r in e.videos.values())) if videos else []
    present: set[str] | None = (dataset_listing(root) if listing is None else set(listing)) if orphans else None
    info = meta.info

    def needed_by(rel: str) -> tuple[int, str]:
        """(first episode, who needs the file: "camera X, episodes 2, 3") of a
        referenced file; a file of one episode names only its camera."""
        if rel in data_eps:
            eps = data_eps[rel]
            return eps[0], f"data of {episode_list(eps)}" if len(eps) > 1 else ""
        pairs = video_eps[rel]
        cams = list(dict.fromkeys(r.video_key for _, r in pairs))
        eps = sorted({e.episode_index for e, _ in pairs})
        text = f"{'camera' if len(cams) == 1 else 'cameras'} {', '.join(cams)}"
        return eps[0], f"{text}, {episode_list(eps)}" if len(eps) > 1 else text

    exist, empty = [], []
    usable: set[str] = set()
    similar: SimilarFiles | None = None
    missing_by_group: dict[tuple[str, str | None], list[tuple[str, list[str]]]] = defaultdict(list)
    pointers: list[str] = []
    for rel in [*want_data, *want_video]:
        first_ep, need = needed_by(rel)
        p = root / rel
        if not p.is_file():
            if similar is None:
                listed = present if present is not None else dataset_listing(root)
                similar = SimilarFiles(listed, [*data_eps, *video_eps], meta.video_keys)
            cam = None if rel in data_eps else video_eps[rel][0][1].video_key
            key = "data_path" if cam is None else "video_path"
            found = similar.find(rel, cam)
            missing_by_group[(key, cam)].append((rel, found))
            where = f"; a misplaced copy may be {found[0]}" if found else ""
            exist.append(Offender(rel, first_ep, f"file missing{f' ({need})' if need else ''}{where}"))
        elif p.stat().st_size == 0:
            empty.append(Offender(rel, first_ep, f"file is empty{f' ({need})' if need else ''}", expected="> 0 bytes", found="0 bytes"))
        elif is_lfs_pointer(p):
            pointers.append(rel)
            empty.append(Offender(rel, first_ep, f"file is {pointer_detail(p)}{f' ({need})' if need else ''}",
                                  expected="the file's content", found="a Git LFS pointer"))
        else:
            usable.add(rel)
    exist_notes = []
    for (key, cam), items in missing_by_group.items():
        total = sum(1 for r in (want_data if cam is None else want_video) if cam is None or video_eps[r][0][1].video_key == cam)
        what = "data files" if cam is None else f"files of camera {cam}"
        copies = [f[0] for _, f in items if f]
        text = f"{len(items)} of {total} {what} missing where {key} {info.get(key)!r} points (e.g. {items[0][0]})"
        if copies:
            text += f"; {len(copies)} file(s) of the same name or camera are under {common_folder(copies)} instead, a folder {key} does not name"
        exist_notes.append(text)
    lfs_note = None
    if pointers:
        lfs_note = f"{len(pointers)} of {len(want_data) + len(want_video)} referenced files are Git LFS pointers, not content (the repository was cloned without git-lfs): {FETCH_HINT}"
    out = [
        _outcome("files_exist", exist, metadata={"data_files": len(want_data), "video_files": len(want_video)},
                 note="; ".join(exist_notes) or None),
        _outcome("files_non_empty", empty, metadata={"lfs_pointers": len(pointers)}, note=lfs_note),
    ]
    inside, escaping = symlink_rules.check_files_inside_root(
        root, {rel: data_eps[rel][0] if rel in data_eps else video_eps[rel][0][0].episode_index for rel in [*want_data, *want_video]}
    )
    out.append(inside)
    usable -= escaping  # never read a file from outside the root

    # data rows and task indices
    lengths = {e.episode_index: e.length for e in meta.episodes}
    rows_off, task_off = [], []
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for rel in want_data:
        if rel not in usable:
            continue
        eps = data_eps[rel]
        try:
            pf = pq.ParquetFile(root / rel)
            n = pf.metadata.num_rows
            cols = [c for c in ("episode_index", "task_index") if c in pf.schema_arrow.names]
            t = pf.read(columns=cols) if cols else None
        except Exception as e:  # noqa: BLE001 - any reader error is a defect of this file
            need = needed_by(rel)[1]
            rows_off.append(Offender(rel, eps[0], f"unreadable parquet ({e}{'; ' + need if need else ''})"))
            continue
        want = sum(lengths[i] for i in eps)
        if n != want:
            rows_off.append(Offender(rel, eps[0] if len(eps) == 1 else None,
                                     f"rows differ from the lengths of its {episode_list(eps)}", expected=want, found=n))
        if t is not None and "task_index" in cols:
            values = pc.unique(t["task_index"]).to_pylist()
            missing = sorted(v for v in values if v is not None and int(v) not in meta.tasks)
            for v in missing:
                ep = eps[0]
                if "episode_index" in cols:
                    mask = pc.equal(t["task_index"], v)
                    ep = int(pc.min(pc.filter(t["episode_index"], mask)).as_py())
                tasks_file = formats.TASKS_PARQUET_PATH if meta.codebase_version == "v3.0" else formats.TASKS_JSONL_PATH
                task_off.append(Offender(rel, ep, f"task_index {v} is not in {tasks_file}", expected=sorted(meta.tasks), found=v))
    out += [_outcome("data_rows_match_episodes", rows_off), _outcome("task_indices_exist", task_off)]

    # orphans
    if present is None:
        out.append(CheckOutcome.skip("no_orphan_files", "the dataset's complete file list is not available", description=_DESCRIPTIONS["no_orphan_files"]))
    else:
        referenced = set(data_eps) | set(video_eps)
        # With videos=False the declared video features' files are still in
        # video_eps (skipping videos does not make them orphans), and no mp4 is
        # looked at: the conversion reads none.
        missing_of = {f[0]: rel for items in missing_by_group.values() for rel, f in items if f}
        # a referenced file that is a symlink inside the root makes its target the dataset's own
        linked = {_link_target(root, r) for r in referenced} - {None}
        orphan_off = []
        for p in sorted(present):
            if p in referenced or p in linked or not is_dataset_file(p) or (not videos and p.endswith(".mp4")):
                continue
            detail = "no episode references this file"
            if p in missing_of:
                detail += f"; it looks like the missing {missing_of[p]}"
            orphan_off.append(Offender(p, None, detail))
        note = None
        if orphan_off:
            folders = sorted({common_folder([o.file]) for o in orphan_off if o.file})
            note = f"{len(orphan_off)} file(s) no template names, in {', '.join(folders[:5])}{' ...' if len(folders) > 5 else ''}"
        out.append(_outcome("no_orphan_files", orphan_off, metadata={"files_listed": len(present)}, note=note))

    # containers: packets cover the episodes; stream matches info.json
    cover, stream, codec = [], [], []
    for rel in want_video:
        if rel not in usable:
            continue
        pairs = video_eps[rel]
        key = pairs[0][1].video_key
        f = meta.features[key]
        try:
            probe = video.probe_video(root / rel)
        except LeRobotLanceError as e:
            cover.append(Offender(rel, pairs[0][0].episode_index, f"container unreadable ({e}; {needed_by(rel)[1]})",
                                  expected="a readable mp4", found="unreadable"))
            continue
        if pairs[0][1].whole_file:
            e = pairs[0][0]
            if probe.frame_count != e.length:
                cover.append(Offender(rel, e.episode_index, f"camera {key}: frames in the file differ from the episode length", expected=e.length, found=probe.frame_count))
        else:
            # an episode is its length frames from from_timestamp (VideoRef.window), whatever to_timestamp says
            ends = {p[0].episode_index: p[1].window(p[0].length, meta.fps)[1] for p in pairs}
            frames_needed = int(round(max(ends.values()) * meta.fps))
            if probe.frame_count < frames_needed:
                short = [ep for ep, end in ends.items() if round(end * meta.fps) > probe.frame_count]
                cover.append(Offender(rel, short[0], f"camera {key}: shard short of the frames its {episode_list(short)} imply",
                                      expected=f">= {frames_needed} frames", found=f"{probe.frame_count} frames"))
        info = f.info
        exp_codec = info.get("video.codec")
        if exp_codec and _codec_family(exp_codec) != _codec_family(probe.codec):
            codec.append(Offender(rel, pairs[0][0].episode_index, f"camera {key}: info.json video.codec names another codec than the stream's",
                                  expected=exp_codec, found=probe.codec))
        exp_pix = info.get("video.pix_fmt")
        if exp_pix and probe.pix_fmt and exp_pix != probe.pix_fmt:
            codec.append(Offender(rel, pairs[0][0].episode_index, f"camera {key}: info.json video.pix_fmt names another pixel format than the stream's",
                                  expected=exp_pix, found=probe.pix_fmt))
        exp_w, exp_h = info.get("video.width"), info.get("video.height")
        if exp_w is None:
            dims = camera_dims(f.shape, f.names)
            exp_h, exp_w = dims.height, dims.width
        if (exp_w, exp_h) != (probe.width, probe.height):
            stream.append(Offender(rel, pairs[0][0].episode_index, f"camera {key}: resolution", expected=f"{exp_w}x{exp_h}", found=f"{probe.width}x{probe.height}"))
        exp_fps = float(info.get("video.fps") or meta.fps)
        if probe.fps and abs(probe.fps - exp_fps) > 0.01 * exp_fps:
            stream.append(Offender(rel, pairs[0][0].episode_index, f"camera {key}: fps", expected=exp_fps, found=round(probe.fps, 3)))
    out += [
        _outcome("video_frames_cover_episodes", cover, metadata={"video_files": len(want_video)}),
        _outcome("episode_windows_match_length", _window_end_offenders(root, meta, sel), severity="WARN",
                 metadata={"tolerance_s": formats.DEFAULT_TOLERANCE_S}),
        _outcome("video_stream_matches_info", stream),
        _outcome("video_codec_matches_info", codec, severity="WARN"),
    ]
    return out


def _window_end_offenders(root: Path, meta: DatasetMeta, episodes: Sequence[Any]) -> list[Offender]:
    """One offender per episode and camera whose declared ``to_timestamp``
    differs from ``from_timestamp + length / fps`` by more than
    :data:`~lerobot_lance.formats.DEFAULT_TOLERANCE_S` (some real datasets
    write the last frame's timestamp, one frame short). The converter reads
    ``length`` frames from ``from_timestamp`` either way; whether the file
    holds them is ``video_frames_cover_episodes`` / ``segment_frame_count``."""
    out: list[Offender] = []
    files: dict[int, str] | None = None
    for e in episodes:
        for key, ref in e.videos.items():
            if ref.whole_file:
                continue
            if files is None:
                files = _episode_meta_files(root, meta)
            _, end = ref.window(e.length, meta.fps)
            if abs(ref.to_timestamp - end) > formats.DEFAULT_TOLERANCE_S:
                out.append(Offender(
                    files.get(e.episode_index, _meta_file_of(meta.codebase_version)), e.episode_index,
                    f"camera {key}: to_timestamp is not from_timestamp + length / fps "
                    f"({ref.from_timestamp:.6f} + {e.length} / {meta.fps}); {e.length} frames are read from from_timestamp",
                    expected=f"{end:.6f} s", found=f"{ref.to_timestamp:.6f} s",
                ))
    return out


def _codec_family(name: str) -> str:
    n = name.lower()
    return {"libdav1d": "av1", "libaom-av1": "av1", "libsvtav1": "av1", "avc": "h264", "libx264": "h264", "h265": "hevc", "libx265": "hevc"}.get(n, n)


def source_listing(source: Any) -> tuple[list[str] | None, bool]:
    """``(listing, orphans)`` arguments of :func:`check_source_files` for a source:
    a local directory is walked; a Hub repository is listed at its pinned
    commit, and when the Hub cannot list it the orphan rule is not run."""
    from lerobot_lance.errors import SourceNotFoundError

    try:
        return source.list_files(), True
    except SourceNotFoundError:
        return None, False
