"""Per-episode rules: the tabular rules over an episode's rows, and the video
rules over an episode's segment.

Tabular rules (one :class:`~lerobot_lance.quality.result.CheckOutcome` each,
severity ERROR; an offender per failing episode, with its first offending
frame):

``feature_columns_present``
    the rows carry a column for every non-video feature of ``info.json``,
    except the bookkeeping columns the converter derives (see
    ``index_columns_derived``); a ``task_index`` that cannot be derived
    (several tasks) and a ``timestamp`` that ``info.json`` declares but the
    file lacks are reported here, as absent.
``index_columns_derived`` (severity WARN)
    names each bookkeeping column (``frame_index``, ``index``,
    ``timestamp``, ``task_index``) absent from an episode's rows, which the
    frames table then holds as derived (:func:`lerobot_lance.frames.derive_column`).
``row_count_matches_length``
    the episode's rows number exactly its metadata ``length`` (frames).
``frame_index_sequence``
    ``frame_index`` is exactly ``0 .. length-1``, in row order (an absent
    column is derived as that sequence and reported by ``index_columns_derived``).
``episode_index_constant``
    every row's ``episode_index`` is the episode's own.
``index_contiguous``
    the global ``index`` runs ``dataset_from_index .. dataset_to_index - 1``
    (so episodes neither overlap nor leave a gap in the data).
``timestamps_monotonic``
    ``timestamp`` strictly increases.
``timestamps_match_fps``
    ``|timestamp - frame_index / fps| <= tolerance_s`` (seconds; LeRobot's
    ``check_timestamps_sync`` uses the same default, 1e-4 s, in
    ``lerobot/datasets/utils.py``).
``vector_widths``
    every vector feature holds ``prod(shape)`` values on every row.
``values_fit_dtype``
    every value survives the cast to its feature's ``info.json`` dtype (the
    frames table's type) unchanged: a parquet storing float64 where
    ``info.json`` says float32 is accepted only when the cast loses nothing,
    so frames stay bit-identical to the source.
``no_null_values``
    no feature value is null, neither a whole row's value nor an element of a
    vector (LeRobot's writers never write nulls; a null ``task_index`` or a
    null state element would reach training code as garbage).
``no_nan_inf``
    no NaN and no ±inf in any float feature.

The row-level rules are stated as Great Expectations expectations
(:func:`.gx_worker.suite`: one per rule, over a column ``ok_<rule>`` of
per-row booleans that numpy and pyarrow derive from the bookkeeping columns
and the list columns, which GE cannot look inside). GE validates a batch where
some rule fails; a batch where every rule column is all True passes without
importing GE (:func:`.gx_worker.validate`). For a failing batch GE runs in
this process (imported at the first such batch), over a pandas frame of the
batch's columns, and its result gives the failing rows. Video rules (``segment_frame_count``,
``segment_endpoints_decode``) are in :func:`check_episode_video`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lerobot_lance.errors import LeRobotLanceError
from lerobot_lance.formats import DEFAULT_TOLERANCE_S
from lerobot_lance.frames import derived_columns, frame_keys, frames_schema
from lerobot_lance.model import DatasetMeta, EpisodeMeta
from lerobot_lance.quality.result import CheckOutcome, Offender

EPISODE_FRAME_RULES: tuple[str, ...] = (
    "feature_columns_present",
    "index_columns_derived",
    "row_count_matches_length",
    "frame_index_sequence",
    "episode_index_constant",
    "index_contiguous",
    "timestamps_monotonic",
    "timestamps_match_fps",
    "vector_widths",
    "values_fit_dtype",
    "no_null_values",
    "no_nan_inf",
)
EPISODE_VIDEO_RULES: tuple[str, ...] = ("segment_frame_count", "segment_endpoints_decode")

_DESCRIPTIONS = {
    "feature_columns_present": "the episode's rows carry a column for every non-video feature of info.json (bookkeeping columns may be derived)",
    "index_columns_derived": "bookkeeping columns absent from the data are derived as LeRobot defines them (frame_index, index, timestamp, task_index)",
    "row_count_matches_length": "each episode has exactly `length` rows",
    "frame_index_sequence": "frame_index is exactly 0..length-1",
    "episode_index_constant": "every row carries its episode's episode_index",
    "index_contiguous": "index runs dataset_from_index..dataset_to_index-1",
    "timestamps_monotonic": "timestamps strictly increase",
    "timestamps_match_fps": "timestamp equals frame_index / fps within tolerance_s",
    "vector_widths": "vector features hold prod(shape) values on every row",
    "values_fit_dtype": "every value is exactly representable in its feature's info.json dtype (the frames table's type)",
    "no_null_values": "no feature value is null (LeRobot writes none; a null row or vector element has no meaning)",
    "no_nan_inf": "float features hold no NaN or inf",
    "segment_frame_count": "each episode's video segment holds exactly `length` frames (packets)",
    "segment_endpoints_decode": "the segment's first and last frames decode at the episode window's timestamps",
}

#: How each derived bookkeeping column is defined (for the WARN's message).
_DERIVATION = {
    "frame_index": "frame_index (position in the episode, 0..length-1)",
    "index": "index (dataset_from_index + position)",
    "timestamp": "timestamp (frame_index / fps)",
    "task_index": "task_index (the only task of the dataset, or of the episode)",
}

#: Why a bookkeeping column cannot be derived (for feature_columns_present).
_UNDERIVABLE = {
    "task_index": "; task_index cannot be derived: {tasks} tasks in the dataset, {listed} listed for the episode",
    "timestamp": "; timestamp is declared in info.json (measured data), so it is not derived from frame_index / fps",
}

#: Row-level rules, evaluated as Great Expectations expectations (each on a
#: boolean column ``ok_<rule>`` of the batch's check frame); the columns and
#: the row count are per episode, compared directly.
_GX_RULES = tuple(r for r in EPISODE_FRAME_RULES if r not in ("feature_columns_present", "index_columns_derived", "row_count_matches_length"))
#: Rules of :data:`EPISODE_FRAME_RULES` that warn instead of blocking.
_WARN_RULES = frozenset({"index_columns_derived"})


@lru_cache(maxsize=1)
def _gx_batch_definition() -> Any:
    """The ephemeral Great Expectations context's whole-dataframe batch
    definition (:func:`lerobot_lance.quality.gx_worker.batch_definition`)."""
    from lerobot_lance.quality import gx_worker

    return gx_worker.batch_definition()


def _row_checks(
    meta: DatasetMeta, e: EpisodeMeta, rows: pa.Table, tolerance_s: float, targets: Mapping[str, pa.DataType]
) -> dict[str, Any]:
    """Per-row booleans (numpy, one per ``_GX_RULES`` rule) plus what offenders
    report; ``targets``: feature key -> its frames-table type."""
    n = rows.num_rows
    names = rows.column_names
    ok: dict[str, np.ndarray] = {}
    found: dict[str, np.ndarray] = {}
    pos = np.arange(n, dtype=np.int64)

    def col(name: str) -> np.ndarray | None:
        """The column as numpy; nulls (reported by ``no_null_values``) become -1."""
        if name not in names:
            return None
        c = rows[name].combine_chunks()
        if c.null_count and (pa.types.is_integer(c.type) or pa.types.is_floating(c.type)):
            c = c.fill_null(-1)
        return c.to_numpy(zero_copy_only=False)

    fi = col("frame_index")
    # an absent frame_index is derived as the sequence itself (index_columns_derived warns)
    ok["frame_index_sequence"] = (fi == pos) if fi is not None else np.ones(n, bool)
    found["frame_index_sequence"] = fi if fi is not None else pos
    epi = col("episode_index")
    ok["episode_index_constant"] = (epi == e.episode_index) if epi is not None else np.zeros(n, bool)
    found["episode_index_constant"] = epi if epi is not None else np.full(n, -1)
    idx = col("index")
    if idx is not None:
        ok["index_contiguous"] = idx == e.dataset_from_index + pos
        found["index_contiguous"] = idx
    ts = col("timestamp")
    if ts is not None:
        ts = ts.astype(np.float64)
        mono = np.ones(n, bool)
        mono[1:] = np.diff(ts) > 0
        ok["timestamps_monotonic"] = mono
        found["timestamps_monotonic"] = ts
        ref = (fi if fi is not None else pos).astype(np.float64) / meta.fps
        ok["timestamps_match_fps"] = np.abs(ts - ref) <= tolerance_s
        found["timestamps_match_fps"] = ts
    widths_ok = np.ones(n, bool)
    widths_found: dict[str, Any] = {}
    finite_ok = np.ones(n, bool)
    finite_found: dict[str, Any] = {}
    nulls_ok = np.ones(n, bool)
    nulls_found: dict[str, int] = {}
    fit_ok = np.ones(n, bool)
    fit_found: dict[str, Any] = {}
    for key in meta.frame_columns():
        f = meta.features[key]
        if f.is_camera or key not in names:
            continue
        c = rows[key].combine_chunks()
        t = c.type
        null_rows = _null_rows(c)
        if null_rows.any():
            nulls_ok &= ~null_rows
            nulls_found.setdefault(key, int(np.argmax(null_rows)))
        misfit = _misfit_rows(c, targets[key])
        if misfit is not None:
            bad_rows, source_type, target_type, first_value = misfit
            fit_ok &= ~bad_rows
            fit_found.setdefault(key, (int(np.argmax(bad_rows)), source_type, target_type, first_value))
        if _is_list_type(t):
            lengths = pc.list_value_length(c).fill_null(-1).to_numpy(zero_copy_only=False)
            bad = lengths != f.width
            if bad.any():
                widths_ok &= ~bad
                widths_found.setdefault(key, (int(np.argmax(bad)), int(lengths[np.argmax(bad)])))
            values = pc.list_flatten(c)
            if pa.types.is_floating(values.type):
                flat = values.to_numpy(zero_copy_only=False)
                offsets = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))])
                nonfinite = ~np.isfinite(flat)
                if nonfinite.any():
                    per_row = np.add.reduceat(nonfinite.astype(np.int64), offsets[:-1]) if len(flat) else np.zeros(n, np.int64)
                    per_row[lengths <= 0] = 0
                    finite_ok &= per_row == 0
                    r = int(np.argmax(per_row > 0))
                    dim = int(np.argmax(nonfinite[offsets[r] : offsets[r + 1]]))
                    finite_found.setdefault(key, (r, dim, float(flat[offsets[r] + dim])))
        elif f.width != 1 and f.dtype != "string":
            widths_ok[:] = False
            widths_found.setdefault(key, (0, 1))
        elif pa.types.is_floating(t) and key not in ("timestamp",):
            v = c.to_numpy(zero_copy_only=False)
            nonfinite = ~np.isfinite(v)
            if nonfinite.any():
                finite_ok &= ~nonfinite
                r = int(np.argmax(nonfinite))
                finite_found.setdefault(key, (r, 0, float(v[r])))
        elif key == "timestamp" and ts is not None and not np.isfinite(ts).all():
            r = int(np.argmax(~np.isfinite(ts)))
            finite_ok[r] = False
            finite_found.setdefault(key, (r, 0, float(ts[r])))
    ok["vector_widths"] = widths_ok
    ok["values_fit_dtype"] = fit_ok
    ok["no_null_values"] = nulls_ok
    ok["no_nan_inf"] = finite_ok
    return {"ok": ok, "found": found, "widths": widths_found, "finite": finite_found, "nulls": nulls_found, "fit": fit_found, "frame_index": fi}


def _is_list_type(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _value_type(t: pa.DataType) -> pa.DataType:
    return t.value_type if _is_list_type(t) else t


def _misfit_rows(c: pa.Array, target: pa.DataType) -> tuple[np.ndarray, str, str, Any] | None:
    """Rows of ``c`` holding a value that the cast to ``target``'s element type
    changes, with (source type, target type, first such value); ``None`` when
    every value survives the cast (or the element types agree or are not both
    numeric/bool)."""
    src, dst = _value_type(c.type), _value_type(target)
    if src == dst or not all(pa.types.is_integer(x) or pa.types.is_floating(x) or pa.types.is_boolean(x) for x in (src, dst)):
        return None
    is_list = src is not c.type
    values = pc.list_flatten(c) if is_list else c
    flat = values.fill_null(False if pa.types.is_boolean(src) else 0).to_numpy(zero_copy_only=False)
    with np.errstate(all="ignore"):
        back = flat.astype(dst.to_pandas_dtype()).astype(flat.dtype)
    bad = back != flat
    if np.issubdtype(flat.dtype, np.floating):
        bad &= ~np.isnan(flat)  # NaN is no_nan_inf's business
    if not bad.any():
        return None
    rows = np.zeros(len(c), bool)
    parents = pc.list_parent_indices(c).to_numpy(zero_copy_only=False) if is_list else np.arange(len(c))
    rows[parents[bad]] = True
    return rows, str(src), str(dst), flat[int(np.argmax(bad))].item()


def _null_rows(c: pa.Array) -> np.ndarray:
    """Rows of ``c`` that are null or, for list columns, hold a null element."""
    bad = c.is_null().to_numpy(zero_copy_only=False).copy()
    if _is_list_type(c.type):
        flat = pc.list_flatten(c)
        if flat.null_count:
            parents = pc.list_parent_indices(c).filter(flat.is_null()).to_numpy(zero_copy_only=False)
            bad[parents] = True
    return bad


def _gx_validate(columns: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Validate the batch's check columns (one expectation per ``ok_<rule>``
    column); rule -> row positions (``_row``) that failed.

    :func:`lerobot_lance.quality.gx_worker.validate`: ``{}`` without importing
    GE when every rule column is all True, else GE's validation in this process.
    """
    from lerobot_lance.quality import gx_worker

    return gx_worker.validate(columns)


