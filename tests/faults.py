"""A fault suite: corrupted copies of the real shared samples, one defect each.

``make_fault(kind, dst)`` copies a shared sample (``../shared/datasets``,
read-only) to ``dst`` with hard links, then replaces only the files the defect
touches: a changed file is always written as a *new* file (the hard link is
unlinked first), so the shared originals are never modified. Each
:class:`Fault` names the quality check that must fail on the variant, the
stage that check belongs to, and the episode and file a good report of it
must name.

Run as a script to build every variant into a directory and print how each
is defective (``python tests/faults.py /tmp/faults``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
if not SHARED.is_dir():
    SHARED = Path(os.environ.get("LEROBOT_LANCE_SHARED", "/work/shared/datasets"))

STAGES = ("source_meta", "source_files", "episode_frames", "episode_videos")

#: Facts of the shared samples (see their README.md).
FPS = 30
EPISODE_LENGTHS = (393, 343, 357, 368, 410, 445)
TOTAL_FRAMES = 2316
CAM = "observation.images.cam_high"

INFO = "meta/info.json"
V2_EPISODES = "meta/episodes.jsonl"
V2_TASKS = "meta/tasks.jsonl"
V3_EPISODES = "meta/episodes/chunk-000/file-000.parquet"
#: The episode most per-episode faults corrupt (357 frames, global index 736..1092).
BAD_EP = 2


def v2_data(ep: int) -> str:
    return f"data/chunk-000/episode_{ep:06d}.parquet"


def v2_video(ep: int) -> str:
    return f"videos/chunk-000/{CAM}/episode_{ep:06d}.mp4"


def v3_shard(file_index: int) -> str:
    return f"videos/{CAM}/chunk-000/file-{file_index:03d}.mp4"


@dataclass(frozen=True)
class Fault:
    """One defect of one sample.

    Attributes:
        kind: the fault's name, e.g. ``"nan_in_action"``.
        base: the shared sample folder it corrupts, e.g. ``"g1_v21"``.
        check: the quality check (rule) name that must fail on it.
        stage: ``"source_meta"``, ``"source_files"``, ``"episode_frames"`` or ``"episode_videos"``.
        episode_index: the episode the defect is in, or None for dataset-level faults.
        file: the defective file, relative to the dataset root.
        description: what was done to the copy.
    """

    kind: str
    base: str
    check: str
    stage: str
    episode_index: int | None
    file: str | None
    description: str


# --------------------------------------------------------------------------- #
# File helpers: never write through a hard link
# --------------------------------------------------------------------------- #


def copy_sample(base: str, dst: Path, shared: Path = SHARED) -> Path:
    """Copy ``shared/base`` to ``dst``: directories are created (writable), files
    hard-linked (copied when linking fails). Returns ``dst``."""
    src = Path(shared) / base
    if not src.is_dir():
        raise FileNotFoundError(f"shared sample {src} missing")
    if dst.exists():
        raise FileExistsError(f"{dst} already exists")

    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copyfile(s, d)  # no copy of the read-only mode bits

    shutil.copytree(src, dst, copy_function=link_or_copy)
    for d in [dst, *(p for p in dst.rglob("*") if p.is_dir())]:
        d.chmod(0o755)  # new directories, not shared inodes
    return dst


def _fresh(path: Path) -> Path:
    """Unlink ``path`` (a hard link to a shared file, maybe) so it can be written anew."""
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_bytes(path: Path, data: bytes) -> None:
    _fresh(path).write_bytes(data)


def write_json(path: Path, obj: object) -> None:
    write_bytes(path, (json.dumps(obj, indent=4) + "\n").encode())


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_parquet(path: Path, table: pa.Table) -> None:
    pq.write_table(table, _fresh(path))


def edit_info(root: Path, edit: Callable[[dict], None]) -> None:
    info = json.loads((root / INFO).read_text())
    edit(info)
    write_json(root / INFO, info)


def set_column(table: pa.Table, name: str, values: object, typ: pa.DataType | None = None) -> pa.Table:
    i = table.schema.get_field_index(name)
    typ = typ or table.schema.field(name).type
    field = pa.field(name, typ, nullable=table.schema.field(name).nullable)
    return table.set_column(i, field, pa.array(values, type=typ))


def edit_parquet(root: Path, rel: str, edit: Callable[[pa.Table], pa.Table]) -> None:
    path = root / rel
    table = pq.read_table(path)
    write_parquet(path, edit(table))


# --------------------------------------------------------------------------- #
# Video helpers (PyAV)
# --------------------------------------------------------------------------- #


def packet_count(path: Path) -> int:
    """Video packets (frames) of ``path``, by demuxing."""
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


def remux_drop_tail(path: Path, drop: int) -> int:
    """Rewrite ``path`` by stream copy without its last ``drop`` packets (decode
    order). Returns the packets kept."""
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    with av.open(str(path)) as src:
        stream = src.streams.video[0]
        packets = [p for p in src.demux(stream) if p.size]
        keep = packets[: len(packets) - drop]
        with av.open(str(tmp), mode="w", format="mp4") as out:
            ostream = out.add_stream_from_template(stream, opaque=True)
            ostream.time_base = stream.time_base
            for p in keep:
                p.stream = ostream
                out.mux(p)
    path.unlink()
    tmp.rename(path)
    return len(keep)


def reencode(path: Path, codec: str, scale: int = 1, options: dict[str, str] | None = None) -> int:
    """Rewrite ``path`` re-encoded with ``codec`` (every frame, same timestamps),
    optionally at 1/``scale`` of its size. Returns the frames written."""
    os.environ.setdefault("SVT_LOG", "1")  # libsvtav1: errors only, no banner
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    n = 0
    with av.open(str(path)) as src:
        istream = src.streams.video[0]
        tb = istream.time_base
        rate = istream.average_rate or Fraction(FPS)
        width, height = istream.codec_context.width // scale, istream.codec_context.height // scale
        with av.open(str(tmp), mode="w", format="mp4") as out:
            enc = out.add_stream(codec, rate=rate)
            enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
            enc.time_base = tb
            enc.codec_context.time_base = tb
            enc.options = dict(options or {})
            for frame in src.decode(istream):
                pts = frame.pts
                if scale != 1:
                    frame = frame.reformat(width=width, height=height, format="yuv420p")
                frame.pts, frame.time_base = pts, tb
                frame.pict_type = av.video.frame.PictureType.NONE
                for p in enc.encode(frame):
                    out.mux(p)
                n += 1
            for p in enc.encode(None):
                out.mux(p)
    path.unlink()
    tmp.rename(path)
    return n


# --------------------------------------------------------------------------- #
# The faults
# --------------------------------------------------------------------------- #

_BUILDERS: dict[str, Callable[[Path], None]] = {}
_FAULTS: list[Fault] = []


def _fault(kind: str, base: str, check: str, stage: str, episode_index: int | None, file: str | None, description: str):
    def register(fn: Callable[[Path], None]) -> Callable[[Path], None]:
        assert stage in STAGES and kind not in _BUILDERS
        _FAULTS.append(Fault(kind, base, check, stage, episode_index, file, description))
        _BUILDERS[kind] = fn
        return fn

    return register


# --- source_meta -------------------------------------------------------------


@_fault("info_v16", "g1_v21", "supported_version", "source_meta", None, INFO, 'info.json codebase_version "v1.6"')
def _info_v16(root: Path) -> None:
    edit_info(root, lambda i: i.update(codebase_version="v1.6"))


@_fault("info_v40", "g1_v21", "supported_version", "source_meta", None, INFO, 'info.json codebase_version "v4.0"')
def _info_v40(root: Path) -> None:
    edit_info(root, lambda i: i.update(codebase_version="v4.0"))


@_fault("info_invalid_json", "g1_v21", "supported_version", "source_meta", None, INFO, "info.json cut mid-object (invalid JSON)")
def _info_invalid_json(root: Path) -> None:
    text = (root / INFO).read_bytes()
    write_bytes(root / INFO, text[: len(text) // 2])


@_fault("info_empty", "g1_v21", "supported_version", "source_meta", None, INFO, "info.json is 0 bytes")
def _info_empty(root: Path) -> None:
    write_bytes(root / INFO, b"")


@_fault("info_missing_fps", "g1_v21", "required_info_keys", "source_meta", None, INFO, 'info.json has no "fps" key')
def _info_missing_fps(root: Path) -> None:
    edit_info(root, lambda i: i.pop("fps"))


@_fault("bad_feature_shape", "g1_v21", "features_well_formed", "source_meta", None, INFO, 'feature "action" has shape [0]')
def _bad_feature_shape(root: Path) -> None:
    edit_info(root, lambda i: i["features"]["action"].update(shape=[0]))


@_fault(
    "bad_feature_shape_negative", "g1_v30", "features_well_formed", "source_meta", None, INFO,
    'v3.0: feature "observation.state" has shape [-3]',
)
def _bad_feature_shape_negative(root: Path) -> None:
    edit_info(root, lambda i: i["features"]["observation.state"].update(shape=[-3]))


@_fault(
    "template_dotdot", "g1_v21", "path_templates_safe", "source_meta", None, INFO,
    'info.json data_path template starts with "../" (resolves outside the dataset root)',
)
def _template_dotdot(root: Path) -> None:
    edit_info(root, lambda i: i.update(data_path="../" + i["data_path"]))


@_fault(
    "video_path_null", "g1_v21", "required_info_keys", "source_meta", None, INFO,
    "info.json video_path is null while observation.images.cam_high is a video feature",
)
def _video_path_null(root: Path) -> None:
    edit_info(root, lambda i: i.update(video_path=None))


def _v3_shift(root: Path, first_ep: int, delta: int) -> None:
    """Shift dataset_from/to_index of episodes >= first_ep by ``delta`` (lengths unchanged)."""

    def edit(t: pa.Table) -> pa.Table:
        eps = t["episode_index"].to_pylist()
        for col in ("dataset_from_index", "dataset_to_index"):
            vals = [v + delta if e >= first_ep else v for e, v in zip(eps, t[col].to_pylist())]
            t = set_column(t, col, vals)
        return t

    edit_parquet(root, V3_EPISODES, edit)


@_fault(
    "episodes_gap", "g1_v30", "episode_ranges_tile", "source_meta", 3, V3_EPISODES,
    "v3.0 episodes metadata: episodes 3..5 start 5 rows later (gap of 5 indices between episodes 2 and 3; lengths unchanged)",
)
def _episodes_gap(root: Path) -> None:
    _v3_shift(root, 3, +5)


@_fault(
    "episodes_overlap", "g1_v30", "episode_ranges_tile", "source_meta", 3, V3_EPISODES,
    "v3.0 episodes metadata: episodes 3..5 start 5 rows earlier (episode 3 overlaps episode 2; lengths unchanged)",
)
def _episodes_overlap(root: Path) -> None:
    _v3_shift(root, 3, -5)


@_fault(
    "totals_mismatch", "g1_v21", "totals_agree", "source_meta", None, INFO,
    "info.json total_frames 2326 while the episode lengths sum to 2316",
)
def _totals_mismatch(root: Path) -> None:
    edit_info(root, lambda i: i.update(total_frames=TOTAL_FRAMES + 10))


@_fault(
    "totals_mismatch_v30", "g1_v30", "totals_agree", "source_meta", None, INFO,
    "v3.0 info.json total_episodes 7 while the episodes metadata lists 6",
)
def _totals_mismatch_v30(root: Path) -> None:
    edit_info(root, lambda i: i.update(total_episodes=7))


# v2.x episodes name their tasks by text, so only the data's task_index column
# references the missing index: the rule can catch it once it reads the data
# files (source_files stage), and names tasks.jsonl in its message.
@_fault(
    "missing_task", "g1_v21", "task_indices_exist", "source_files", None, V2_TASKS,
    "tasks.jsonl lists the task as task_index 1; the data (and episodes_stats) reference task_index 0",
)
def _missing_task(root: Path) -> None:
    rows = read_jsonl(root / V2_TASKS)
    assert [r["task_index"] for r in rows] == [0]
    write_jsonl(root / V2_TASKS, [{**rows[0], "task_index": 1}])


@_fault(
    "empty_episodes_jsonl", "g1_v21", "meta_files_readable", "source_meta", None, V2_EPISODES,
    "meta/episodes.jsonl is 0 bytes",
)
def _empty_episodes_jsonl(root: Path) -> None:
    write_bytes(root / V2_EPISODES, b"")


# --- source_files ------------------------------------------------------------


@_fault("missing_video", "g1_v21", "files_exist", "source_files", BAD_EP, v2_video(BAD_EP), "episode 2's mp4 deleted")
def _missing_video(root: Path) -> None:
    (root / v2_video(BAD_EP)).unlink()


@_fault(
    "video_wrong_folder", "g1_v21", "files_exist", "source_files", BAD_EP, v2_video(BAD_EP),
    "episode 2's mp4 moved to videos/chunk-000/cam_high/ (a folder the video_path template does not name)",
)
def _video_wrong_folder(root: Path) -> None:
    src = root / v2_video(BAD_EP)
    dst = root / f"videos/chunk-000/cam_high/episode_{BAD_EP:06d}.mp4"
    dst.parent.mkdir(parents=True)
    src.rename(dst)


@_fault("missing_parquet", "g1_v21", "files_exist", "source_files", BAD_EP, v2_data(BAD_EP), "episode 2's parquet deleted")
def _missing_parquet(root: Path) -> None:
    (root / v2_data(BAD_EP)).unlink()


@_fault("missing_shard", "g1_v30", "files_exist", "source_files", 2, v3_shard(1), "v3.0 shard file-001.mp4 (episodes 2, 3) deleted")
def _missing_shard(root: Path) -> None:
    (root / v3_shard(1)).unlink()


@_fault("zero_byte_video", "g1_v21", "files_non_empty", "source_files", BAD_EP, v2_video(BAD_EP), "episode 2's mp4 is 0 bytes")
def _zero_byte_video(root: Path) -> None:
    write_bytes(root / v2_video(BAD_EP), b"")


@_fault("zero_byte_parquet", "g1_v21", "files_non_empty", "source_files", BAD_EP, v2_data(BAD_EP), "episode 2's parquet is 0 bytes")
def _zero_byte_parquet(root: Path) -> None:
    write_bytes(root / v2_data(BAD_EP), b"")


@_fault(
    "orphan_parquet", "g1_v21", "no_orphan_files", "source_files", None, v2_data(99),
    "an extra data/chunk-000/episode_000099.parquet no metadata names",
)
def _orphan_parquet(root: Path) -> None:
    os.link(root / v2_data(5), root / v2_data(99))


@_fault(
    "orphan_video", "g1_v21", "no_orphan_files", "source_files", None, v2_video(99),
    "an extra videos/chunk-000/observation.images.cam_high/episode_000099.mp4 no metadata names",
)
def _orphan_video(root: Path) -> None:
    os.link(root / v2_video(5), root / v2_video(99))


@_fault(
    "truncated_mp4", "g1_v21", "video_frames_cover_episodes", "source_files", BAD_EP, v2_video(BAD_EP),
    "episode 2's mp4 cut to its first half of bytes (its moov index, at the end, is lost)",
)
def _truncated_mp4(root: Path) -> None:
    data = (root / v2_video(BAD_EP)).read_bytes()
    write_bytes(root / v2_video(BAD_EP), data[: len(data) // 2])


@_fault(
    "video_short_of_frames", "g1_v21", "video_frames_cover_episodes", "source_files", BAD_EP, v2_video(BAD_EP),
    "episode 2's mp4 remuxed (stream copy) without its last 20 packets: 337 frames for a 357-frame episode",
)
def _video_short_of_frames(root: Path) -> None:
    path = root / v2_video(BAD_EP)  # rewritten as a new file, never through the link
    remux_drop_tail(path, 20)


@_fault(
    "shard_short_of_frames", "g1_v30", "video_frames_cover_episodes", "source_files", 3, v3_shard(1),
    "v3.0 shard file-001.mp4 remuxed without its last 20 packets: episode 3's window holds 348 of 368 frames",
)
def _shard_short_of_frames(root: Path) -> None:
    path = root / v3_shard(1)
    remux_drop_tail(path, 20)


# A stream of another codec than info.json's video.codec decodes all the same:
# a WARN (video_codec_matches_info), not a fault; see tests/test_names_video.py.


@_fault(
    "wrong_resolution", "g1_v21", "video_stream_matches_info", "source_files", BAD_EP, v2_video(BAD_EP),
    "episode 2's mp4 re-encoded at 320x240 (AV1, libsvtav1, same 357 frames); info.json says 640x480",
)
def _wrong_resolution(root: Path) -> None:
    path = root / v2_video(BAD_EP)
    reencode(path, "libsvtav1", scale=2, options={"preset": "12", "crf": "50"})


# --- episode_frames (v2.1, episode 2) -------------------------------------------


def _edit_ep(root: Path, edit: Callable[[pa.Table], pa.Table]) -> None:
    edit_parquet(root, v2_data(BAD_EP), edit)


def _vectors(t: pa.Table, col: str) -> np.ndarray:
    return np.array(t[col].to_pylist(), dtype=np.float32)


@_fault(
    "nan_in_action", "g1_v21", "no_nan_inf", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2: action[100][3] is NaN",
)
def _nan_in_action(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        a = _vectors(t, "action")
        a[100, 3] = np.nan
        return set_column(t, "action", list(a))

    _edit_ep(root, edit)


@_fault(
    "inf_in_state", "g1_v21", "no_nan_inf", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2: observation.state[200][7] is +inf",
)
def _inf_in_state(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        a = _vectors(t, "observation.state")
        a[200, 7] = np.inf
        return set_column(t, "observation.state", list(a))

    _edit_ep(root, edit)


@_fault(
    "null_task_index", "g1_v21", "no_null_values", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2: task_index of row 5 is null",
)
def _null_task_index(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        values = t["task_index"].to_pylist()
        values[5] = None
        return set_column(t, "task_index", values)

    _edit_ep(root, edit)


@_fault(
    "null_in_action_vector_v30", "g1_v30", "no_null_values", "episode_frames", 3, "data/chunk-000/file-000.parquet",
    "v3.0 data shard: one element of the action vector of episode 3's frame 10 is null",
)
def _null_in_action_vector_v30(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        ep = np.array(t["episode_index"].to_pylist())
        row = int(np.flatnonzero(ep == 3)[10])
        values = t["action"].to_pylist()
        values[row] = [None, *values[row][1:]]
        return set_column(t, "action", values)

    edit_parquet(root, "data/chunk-000/file-000.parquet", edit)


@_fault(
    "action_float64_lossy", "g1_v21", "values_fit_dtype", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2's action column stored as float64 (info.json: float32) with action[50][4] += 1e-9, which float32 cannot hold",
)
def _action_float64_lossy(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        a = _vectors(t, "action").astype(np.float64)
        a[50, 4] += 1e-9
        return set_column(t, "action", list(a), pa.list_(pa.float64(), a.shape[1]))

    _edit_ep(root, edit)


@_fault(
    "wrong_vector_width", "g1_v21", "vector_widths", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2: action vectors of width 25 (info.json declares 26)",
)
def _wrong_vector_width(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        a = _vectors(t, "action")[:, :25]
        return set_column(t, "action", list(a), pa.list_(pa.float32(), 25))

    _edit_ep(root, edit)


@_fault(
    "non_monotonic_timestamps", "g1_v21", "timestamps_monotonic", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2: the timestamps of rows 100 and 101 swapped",
)
def _non_monotonic_timestamps(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        ts = t["timestamp"].to_pylist()
        ts[100], ts[101] = ts[101], ts[100]
        return set_column(t, "timestamp", ts)

    _edit_ep(root, edit)


@_fault(
    "timestamps_off_fps", "g1_v21", "timestamps_match_fps", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2: timestamps = frame_index / 25 (info.json says 30 fps)",
)
def _timestamps_off_fps(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        fi = np.array(t["frame_index"].to_pylist())
        return set_column(t, "timestamp", (fi / 25.0).astype(np.float32))

    _edit_ep(root, edit)


@_fault(
    "missing_column", "g1_v21", "feature_columns_present", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2's parquet has no timestamp column",
)
def _missing_column(root: Path) -> None:
    _edit_ep(root, lambda t: t.drop(["timestamp"]))


@_fault(
    "duplicated_frame", "g1_v21", "row_count_matches_length", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2: row 100 duplicated (358 rows for a 357-frame episode)",
)
def _duplicated_frame(root: Path) -> None:
    _edit_ep(root, lambda t: pa.concat_tables([t.slice(0, 101), t.slice(100)]))


@_fault(
    "frame_index_gap", "g1_v21", "frame_index_sequence", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2: frame_index skips 200 (rows 200.. carry 201..357; row count unchanged)",
)
def _frame_index_gap(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        fi = t["frame_index"].to_pylist()
        return set_column(t, "frame_index", [v + 1 if v >= 200 else v for v in fi])

    _edit_ep(root, edit)


@_fault(
    "wrong_episode_index", "g1_v21", "episode_index_constant", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2's file: rows 100..109 carry episode_index 3",
)
def _wrong_episode_index(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        ei = t["episode_index"].to_pylist()
        return set_column(t, "episode_index", [3 if 100 <= i < 110 else v for i, v in enumerate(ei)])

    _edit_ep(root, edit)


@_fault(
    "index_gap", "g1_v21", "index_contiguous", "episode_frames", BAD_EP, v2_data(BAD_EP),
    "episode 2: global index shifted by +7 (743..1099 instead of 736..1092: a gap after episode 1, an overlap with episode 3)",
)
def _index_gap(root: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        return set_column(t, "index", [v + 7 for v in t["index"].to_pylist()])

    _edit_ep(root, edit)


def _v3_window(root: Path, ep: int, which: str, delta_s: float) -> None:
    """Move episode ``ep``'s ``from_timestamp`` or ``to_timestamp`` by ``delta_s`` (length unchanged)."""
    col = f"videos/{CAM}/{which}_timestamp"

    def edit(t: pa.Table) -> pa.Table:
        eps = t["episode_index"].to_pylist()
        return set_column(t, col, [v + delta_s if e == ep else v for e, v in zip(eps, t[col].to_pylist())])

    edit_parquet(root, V3_EPISODES, edit)


