"""Fault kinds of malformed metadata (issue 8, items 14-16): values of the
wrong type or out of range, files that are not UTF-8 or nest too deep,
rows that are not objects, templates that ask for absurd widths, v3.0 video
windows that are inverted or NaN, a ``stats.json`` that is a list, and
entries of ``meta/`` that are not regular files.

Each is refused by a ``source_meta`` rule with a located message, before
anything is committed. Defects that are reported as WARN (duplicate task
strings, ``names`` that disagree with ``shape``, declared stats of the wrong
width) are not fault kinds (the catalogue holds blocking faults); see
``tests/test_malformed_meta.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa

from tests.faults import (
    CAM,
    INFO,
    V2_EPISODES,
    V2_TASKS,
    V3_EPISODES,
    _fault,
    edit_parquet,
    read_jsonl,
    set_column,
    write_bytes,
    write_jsonl,
)

STATS = "meta/stats.json"
V3_TASKS = "meta/tasks.parquet"
#: Nesting depth of the "JSON nested 100,000 deep" variants (RecursionError in json.loads).
DEEP = 100_000


def _edit_info_text(root: Path, edit) -> None:
    """Rewrite info.json through ``edit(text) -> bytes`` (for what json.dumps cannot write)."""
    write_bytes(root / INFO, edit((root / INFO).read_text()))


def _set_info(root: Path, key: str, raw_json: str) -> None:
    """Set ``key`` of info.json to the raw JSON text ``raw_json`` (e.g. ``NaN``)."""
    info = json.loads((root / INFO).read_text())
    info[key] = "__RAW__"
    text = json.dumps(info, indent=4).replace('"__RAW__"', raw_json)
    write_bytes(root / INFO, text.encode())


# --- item 14: values that used to raise a traceback ---------------------------------


@_fault("fps_nan", "g1_v21", "required_info_keys", "source_meta", None, INFO, "info.json fps is NaN")
def _fps_nan(root: Path) -> None:
    _set_info(root, "fps", "NaN")


@_fault("fps_infinity", "g1_v30", "required_info_keys", "source_meta", None, INFO, "v3.0 info.json fps is Infinity")
def _fps_infinity(root: Path) -> None:
    _set_info(root, "fps", "Infinity")


@_fault("chunks_size_not_int", "g1_v21", "required_info_keys", "source_meta", None, INFO, 'info.json chunks_size is the string "1000"')
def _chunks_size_not_int(root: Path) -> None:
    _set_info(root, "chunks_size", '"1000"')


@_fault("info_not_utf8", "g1_v21", "supported_version", "source_meta", None, INFO, "info.json robot_type holds a Latin-1 byte (0xe9): not UTF-8")
def _info_not_utf8(root: Path) -> None:
    raw = (root / INFO).read_bytes()
    info = json.loads(raw)
    marker = json.dumps(info["robot_type"]).encode()
    assert marker in raw
    write_bytes(root / INFO, raw.replace(marker, b'"unitr\xe9e_g1"', 1))


@_fault("info_nested_deep", "g1_v21", "supported_version", "source_meta", None, INFO, f"info.json carries a key nested {DEEP:,} arrays deep")
def _info_nested_deep(root: Path) -> None:
    _set_info(root, "notes", "[" * DEEP + "]" * DEEP)


@_fault(
    "episodes_jsonl_nested_deep", "g1_v21", "meta_files_readable", "source_meta", None, V2_EPISODES,
    f"meta/episodes.jsonl line 3 is an array nested {DEEP:,} deep",
)
def _episodes_jsonl_nested_deep(root: Path) -> None:
    lines = (root / V2_EPISODES).read_text().splitlines()
    lines[2] = "[" * DEEP + "]" * DEEP
    write_bytes(root / V2_EPISODES, ("\n".join(lines) + "\n").encode())


@_fault("task_row_without_index", "g1_v21", "meta_files_readable", "source_meta", None, V2_TASKS, "tasks.jsonl row has no task_index")
def _task_row_without_index(root: Path) -> None:
    rows = read_jsonl(root / V2_TASKS)
    write_jsonl(root / V2_TASKS, [{"task": r["task"]} for r in rows])


@_fault("task_index_wrong_type", "g1_v21", "meta_files_readable", "source_meta", None, V2_TASKS, 'tasks.jsonl task_index is the string "zero"')
def _task_index_wrong_type(root: Path) -> None:
    rows = read_jsonl(root / V2_TASKS)
    write_jsonl(root / V2_TASKS, [{**r, "task_index": "zero"} for r in rows])


@_fault(
    "task_index_wrong_type_v30", "g1_v30", "meta_files_readable", "source_meta", None, V3_TASKS,
    "v3.0 tasks.parquet task_index column holds strings",
)
def _task_index_wrong_type_v30(root: Path) -> None:
    edit_parquet(root, V3_TASKS, lambda t: set_column(t, "task_index", [str(v) for v in t["task_index"].to_pylist()], pa.string()))


@_fault(
    "episodes_line_not_object", "g1_v21", "meta_files_readable", "source_meta", None, V2_EPISODES,
    "meta/episodes.jsonl line 3 is a JSON array [2, 357], not an object",
)
def _episodes_line_not_object(root: Path) -> None:
    rows = read_jsonl(root / V2_EPISODES)
    lines = [json.dumps(r) for r in rows]
    lines[2] = json.dumps([rows[2]["episode_index"], rows[2]["length"]])
    write_bytes(root / V2_EPISODES, ("\n".join(lines) + "\n").encode())


@_fault(
    "template_width_absurd", "g1_v21", "path_templates_safe", "source_meta", None, INFO,
    "info.json data_path pads episode_index to 100,000,000 characters ({episode_index:100000000d})",
)
def _template_width_absurd(root: Path) -> None:
    info = json.loads((root / INFO).read_text())
    info["data_path"] = info["data_path"].replace("{episode_index:06d}", "{episode_index:100000000d}")
    assert "100000000d" in info["data_path"]
    write_bytes(root / INFO, json.dumps(info, indent=4).encode())


# --- item 15: refused before anything is committed ----------------------------------


def _v3_window_values(root: Path, ep: int, from_s: float | None = None, to_s: float | None = None, swap: bool = False) -> None:
    cols = (f"videos/{CAM}/from_timestamp", f"videos/{CAM}/to_timestamp")

    def edit(t: pa.Table) -> pa.Table:
        eps = t["episode_index"].to_pylist()
        lo, hi = t[cols[0]].to_pylist(), t[cols[1]].to_pylist()
        i = eps.index(ep)
        if swap:
            lo[i], hi[i] = hi[i], lo[i]
        if from_s is not None:
            lo[i] = from_s
        if to_s is not None:
            hi[i] = to_s
        return set_column(set_column(t, cols[0], lo), cols[1], hi)

    edit_parquet(root, V3_EPISODES, edit)


@_fault(
    "window_inverted_v30", "g1_v30", "meta_files_readable", "source_meta", 2, V3_EPISODES,
    "v3.0 episode 2's from_timestamp and to_timestamp swapped (window [11.9, 0.0) s)",
)
def _window_inverted_v30(root: Path) -> None:
    _v3_window_values(root, 2, swap=True)


@_fault(
    "window_nan_v30", "g1_v30", "meta_files_readable", "source_meta", 3, V3_EPISODES,
    "v3.0 episode 3's from_timestamp is NaN",
)
def _window_nan_v30(root: Path) -> None:
    _v3_window_values(root, 3, from_s=float("nan"))


@_fault("stats_json_list", "g1_v20", "meta_files_readable", "source_meta", None, STATS, "meta/stats.json is a JSON list of its features' stats")
def _stats_json_list(root: Path) -> None:
    stats = json.loads((root / STATS).read_text())
    write_bytes(root / STATS, json.dumps([{k: v} for k, v in stats.items()]).encode())


@_fault("meta_fifo", "g1_v21", "meta_files_readable", "source_meta", None, "meta/notes.fifo", "a FIFO at meta/notes.fifo")
def _meta_fifo(root: Path) -> None:
    os.mkfifo(root / "meta" / "notes.fifo")


@_fault(
    "meta_dangling_symlink", "g1_v30", "meta_files_readable", "source_meta", None, "meta/README.md",
    "meta/README.md is a symbolic link to a file that does not exist",
)
def _meta_dangling_symlink(root: Path) -> None:
    os.symlink("does-not-exist.md", root / "meta" / "README.md")


# --- item 16: accepted silently before; blocking now ---------------------------------


@_fault(
    "negative_episode_index", "g1_v21", "meta_files_readable", "source_meta", None, V2_EPISODES,
    "meta/episodes.jsonl lists episode 2 as episode_index -2",
)
def _negative_episode_index(root: Path) -> None:
    rows = read_jsonl(root / V2_EPISODES)
    rows[2]["episode_index"] = -2
    write_jsonl(root / V2_EPISODES, rows)