def check_episode_frames(
    meta: DatasetMeta,
    rows_by_episode: Mapping[int, pa.Table],
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    data_paths: Mapping[int, str] | None = None,
) -> list[CheckOutcome]:
    """Run the per-episode tabular rules over a batch of episodes.

    Args:
        meta: the dataset's metadata (lengths, index ranges, fps, feature shapes).
        rows_by_episode: episode_index -> that episode's source rows (LeRobot
            column names, source types), as read by
            :func:`lerobot_lance.frames.iter_episodes_rows`.
        tolerance_s: timestamp tolerance in seconds (default 1e-4 s, LeRobot's).
        data_paths: episode -> data file to name in offenders (default: the
            episode's ``data_path``).

    Returns:
        One outcome per name in :data:`EPISODE_FRAME_RULES`, in that order.
        Offenders carry the data file, the episode, the first offending frame
        (row position) and expected vs found values.

    Raises:
        KeyError: an episode is not in ``meta``.
    """
    offenders: dict[str, list[Offender]] = {r: [] for r in EPISODE_FRAME_RULES}
    parts, context = [], {}
    targets = dict(zip(meta.frame_columns(), frames_schema(meta).types))  # once per batch
    start = 0
    for ep, rows in rows_by_episode.items():
        e = meta.episode(ep)
        file = (data_paths or {}).get(ep, e.data_path)
        derived, underivable = derived_columns(meta, e, rows.column_names)
        missing = [k for k in meta.frame_columns() if k not in rows.column_names and k not in derived]
        missing += [k for k in underivable if k not in missing]
        if missing:
            why = "".join(_UNDERIVABLE[k].format(tasks=len(meta.tasks), listed=len(e.tasks)) for k in underivable)
            offenders["feature_columns_present"].append(
                Offender(file, ep, f"columns absent from the data file: {missing}{why}", expected=frame_keys(meta), found=rows.column_names)
            )
        if derived:
            offenders["index_columns_derived"].append(
                Offender(file, ep, f"columns absent from the data file, derived: {', '.join(_DERIVATION[c] for c in derived)}",
                         expected=list(derived), found="absent")
            )
        if rows.num_rows != e.length:
            offenders["row_count_matches_length"].append(
                Offender(file, ep, "row count differs from the episode's length", expected=f"{e.length} rows", found=f"{rows.num_rows} rows")
            )
        rc = _row_checks(meta, e, rows, tolerance_s, targets)
        n = rows.num_rows
        part = {f"ok_{rule}": rc["ok"].get(rule, np.ones(n, bool)) for rule in _GX_RULES}
        part["_row"] = np.arange(start, start + n, dtype=np.int64)
        parts.append(part)
        context[ep] = (start, n, e, file, rc)
        start += n
    if not parts:
        return [CheckOutcome.from_offenders(r, [], description=_DESCRIPTIONS[r], severity="WARN" if r in _WARN_RULES else "ERROR")
                for r in EPISODE_FRAME_RULES]
    # the batch's check columns, all episodes end to end (numpy; GE's dataframe only if some rule fails)
    failed_rows = _gx_validate({name: np.concatenate([part[name] for part in parts]) for name in parts[0]})
    bounds = sorted((s, ep) for ep, (s, *_rest) in context.items())
    starts = np.array([b[0] for b in bounds])
    for rule, positions in failed_rows.items():
        by_ep: dict[int, list[int]] = {}
        for p in positions:
            ep = bounds[int(np.searchsorted(starts, p, side="right")) - 1][1]
            by_ep.setdefault(ep, []).append(p - context[ep][0])
        for ep, local in sorted(by_ep.items()):
            offenders[rule].append(_row_offender(rule, meta, ep, context[ep], local, tolerance_s))
    return [
        CheckOutcome.from_offenders(
            r, offenders[r], description=_DESCRIPTIONS[r], severity="WARN" if r in _WARN_RULES else "ERROR",
            metadata={"episodes_checked": len(rows_by_episode), "rows_checked": int(start), **({"tolerance_s": tolerance_s} if r == "timestamps_match_fps" else {})},
        )
        for r in EPISODE_FRAME_RULES
    ]


