"""Content rules: non-blocking checks on what the robot data itself says.

The structural gates (schema, counts, indices, timestamps) decide whether a
dataset *can* be converted; these rules look at the numbers and report what a
person training a policy would want to know before using it: a command that
never moves, a dead sensor, a signal pinned at its range limit, a teleop glitch,
a dimension that carries no information, an angle that wraps, an episode saved
twice, an episode too short for the policy's window. Every rule yields a
:class:`~lerobot_lance.quality.result.CheckOutcome` with severity ``"WARN"``:
the findings are reported (asset check metadata, ``doctor`` output), never
blocking.

Input (see :func:`check_content`): the dataset's :class:`~lerobot_lance.model.DatasetMeta`
and, per episode, that episode's rows as a pyarrow Table with LeRobot's column
names. Numeric features are read as ``(frames, width)`` numpy arrays: a vector
feature is a ``list``/``fixed_size_list`` column (``float32`` for
``observation.state`` and ``action``), ``width`` is the product of its
``shape``; a scalar column gives ``width`` 1. Cameras, index columns
(``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``),
non-numeric features and columns absent from an episode's table are skipped.

Which features each rule reads:

* *action-like*: float features whose key starts with ``"action"``;
* *observations*: float features whose key starts with ``"observation."``;
* ``zero_variance_dims`` also reads int and bool features.

NaN never equals anything here (a NaN frame breaks a constant run, is never
at a min or max, never a jump); NaN and ±inf themselves are the blocking
``no_nan_inf`` episode rule's business.

Units: frames are rows of an episode (0-based positions, equal to
``frame_index`` in a well-formed episode), seconds follow ``meta.fps``, and
values are in the feature's own units (radians for G1 joint angles,
normalised ``[0, 1]`` for the Inspire hand) unless a threshold says it is a
fraction.

Cost: one pass of vectorised numpy per feature and episode (a sort, a diff and
a few reductions over ``(frames, width)``): about a millisecond per episode of
the G1 samples (26 + 26 dimensions, ~400 frames).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lerobot_lance.model import DatasetMeta, Feature
from lerobot_lance.quality.result import CheckOutcome, Offender

#: The content rules, in the order :func:`check_content` returns them.
CONTENT_RULES: tuple[str, ...] = (
    "frozen_actuators",
    "flatlined_sensors",
    "clipped_values",
    "action_jumps",
    "zero_variance_dims",
    "encoder_wraparound",
    "near_duplicate_episodes",
    "short_episodes",
)

DESCRIPTIONS: dict[str, str] = {
    "frozen_actuators": "No action dimension stays exactly constant over most of an episode while it moves "
    "in other episodes or its observed state moves.",
    "flatlined_sensors": "No observation dimension reads exactly the same value over most of an episode while "
    "it moves in other episodes or its commanded action moves.",
    "clipped_values": "No dimension spends a large share of an episode's frames exactly at its episode "
    "minimum or maximum (a saturation plateau).",
    "action_jumps": "No action dimension steps between consecutive frames by far more than its typical step "
    "in the batch and more than an absolute floor.",
    "zero_variance_dims": "No numeric dimension is constant across every frame of every episode examined.",
    "encoder_wraparound": "No observation dimension whose values stay within one turn (±π / 0..2π rad, "
    "±180 / 0..360 deg) jumps by nearly a full turn between consecutive frames.",
    "near_duplicate_episodes": "No two episodes have the same length and state/action trajectories equal "
    "within a tolerance.",
    "short_episodes": "Every episode has at least as many frames as the policy's observation/action window.",
}

_ROBUST_EPS = 1e-12


@dataclass(frozen=True)
class ContentThresholds:
    """Thresholds of the content rules (defaults fit 30-50 fps teleoperation data).

    Attributes:
        constant_run_fraction: ``frozen_actuators`` / ``flatlined_sensors``: a
            dimension is *stuck* in an episode when its longest run of exactly
            equal consecutive values covers at least this share of the
            episode's frames (0-1]. Default 0.9.
        constant_run_min_frames: ... and at least this many frames (frames).
            Episodes shorter than this are never reported stuck. Default 30
            (1 s at 30 fps).
        partner_motion_min: a stuck action (observation) dimension is also
            reported when the matching ``observation.state`` (``action``)
            dimension moves by at least this much (max - min within the
            episode, in the feature's units: radians for joint angles).
            Matching means same suffix (``action`` <-> ``observation.state``,
            ``action.arm`` <-> ``observation.state.arm``) and same width.
            Default 0.05 (about 3 degrees, or 5 % of a normalised gripper).
        clip_fraction: ``clipped_values``: share of an episode's frames (0-1]
            at exactly the episode's minimum or maximum of a dimension from
            which it is reported. Default 0.25.
        clip_min_frames: episodes shorter than this (frames) are not examined
            for clipping. Default 30.
        clip_min_distinct: dimensions with fewer distinct values in the
            episode (binary gripper commands, mode flags) are not examined for
            clipping. Default 10.
        jump_scale_factor: ``action_jumps``: a step ``|a[t+1] - a[t]|`` is a
            jump when it exceeds this many times the dimension's robust step
            scale, the median of its non-zero steps over the whole batch
            (unitless factor). Default 20.
        jump_min_abs: ... and exceeds this absolute floor (feature units per
            frame; radians for joints). Default 0.25 (7.5 rad/s at 30 fps).
        wrap_min_fraction: ``encoder_wraparound``: a step is a wrap when its
            size is at least this share of a full turn (2π rad or 360 deg).
            Default 0.75.
        wrap_range_margin: how far outside ``[-π, π]`` / ``[0, 2π]`` (or
            ``[-180, 180]`` / ``[0, 360]``) a dimension's values may go and
            still count as an angle, as a share of the turn. Default 0.02.
        duplicate_atol: ``near_duplicate_episodes``: two episodes of equal
            length are duplicates when no state/action value differs by more
            than this (feature units). Default 1e-4.
        policy_window_frames: ``short_episodes``: the policy's window
            (observation history + action chunk), in frames; shorter
            episodes cannot fill one training sample. Default 16.
    """

    constant_run_fraction: float = 0.9
    constant_run_min_frames: int = 30
    partner_motion_min: float = 0.05
    clip_fraction: float = 0.25
    clip_min_frames: int = 30
    clip_min_distinct: int = 10
    jump_scale_factor: float = 20.0
    jump_min_abs: float = 0.25
    wrap_min_fraction: float = 0.75
    wrap_range_margin: float = 0.02
    duplicate_atol: float = 1e-4
    policy_window_frames: int = 16

    def __post_init__(self) -> None:
        fractions = {
            "constant_run_fraction": self.constant_run_fraction,
            "clip_fraction": self.clip_fraction,
            "wrap_min_fraction": self.wrap_min_fraction,
        }
        for name, value in fractions.items():
            if not 0.0 < value <= 1.0:
                raise ValueError(f"ContentThresholds.{name} must be in (0, 1], but is {value!r}")
        non_negative = {
            "constant_run_min_frames": self.constant_run_min_frames,
            "partner_motion_min": self.partner_motion_min,
            "clip_min_frames": self.clip_min_frames,
            "clip_min_distinct": self.clip_min_distinct,
            "jump_scale_factor": self.jump_scale_factor,
            "jump_min_abs": self.jump_min_abs,
            "wrap_range_margin": self.wrap_range_margin,
            "duplicate_atol": self.duplicate_atol,
            "policy_window_frames": self.policy_window_frames,
        }
        for name, value in non_negative.items():
            if not value >= 0:
                raise ValueError(f"ContentThresholds.{name} must be >= 0, but is {value!r}")


def check_content(
    meta: DatasetMeta,
    frames_by_episode: Mapping[int, pa.Table],
    thresholds: ContentThresholds | None = None,
) -> list[CheckOutcome]:
    """Run every content rule on a batch of episodes.

    Args:
        meta: the dataset's metadata; ``meta.features`` says which columns are
            numeric (dtype, ``shape``, ``names`` used to label dimensions) and
            ``meta.fps`` converts frames to seconds. Episodes absent from the
            metadata are still checked (their offenders carry no ``file``).
        frames_by_episode: episode_index -> that episode's rows, in frame
            order, as a pyarrow Table with LeRobot's column names. Vector
            features are ``list`` / ``fixed_size_list`` columns of
            ``(frames,)`` rows of ``width`` numbers; scalar features are plain
            numeric columns. Rules comparing episodes (``frozen_actuators``,
            ``flatlined_sensors``, ``action_jumps``, ``zero_variance_dims``,
            ``near_duplicate_episodes``) compare the episodes of this batch.
        thresholds: the rules' thresholds; defaults to :class:`ContentThresholds`.

    Returns:
        One :class:`CheckOutcome` per name of :data:`CONTENT_RULES`, in that
        order, each with severity ``"WARN"`` (non-blocking). Offenders name
        the episode (``episode_index``, ``None`` for batch-wide findings) and,
        in ``detail``, the feature and dimension as ``key[j] (name)`` with
        expected/found figures; they are ordered by episode, then feature,
        then dimension; only the first few are kept, ``n_offenders`` counts
        them all. ``metadata`` holds ``episodes_examined``,
        ``dims_examined`` (feature dimensions the rule reads per episode),
        ``offenders``, ``offending_episodes`` (complete), ``features``,
        ``offenders_by_dim`` (dimension label -> number of offending
        episodes, complete) and the thresholds applied.

    Rules:
        * ``frozen_actuators``: an action-like dimension stuck (see
          :attr:`ContentThresholds.constant_run_fraction`) in an episode while
          it varies in another episode of the batch or the matching
          ``observation.state`` dimension moves: a stuck command.
        * ``flatlined_sensors``: the same for observation dimensions (matching
          partner: the ``action`` dimension): a dead or frozen sensor.
        * ``clipped_values``: a non-stuck action/observation dimension with at
          least :attr:`~ContentThresholds.clip_min_distinct` distinct values
          sitting exactly at its episode min or max in at least
          :attr:`~ContentThresholds.clip_fraction` of the frames.
        * ``action_jumps``: an action step larger than
          ``max(jump_scale_factor * median non-zero step of that dimension over
          the batch, jump_min_abs)``; reports the first jump's frame.
        * ``zero_variance_dims``: a numeric (float, int, bool) dimension with
          the same value in every frame of every episode given.
        * ``encoder_wraparound``: an observation dimension whose values stay
          within one turn and which steps by at least ``wrap_min_fraction`` of
          a turn (2π rad, or 360 for degree-like ranges) between frames.
        * ``near_duplicate_episodes``: pairs of episodes of equal length whose
          action and observation floats agree within ``duplicate_atol``
          (screened by per-dimension means, which differ by at most the max
          difference, then verified on every value); names both episodes.
        * ``short_episodes``: episodes with fewer rows than
          ``policy_window_frames``.
    """
    th = thresholds if thresholds is not None else ContentThresholds()
    batch = _Batch(meta, frames_by_episode, th)
    frozen = _constant_run_rule("frozen_actuators", batch, batch.action_keys, th)
    flat = _constant_run_rule("flatlined_sensors", batch, batch.observation_keys, th)
    return [
        frozen,
        flat,
        _clipped_values(batch, th),
        _action_jumps(batch, th),
        _zero_variance(batch),
        _encoder_wraparound(batch, th),
        _near_duplicates(batch, th),
        _short_episodes(batch, th),
    ]


# --------------------------------------------------------------------------- data


def _flatten_names(names: Any) -> list[Any] | None:
    """``names`` of any shape LeRobot uses (list, nested list, ``{"motors": [...]}``) -> flat list."""
    if names is None:
        return None
    if isinstance(names, str):
        return [names]
    if isinstance(names, Mapping):
        parts: Iterable[Any] = names.values()
    elif isinstance(names, (list, tuple)):
        parts = names
    else:
        return None
    out: list[Any] = []
    for part in parts:
        if isinstance(part, (list, tuple, Mapping)):
            sub = _flatten_names(part)
            if sub is None:
                return None
            out.extend(sub)
        elif isinstance(part, (str, int, float)):
            out.append(part)
        else:
            return None
    return out


def dimension_labels(feature: Feature, width: int, scalar: bool = False) -> list[str]:
    """``key[j] (name)`` per dimension, ``key[j]`` when ``names`` does not give one
    name per dimension; ``key`` (or ``key (name)``) for a scalar column."""
    flat = _flatten_names(feature.names)
    names = [str(n) for n in flat] if flat is not None and len(flat) == width else None
    if scalar and width == 1:
        return [f"{feature.key} ({names[0]})" if names else feature.key]
    return [f"{feature.key}[{j}] ({names[j]})" if names else f"{feature.key}[{j}]" for j in range(width)]


def _column_matrix(table: pa.Table, key: str) -> tuple[np.ndarray, bool] | None:
    """The column as a ``(frames, width)`` array and whether it was a scalar
    column; ``None`` if absent, non-numeric, holding null rows, or ragged."""
    n = table.num_rows
    if key not in table.column_names or n == 0:
        return None
    col = table.column(key)
    arr: pa.Array = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
    scalar = True
    while pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        if arr.null_count:
            return None
        if not pa.types.is_fixed_size_list(arr.type):
            lengths = pc.min_max(pc.list_value_length(arr))
            if lengths["min"].as_py() != lengths["max"].as_py():
                return None  # ragged rows: the blocking vector_widths rule reports them
        arr = arr.flatten()
        scalar = False
    t = arr.type
    if not (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)):
        return None
    values = arr.to_numpy(zero_copy_only=False)
    if values.size == 0 or values.size % n:
        return None
    return values.reshape(n, values.size // n), scalar


def _longest_constant_runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of ``x`` (frames, width): length (frames) and first frame of
    the longest run of exactly equal consecutive values (NaN never equals)."""
    n, w = x.shape
    if n == 0 or w == 0:
        return np.zeros(w, dtype=np.int64), np.zeros(w, dtype=np.int64)
    bounds = np.ones((w, n + 1), dtype=bool)  # True where a run starts (and at the end)
    if n > 1:
        bounds[:, 1:n] = (x[1:] != x[:-1]).T
    dims, pos = np.nonzero(bounds)  # row-major: sorted by dim, then frame
    counts = bounds.sum(axis=1)
    seg_start = np.cumsum(counts) - counts
    gaps = np.diff(pos)
    gaps[seg_start[1:] - 1] = -1  # differences across two dims
    best = np.maximum.reduceat(gaps, seg_start)
    hit = np.flatnonzero(gaps == best[dims[:-1]])
    first_hit = hit[np.unique(dims[hit], return_index=True)[1]]
    return best.astype(np.int64), pos[first_hit].astype(np.int64)


@dataclass
class _Series:
    key: str
    feature: Feature
    labels: list[str]
    arrays: dict[int, np.ndarray]  # episode -> (frames, width)


class _Batch:
    """The numeric features of every episode, extracted once, plus shared per-episode figures."""

    def __init__(self, meta: DatasetMeta, frames_by_episode: Mapping[int, pa.Table], th: ContentThresholds) -> None:
        self.meta = meta
        self.th = th
        self.episodes = sorted(int(e) for e in frames_by_episode)
        self.lengths = {int(e): int(t.num_rows) for e, t in frames_by_episode.items()}
        self.files = {e.episode_index: e.data_path for e in meta.episodes}
        self.series: dict[str, _Series] = {}
        for key, feature in meta.features.items():
            if feature.is_camera or not feature.is_numeric or meta.is_index_column(key):
                continue
            arrays: dict[int, np.ndarray] = {}
            width: int | None = None
            scalar = False
            for ep in self.episodes:
                got = _column_matrix(frames_by_episode[ep], key)
                if got is None:
                    continue
                arr, scalar = got
                if arr.shape[0] == 0:
                    continue
                if width is None:
                    width = arr.shape[1]
                if arr.shape[1] != width:
                    continue
                if feature.dtype.startswith("float") and not np.issubdtype(arr.dtype, np.floating):
                    arr = arr.astype(np.float64)
                arrays[ep] = arr
            if arrays and width:
                self.series[key] = _Series(key, feature, dimension_labels(feature, width, scalar), arrays)
        floats = [k for k, s in self.series.items() if s.feature.dtype.startswith("float")]
        self.action_keys = [k for k in floats if k.startswith("action")]
        self.observation_keys = [k for k in floats if k.startswith("observation.")]
        self._runs: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def file(self, episode: int) -> str | None:
        return self.files.get(episode)

    def runs(self, key: str, episode: int) -> tuple[np.ndarray, np.ndarray]:
        """Longest constant run (length, start) per dimension, cached."""
        got = self._runs.get((key, episode))
        if got is None:
            got = _longest_constant_runs(self.series[key].arrays[episode])
            self._runs[(key, episode)] = got
        return got

    def stuck(self, key: str, episode: int) -> np.ndarray:
        """Per dimension: constant over ``constant_run_fraction`` of the episode and
        ``constant_run_min_frames`` frames."""
        n = self.series[key].arrays[episode].shape[0]
        return self.runs(key, episode)[0] >= self.need(n)

    def need(self, episode_frames: int) -> int:
        """Shortest constant run (frames) that makes a dimension stuck in an episode of that length."""
        return max(self.th.constant_run_min_frames, math.ceil(self.th.constant_run_fraction * episode_frames), 1)

    def partner(self, key: str) -> str | None:
        """``action<sfx>`` <-> ``observation.state<sfx>``, when both exist with the same width."""
        if key.startswith("action"):
            other = "observation.state" + key[len("action") :]
        elif key.startswith("observation.state"):
            other = "action" + key[len("observation.state") :]
        else:
            return None
        if other not in self.series or key not in self.series:
            return None
        if len(self.series[other].labels) != len(self.series[key].labels):
            return None
        return other


# --------------------------------------------------------------------------- helpers


def _fmt(value: float) -> str:
    return f"{float(value):.6g}"


def _outcome(
    name: str,
    offenders: list[tuple[tuple[Any, ...], str | None, Offender]],
    *,
    episodes_examined: int,
    dims_examined: int,
    extra: dict[str, Any],
) -> CheckOutcome:
    """Sort ``(sort_key, dim_label, offender)`` triples and build the WARN outcome."""
    offenders.sort(key=lambda item: item[0])
    by_dim: dict[str, int] = {}
    for _, label, _o in offenders:
        if label is not None:
            by_dim[label] = by_dim.get(label, 0) + 1
    episodes = sorted({o.episode_index for _, _, o in offenders if o.episode_index is not None})
    metadata: dict[str, Any] = {
        "episodes_examined": episodes_examined,
        "dims_examined": dims_examined,
        "offenders": len(offenders),
        "offending_episodes": episodes,
    }
    if by_dim:
        metadata["offenders_by_dim"] = by_dim
    metadata.update(extra)
    return CheckOutcome.from_offenders(
        name, [o for _, _, o in offenders], description=DESCRIPTIONS[name], severity="WARN", metadata=metadata
    )


def _examined(batch: _Batch, keys: list[str], min_frames: int = 1) -> tuple[int, int]:
    """(episodes with at least one of ``keys``, dimensions of ``keys``)."""
    eps = {e for k in keys for e, a in batch.series[k].arrays.items() if a.shape[0] >= min_frames}
    return len(eps), sum(len(batch.series[k].labels) for k in keys)


def _key_order(batch: _Batch) -> Callable[[str], int]:
    order = {k: i for i, k in enumerate(batch.series)}
    return lambda k: order.get(k, len(order))


# --------------------------------------------------------------------------- rules


def _constant_run_rule(name: str, batch: _Batch, keys: list[str], th: ContentThresholds) -> CheckOutcome:
    """``frozen_actuators`` (action-like keys) / ``flatlined_sensors`` (observation keys)."""
    offenders: list[tuple[tuple[Any, ...], str | None, Offender]] = []
    rank = _key_order(batch)
    for key in keys:
        series = batch.series[key]
        eps = sorted(series.arrays)
        stuck = {e: batch.stuck(key, e) for e in eps}
        # "varies" in an episode: changes at least once and is not stuck there.
        varies = {e: (batch.runs(key, e)[0] < series.arrays[e].shape[0]) & ~stuck[e] for e in eps}
        n_varying = np.sum([varies[e] for e in eps], axis=0)
        partner = batch.partner(key)
        partner_labels = batch.series[partner].labels if partner is not None else []
        for ep in eps:
            dims = np.flatnonzero(stuck[ep])
            if not dims.size:
                continue
            x = series.arrays[ep]
            n = x.shape[0]
            motion = np.zeros(x.shape[1])
            if partner is not None and ep in batch.series[partner].arrays:
                p = batch.series[partner].arrays[ep].astype(np.float64, copy=False)
                motion = np.fmax.reduce(p, axis=0) - np.fmin.reduce(p, axis=0)
            length, start = batch.runs(key, ep)
            for j in dims:
                elsewhere = int(n_varying[j])
                moved = bool(motion[j] > 0 and motion[j] >= th.partner_motion_min)
                if not elsewhere and not moved:
                    continue
                reasons = []
                if elsewhere:
                    reasons.append(f"it varies in {elsewhere} other episode(s)")
                if moved:
                    reasons.append(f"{partner_labels[j]} moves by {float(motion[j]):.4g}")
                run, s = int(length[j]), int(start[j])
                label = series.labels[j]
                offenders.append(
                    (
                        (ep, rank(key), int(j)),
                        label,
                        Offender(
                            file=batch.file(ep),
                            episode_index=ep,
                            detail=f"{label} constant at {_fmt(x[s, j])} for {run} of {n} frames "
                            f"(frames {s}-{s + run - 1}) while {' and '.join(reasons)}",
                            expected=f"constant runs < {batch.need(n)} frames",
                            found=f"{run} frames",
                        ),
                    )
                )
    episodes, dims = _examined(batch, keys)
    return _outcome(
        name,
        offenders,
        episodes_examined=episodes,
        dims_examined=dims,
        extra={
            "features": keys,
            "constant_run_fraction": th.constant_run_fraction,
            "constant_run_min_frames": th.constant_run_min_frames,
            "partner_motion_min": th.partner_motion_min,
        },
    )


def _clipped_values(batch: _Batch, th: ContentThresholds) -> CheckOutcome:
    offenders: list[tuple[tuple[Any, ...], str | None, Offender]] = []
    rank = _key_order(batch)
    keys = batch.action_keys + batch.observation_keys
    for key in keys:
        series = batch.series[key]
        for ep, x in series.arrays.items():
            n = x.shape[0]
            if n < max(th.clip_min_frames, 2):
                continue
            lo = np.fmin.reduce(x, axis=0)
            hi = np.fmax.reduce(x, axis=0)
            at_lo = (x == lo).sum(axis=0)
            at_hi = (x == hi).sum(axis=0)
            at = np.maximum(at_lo, at_hi)
            cand = (hi > lo) & (at >= th.clip_fraction * n) & ~batch.stuck(key, ep)
            if not cand.any():
                continue
            srt = np.sort(x[:, cand], axis=0)
            distinct = 1 + (srt[1:] != srt[:-1]).sum(axis=0)
            for j, k in zip(np.flatnonzero(cand), distinct, strict=True):
                if k < th.clip_min_distinct:
                    continue
                top = at_hi[j] >= at_lo[j]
                bound, value, count = ("max", hi[j], int(at_hi[j])) if top else ("min", lo[j], int(at_lo[j]))
                label = series.labels[j]
                offenders.append(
                    (
                        (ep, rank(key), int(j)),
                        label,
                        Offender(
                            file=batch.file(ep),
                            episode_index=ep,
                            detail=f"{label} sits exactly at its episode {bound} {_fmt(value)} in {count} of {n} "
                            f"frames ({count / n:.0%}; {int(k)} distinct values)",
                            expected=f"< {th.clip_fraction:.0%} of frames at the min or max",
                            found=f"{count / n:.1%} at {bound} {_fmt(value)}",
                        ),
                    )
                )
    episodes, dims = _examined(batch, keys, max(th.clip_min_frames, 2))
    return _outcome(
        "clipped_values",
        offenders,
        episodes_examined=episodes,
        dims_examined=dims,
        extra={
            "features": keys,
            "clip_fraction": th.clip_fraction,
            "clip_min_frames": th.clip_min_frames,
            "clip_min_distinct": th.clip_min_distinct,
        },
    )


def _median_nonzero(d: np.ndarray) -> np.ndarray:
    """Per column of ``d`` (>= 0, NaN allowed): median of the non-zero, non-NaN values; NaN if none."""
    srt = np.sort(d, axis=0)  # zeros first, NaN last
    zeros = (srt == 0).sum(axis=0)
    valid = (~np.isnan(srt)).sum(axis=0)
    m = valid - zeros
    rows = srt.shape[0]
    lo_i = np.clip(zeros + (m - 1) // 2, 0, max(rows - 1, 0))
    hi_i = np.clip(zeros + m // 2, 0, max(rows - 1, 0))
    if rows == 0:
        return np.full(d.shape[1], np.nan)
    lo_v = np.take_along_axis(srt, lo_i[None, :], axis=0)[0]
    hi_v = np.take_along_axis(srt, hi_i[None, :], axis=0)[0]
    return np.where(m > 0, (lo_v + hi_v) / 2.0, np.nan)


def _action_jumps(batch: _Batch, th: ContentThresholds) -> CheckOutcome:
    offenders: list[tuple[tuple[Any, ...], str | None, Offender]] = []
    rank = _key_order(batch)
    scales: dict[str, float] = {}
    for key in batch.action_keys:
        series = batch.series[key]
        steps = {e: np.diff(x.astype(np.float64, copy=False), axis=0) for e, x in series.arrays.items()}
        all_steps = [np.abs(s) for s in steps.values() if s.shape[0]]
        if not all_steps:
            continue
        scale = _median_nonzero(np.concatenate(all_steps, axis=0))
        limit = np.where(np.isnan(scale), np.inf, np.maximum(th.jump_scale_factor * scale, th.jump_min_abs))
        for j, label in enumerate(series.labels):
            if np.isfinite(scale[j]):
                scales[label] = float(scale[j])
        for ep, s in steps.items():
            if not s.shape[0]:
                continue
            mask = np.abs(s) > limit
            hit = np.flatnonzero(mask.any(axis=0))
            if not hit.size:
                continue
            first = mask.argmax(axis=0)
            count = mask.sum(axis=0)
            for j in hit:
                t = int(first[j])
                step = float(s[t, j])
                label = series.labels[j]
                more = f"; {int(count[j])} jumps in all" if count[j] > 1 else ""
                offenders.append(
                    (
                        (ep, rank(key), int(j)),
                        label,
                        Offender(
                            file=batch.file(ep),
                            episode_index=ep,
                            detail=f"{label} jumps by {step:+.4g} from frame {t} to frame {t + 1}{more} "
                            f"(typical step {scale[j]:.3g})",
                            expected=f"|step| <= {float(limit[j]):.4g} per frame",
                            found=f"{abs(step):.4g} at frame {t + 1}",
                        ),
                    )
                )
    episodes, dims = _examined(batch, batch.action_keys, 2)
    return _outcome(
        "action_jumps",
        offenders,
        episodes_examined=episodes,
        dims_examined=dims,
        extra={
            "features": batch.action_keys,
            "jump_scale_factor": th.jump_scale_factor,
            "jump_min_abs": th.jump_min_abs,
        },
    )


def _zero_variance(batch: _Batch) -> CheckOutcome:
    offenders: list[tuple[tuple[Any, ...], str | None, Offender]] = []
    rank = _key_order(batch)
    keys = list(batch.series)
    frames_seen = 0
    for key in keys:
        series = batch.series[key]
        arrays = list(series.arrays.values())
        frames = sum(a.shape[0] for a in arrays)
        frames_seen = max(frames_seen, frames)
        if frames < 2:
            continue
        lo = np.fmin.reduce([np.fmin.reduce(a.astype(np.float64, copy=False), axis=0) for a in arrays], axis=0)
        hi = np.fmax.reduce([np.fmax.reduce(a.astype(np.float64, copy=False), axis=0) for a in arrays], axis=0)
        for j in np.flatnonzero(lo == hi):
            raw: Any = arrays[0][0, j].item()
            value = _fmt(raw) if isinstance(raw, float) else repr(raw)
            label = series.labels[j]
            offenders.append(
                (
                    (rank(key), int(j)),
                    label,
                    Offender(
                        detail=f"{label} is {value} in all {frames} frames of the {len(arrays)} episode(s) examined",
                        expected="some variation across the batch",
                        found=f"constant {value}",
                    ),
                )
            )
    episodes, dims = _examined(batch, keys)
    return _outcome(
        "zero_variance_dims",
        offenders,
        episodes_examined=episodes,
        dims_examined=dims,
        extra={"features": keys, "frames_examined": frames_seen},
    )


def _within_one_turn(lo: np.ndarray, hi: np.ndarray, turn: float, margin: float) -> np.ndarray:
    """Per dimension: values within ``[-turn/2, turn/2]`` or ``[0, turn]``, give or take ``margin * turn``."""
    slack = margin * turn
    centred = (lo >= -turn / 2 - slack) & (hi <= turn / 2 + slack)
    positive = (lo >= -slack) & (hi <= turn + slack)
    return centred | positive


def _encoder_wraparound(batch: _Batch, th: ContentThresholds) -> CheckOutcome:
    offenders: list[tuple[tuple[Any, ...], str | None, Offender]] = []
    rank = _key_order(batch)
    keys = batch.observation_keys
    m = th.wrap_range_margin
    for key in keys:
        series = batch.series[key]
        for ep, x in series.arrays.items():
            if x.shape[0] < 2:
                continue
            x64 = x.astype(np.float64, copy=False)
            lo = np.fmin.reduce(x64, axis=0)
            hi = np.fmax.reduce(x64, axis=0)
            radians = _within_one_turn(lo, hi, 2 * math.pi, m)
            degrees = ~radians & _within_one_turn(lo, hi, 360.0, m)
            turn = np.where(radians, 2 * math.pi, np.where(degrees, 360.0, np.nan))
            steps = np.diff(x64, axis=0)
            mask = np.abs(steps) >= th.wrap_min_fraction * turn  # NaN turn -> False
            hit = np.flatnonzero(mask.any(axis=0))
            if not hit.size:
                continue
            first = mask.argmax(axis=0)
            count = mask.sum(axis=0)
            for j in hit:
                t = int(first[j])
                unit = "rad" if radians[j] else "deg"
                step = float(steps[t, j])
                label = series.labels[j]
                more = f"; {int(count[j])} wraps in all" if count[j] > 1 else ""
                offenders.append(
                    (
                        (ep, rank(key), int(j)),
                        label,
                        Offender(
                            file=batch.file(ep),
                            episode_index=ep,
                            detail=f"{label} jumps by {step:+.4g} {unit} from frame {t} to frame {t + 1} while "
                            f"staying within [{lo[j]:.4g}, {hi[j]:.4g}] {unit}: an angle wrapping around{more}",
                            expected=f"a continuous angle (|step| < {th.wrap_min_fraction * turn[j]:.4g} {unit})",
                            found=f"{step:+.4g} {unit} at frame {t + 1}",
                        ),
                    )
                )
    episodes, dims = _examined(batch, keys, 2)
    return _outcome(
        "encoder_wraparound",
        offenders,
        episodes_examined=episodes,
        dims_examined=dims,
        extra={"features": keys, "wrap_min_fraction": th.wrap_min_fraction, "wrap_range_margin": m},
    )


def _near_duplicates(batch: _Batch, th: ContentThresholds) -> CheckOutcome:
    offenders: list[tuple[tuple[Any, ...], str | None, Offender]] = []
    keys = batch.action_keys + batch.observation_keys
    atol = th.duplicate_atol
    # Group episodes by (length, keys present): only those can be equal.
    groups: dict[tuple[Any, ...], list[int]] = {}
    for ep in batch.episodes:
        present = tuple(k for k in keys if ep in batch.series[k].arrays)
        if not present:
            continue
        groups.setdefault((batch.lengths[ep], present), []).append(ep)
    pairs_verified = 0
    for (n, present), eps in groups.items():
        if len(eps) < 2:
            continue
        # Fingerprint: per-dimension means (|mean a - mean b| <= max |a - b|, so no pair is missed).
        means = np.stack(
            [
                np.concatenate([batch.series[k].arrays[e].mean(axis=0, dtype=np.float64) for k in present])
                for e in eps
            ]
        )
        screen = atol * (1 + 1e-9) + _ROBUST_EPS
        for i, a in enumerate(eps[:-1]):
            close = np.flatnonzero(np.abs(means[i + 1 :] - means[i]).max(axis=1) <= screen)
            for c in close:
                b = eps[i + 1 + int(c)]
                pairs_verified += 1
                diff = max(
                    float(
                        np.max(
                            np.abs(
                                batch.series[k].arrays[a].astype(np.float64, copy=False)
                                - batch.series[k].arrays[b].astype(np.float64, copy=False)
                            )
                        )
                    )
                    for k in present
                )
                if not diff <= atol:
                    continue
                offenders.append(
                    (
                        (b, a),
                        None,
                        Offender(
                            file=batch.file(b),
                            episode_index=b,
                            detail=f"episodes {a} and {b} have the same {n} frames of {', '.join(present)} "
                            f"(max abs difference {diff:.3g})",
                            expected=f"max abs difference > {atol:g} from every other episode",
                            found=f"{diff:.3g} from episode {a}",
                        ),
                    )
                )
    episodes, dims = _examined(batch, keys)
    return _outcome(
        "near_duplicate_episodes",
        offenders,
        episodes_examined=episodes,
        dims_examined=dims,
        extra={
            "features": keys,
            "duplicate_atol": atol,
            "pairs_verified": pairs_verified,
            "duplicate_pairs": [[o.episode_index, k[1]] for k, _, o in sorted(offenders, key=lambda t: t[0])],
        },
    )


def _short_episodes(batch: _Batch, th: ContentThresholds) -> CheckOutcome:
    offenders: list[tuple[tuple[Any, ...], str | None, Offender]] = []
    window = th.policy_window_frames
    fps = batch.meta.fps
    for ep in batch.episodes:
        n = batch.lengths[ep]
        if n >= window:
            continue
        seconds = f" ({n / fps:.2f} s at {fps} fps)" if fps else ""
        offenders.append(
            (
                (ep,),
                None,
                Offender(
                    file=batch.file(ep),
                    episode_index=ep,
                    detail=f"{n} frame(s){seconds}, shorter than the policy window of {window} frames",
                    expected=f">= {window} frames",
                    found=n,
                ),
            )
        )
    lengths = [batch.lengths[e] for e in batch.episodes]
    return _outcome(
        "short_episodes",
        offenders,
        episodes_examined=len(batch.episodes),
        dims_examined=0,
        extra={
            "policy_window_frames": window,
            "shortest_episode_frames": min(lengths) if lengths else None,
        },
    )
