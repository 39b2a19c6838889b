"""Variants of the shared samples for feature names, bookkeeping columns and
episode windows (issue 8, items 1, 12, 13, 20).

Registered fault kinds (``@_fault``) are defects a blocking check must
refuse; the ``build_*`` helpers make *sound* variants that must convert (the
tests in ``tests/test_names_*.py`` use them). Every builder starts from
:func:`tests.faults.copy_sample` (hard links) and writes changed files anew.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow as pa

from tests.faults import (
    CAM,
    INFO,
    SHARED,
    V3_EPISODES,
    _fault,
    copy_sample,
    edit_info,
    edit_parquet,
    read_jsonl,
    set_column,
    v2_data,
    v3_shard,
    write_json,
    write_jsonl,
)

#: The renames of item 1: plural / undotted names as real datasets use them.
RENAMES: dict[str, str] = {"action": "actions", "observation.state": "state", CAM: "image"}


def _data_files(root: Path) -> list[Path]:
    return sorted((root / "data").rglob("*.parquet"))


def _rename_keys(d: Mapping[str, object], names: Mapping[str, str]) -> dict[str, object]:
    return {names.get(k, k): v for k, v in d.items()}


def rename_features(root: Path, names: Mapping[str, str]) -> None:
    """Rename features of the sample copy at ``root`` everywhere LeRobot names
    them: ``info.json`` (key order kept), the data parquet columns, the
    per-episode stats (``episodes_stats.jsonl`` / ``stats/<key>/...``
    columns), ``meta/stats.json``, the v3.0 ``videos/<key>/...`` columns and
    the video folders (renamed, the files keep their inodes)."""
    info = json.loads((root / INFO).read_text())
    info["features"] = _rename_keys(info["features"], names)
    write_json(root / INFO, info)
    for f in _data_files(root):
        rel = str(f.relative_to(root))
        edit_parquet(root, rel, lambda t: t.rename_columns([names.get(c, c) for c in t.column_names]))
    stats = root / "meta" / "stats.json"
    if stats.is_file():
        write_json(stats, _rename_keys(json.loads(stats.read_text()), names))
    ep_stats = root / "meta" / "episodes_stats.jsonl"
    if ep_stats.is_file():
        write_jsonl(ep_stats, [{**r, "stats": _rename_keys(r["stats"], names)} for r in read_jsonl(ep_stats)])
    if info["codebase_version"] == "v3.0":

        def col(c: str) -> str:
            parts = c.split("/")
            if len(parts) >= 3 and parts[0] in ("videos", "stats"):
                key = "/".join(parts[1:-1])
                return "/".join([parts[0], names.get(key, key), parts[-1]])
            return c

        edit_parquet(root, V3_EPISODES, lambda t: t.rename_columns([col(c) for c in t.column_names]))
    for old, new in names.items():
        for d in sorted(root.glob(f"videos/**/{old}")):
            if d.is_dir():
                d.rename(d.with_name(new))


def build_renamed(base: str, dst: Path, names: Mapping[str, str] = RENAMES) -> Path:
    """``base`` copied to ``dst`` with ``names`` applied (:func:`rename_features`)."""
    copy_sample(base, dst, SHARED)
    rename_features(dst, names)
    return dst


def drop_columns(root: Path, columns: list[str], *, undeclare: bool = False) -> None:
    """Remove ``columns`` from every data parquet of ``root`` (and from
    ``info.json`` features when ``undeclare``)."""
    for f in _data_files(root):
        edit_parquet(root, str(f.relative_to(root)), lambda t: t.drop_columns([c for c in columns if c in t.column_names]))
    if undeclare:
        edit_info(root, lambda info: [info["features"].pop(c, None) for c in columns])


def build_dropped(base: str, dst: Path, columns: list[str], *, undeclare: bool = False) -> Path:
    copy_sample(base, dst, SHARED)
    drop_columns(dst, columns, undeclare=undeclare)
    return dst


#: Largest drift of :func:`build_wallclock_timestamps`, seconds.
WALLCLOCK_DRIFT_S = 1.4


def build_wallclock_timestamps(base: str, dst: Path) -> Path:
    """``base`` with wall-clock-like timestamps: each episode's ``timestamp``
    drifts linearly from 0 to +1.4 s by its last frame (a recorder clock
    running 0.3 % fast), ``timestamp`` not declared in ``info.json``
    features and no ``frame_index`` column. Converts with ``--tolerance-s 2``."""
    copy_sample(base, dst, SHARED)

    def edit(t: pa.Table) -> pa.Table:
        ts = np.asarray(t["timestamp"].to_numpy(), dtype=np.float64)
        ep = np.asarray(t["episode_index"].to_numpy())
        out = ts.copy()
        for e in np.unique(ep):
            m = ep == e
            n = int(m.sum())
            out[m] = ts[m] + np.linspace(0.0, WALLCLOCK_DRIFT_S, n)
        return set_column(t, "timestamp", out.astype(np.float32)).drop_columns(["frame_index"])

    for f in _data_files(dst):
        edit_parquet(dst, str(f.relative_to(dst)), edit)
    edit_info(dst, lambda info: [info["features"].pop(c) for c in ("timestamp", "frame_index")])
    return dst


def build_window_ends_on_last_frame(base: str, dst: Path) -> Path:
    """v3.0 ``base`` with every ``to_timestamp`` rewritten to the last frame's
    timestamp, ``from + (length - 1) / fps`` (as a real dataset writes it),
    instead of one frame past it."""
    copy_sample(base, dst, SHARED)
    info = json.loads((dst / INFO).read_text())
    fps = float(info["fps"])
    keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]

    def edit(t: pa.Table) -> pa.Table:
        lengths = t["length"].to_pylist()
        for k in keys:
            lo = t[f"videos/{k}/from_timestamp"].to_pylist()
            t = set_column(t, f"videos/{k}/to_timestamp", [a + (n - 1) / fps for a, n in zip(lo, lengths)])
        return t

    for f in sorted((dst / "meta" / "episodes").rglob("*.parquet")):
        edit_parquet(dst, str(f.relative_to(dst)), edit)
    return dst


def build_info_codec_mismatch(base: str, dst: Path, codec: str = "h264", pix_fmt: str = "yuv444p") -> Path:
    """``base`` whose ``info.json`` says ``video.codec: codec`` and
    ``video.pix_fmt: pix_fmt`` for every camera; the mp4s are untouched."""
    copy_sample(base, dst, SHARED)

    def edit(info: dict) -> None:
        for f in info["features"].values():
            if f["dtype"] == "video":
                f["info"]["video.codec"] = codec
                f["info"]["video.pix_fmt"] = pix_fmt

    edit_info(dst, edit)
    return dst


def remux_shift_after(path: Path, first_packet: int, shift_s: float) -> int:
    """Rewrite ``path`` by stream copy with the presentation and decode
    timestamps of packets ``first_packet`` (decode order) and later moved
    ``shift_s`` seconds later: a pause in the recording. Returns the packets
    written (all of them)."""
    import av

    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        ticks = int(round(shift_s / float(stream.time_base)))
        packets = [p for p in src.demux(stream) if p.size]
        with av.open(str(tmp), mode="w", format="mp4") as out:
            ostream = out.add_stream_from_template(stream, opaque=True)
            ostream.time_base = stream.time_base
            for i, p in enumerate(packets):
                if i >= first_packet:
                    p.pts += ticks
                    p.dts += ticks
                p.stream = ostream
                out.mux(p)
    path.unlink()  # a new file: never written through the shared hard link
    tmp.rename(path)
    return len(packets)


# --- fault kinds -----------------------------------------------------------------


# A shard with a 0.2 s pause inside episode 5 (its frames from 220 on are 6
# frames later): the shard holds all 855 packets, so every container-level rule
# passes, but only 439 of the episode's 445 frames lie in [from, from + 445/30);
# only the per-episode count of the window's frames catches it.
@_fault(
    "window_short_of_length", "g1_v30", "segment_frame_count", "episode_videos", 5, v3_shard(2),
    "v3.0 shard file-002.mp4 remuxed with episode 5's frames 220.. moved 0.2 s later: its window holds 439 of its 445 frames",
)
def _window_short_of_length(root: Path) -> None:
    remux_shift_after(root / v3_shard(2), 410 + 220, 0.2)


@_fault(
    "feature_columns_collide", "g1_v21", "features_well_formed", "source_meta", None, INFO,
    "info.json gains a feature 'observation_state' (float32 [26]) next to 'observation.state': both would be column observation_state",
)
def _feature_columns_collide(root: Path) -> None:
    def edit(info: dict) -> None:
        info["features"]["observation_state"] = dict(info["features"]["observation.state"])

    edit_info(root, edit)


# Two tasks, no task_index column: which task a frame belongs to is not in the
# metadata (episode 2 lists both tasks), so the column cannot be derived.
@_fault(
    "task_index_absent_multitask", "g1_v21", "feature_columns_present", "episode_frames", 2, v2_data(2),
    "no task_index column in any data file; tasks.jsonl holds two tasks and episode 2 lists both",
)
def _task_index_absent_multitask(root: Path) -> None:
    tasks = read_jsonl(root / "meta" / "tasks.jsonl")
    tasks.append({"task_index": 1, "task": "Put the yellow bottle back."})
    write_jsonl(root / "meta" / "tasks.jsonl", tasks)
    rows = read_jsonl(root / "meta" / "episodes.jsonl")
    for r in rows:
        if r["episode_index"] == 2:
            r["tasks"] = [tasks[0]["task"], tasks[1]["task"]]
    write_jsonl(root / "meta" / "episodes.jsonl", rows)
    edit_info(root, lambda info: info.update(total_tasks=2))
    drop_columns(root, ["task_index"])