def _row_offender(rule: str, meta: DatasetMeta, ep: int, ctx: tuple[Any, ...], local: list[int], tolerance_s: float) -> Offender:
    _start, _n, e, file, rc = ctx
    r = local[0]
    count = f"{len(local)} row(s), first at row {r}"
    fi = rc["frame_index"]
    frame = f"frame {int(fi[r])}" if fi is not None and r < len(fi) else f"row {r}"
    if rule == "frame_index_sequence":
        return Offender(file, ep, f"frame_index out of sequence ({count})", expected=r, found=int(rc["found"][rule][r]))
    if rule == "episode_index_constant":
        return Offender(file, ep, f"rows of another episode ({count})", expected=ep, found=int(rc["found"][rule][r]))
    if rule == "index_contiguous":
        return Offender(
            file, ep, f"global index not contiguous with the episode range [{e.dataset_from_index}, {e.dataset_to_index}) ({count})",
            expected=e.dataset_from_index + r, found=int(rc["found"][rule][r]),
        )
    if rule == "timestamps_monotonic":
        ts = rc["found"][rule]
        return Offender(file, ep, f"timestamp does not increase at {frame} ({count})", expected=f"> {ts[r - 1]:.6f} s", found=f"{ts[r]:.6f} s")
    if rule == "timestamps_match_fps":
        ts = rc["found"][rule]
        ref = (int(fi[r]) if fi is not None else r) / meta.fps
        return Offender(
            file, ep, f"timestamp off frame_index/fps by more than {tolerance_s:g} s at {frame} ({count})",
            expected=f"{ref:.6f} s", found=f"{ts[r]:.6f} s",
        )
    if rule == "vector_widths":
        key, (row, width) = next(iter(rc["widths"].items()))
        return Offender(file, ep, f"{key} has the wrong width at row {row} ({count})", expected=meta.features[key].width,
                        found="null" if width < 0 else width)
    if rule == "values_fit_dtype":
        key, (row, source_type, target_type, value) = next(iter(rc["fit"].items()))
        return Offender(
            file, ep, f"{key} is stored as {source_type}; its value at row {row} does not survive the cast to "
            f"the info.json dtype {target_type} ({count})", expected=f"values exact in {target_type}", found=value,
        )
    if rule == "no_null_values":
        where = ", ".join(f"{k} at row {row}" for k, row in rc["nulls"].items())
        return Offender(file, ep, f"null values: {where} ({count})", expected="no nulls", found="null")
    key, (row, dim, value) = next(iter(rc["finite"].items()))
    return Offender(file, ep, f"{key}[{dim}] is not finite at row {row} ({count})", expected="a finite value", found=value)


