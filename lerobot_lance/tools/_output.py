"""Shared helpers of the dataset tools: read an output of ours, write its
``meta/`` for a new selection of episodes, write a new output root, commit a
new tagged version in place, and run the output checks.

An output (either layout) is read into an :class:`OutputState`: its layout
(``meta/conversion.json`` ``layout``, default ``card``), ``info.json``, tasks,
one metadata record per episode (v2.x: the ``episodes.jsonl`` object; v3.0
and the ``lerobot`` layout: the ``meta/episodes`` parquet row) and each
episode's statistics (card: the ``episodes`` table's ``stats`` struct, i.e.
the statistics the conversion recomputed; lerobot: the ``stats/<feature>/<stat>``
columns of ``meta/episodes``).

A tool's result is described by a list of :class:`EpisodePick` (which input,
which episode, in output order) plus feature changes; :func:`build_meta`
writes the matching ``meta/`` the way LeRobot's ``dataset_tools`` does
(lerobot 0.4.4 ``_copy_and_reindex_episodes_metadata``): episodes renumbered
0..N-1 in output order, ``dataset_from_index``/``dataset_to_index`` contiguous,
tasks restricted to those used and renumbered, ``info.json`` totals and
``splits`` of the result, and ``stats.json`` aggregated from the kept
episodes' statistics (``aggregate_stats``), with the statistics of
``episode_index``, ``index`` and ``task_index`` recomputed for the new values.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from lerobot_lance import formats
from lerobot_lance import stats as st
from lerobot_lance.errors import LeRobotLanceError
from lerobot_lance.formats import column_name

#: The five bookkeeping columns LeRobot requires (``modify_features`` refuses to remove them).
REQUIRED_FEATURES: tuple[str, ...] = ("index", "frame_index", "episode_index", "timestamp", "task_index")
#: ``frames`` column keeping each row's episode index in the dataset it came from.
SOURCE_EPISODE_COLUMN = "source_episode_index"
#: Bookkeeping features whose statistics change when episodes are renumbered.
_RENUMBERED = ("episode_index", "index", "task_index")


class ToolError(LeRobotLanceError):
    """A dataset tool refused its input (named: the output, the episode or the
    feature, what was expected and what was found); nothing was written."""


# ----------------------------------------------------------------------------- reading
@dataclass
class OutputState:
    """One output root of ours, as the tools read it.

    Attributes:
        root: the output root (local directory).
        layout: ``"card"`` or ``"lerobot"``.
        conversion: ``meta/conversion.json``.
        info: ``meta/info.json``.
        tasks: task_index -> task string.
        records: episode_index -> its metadata record (see module docstring), ascending.
        stats: episode_index -> its statistics (feature key -> stat -> array).
        stats_lines: v2.1 card outputs: episode_index -> its ``episodes_stats.jsonl`` object.
    """

    root: Path
    layout: str
    conversion: dict[str, Any]
    info: dict[str, Any]
    tasks: dict[int, str]
    records: dict[int, dict[str, Any]]
    stats: dict[int, dict[str, dict[str, np.ndarray]]]
    stats_lines: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def codebase_version(self) -> str:
        return str(self.info["codebase_version"])

    @property
    def is_v2(self) -> bool:
        return self.codebase_version.startswith("v2")

    @property
    def features(self) -> dict[str, dict[str, Any]]:
        return self.info["features"]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.get("dtype") == "video"]

    @property
    def fps(self) -> int:
        return int(self.info["fps"])

    @property
    def tables(self) -> tuple[str, ...]:
        from lerobot_lance.layouts.names import layout_tables

        return tuple(t for t in layout_tables(self.layout) if (self.root / f"{t}.lance").exists())

    def uri(self, table: str) -> str:
        return str(self.root / f"{table}.lance")

    def dataset(self, table: str, version: int | str | None = None) -> Any:
        import lance

        return lance.dataset(self.uri(table), version=version)

    def lengths(self) -> dict[int, int]:
        return {e: int(r["length"]) for e, r in self.records.items()}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _struct_to_stats(row: Mapping[str, Any] | None, features: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    """The episodes table's ``stats`` struct (flat float lists, underscored
    names: :func:`lerobot_lance.stats.episode_stats_to_struct`) back into
    LeRobot's arrays: cameras ``(3, 1, 1)``, integer features' ``min``/``max``
    int64, ``count`` int64."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, f in features.items():
        s = (row or {}).get(column_name(key))
        if not s:
            continue
        camera = f.get("dtype") in ("video", "image")
        integer = str(f.get("dtype", "")).startswith(("int", "uint", "bool"))
        feat: dict[str, np.ndarray] = {}
        for stat, values in s.items():
            if values is None:
                continue
            arr = np.asarray(values, dtype=np.float64)
            if stat == "count":
                arr = arr.astype(np.int64)
            elif camera:
                arr = arr.reshape(3, 1, 1)
            elif integer and stat in ("min", "max"):
                arr = arr.astype(np.int64)
            feat[stat] = arr
        out[key] = feat
    return out