# The shard must hold the frames up to the last window's end: a window reaching
# past the shard's end is caught from the container alone, at source_files.
# (An episode is its length frames from from_timestamp; a to_timestamp that
# disagrees is only a WARN, episode_windows_match_length.)
@_fault(
    "window_past_shard_end", "g1_v30", "video_frames_cover_episodes", "source_files", 5, v3_shard(2),
    "v3.0 episode 5's from_timestamp moved 2 s later (13.67 -> 15.67 s; length 445): its frames would run to 30.5 s, past the end of shard file-002.mp4 (28.5 s)",
)
def _window_past_shard_end(root: Path) -> None:
    _v3_window(root, 5, "from", +2.0)


@_fault(
    "data_rows_short_v30", "g1_v30", "data_rows_match_episodes", "source_files", None, "data/chunk-000/file-000.parquet",
    "v3.0 data file-000.parquet without its last 20 rows (2296 rows; its episodes' lengths sum to 2316)",
)
def _data_rows_short_v30(root: Path) -> None:
    edit_parquet(root, "data/chunk-000/file-000.parquet", lambda t: t.slice(0, t.num_rows - 20))


# --- episode_videos (v3.0): see tests/faults_names.py (window_short_of_length) ---


# Fault kinds of one area each live in ``tests/faults_<area>.py`` (they register
# with ``_fault`` above); importing them here puts them in the one catalogue.
def _load_fault_modules() -> None:
    import importlib

    for path in sorted(Path(__file__).parent.glob("faults_*.py")):
        importlib.import_module(f"tests.{path.stem}")


_load_fault_modules()

FAULTS: tuple[Fault, ...] = tuple(_FAULTS)
FAULTS_BY_KIND: dict[str, Fault] = {f.kind: f for f in FAULTS}


def make_fault(kind: str, dst: Path, shared: Path = SHARED) -> Fault:
    """Build the corrupted copy ``kind`` at ``dst`` (which must not exist yet).

    Raises:
        KeyError: unknown kind.
    """
    fault = FAULTS_BY_KIND[kind]
    dst = Path(dst)
    copy_sample(fault.base, dst, shared)
    try:
        _BUILDERS[kind](dst)
    except BaseException:
        shutil.rmtree(dst, ignore_errors=True)
        raise
    return fault


if __name__ == "__main__":  # build every variant: python tests/faults.py OUTDIR
    import sys
    import time

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/faults")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    for f in FAULTS:
        t = time.perf_counter()
        make_fault(f.kind, out / f.kind)
        print(f"{f.kind:28s} {f.base:8s} {f.stage:15s} {f.check:28s} {time.perf_counter() - t:6.2f} s")
    print(f"{len(FAULTS)} variants in {time.perf_counter() - t0:.1f} s")