def check_episode_video(
    episode: EpisodeMeta,
    segments: Mapping[str, str | Path],
    fps: float,
    *,
    windows: Mapping[str, tuple[float, float]] | None = None,
    deep: bool = False,
    files: Mapping[str, str] | None = None,
    frame_counts: Mapping[str, int] | None = None,
    endpoints: Mapping[str, tuple[float, float] | LeRobotLanceError] | None = None,
) -> list[CheckOutcome]:
    """Run the per-episode video rules on one episode's segments.

    Args:
        episode: the episode (its ``length`` in frames is what each segment must hold).
        segments: camera key -> the mp4 holding the episode's frames (the
            staged segment, or the source file when ``windows`` is given).
        fps: frames per second.
        windows: camera key -> ``(from_timestamp, to_timestamp)`` seconds in
            that file (source shards); ``None`` means the whole file is the
            episode, starting at its own first frame. Only ``from_timestamp``
            is used: the episode is its ``length`` frames from there, the
            window ``[from, from + length / fps)`` (:meth:`VideoRef.window
            <lerobot_lance.model.VideoRef.window>`; LeRobot reads frame ``i``
            at ``from_timestamp + timestamp_i``), so a declared
            ``to_timestamp`` one frame short does not fail the episode.
        deep: also decode every frame of the window and count them (slow:
            ~300 frames/s for 640x480 AV1 on 2 cores).
        files: camera key -> path to name in offenders (default ``segments``).
        frame_counts: camera key -> packets already counted in that segment
            by the caller (the conversion counts them while cutting); saves a
            demux pass per segment.
        endpoints: camera key -> ``(first_s, last_s)`` of that window, both
            frames already decoded by the caller
            (:func:`lerobot_lance.video.inspect_window`), or the error that
            decoding raised; saves a decode pass per segment.

    Returns:
        Outcomes ``segment_frame_count`` (packets, and decoded frames when
        ``deep``, equal ``length``) and ``segment_endpoints_decode`` (the first
        and last frames decode; the first at the window start, the last
        ``(length - 1) / fps`` seconds after it, within half a frame).
    """
    from lerobot_lance import video

    counts: list[Offender] = []
    ends: list[Offender] = []
    half = 0.5 / fps
    for key, path in segments.items():
        name = (files or {}).get(key, str(path))
        lo, hi = (windows or {}).get(key, (None, None))
        if lo is not None:
            hi = lo + episode.length / fps
        try:
            if frame_counts is not None and key in frame_counts:
                n = int(frame_counts[key])
            else:
                n = video.window_packet_count(path, lo, hi) if lo is not None else video.probe_video(path).frame_count
            if n != episode.length:
                counts.append(Offender(name, episode.episode_index, f"camera {key}: frames in the episode window", expected=episode.length, found=n))
            if deep:
                decoded = sum(1 for _ in video.iter_frames_rgb(path, lo, hi))
                if decoded != episode.length:
                    counts.append(Offender(name, episode.episode_index, f"camera {key}: decoded frames", expected=episode.length, found=decoded))
        except LeRobotLanceError as err:
            counts.append(Offender(name, episode.episode_index, f"camera {key}: {err}", expected=episode.length, found="unreadable"))
            continue
        try:
            given = (endpoints or {}).get(key)
            if isinstance(given, LeRobotLanceError):
                raise given
            first, last = given if given is not None else video.first_last_frames_decode(path, lo, hi)
        except LeRobotLanceError as err:
            ends.append(Offender(name, episode.episode_index, f"camera {key}: {err}"))
            continue
        start = lo if lo is not None else first
        want_last = start + (episode.length - 1) / fps
        if abs(first - start) > half or abs(last - want_last) > half:
            ends.append(
                Offender(
                    name, episode.episode_index, f"camera {key}: first/last frame timestamps (s) off the episode window",
                    expected=f"[{start:.4f}, {want_last:.4f}]", found=f"[{first:.4f}, {last:.4f}]",
                )
            )
    md = {"cameras": len(segments), "deep": deep}
    return [
        CheckOutcome.from_offenders("segment_frame_count", counts, description=_DESCRIPTIONS["segment_frame_count"], metadata=md),
        CheckOutcome.from_offenders("segment_endpoints_decode", ends, description=_DESCRIPTIONS["segment_endpoints_decode"], metadata=md),
    ]