def read_output(root: str | Path) -> OutputState:
    """Read an output root of ours (either layout).

    A publish (conversion or in-place tool) that was killed on this output is
    recovered first, under the writer lock (rolled back or forward, as
    :func:`lerobot_lance.lance_io.recover_interrupted_publish` decides).

    Raises:
        ToolError: not an output of ours (no ``meta/conversion.json`` with a tag).
        OutputLockedError: a recovery is needed and another process writes the output.
    """
    import pyarrow.parquet as pq

    root = Path(str(root).removeprefix("file://")).expanduser()
    from lerobot_lance.lance_io import JOURNAL, recover_interrupted_publish
    from lerobot_lance.output_lock import output_lock

    if (root / JOURNAL).exists():  # an interrupted publish is recovered before anything reads the output
        with output_lock(str(root), command="lerobot-lance tools: recover an interrupted publish"):
            recover_interrupted_publish(root / JOURNAL)
    conv_path = root / "meta" / "conversion.json"
    try:
        conversion = json.loads(conv_path.read_text(encoding="utf-8"))
        info = json.loads((root / formats.INFO_PATH).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ToolError(f"{root}: not an output of lerobot-lance ({err}); expected meta/conversion.json and meta/info.json") from None
    if "tag" not in conversion:
        raise ToolError(f"{conv_path}: no tag; expected the record of a finished conversion")
    layout = conversion.get("layout") or "card"
    version = str(info.get("codebase_version"))
    records: dict[int, dict[str, Any]] = {}
    stats_lines: dict[int, dict[str, Any]] = {}
    if version.startswith("v2"):
        for obj in _read_jsonl(root / formats.EPISODES_JSONL_PATH):
            records[int(obj["episode_index"])] = obj
        if (root / formats.EPISODES_STATS_JSONL_PATH).is_file():
            stats_lines = {int(o["episode_index"]): o for o in _read_jsonl(root / formats.EPISODES_STATS_JSONL_PATH)}
        tasks = {int(o["task_index"]): str(o["task"]) for o in _read_jsonl(root / formats.TASKS_JSONL_PATH)}
    else:
        for f in sorted(root.glob(formats.EPISODES_PARQUET_GLOB)):
            for row in pq.read_table(f).to_pylist():
                records[int(row["episode_index"])] = row
        t = pq.read_table(root / formats.TASKS_PARQUET_PATH).to_pydict()
        text = t.get("task") or next(v for k, v in t.items() if k != "task_index")
        tasks = {int(i): str(x) for i, x in zip(t["task_index"], text)}
    records = dict(sorted(records.items()))
    if layout == "card":
        eps = lance_dataset(root, formats.EPISODES_TABLE).to_table(columns=["episode_index", "stats"]).to_pylist()
        stats = {int(r["episode_index"]): _struct_to_stats(r["stats"], info["features"]) for r in eps}
    else:
        stats = {e: st.stats_from_json(r) for e, r in records.items()}
    return OutputState(root, layout, conversion, info, tasks, records, stats, stats_lines)


def lance_dataset(root: Path, table: str, version: int | str | None = None) -> Any:
    import lance

    return lance.dataset(str(Path(root) / f"{table}.lance"), version=version)


# ----------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class EpisodePick:
    """One episode of a tool's result.

    Attributes:
        source: position of its input in the tool's inputs.
        episode_index: its episode_index in that input.
        new_index: its episode_index in the result (0..N-1, output order).
        start: ``index`` of its first frame in the result.
        length: its frames.
    """

    source: int
    episode_index: int
    new_index: int
    start: int
    length: int


def plan_episodes(inputs: Sequence[OutputState], selection: Sequence[tuple[int, int]]) -> list[EpisodePick]:
    """Number ``(input position, episode_index)`` pairs 0..N-1 in the given order,
    each starting where the previous one ends (LeRobot's contiguous ``index``)."""
    picks, start = [], 0
    for new, (src, ep) in enumerate(selection):
        n = int(inputs[src].records[ep]["length"])
        picks.append(EpisodePick(src, ep, new, start, n))
        start += n
    return picks


def check_episode_indices(state: OutputState, episodes: Sequence[int], what: str) -> None:
    """Raises ToolError naming the episodes ``state`` lacks."""
    bad = sorted(set(episodes) - set(state.records))
    if bad:
        raise ToolError(f"{state.root}: {what} names episodes the output does not hold: {bad}; "
                        f"expected episode indices in 0..{max(state.records)} (it holds {len(state.records)} episodes)")


def unify_tasks(inputs: Sequence[OutputState], picks: Sequence[EpisodePick]) -> tuple[dict[int, str], list[dict[int, int]]]:
    """Tasks used by the picked episodes, in first-use order, numbered 0..T-1
    (LeRobot keeps one task_index per task string); per input, old task_index
    -> new. The tasks an episode uses are read from its ``tasks`` record."""
    by_text: dict[str, int] = {}
    for p in picks:
        for text in inputs[p.source].records[p.episode_index].get("tasks") or []:
            by_text.setdefault(str(text), len(by_text))
    maps: list[dict[int, int]] = []
    for s in inputs:
        m = {}
        for i, text in s.tasks.items():
            if text not in by_text:
                by_text[text] = len(by_text)  # a task only frames name: kept, never dropped silently
            m[i] = by_text[text]
        maps.append(m)
    named = {by_text[str(t)] for p in picks for t in inputs[p.source].records[p.episode_index].get("tasks") or []}
    used = named or {v for p in picks for v in maps[p.source].values()}  # records without tasks: keep all
    tasks = {i: t for t, i in by_text.items() if i in used}
    # renumber densely, keeping the order
    dense = {old: new for new, old in enumerate(sorted(tasks))}
    return {dense[i]: t for i, t in sorted(tasks.items())}, [{k: dense[v] for k, v in m.items() if v in dense} for m in maps]


# ----------------------------------------------------------------------------- statistics
def _bookkeeping_stats(old: Mapping[str, np.ndarray], values: np.ndarray) -> dict[str, np.ndarray]:
    computed = st.feature_stats(values, quantiles=any(q in old for q in st.QUANTILE_NAMES))
    return {s: computed[s] for s in old if s in computed}


def picked_stats(inputs: Sequence[OutputState], picks: Sequence[EpisodePick], task_maps: Sequence[Mapping[int, int]],
                 episode_tasks: Mapping[int, np.ndarray]) -> list[dict[str, dict[str, np.ndarray]]]:
    """Each picked episode's statistics, with ``episode_index``, ``index`` and
    ``task_index`` recomputed for the renumbered rows (``episode_tasks``: new
    episode index -> its rows' new task_index values)."""
    out = []
    for p in picks:
        s = {k: dict(v) for k, v in inputs[p.source].stats.get(p.episode_index, {}).items()}
        if "episode_index" in s:
            s["episode_index"] = _bookkeeping_stats(s["episode_index"], np.full(p.length, p.new_index, dtype=np.int64))
        if "index" in s:
            s["index"] = _bookkeeping_stats(s["index"], np.arange(p.start, p.start + p.length, dtype=np.int64))
        if "task_index" in s and p.new_index in episode_tasks:
            s["task_index"] = _bookkeeping_stats(s["task_index"], episode_tasks[p.new_index])
        out.append(s)
    return out


# ----------------------------------------------------------------------------- meta/
@dataclass
class MetaPlan:
    """Everything :func:`build_meta` needs besides the inputs.

    Attributes:
        picks: the result's episodes in order.
        tasks: the result's tasks (task_index -> text).
        task_maps: per input, old task_index -> new.
        stats: per pick, its statistics (:func:`picked_stats`), same order.
        features: the result's ``info.json`` features.
        video_files: per input, ``(video_key, chunk_index, file_index)`` ->
            the result's ``(chunk_index, file_index)`` (v3.0 meta: merge offsets).
        record: the tool's fields of ``conversion.json``.
    """

    picks: list[EpisodePick]
    tasks: dict[int, str]
    task_maps: list[dict[int, int]]
    stats: list[dict[str, dict[str, np.ndarray]]]
    features: dict[str, dict[str, Any]]
    video_files: list[dict[tuple[str, int, int], tuple[int, int]]]
    record: dict[str, Any]


def _result_info(base: OutputState, plan: MetaPlan) -> dict[str, Any]:
    info = json.loads(json.dumps(base.info))
    n = len(plan.picks)
    info["features"] = plan.features
    info["total_episodes"] = n
    info["total_frames"] = sum(p.length for p in plan.picks)
    if "total_tasks" in info:
        info["total_tasks"] = len(plan.tasks)
    video_keys = [k for k, f in plan.features.items() if f.get("dtype") == "video"]
    if "total_videos" in info:
        info["total_videos"] = n * len(video_keys) if base.is_v2 else len({v for m in plan.video_files for v in m.values()})
    if "total_chunks" in info:
        size = int(info.get("chunks_size") or formats.DEFAULT_CHUNKS_SIZE)
        info["total_chunks"] = len({p.new_index // size for p in plan.picks})
    info["splits"] = {"train": f"0:{n}"}
    if not video_keys and info.get("video_path"):
        info["video_path"] = None
    info["storage_format"] = formats.STORAGE_FORMAT
    return info


def build_meta(inputs: Sequence[OutputState], plan: MetaPlan, dest: Path) -> list[str]:
    """Write the result's ``meta/`` (the first input's version and layout) into
    ``dest`` (replaced), ``conversion.json`` excluded.

    Returns:
        The files written, relative to ``dest`` (posix), sorted.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    base = inputs[0]
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    info = _result_info(base, plan)
    video_keys = [k for k, f in plan.features.items() if f.get("dtype") == "video"]
    removed = [k for k in base.features if k not in plan.features]
    written = ["info.json", "stats.json"]
    (dest / "info.json").write_text(json.dumps(info, indent=4), encoding="utf-8")
    agg = st.aggregate_stats(plan.stats)
    agg = {k: v for k, v in agg.items() if k in plan.features}
    (dest / "stats.json").write_text(json.dumps(st.stats_to_json(agg), indent=4), encoding="utf-8")
    if base.is_v2:
        lines, stat_lines = [], []
        for p, s in zip(plan.picks, plan.stats):
            rec = dict(inputs[p.source].records[p.episode_index])
            rec["episode_index"] = p.new_index
            lines.append(json.dumps(rec))
            src_line = inputs[p.source].stats_lines.get(p.episode_index)
            if src_line is not None or base.stats_lines:
                declared = st.stats_from_json(src_line["stats"]) if src_line else {}
                declared = {k: v for k, v in declared.items() if k in plan.features}
                for k in (*_RENUMBERED, *[k for k in plan.features if k not in base.features]):
                    if k in s:
                        declared[k] = s[k] if k not in declared else {x: s[k][x] for x in declared[k] if x in s[k]}
                stat_lines.append(json.dumps({"episode_index": p.new_index, "stats": st.stats_to_json(declared)}))
        (dest / "episodes.jsonl").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
        written.append("episodes.jsonl")
        if stat_lines:
            (dest / "episodes_stats.jsonl").write_text("".join(x + "\n" for x in stat_lines), encoding="utf-8")
            written.append("episodes_stats.jsonl")
        (dest / "tasks.jsonl").write_text(
            "".join(json.dumps({"task_index": i, "task": t}) + "\n" for i, t in sorted(plan.tasks.items())), encoding="utf-8")
        written.append("tasks.jsonl")
    else:
        rows = []
        for p, s in zip(plan.picks, plan.stats):
            src = inputs[p.source]
            rec = {k: v for k, v in src.records[p.episode_index].items()
                   if not any(k.startswith((f"videos/{r}/", f"stats/{r}/")) for r in removed) and not k.startswith("stats/")}
            rec["episode_index"] = p.new_index
            rec["dataset_from_index"] = p.start
            rec["dataset_to_index"] = p.start + p.length
            for key in video_keys:
                if f"videos/{key}/chunk_index" in rec:
                    old = (key, int(rec[f"videos/{key}/chunk_index"]), int(rec[f"videos/{key}/file_index"]))
                    chunk, file = plan.video_files[p.source].get(old, old[1:])
                    rec[f"videos/{key}/chunk_index"], rec[f"videos/{key}/file_index"] = chunk, file
            rec["meta/episodes/chunk_index"] = 0
            rec["meta/episodes/file_index"] = 0
            for feature, fstats in st.stats_to_json({k: v for k, v in s.items() if k in plan.features}).items():
                for stat, value in fstats.items():
                    rec[f"stats/{feature}/{stat}"] = value
            if SOURCE_EPISODE_COLUMN in rec or base.layout == "lerobot":
                rec[SOURCE_EPISODE_COLUMN] = int(src.records[p.episode_index].get(SOURCE_EPISODE_COLUMN, p.episode_index))
            rows.append(rec)
        (dest / "episodes" / "chunk-000").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), dest / "episodes" / "chunk-000" / "file-000.parquet")
        written.append("episodes/chunk-000/file-000.parquet")
        tasks = pd.DataFrame({"task_index": sorted(plan.tasks)}, index=pd.Index([plan.tasks[i] for i in sorted(plan.tasks)], name="task"))
        tasks.to_parquet(dest / "tasks.parquet")
        written.append("tasks.parquet")
    # files of the input's meta/ the tools do not rewrite (README-like extras) are copied as they are
    known = {"info.json", "stats.json", "episodes.jsonl", "episodes_stats.jsonl", "tasks.jsonl", "tasks.parquet", "conversion.json"}
    for path in sorted((base.root / "meta").rglob("*")):
        rel = path.relative_to(base.root / "meta").as_posix()
        if path.is_file() and rel not in known and not rel.startswith("episodes/"):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest / rel)
            written.append(rel)
    return sorted(written)


def conversion_record(inputs: Sequence[OutputState], plan: MetaPlan, tables: Sequence[str], rows: Mapping[str, int]) -> dict[str, Any]:
    """``conversion.json`` of a tool's result, without ``tag``/``versions``
    (the commit adds them): the first input's record with the result's
    episodes, rows and tables, plus ``tool`` (verb, inputs and their tags,
    ``episode_mapping``: per input, its episode_index -> the result's)."""
    base = dict(inputs[0].conversion)
    for k in ("tag", "versions", "meta_files", "requested_episodes", "kept_episodes"):
        base.pop(k, None)
    mapping = [{str(p.episode_index): p.new_index for p in plan.picks if p.source == i} for i in range(len(inputs))]
    base.update(
        rows=dict(rows), tables=list(tables), episodes=list(range(len(plan.picks))), excluded_episodes={},
        published_at=datetime.now(timezone.utc).isoformat(),
        tool={**plan.record, "inputs": [{"output": str(s.root), "tag": s.conversion.get("tag")} for s in inputs],
              "episode_mapping": mapping if len(inputs) > 1 else mapping[0]},
    )
    if inputs[0].layout == "lerobot":
        base["episode_mapping"] = mapping[0] if len(inputs) == 1 else {f"{i}:{k}": v for i, m in enumerate(mapping) for k, v in m.items()}
    return base


# ----------------------------------------------------------------------------- checks
def run_output_checks(root: Path, layout: str, *, meta_dir: Path | None = None, versions: dict[str, int] | None = None,
                      tag: str | None = None, skip_videos: bool = False) -> list[Any]:
    """The blocking output checks a conversion of ``layout`` runs (the same
    functions: :func:`lerobot_lance.quality.output_rules.check_output` /
    :func:`lerobot_lance.layouts.lerobot_checks.check_lerobot_output`), on the
    given table ``versions`` and ``meta_dir`` (default: latest, ``<root>/meta``).
    There is no source to compare the mp4s with: ``videos_sha256`` compares
    each row's ``sha256`` with its stored blob.

    Returns:
        The :class:`~lerobot_lance.quality.result.CheckOutcome` list.
    """
    if layout == "lerobot":
        from lerobot_lance.layouts.lerobot_checks import check_lerobot_output

        return check_lerobot_output(str(root), None, tag=tag, versions=versions, meta_dir=meta_dir)
    import tempfile

    from lerobot_lance.quality.output_rules import check_output
    from lerobot_lance.readers import read_dataset_meta

    with tempfile.TemporaryDirectory(prefix="lerobot-lance-check-") as tmp:
        os.symlink(Path(meta_dir or root / "meta").resolve(), Path(tmp) / "meta")
        meta = read_dataset_meta(tmp)
    return check_output(str(root), meta, None, tag=tag, skip_videos=skip_videos, versions=versions)


def failed(outcomes: Sequence[Any], ignore: Sequence[str] = ()) -> list[Any]:
    return [o for o in outcomes if not o.passed and o.severity == "ERROR" and o.name not in ignore]


def refuse_failed(root: Path, outcomes: Sequence[Any], ignore: Sequence[str] = ()) -> None:
    bad = failed(outcomes, ignore)
    if bad:
        raise ToolError(f"{root}: the result failed its output checks, nothing was published: "
                        + "; ".join(f"{o.name}: {o.message}" for o in bad))


# ----------------------------------------------------------------------------- results
@dataclass
class ToolResult:
    """What a tool wrote.

    Attributes:
        output: the result's output root.
        tag: the shared tag of its tables.
        versions: table -> tagged version.
        rows: table -> rows.
        episodes: episodes in the result.
        in_place: a new version of the input (True) or a new output root.
        bytes_written: bytes of the files the tool created (new data,
            deletion, index and manifest files; ``meta/`` included).
        output_bytes: bytes of the whole output root afterwards (every version).
        seconds: wall time.
        checks: ``{check name: passed}``.
        previous_tag: in place, the tag that still opens the state before.
    """

    output: str
    tag: str
    versions: dict[str, int]
    rows: dict[str, int]
    episodes: int
    in_place: bool
    bytes_written: int
    output_bytes: int
    seconds: float
    checks: dict[str, bool]
    previous_tag: str | None = None


def file_sizes(root: Path) -> dict[str, int]:
    """Every file under ``root`` (relative posix path -> bytes)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            try:
                out[p.relative_to(root).as_posix()] = p.stat().st_size
            except OSError:
                continue
    return out


def new_bytes(before: Mapping[str, int], after: Mapping[str, int]) -> int:
    """Bytes of files that are new or changed in ``after``."""
    return sum(n for rel, n in after.items() if before.get(rel) != n or rel not in before)


def tool_tag(verb: str) -> str:
    """``<verb>-YYYYmmddTHHMMSSffffffZ`` (sortable, unique)."""
    return f"{verb}-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def _meta_table_batches(meta_dir: Path) -> pa.Table:
    from lerobot_lance.layouts import lerobot as L

    files = sorted(p for p in meta_dir.rglob("*") if p.is_file() and p.name != "conversion.json")
    return pa.Table.from_pylist([{"path": p.relative_to(meta_dir).as_posix(), "data": p.read_bytes()} for p in files], schema=L.META_SCHEMA)


def layout_indexes(layout: str) -> dict[str, dict[str, str]]:
    from lerobot_lance.layouts import get_layout

    return dict(get_layout(layout).indexes)


TableWriter = Callable[[], tuple[pa.Schema, Iterator[pa.RecordBatch]]]


def write_new_output(
    inputs: Sequence[OutputState], plan: MetaPlan, dest: str | Path, tables: Mapping[str, TableWriter], verb: str,
) -> ToolResult:
    """Write a tool's result as a new output root ``dest``: each table from its
    writer (``() -> (schema, batches)``), the ``meta/`` of ``plan``, the
    ``meta`` table (lerobot layout), the indexes, one shared tag (and
    ``latest``), the marker and the dataset card; then the layout's output
    checks. Tables are written under ``<dest>/.lerobot-lance-pending/`` and
    moved into place only when all of them are written and checked, so a
    failure leaves no table behind.

    Raises:
        ToolError: ``dest`` exists and is not empty, lies inside an input,
            or the result fails a check (``dest`` is removed again).
    """
    import lance

    from lerobot_lance.lance_io import LATEST_TAG, PENDING_TABLES_DIR
    from lerobot_lance.output_lock import output_lock
    from lerobot_lance.output_root import claim_output_root, write_dataset_card

    t0 = time.monotonic()
    root = Path(str(dest)).expanduser()
    for s in inputs:
        r = s.root.resolve()
        if root.resolve() == r or r in root.resolve().parents:
            raise ToolError(f"{root}: the new output lies inside the input {s.root}; expected a directory outside it (or --in-place)")
    if root.exists() and any(root.iterdir()):
        raise ToolError(f"{root}: exists and is not empty; expected a new or empty directory for the result")
    created = not root.exists()
    layout = inputs[0].layout
    try:
        claim_output_root(str(root), f"lerobot-lance {verb} of " + ", ".join(str(s.root) for s in inputs))
        with output_lock(str(root), command=f"lerobot-lance {verb}"):
            pending = root / PENDING_TABLES_DIR
            pending.mkdir()
            meta_new = root / ".lerobot-lance-meta.new"
            files = build_meta(inputs, plan, meta_new)
            writers = dict(tables)
            if layout == "lerobot":
                from lerobot_lance.layouts import lerobot as L

                mt = _meta_table_batches(meta_new)
                writers[L.META_TABLE] = lambda: (mt.schema, iter(mt.to_batches()))
            rows, versions = {}, {}
            indexes = layout_indexes(layout)
            for t, writer in writers.items():
                schema, batches = writer()
                reader = pa.RecordBatchReader.from_batches(schema, batches)
                ds = lance.write_dataset(reader, str(pending / f"{t}.lance"), schema=schema, max_rows_per_group=1024)
                for col, kind in indexes.get(t, {}).items():
                    if col in ds.schema.names:
                        ds.create_scalar_index(col, kind)
                ds = lance.dataset(str(pending / f"{t}.lance"))
                rows[t], versions[t] = ds.count_rows(), ds.version
            for t in writers:
                os.rename(pending / f"{t}.lance", root / f"{t}.lance")
            shutil.rmtree(pending)
            outcomes = run_output_checks(root, layout, meta_dir=meta_new, versions=versions,
                                         skip_videos=(layout == "card" and "videos" not in writers))
            refuse_failed(root, outcomes, ignore=("tables_share_tag",))
            tag = tool_tag(verb)
            for t, v in versions.items():
                tags = lance.dataset(str(root / f"{t}.lance")).tags
                tags.create(tag, v)
                tags.create(LATEST_TAG, v)
            record = conversion_record(inputs, plan, list(writers), rows)
            meta_dir = root / "meta"
            os.rename(meta_new, meta_dir)
            (meta_dir / "conversion.json").write_text(
                json.dumps({**record, "tag": tag, "versions": versions, "meta_files": files}, indent=1), encoding="utf-8")
            write_dataset_card(root, record.get("source", str(inputs[0].root)), list(writers))
            tag_outcomes = [o for o in run_output_checks(root, layout, tag=tag) if o.name == "tables_share_tag"] \
                if layout == "card" else _tag_check(root, writers, tag)
            refuse_failed(root, tag_outcomes)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for p in root.iterdir():
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
        raise
    sizes = file_sizes(root)
    return ToolResult(str(root), tag, versions, rows, len(plan.picks), False, sum(sizes.values()), sum(sizes.values()),
                      time.monotonic() - t0, {o.name: o.passed for o in [*outcomes, *tag_outcomes]})


def _tag_check(root: Path, tables: Sequence[str], tag: str) -> list[Any]:
    import lance

    from lerobot_lance.quality.output_rules import tag_offenders
    from lerobot_lance.quality.result import CheckOutcome

    offs = tag_offenders({t: lance.dataset(str(root / f"{t}.lance")) for t in tables}, tag)[1]
    return [CheckOutcome.from_offenders("tables_share_tag", offs, description="the tables carry the same tag on their latest version")]


# ----------------------------------------------------------------------------- in place
class InPlace:
    """A new tagged version of an output, committed table by table with Lance
    operations that rewrite nothing they do not change (``delete``: deletion
    files; ``add_columns``/``merge``: new column files; ``drop_columns``:
    metadata only), under the output's writer lock and the publish journal
    (:mod:`lerobot_lance.lance_io`): a failure or a kill before every table is
    committed and checked restores every table to its version before
    (``LanceDataset.restore``); after that, recovery rolls forward (tags,
    ``meta/`` swap). The previous tag keeps opening the previous state.

    Use as a context manager around the Lance operations, then call
    :meth:`finish` with the new ``meta/`` plan.
    """

    def __init__(self, state: OutputState, verb: str) -> None:
        self.state, self.verb = state, verb
        self.root = state.root
        self.t0 = time.monotonic()
        self.committed = False  # True once the journal says "committed": recovery then rolls forward

    def __enter__(self) -> InPlace:
        from lerobot_lance.lance_io import current_version, journal_path, recover_interrupted_publish, write_json_atomic
        from lerobot_lance.output_lock import output_lock

        self._lock = output_lock(str(self.root), command=f"lerobot-lance {self.verb} --in-place")
        self._lock.__enter__()
        try:
            recover_interrupted_publish(journal_path(str(self.root)))
            self.before_files = file_sizes(self.root)
            self.tables = list(self.state.tables)
            self.before = {t: current_version(self.state.uri(t)) for t in self.tables}
            self.tag = tool_tag(self.verb)
            self.doc = {"state": "committing", "tag": self.tag,
                        "tables": {t: {"uri": self.state.uri(t), "write_uri": self.state.uri(t), "before": self.before[t]} for t in self.tables},
                        "drop": [], "meta": None, "started_at": datetime.now(timezone.utc).isoformat()}
            write_json_atomic(journal_path(str(self.root)), self.doc)
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from lerobot_lance.lance_io import _roll_back, journal_path

        try:
            if exc_type is not None and not self.committed:
                _roll_back(self.doc, None)
                journal_path(str(self.root)).unlink(missing_ok=True)
        finally:
            self._lock.__exit__(exc_type, exc, tb)

    def finish(self, plan: MetaPlan, skip_videos: bool = False) -> ToolResult:
        """Write the new ``meta/`` (and ``meta`` table), check the committed
        versions, then tag every table and swap ``meta/`` in (journal state
        ``committed``: a kill from here on is rolled forward)."""
        import lance

        from lerobot_lance.lance_io import MetaSwap, PREPARED_META_DIR, _roll_forward, journal_path, write_json_atomic

        prepared = self.root / PREPARED_META_DIR
        files = build_meta([self.state], plan, prepared)
        if self.state.layout == "lerobot":
            from lerobot_lance.layouts import lerobot as L

            lance.write_dataset(_meta_table_batches(prepared), self.state.uri(L.META_TABLE), mode="overwrite", schema=L.META_SCHEMA)
        versions = {t: lance.dataset(self.state.uri(t)).version for t in self.tables}
        rows = {t: lance.dataset(self.state.uri(t)).count_rows() for t in self.tables}
        outcomes = run_output_checks(self.root, self.state.layout, meta_dir=prepared, versions=versions, skip_videos=skip_videos)
        refuse_failed(self.root, outcomes, ignore=("tables_share_tag",))
        record = conversion_record([self.state], plan, self.tables, rows)
        record["tool"]["in_place"] = True
        self.doc.update(state="committed", committed=versions,
                        meta=MetaSwap(str(prepared), str(self.root / "meta"), tuple(files), record).to_json())
        write_json_atomic(journal_path(str(self.root)), self.doc)
        self.committed = True
        _roll_forward(self.doc, journal_path(str(self.root)), None)
        tag_outcomes = [o for o in run_output_checks(self.root, self.state.layout, tag=self.tag) if o.name == "tables_share_tag"] \
            if self.state.layout == "card" else _tag_check(self.root, self.tables, self.tag)
        after = file_sizes(self.root)
        return ToolResult(str(self.root), self.tag, versions, rows, len(plan.picks), True, new_bytes(self.before_files, after),
                          sum(after.values()), time.monotonic() - self.t0,
                          {o.name: o.passed for o in [*outcomes, *tag_outcomes]}, previous_tag=self.state.conversion.get("tag"))


def replace_columns(uri: str, read_columns: Sequence[str], compute: Callable[[pa.RecordBatch], dict[str, pa.Array]],
                    indexes: Mapping[str, str] | None = None) -> None:
    """Give columns of the Lance table at ``uri`` new values without rewriting
    any other column: ``compute(batch of read_columns) -> {column: values}``
    is added as ``<column>__new`` (``add_columns``: new column files only), the
    old columns dropped (metadata only) and the new ones renamed
    (``alter_columns``); scalar indexes on them are rebuilt. The values must be
    a function of the row's own ``read_columns`` (rows Lance has marked
    deleted may be passed too). Replaced columns move to the end of the schema.
    """
    import lance

    ds = lance.dataset(uri)
    names: list[str] = []

    def udf(batch: pa.RecordBatch) -> pa.RecordBatch:
        out = compute(batch)
        names[:] = list(out)
        return pa.RecordBatch.from_arrays(list(out.values()), [f"{k}__new" for k in out])

    ds.add_columns(udf, read_columns=list(read_columns))
    ds = lance.dataset(uri)
    ds.drop_columns(names)
    ds = lance.dataset(uri)
    ds.alter_columns(*[{"path": f"{n}__new", "name": n} for n in names])
    ds = lance.dataset(uri)
    for col, kind in (indexes or {}).items():
        if col in names:
            ds.create_scalar_index(col, kind, replace=True)
            ds = lance.dataset(uri)


# ----------------------------------------------------------------------------- copying rows
def blob_columns(schema: pa.Schema) -> list[str]:
    """Columns of a Lance table stored as blobs (``extension<lance.blob.v2>``)."""
    return [f.name for f in schema if "blob" in str(f.type) or (f.metadata or {}).get(b"lance-encoding:blob") == b"true"]


def writable_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with each blob column as a plain blob-encoded ``large_binary`` (what a writer passes)."""
    from lerobot_lance.lance_io import blob_field

    blobs = set(blob_columns(schema))
    return pa.schema([blob_field(f.name) if f.name in blobs else f for f in schema])


def copy_rows(ds: Any, rows: Sequence[int], transform: Callable[[pa.Table], pa.Table], schema: pa.Schema,
              *, chunk: int = 4096) -> Iterator[pa.RecordBatch]:
    """Batches of the rows at offsets ``rows`` of Lance dataset ``ds`` (in that
    order), through ``transform`` (a table of the non-blob columns -> the
    result's non-blob columns); blob columns of ``schema`` are read one row at
    a time (``take_blobs``) and copied, so memory holds one blob per column."""
    blobs = [c for c in blob_columns(ds.schema) if c in schema.names]
    plain = [c for c in ds.schema.names if c not in blob_columns(ds.schema)]
    step = 1 if blobs else chunk
    for i in range(0, len(rows), step):
        part = list(rows[i:i + step])
        t = transform(ds.take(part, columns=plain))
        for c in blobs:
            files = ds.take_blobs(c, indices=part)
            data = [f.read() for f in files]
            t = t.append_column(pa.field(c, pa.large_binary()), pa.array(data, pa.large_binary()))
        yield from t.select(schema.names).cast(schema).to_batches()
