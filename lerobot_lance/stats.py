"""Per-episode and dataset statistics, computed and aggregated the way LeRobot does.

Three layers, each a small numpy function built on the one before:

1. :func:`runs_stats` / :func:`image_stats`: the statistics of one feature over
   the frames of each episode (``min``, ``max``, ``mean``, ``std``, ``count`` and the
   quantiles ``q01``, ``q10``, ``q50``, ``q90``, ``q99``), for several episodes'
   rows at once (each episode's values exactly those of its rows alone;
   :func:`feature_stats` is one episode); :func:`compute_episodes_stats` applies
   them to every numeric feature and camera of a batch of episodes
   (:func:`compute_episode_stats`: one episode).
2. :func:`aggregate_stats`: the dataset statistics from the per-episode ones
   (``meta/stats.json``).
3. :func:`compare_stats`: recomputed statistics against the ones a source
   declares (v2.0 ``meta/stats.json``, v2.1 ``meta/episodes_stats.jsonl``,
   v3.0 ``stats/<feature>/<stat>`` episode columns and ``meta/stats.json``).

Format facts, checked against ``lerobot/datasets/compute_stats.py`` and
``lerobot/datasets/lerobot_dataset.py`` of lerobot 0.4.4 and against the samples
in ``../shared/datasets``:

- ``std`` is the population standard deviation (ddof=0).
- ``count`` has shape ``(1,)``: the number of frames for a numeric feature, the
  number of *sampled* frames for a camera.
- Vector features have stats of the feature's shape; scalar columns get shape ``(1,)``.
  Cameras get per-channel stats of shape ``(3, 1, 1)`` of pixels scaled to
  ``[0, 1]``, over a deterministic sample of frames (:func:`sample_frame_indices`);
  frames whose larger side is >= 300 px are first subsampled by an integer
  stride so that side comes to about 150 px (:func:`downsample_frames`).
- Quantiles (v3.0 only; v2.x sources declare none) come from a 5000-bin
  histogram spanning ``[min, max]`` with linear interpolation inside the bin
  that reaches ``q * count``; with fewer than 2 values every quantile is the mean.
- ``min``/``max`` keep the feature's dtype (integers stay integers in
  ``stats.json``); ``mean``, ``std`` and the quantiles are float64; ``count`` int64.

Where this module deliberately differs from lerobot 0.4.4:

- Numeric ``mean`` and ``std`` are computed in float64, two-pass; LeRobot computes
  float32 features in float32 as ``sqrt(E[x^2] - E[x]^2)``, so on float32 data the
  two agree to float32 precision (relative ~1e-7 for the mean, ~1e-4 at worst for
  the std of a dimension whose std is small next to its mean).
- Camera ``std`` is the true per-channel std. LeRobot 0.4.4 squares the uint8
  pixels without widening them, so ``E[x^2]`` wraps modulo 256, the variance
  comes out negative and is clipped: every per-episode camera ``std`` it writes is
  ``0.0`` (see ``g1_image_v30/meta/episodes``), and its dataset-level camera std is
  only the spread of the episode means. v2.0/v2.1 camera std (older LeRobot,
  ``np.std``) is correct and agrees with this module.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lerobot_lance.formats import QUANTILE_NAMES, STAT_NAMES, column_name
from lerobot_lance.model import DatasetMeta, Feature

__all__ = [
    "DOWNSAMPLE_TARGET_SIZE",
    "DOWNSAMPLE_THRESHOLD",
    "EpisodeStats",
    "QUANTILES",
    "QUANTILE_BINS",
    "StatsComparison",
    "StatsMismatch",
    "aggregate_stats",
    "compare_stats",
    "compute_episode_stats",
    "compute_episodes_stats",
    "downsample_frames",
    "episode_stats_to_struct",
    "estimate_num_samples",
    "feature_stats",
    "image_stats",
    "plot_mean_std_png",
    "ranges_markdown",
    "runs_stats",
    "sample_frame_indices",
    "stats_from_json",
    "stats_to_json",
    "write_stats_json",
]

#: feature key (LeRobot key, with dots) -> stat name -> array.
EpisodeStats = dict[str, dict[str, np.ndarray]]

#: Quantile name -> probability (lerobot 0.4.4 ``DEFAULT_QUANTILES``).
QUANTILES: dict[str, float] = dict(zip(QUANTILE_NAMES, (0.01, 0.10, 0.50, 0.90, 0.99), strict=True))
#: Histogram bins of the quantile estimate (lerobot 0.4.4 ``RunningQuantileStats``).
QUANTILE_BINS = 5000
#: Padding of the histogram range below ``min`` and above ``max`` (lerobot 0.4.4).
_HISTOGRAM_PAD = 1e-10
#: Camera sample size heuristic (lerobot 0.4.4 ``estimate_num_samples`` defaults).
_MIN_SAMPLES, _MAX_SAMPLES, _SAMPLE_POWER = 100, 10_000, 0.75
#: Frames whose larger side reaches this many pixels are subsampled before stats
#: (lerobot 0.4.4 ``auto_downsample_height_width``).
DOWNSAMPLE_THRESHOLD = 300
#: ... by the integer stride that brings the larger side to about this many pixels.
DOWNSAMPLE_TARGET_SIZE = 150

_ALL_STATS: tuple[str, ...] = STAT_NAMES + QUANTILE_NAMES
#: A declared ``std`` computed as ``sqrt(E[x^2] - E[x]^2)`` with sums of ``n``
#: terms in a float type of machine epsilon ``u`` (LeRobot 0.4.4's
#: ``get_feature_stats`` on float32 data) carries a variance error of about
#: ``sqrt(n) * u * E[x^2]`` (probabilistic rounding-error bound of a sum,
#: Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., 4.2).
#: :func:`compare_stats` allows this many times that. Measured on the G1
#: samples written by lerobot 0.4.4 (``g1_image_v30``, ``g1_multicam_v30``):
#: at most 1.4 times ``sqrt(n) * u * E[x^2]`` (0.0134 of the std, 9e-5 absolute,
#: on ``observation.state`` of episode 0).
STD_ROUNDING_FACTOR = 4.0
_IMAGE_STAT_SHAPE = (3, 1, 1)


# --------------------------------------------------------------------------- per feature


def _histogram_quantiles(values: np.ndarray, lengths: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[str, np.ndarray]:
    """Histogram quantiles of each column of ``values`` (N, d) within each run of
    ``lengths`` (S,) consecutive rows (the episodes of a batch; sum = N):
    float64 arrays of shape (S, d). ``lo``/``hi`` (S, d): each run's column min/max.

    Per run and column, bin edges span ``[lo - 1e-10, hi + 1e-10]`` in 5000 equal
    bins, computed in the values' own floating dtype (so for float32 data the
    padding vanishes and the edges are float32), in float64 for integer data:
    the arithmetic LeRobot 0.4.4 does (``RunningQuantileStats``), which is what
    makes the results agree with its stored quantiles to float32 precision.

    Every run and column at once (:func:`_columns_quantiles`, same results bit
    for bit as :func:`_binned_quantiles` on that run's column alone); small
    integer types (at most 256 distinct values, counted once) run by run and
    column by column (:func:`_binned_quantiles`).
    """
    if values.dtype not in (np.uint8, np.int8):
        return _columns_quantiles(values, lo, hi, lengths)
    out = {name: np.empty(lo.shape, dtype=np.float64) for name in QUANTILES}
    for s, (a, n) in enumerate(zip(_run_starts(lengths).tolist(), lengths.tolist())):
        for j in range(values.shape[1]):
            col = values[a:a + n, j]
            offset = int(col.min())  # count the (at most 256) distinct values once, then bin them
            counts = np.bincount((col.astype(np.int64) - offset), minlength=1)
            points = np.arange(counts.size) + offset
            keep = counts > 0
            for name, value in _binned_quantiles(points[keep], counts[keep], lo[s, j], hi[s, j], n).items():
                out[name][s, j] = value
    return out


def _run_starts(lengths: np.ndarray) -> np.ndarray:
    """First row of each run of ``lengths`` (S,) consecutive rows: int64 (S,)."""
    return np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)


#: :func:`_columns_quantiles` sorts at most about this many values at once
#: (runs grouped by length, each padded to the longest of its group).
_SORT_BLOCK_VALUES = 1 << 20


def _columns_quantiles(
    values: np.ndarray, lo: np.ndarray, hi: np.ndarray, lengths: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """:func:`_binned_quantiles` of every column of ``values`` (N, d) at once, bit
    for bit, without building each column's 5001 edges and 5000 bins; with
    ``lengths`` (S,), separately within each run of that many consecutive rows.

    ``lo``/``hi``: the column min/max, shape (d,) (no ``lengths``) or (S, d).
    Returns float64 arrays of shape (d,), or (S, d) with ``lengths``.

    The edges ``np.linspace`` builds are non-decreasing (``edge(i) = i * step +
    start``, each operation rounded in the edges' dtype; the last edge is
    ``stop``), so a value's bin is monotone in the value: the first bin whose
    cumulative count reaches ``q * n`` is the bin ``k`` of the ``ceil(q * n)``-th
    smallest value (a binary search over edges computed as ``np.linspace``
    computes them), ``cum[k - 1]`` counts the values below ``edge(k)`` and
    ``cum[k]`` those below ``edge(k + 1)`` (or up to it, for the last bin).
    Each (run, column) is a unit: the units' values are sorted in blocks of
    runs of similar length, each unit padded after its values to the block's
    longest run (the padding is never read). Units whose edges are not finite
    or whose last edge is below the one before it, and edge dtypes other than
    float32/float64, go through :func:`_binned_quantiles`.
    """
    n_rows, d = values.shape
    single = lengths is None
    lens = np.array([n_rows], dtype=np.int64) if single else np.asarray(lengths, dtype=np.int64)
    lo2, hi2 = (lo[None, :], hi[None, :]) if single else (lo, hi)
    out = {name: np.empty((lens.size, d), dtype=np.float64) for name in QUANTILES}
    starts = _run_starts(lens)
    # unit u = run s, column j (u = s * d + j)
    start, stop = (lo2 - _HISTOGRAM_PAD).reshape(-1, 1), (hi2 + _HISTOGRAM_PAD).reshape(-1, 1)
    with np.errstate(all="ignore"):
        edge = _Edges(start, stop)
        last_two = edge.at(np.array([[QUANTILE_BINS - 1, QUANTILE_BINS]]))
        fast = (np.isfinite(last_two).all(axis=1) & (last_two[:, 1] >= last_two[:, 0]) & np.isfinite(edge.step[:, 0])
                & (edge.delta[:, 0] >= 0) & (edge.dtype in (np.float32, np.float64)))
    for u in np.flatnonzero(~fast).tolist():
        s, j = divmod(u, d)
        col = values[starts[s]:starts[s] + lens[s], j]
        for name, value in _binned_quantiles(col, None, lo2[s, j], hi2[s, j], int(lens[s])).items():
            out[name][s, j] = value
    flat_out = {name: value.reshape(-1) for name, value in out.items()}
    pad = np.inf if np.issubdtype(values.dtype, np.floating) else np.iinfo(values.dtype).max
    order = np.argsort(lens, kind="stable")  # blocks of runs of similar length
    first = 0 if fast.any() else order.size
    while first < order.size:
        last = first + 1
        while last < order.size and (last - first + 1) * int(lens[order[last]]) * d <= _SORT_BLOCK_VALUES:
            last += 1
        runs = order[first:last]
        units = (runs[:, None] * d + np.arange(d)[None, :]).reshape(-1)  # (r * d,): run by run, column by column
        keep = fast[units]
        if keep.any():
            value = _block_quantiles(values, runs, lens[runs], starts[runs], pad, start[units], stop[units])
            for t, name in enumerate(QUANTILES):
                flat_out[name][units[keep]] = value[keep, t]
        first = last
    return {name: value[0] for name, value in out.items()} if single else out


def _block_quantiles(
    values: np.ndarray, runs: np.ndarray, lens: np.ndarray, starts: np.ndarray, pad: Any, start: np.ndarray, stop: np.ndarray,
) -> np.ndarray:
    """Quantiles, float64 (r * d, 5), of every column of ``runs`` (r,) of
    :func:`_columns_quantiles` (each ``lens`` (r,) rows from ``starts`` (r,);
    edges from ``start``/``stop`` (r * d, 1), run by run, column by column);
    meaningful only where those edges are (its ``fast`` units)."""
    longest, d = int(lens.max()), values.shape[1]
    pos = np.arange(longest)
    valid = pos[None, :] < lens[:, None]  # (r, L)
    block = values[np.where(valid, starts[:, None] + pos[None, :], 0)]  # (r, L, d): each run's rows, then padding
    block[~valid] = pad
    xs = block.transpose(0, 2, 1).reshape(-1, longest)  # (r * d, L), a copy
    xs.sort(axis=1)  # the padding sorts last
    n = np.repeat(lens, d)
    target = np.array(list(QUANTILES.values()))[None, :] * n[:, None].astype(np.float64)  # (r * d, 5): q * n
    v = np.take_along_axis(xs, np.ceil(target).astype(np.int64) - 1, axis=1)  # the value whose bin each quantile is in
    top = QUANTILE_BINS + 1  # edge(top) stands for +inf
    with np.errstate(all="ignore"):
        edge = _Edges(start, stop)
        # k = the largest i with edge(i) <= v (np.searchsorted(edges, v, "right") - 1; edge(0) <= v),
        # searched in [lo_i, hi_i) with edge(lo_i) <= v < edge(hi_i): the bracket around the estimate
        # (v - start) / step when it holds, else [0, top)
        guess = np.floor((v.astype(np.float64) - edge.start) / edge.step)
        guess = np.clip(np.nan_to_num(guess, nan=0.0), 0, QUANTILE_BINS).astype(np.int64)
        lo_i, hi_i = np.maximum(guess - 2, 0), np.minimum(guess + 3, top)
        held = (edge.at(lo_i) <= v) & ((hi_i == top) | (edge.at(np.minimum(hi_i, QUANTILE_BINS)) > v))
        lo_i, hi_i = np.where(held, lo_i, 0), np.where(held, hi_i, top)
        while (hi_i - lo_i > 1).any():
            mid = (lo_i + hi_i) // 2
            right = edge.at(np.minimum(mid, QUANTILE_BINS)) <= v
            lo_i, hi_i = np.where(right, mid, lo_i), np.where(right, hi_i, mid)
        k = np.minimum(lo_i, QUANTILE_BINS - 1)  # a value on the last edge is in the last bin
        lower, upper = edge.at(k), edge.at(k + 1)
        last = k == QUANTILE_BINS - 1
        before = _count_sorted(xs, n, lambda x: x < lower).astype(np.float64)  # cum[k - 1]
        upto = _count_sorted(xs, n, lambda x: np.where(last, x <= upper, x < upper)).astype(np.float64)  # cum[k]
        lower64, upper64 = lower.astype(np.float64), upper.astype(np.float64)
        return np.where(k == 0, lower64, lower64 + (target - before) / (upto - before) * (upper64 - lower64))


def _count_sorted(xs: np.ndarray, n: np.ndarray, holds: Any) -> np.ndarray:
    """How many of the first ``n`` (c,) values of each sorted row of ``xs`` (c, L)
    satisfy ``holds`` (element-wise on a (c, 5) gather of one value per
    quantile; true for a prefix of each row): int64 (c, 5), by bisection."""
    lo = np.zeros((xs.shape[0], len(QUANTILES)), dtype=np.int64)
    hi = np.repeat(n[:, None], len(QUANTILES), axis=1)
    while (active := lo < hi).any():
        mid = (lo + hi) // 2  # < hi <= n where active
        yes = holds(np.take_along_axis(xs, np.where(active, mid, 0), axis=1))
        lo, hi = np.where(active & yes, mid + 1, lo), np.where(active & ~yes, mid, hi)
    return lo


class _Edges:
    """Histogram edges of columns, computed one by one exactly as
    ``np.linspace(start, stop, 5001)`` computes them for each column alone
    (numpy 2's ``linspace``: ``arange(num) * step + start``, or for a zero
    ``step`` its denormal branch ``arange(num) / div * delta + start``; the last
    edge set to ``stop``). ``start``/``stop``: arrays of shape (c, 1)."""

    def __init__(self, start: np.ndarray, stop: np.ndarray) -> None:
        self.start, self.stop = start, stop
        self.dtype = np.result_type(start, stop, 1.0)
        self.delta = np.subtract(stop, start)
        self.step = self.delta / QUANTILE_BINS
        self.zero = self.step == 0
        self.any_zero = bool(self.zero.any())

    def at(self, i: np.ndarray) -> np.ndarray:
        """Edges ``i`` (int array, 0..5000, broadcast against (c, 1)), in :attr:`dtype`."""
        f = i.astype(self.dtype)
        y = np.where(self.zero, (f / QUANTILE_BINS) * self.delta, f * self.step) if self.any_zero else f * self.step
        return np.where(i == QUANTILE_BINS, self.stop, y + self.start)


def _binned_quantiles(points: np.ndarray, weights: np.ndarray | None, lo: Any, hi: Any, n: int) -> dict[str, float]:
    """The quantiles of one column from its values ``points`` (each counted
    ``weights`` times, or once), ``n`` values in all, by the 5000-bin
    histogram over ``[lo, hi]`` of :func:`_histogram_quantiles`."""
    edges = np.linspace(lo - _HISTOGRAM_PAD, hi + _HISTOGRAM_PAD, QUANTILE_BINS + 1)
    # bin i holds edges[i] <= x < edges[i+1]; the last bin also holds x == edges[-1]
    idx = np.searchsorted(edges, points, side="right") - 1
    idx[points == edges[-1]] = QUANTILE_BINS - 1
    inside = (idx >= 0) & (idx < QUANTILE_BINS)
    hist = np.bincount(
        idx[inside], weights=None if weights is None else weights[inside], minlength=QUANTILE_BINS
    ).astype(np.float64)
    cum = np.cumsum(hist)
    edges64 = edges.astype(np.float64)
    out: dict[str, float] = {}
    for name, q in QUANTILES.items():
        target = q * n
        k = int(np.searchsorted(cum, target, side="left"))
        if k == 0:
            out[name] = edges64[0]
        elif k >= QUANTILE_BINS:
            out[name] = edges64[-1]
        else:
            before = cum[k - 1]
            frac = (target - before) / (cum[k] - before)
            out[name] = edges64[k] + frac * (edges64[k + 1] - edges64[k])
    return out


def feature_stats(values: np.ndarray, *, quantiles: bool = True) -> dict[str, np.ndarray]:
    """Statistics of one numeric feature over the frames of one episode:
    :func:`runs_stats` of a single run (its documentation gives the statistics).

    Args:
        values: shape ``(n_frames, *feature_shape)``, any integer, float or bool dtype;
            a 1-D array is a scalar feature (``feature_shape`` taken as ``(1,)``).
        quantiles: also compute ``q01``, ``q10``, ``q50``, ``q90``, ``q99``.

    Raises:
        ValueError: ``values`` is 0-dimensional, has no frames, is not numeric, or
            holds NaN or infinity.
    """
    arr = np.asarray(values)
    if arr.ndim == 0:
        raise ValueError(f"values must have a frame axis, but have shape {arr.shape}")
    return runs_stats(arr, [arr.shape[0]], quantiles=quantiles)[0]


def runs_stats(values: np.ndarray, lengths: Sequence[int], *, quantiles: bool = True) -> list[dict[str, np.ndarray]]:
    """Statistics of one numeric feature over each run of consecutive frames
    (the episodes of a batch, one after the other), computed for all runs at once.

    Args:
        values: shape ``(N, *feature_shape)``, any integer, float or bool dtype; a
            1-D array is a scalar feature (``feature_shape`` taken as ``(1,)``).
            Bools are counted as 0/1.
        lengths: frames per run, in row order, each >= 1, summing to ``N``.
        quantiles: also compute ``q01``, ``q10``, ``q50``, ``q90``, ``q99``.

    Returns:
        Per run: ``{"min", "max", "mean", "std", "count"[, "q01", ..., "q99"]}``:
        ``min``/``max`` of ``values``' dtype (int64 for bools), ``mean``/``std``/quantiles
        float64, all of shape ``feature_shape``; ``count`` int64 of shape ``(1,)`` = the
        run's frames. Each run's values are exactly (bit for bit) those of the
        run's rows alone: ``mean`` = ``x.astype(float64).mean(axis=0)`` and ``std`` =
        ``sqrt(mean((x - mean) ** 2, axis=0))`` (population, ddof=0) over the run's
        ``(n, width)`` rows ``x``, summed in numpy's order for that shape
        (row by row for a vector, pairwise for a scalar), as lerobot 0.4.4
        ``get_feature_stats`` defines them (there in the data's dtype, see the
        module docstring). Quantiles follow lerobot 0.4.4 ``RunningQuantileStats``:
        a 5000-bin histogram over ``[min, max]``, linear interpolation within the bin
        reaching ``q * n`` (:func:`_histogram_quantiles`); with fewer than 2 frames
        every quantile is the mean (lerobot 0.4.4 ``_compute_basic_stats``).

    Raises:
        ValueError: ``values`` is 0-dimensional, a run has no frames, the lengths do
            not add up to ``N``, or the values are not numeric or hold NaN or infinity
            (naming the first such run when there are several).
    """
    arr = np.asarray(values)
    if arr.ndim == 0:
        raise ValueError(f"values must have a frame axis, but have shape {arr.shape}")
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if arr.shape[0] == 0 or lens.size == 0 or (lens < 1).any():
        raise ValueError(f"cannot compute statistics of 0 frames (values of shape {arr.shape})")
    if int(lens.sum()) != arr.shape[0]:
        raise ValueError(f"run lengths add up to {int(lens.sum())} frames, but values have {arr.shape[0]}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"values must be integer, float or bool, but are of dtype {arr.dtype}")
    n_rows = arr.shape[0]
    feature_shape = arr.shape[1:] if arr.ndim > 1 else (1,)
    flat = arr.reshape(n_rows, -1)
    starts = _run_starts(lens)
    if np.issubdtype(flat.dtype, np.floating):
        finite = np.isfinite(flat)
        if not finite.all():
            bad_rows = np.add.reduceat((~finite).sum(axis=1), starts)
            run = int(np.flatnonzero(bad_rows)[0])
            where = f"run {run} (frames {starts[run]}..{starts[run] + lens[run] - 1}): " if lens.size > 1 else ""
            raise ValueError(f"{where}values hold {int(bad_rows[run])} NaN or infinite entries; statistics are undefined")

    lo = np.minimum.reduceat(flat, starts, axis=0)  # (S, d)
    hi = np.maximum.reduceat(flat, starts, axis=0)
    as64 = flat.astype(np.float64)
    bounds = list(zip(starts.tolist(), (starts + lens).tolist()))
    # Sums run by run, each the reduction numpy does over that run's rows alone
    # (np.add.reduceat sums in another order), divided as np.mean divides.
    sums = np.stack([np.add.reduce(as64[a:b], axis=0) for a, b in bounds])
    mean = sums / lens[:, None]
    squares = (as64 - np.repeat(mean, lens, axis=0)) ** 2
    std = np.sqrt(np.stack([np.add.reduce(squares[a:b], axis=0) for a, b in bounds]) / lens[:, None])
    qs: dict[str, np.ndarray] = {}
    if quantiles:
        qs = _histogram_quantiles(flat, lens, lo, hi)
        few = lens < 2
        for value in qs.values():
            value[few] = mean[few]
    out = []
    for s in range(lens.size):
        stats: dict[str, np.ndarray] = {
            "min": lo[s].reshape(feature_shape),
            "max": hi[s].reshape(feature_shape),
            "mean": mean[s].reshape(feature_shape),
            "std": std[s].reshape(feature_shape),
            "count": np.array([lens[s]], dtype=np.int64),
        }
        for name, value in qs.items():
            stats[name] = value[s].reshape(feature_shape)
        out.append(stats)
    return out


# --------------------------------------------------------------------------- cameras


def estimate_num_samples(length: int) -> int:
    """How many frames of an episode of ``length`` frames LeRobot samples for camera stats.

    ``max(min(100, length), min(int(length ** 0.75), 10_000))``: every frame up to 100,
    100 up to ~464 frames, then growing as ``length ** 0.75`` (lerobot 0.4.4
    ``compute_stats.estimate_num_samples`` defaults).

    Raises:
        ValueError: ``length`` is negative.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, but is {length}")
    return max(min(_MIN_SAMPLES, length), min(int(length**_SAMPLE_POWER), _MAX_SAMPLES))


def sample_frame_indices(length: int, sample_size: int | None = None) -> list[int]:
    """Deterministic, evenly spread frame positions (0-based, within the episode) for camera stats.

    ``round(linspace(0, length - 1, k))`` with numpy's round-half-to-even, ``k`` =
    ``sample_size`` (capped at ``length``) or, by default, :func:`estimate_num_samples`
    (lerobot 0.4.4 ``compute_stats.sample_indices``). Positions are sorted and may
    repeat only if ``k`` exceeds ``length`` (it cannot: ``k`` is capped).

    Raises:
        ValueError: ``length`` is negative or ``sample_size`` is < 1.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, but is {length}")
    if sample_size is not None and sample_size < 1:
        raise ValueError(f"sample_size must be >= 1 or None, but is {sample_size}")
    if length == 0:
        return []
    k = estimate_num_samples(length) if sample_size is None else min(sample_size, length)
    return [int(i) for i in np.round(np.linspace(0, length - 1, k)).astype(np.int64)]


def downsample_frames(frames: np.ndarray) -> np.ndarray:
    """Subsample frames ``(n, H, W, C)`` the way LeRobot does before camera stats.

    Frames whose larger side is < 300 px are returned as they are; otherwise every
    ``s``-th row and column is kept, ``s = int(larger_side / 150)`` (the width when
    ``W > H``, else the height), as lerobot 0.4.4 ``auto_downsample_height_width``.
    A view, no copy.
    """
    height, width = frames.shape[1], frames.shape[2]
    if max(height, width) < DOWNSAMPLE_THRESHOLD:
        return frames
    stride = int(width / DOWNSAMPLE_TARGET_SIZE) if width > height else int(height / DOWNSAMPLE_TARGET_SIZE)
    return frames[:, ::stride, ::stride]


def image_stats(frames: np.ndarray, *, downsample: bool = True, quantiles: bool = True) -> dict[str, np.ndarray]:
    """Per-channel statistics of sampled camera frames, pixels scaled to ``[0, 1]``.

    Args:
        frames: uint8 RGB frames, shape ``(n, H, W, 3)`` (channels last, as decoded),
            already sampled (see :func:`sample_frame_indices`).
        downsample: first apply :func:`downsample_frames` (LeRobot's convention; turn
            off only when the caller already did).
        quantiles: also compute ``q01`` ... ``q99``.

    Returns:
        ``min``, ``max``, ``mean``, ``std`` (population) and quantiles as float64 of
        shape ``(3, 1, 1)`` (lerobot 0.4.4 ``compute_episode_stats``: stats over axes
        (frames, height, width), divided by 255); ``count`` int64 ``(1,)`` = ``n``.
        Quantiles are computed on the 0..255 values as in :func:`feature_stats`
        (edges in float64) and then divided by 255, as LeRobot does. See the module
        docstring for why ``std`` differs from what lerobot 0.4.4 writes.

    Raises:
        ValueError: ``frames`` is not uint8 of shape ``(n, H, W, 3)`` with ``n >= 1``.
    """
    arr = np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise ValueError(f"frames must be uint8 of shape (n>=1, H, W, 3), but are {arr.dtype} of shape {arr.shape}")
    if downsample:
        arr = downsample_frames(arr)
    # Every statistic comes from the 256-bin value counts of each channel, one
    # bincount over all pixels (channel c's value v counted in bin 256 * c + v):
    # exact integer moments, and the quantiles binned from the counts.
    pixels = arr.reshape(-1, 3)
    channel_offsets = np.array([0, 256, 512], dtype=np.uint16)
    value_counts = np.bincount((pixels.astype(np.uint16) + channel_offsets).ravel(), minlength=768).reshape(3, 256)
    counts = value_counts.astype(np.float64)
    levels = np.arange(256, dtype=np.float64)
    total = counts.sum(axis=1)
    mean = counts @ levels / total
    var = counts @ (levels**2) / total - mean**2  # exact sums of integers, no cancellation issue at this scale
    lo = np.array([levels[c > 0].min() for c in counts])
    hi = np.array([levels[c > 0].max() for c in counts])
    stats: dict[str, np.ndarray] = {
        "min": (lo / 255.0).reshape(_IMAGE_STAT_SHAPE),
        "max": (hi / 255.0).reshape(_IMAGE_STAT_SHAPE),
        "mean": (mean / 255.0).reshape(_IMAGE_STAT_SHAPE),
        "std": (np.sqrt(np.maximum(var, 0.0)) / 255.0).reshape(_IMAGE_STAT_SHAPE),
        "count": np.array([arr.shape[0]], dtype=np.int64),
    }
    if quantiles:
        if pixels.shape[0] < 2:
            qs = {name: mean.copy() for name in QUANTILES}
        else:
            qs = {name: np.empty(3, dtype=np.float64) for name in QUANTILES}
            values = np.arange(256)
            for c in range(3):
                present = value_counts[c] > 0
                # lo/hi as uint8, like the channel's own min()/max(): the same bin edges
                q = _binned_quantiles(values[present], value_counts[c][present], np.uint8(lo[c]), np.uint8(hi[c]), pixels.shape[0])
                for name, value in q.items():
                    qs[name][c] = value
        for name, value in qs.items():
            stats[name] = (value / 255.0).reshape(_IMAGE_STAT_SHAPE)
    return stats


def _decode_image(data: bytes, key: str, position: int) -> np.ndarray:
    from PIL import Image  # pillow is only needed for image-dtype cameras

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except Exception as exc:  # PIL raises several unrelated types for bad bytes
        raise ValueError(f"frame {position} of camera {key!r}: cannot decode image bytes ({exc})") from exc


def _image_bytes(column: pa.ChunkedArray | pa.Array, key: str, positions: Sequence[int]) -> list[bytes]:
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_struct(arr.type):
        if arr.type.get_field_index("bytes") < 0:
            raise ValueError(f"camera column {key!r}: expected struct<bytes, path>, found {arr.type}")
        arr = arr.field("bytes")
    if not (pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
        raise ValueError(f"camera column {key!r}: expected binary or struct<bytes, path>, found {arr.type}")
    out = []
    for p in positions:
        value = arr[p].as_py()
        if value is None:
            raise ValueError(f"frame {p} of camera {key!r}: no embedded image bytes (null)")
        out.append(value)
    return out


# --------------------------------------------------------------------------- per episode


def _column_values(columns: Sequence[pa.ChunkedArray], feature: Feature) -> tuple[np.ndarray, list[int]]:
    """Arrow columns of one feature, one per episode (of one type) -> numpy
    ``(N, *shape)`` (or ``(N,)`` for a scalar column), all episodes' rows one
    after the other, and each episode's number of rows."""
    lengths = [len(c) for c in columns]
    for column, n in zip(columns, lengths, strict=True):
        if column.null_count:
            raise ValueError(f"feature {feature.key!r}: {column.null_count} null values of {n}; statistics are undefined")
    chunks = [chunk for column in columns for chunk in column.chunks]
    arr = pa.chunked_array(chunks, type=columns[0].type).combine_chunks()
    n_rows = len(arr)
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type) or pa.types.is_fixed_size_list(arr.type):
        flat = arr.flatten()
        if flat.null_count:
            raise ValueError(f"feature {feature.key!r}: {flat.null_count} null vector entries")
        if len(flat) != n_rows * feature.width or not pa.types.is_fixed_size_list(arr.type):
            sizes = np.asarray(pc.list_value_length(arr).to_numpy(zero_copy_only=False), dtype=np.int64)
            per_episode = np.add.reduceat(sizes, _run_starts(np.asarray(lengths))) if n_rows else np.zeros(len(lengths), np.int64)
            for n, found in zip(lengths, per_episode.tolist(), strict=True):
                if found != n * feature.width:
                    raise ValueError(
                        f"feature {feature.key!r}: expected {feature.width} values per frame "
                        f"(shape {feature.shape}), found {found} values in {n} frames"
                    )
        return flat.to_numpy(zero_copy_only=False).reshape((n_rows, *feature.shape)), lengths
    return arr.to_numpy(zero_copy_only=False), lengths


def compute_episode_stats(
    table: pa.Table,
    meta: DatasetMeta,
    camera_frames: Mapping[str, np.ndarray] | None = None,
    *,
    image_sample_size: int | None = None,
    quantiles: bool = True,
    camera_stats: Mapping[str, Mapping[str, np.ndarray]] | None = None,
) -> EpisodeStats:
    """Statistics of every numeric feature and camera of one episode:
    :func:`compute_episodes_stats` of that one episode (its documentation gives
    the arguments, the result and the errors raised)."""
    return compute_episodes_stats(
        [table], meta, [camera_frames], image_sample_size=image_sample_size, quantiles=quantiles, camera_stats=[camera_stats]
    )[0]


def compute_episodes_stats(
    tables: Sequence[pa.Table],
    meta: DatasetMeta,
    camera_frames: Sequence[Mapping[str, np.ndarray] | None] | None = None,
    *,
    image_sample_size: int | None = None,
    quantiles: bool = True,
    camera_stats: Sequence[Mapping[str, Mapping[str, np.ndarray]] | None] | None = None,
) -> list[EpisodeStats]:
    """Statistics of every numeric feature and camera of each of several
    episodes, the numeric features of all of them computed together
    (:func:`runs_stats`: each episode's values are those of its rows alone).

    Args:
        tables: per episode, its rows in frame order. Columns may be named by LeRobot
            key (``observation.state``, as in the source parquet) or by output column
            name (``observation_state``); vectors as ``list`` / ``fixed_size_list``.
            Other columns are ignored.
        meta: the dataset; numeric features are ``meta.numeric_keys`` (state, action,
            ``timestamp``, ``frame_index``, ``episode_index``, ``index``, ``task_index``,
            every other int/float/bool feature), cameras ``meta.camera_keys``.
        camera_frames: per episode (``None`` or aligned with ``tables``), camera key ->
            uint8 frames ``(n, H, W, 3)`` already sampled by the caller (decoded video
            frames at :func:`sample_frame_indices`). Used for any camera it names,
            video or image; otherwise image-dtype cameras are decoded from their
            column (``struct<bytes, path>`` or binary PNG/JPEG) at
            :func:`sample_frame_indices` positions, and video cameras without frames
            are left out.
        image_sample_size: sample size for cameras decoded here (default LeRobot's,
            :func:`estimate_num_samples`: 100 frames for episodes up to ~464 frames);
            ``0`` leaves image cameras out, as ``camera_stats_samples=0`` does for
            video cameras.
        quantiles: also compute ``q01`` ... ``q99`` (v3.0 layout).
        camera_stats: per episode (``None`` or aligned with ``tables``), camera key ->
            its :func:`image_stats`, already computed by the caller (the conversion
            computes them while it reads the window,
            :func:`lerobot_lance.video.inspect_window`); taken as they are, before
            ``camera_frames``.

    Returns:
        Per episode, feature key -> stats as :func:`feature_stats` / :func:`image_stats`
        give them, in ``info.json`` feature order (lerobot 0.4.4
        ``compute_episode_stats``).

    Raises:
        ValueError: a numeric feature has no column, has nulls, has the wrong number of
            values per frame, a non-numeric type or non-finite values; an image column
            cannot be decoded; ``camera_frames`` names a non-camera or holds frames that
            are not uint8 ``(n, H, W, 3)``; a table has no rows. With several
            tables, the message may not say which one: compute a failing batch
            one episode at a time to find it (as the conversion does).
    """
    tables = list(tables)
    frames_of = list(camera_frames) if camera_frames is not None else [None] * len(tables)
    given_of = list(camera_stats) if camera_stats is not None else [None] * len(tables)
    if len(frames_of) != len(tables) or len(given_of) != len(tables):
        raise ValueError(f"camera_frames / camera_stats must have one entry per table ({len(tables)})")
    if any(t.num_rows == 0 for t in tables):
        raise ValueError("cannot compute statistics of an episode with 0 rows")
    for frames, given in zip(frames_of, given_of, strict=True):
        unknown = [k for k in [*(frames or {}), *(given or {})] if k not in meta.camera_keys]
        if unknown:
            raise ValueError(f"camera_frames names {unknown}, which are not cameras; cameras: {meta.camera_keys}")
    present = [set(t.column_names) for t in tables]
    numeric_keys = set(meta.numeric_keys)
    out: list[EpisodeStats] = [{} for _ in tables]
    for key, feature in meta.features.items():
        names = [key if key in cols else column_name(key) if column_name(key) in cols else None for cols in present]
        if feature.is_camera:
            for i, (table, name) in enumerate(zip(tables, names, strict=True)):
                stats = _camera_stats(table, key, feature, name, frames_of[i] or {}, given_of[i] or {}, image_sample_size, quantiles)
                if stats is not None:
                    out[i][key] = stats
            continue
        if key not in numeric_keys:
            continue
        if None in names:
            table = tables[names.index(None)]
            raise ValueError(
                f"numeric feature {key!r} has no column: expected {key!r} or {feature.column!r}, "
                f"found {table.column_names}"
            )
        columns = [t[name] for t, name in zip(tables, names, strict=True)]
        # one computation for the tables whose column has the first one's type (all, in a conversion)
        groups = [list(range(len(tables)))] if len({c.type for c in columns}) == 1 else [[i] for i in range(len(tables))]
        for group in groups:
            try:
                values, lengths = _column_values([columns[i] for i in group], feature)
                per_episode = runs_stats(values, lengths, quantiles=quantiles)
            except ValueError as exc:
                if str(exc).startswith("feature "):
                    raise
                raise ValueError(f"feature {key!r} (column {names[group[0]]!r}): {exc}") from exc
            for i, stats in zip(group, per_episode, strict=True):
                out[i][key] = stats
    return out


def _camera_stats(
    table: pa.Table, key: str, feature: Feature, name: str | None, frames: Mapping[str, np.ndarray],
    given: Mapping[str, Mapping[str, np.ndarray]], image_sample_size: int | None, quantiles: bool,
) -> dict[str, np.ndarray] | None:
    """One camera's stats of one episode for :func:`compute_episodes_stats`, or ``None``."""
    if key in given:
        return {stat: np.asarray(value) for stat, value in given[key].items()}
    if key in frames:
        try:
            return image_stats(np.asarray(frames[key]), quantiles=quantiles)
        except ValueError as exc:
            raise ValueError(f"camera_frames[{key!r}]: {exc}") from exc
    if feature.is_image and image_sample_size != 0 and name is not None:
        positions = sample_frame_indices(table.num_rows, image_sample_size)
        encoded = _image_bytes(table[name], key, positions)
        images = [_decode_image(b, key, p) for b, p in zip(encoded, positions, strict=True)]
        shapes = {img.shape for img in images}
        if len(shapes) != 1:
            raise ValueError(f"camera {key!r}: sampled frames differ in shape: {sorted(shapes)}")
        return image_stats(np.stack(images), quantiles=quantiles)
    return None


# --------------------------------------------------------------------------- dataset


def _validate(episodes: Sequence[EpisodeStats]) -> None:
    problems: list[str] = []
    for i, ep in enumerate(episodes):
        for key, stats in ep.items():
            for stat, value in stats.items():
                arr = np.asarray(value)
                if arr.ndim == 0:
                    problems.append(f"episode stats #{i}, {key!r}/{stat!r}: must be at least 1-D, is 0-D")
                elif stat == "count" and arr.shape != (1,):
                    problems.append(f"episode stats #{i}, {key!r}: shape of 'count' must be (1,), is {arr.shape}")
            if "count" not in stats or "mean" not in stats or "std" not in stats:
                problems.append(f"episode stats #{i}, {key!r}: needs 'mean', 'std' and 'count', has {sorted(stats)}")
    if problems:
        raise ValueError("invalid episode statistics:\n" + "\n".join(problems))


def aggregate_stats(episodes: Sequence[EpisodeStats]) -> EpisodeStats:
    """Dataset statistics from per-episode statistics, with LeRobot's semantics.

    For every feature present in at least one episode (over the episodes that have it):

    - ``count`` = sum of counts (int64, shape ``(1,)``);
    - ``mean`` = count-weighted mean of the episode means;
    - ``std`` = sqrt of the pooled population variance:
      ``sum(count_i * (std_i**2 + (mean_i - mean)**2)) / count``, i.e. the within-episode
      variance plus the spread of the episode means;
    - ``min`` / ``max`` = element-wise min / max over episodes (dtype kept);
    - each quantile present in *every* episode = count-weighted average of the
      episodes' quantiles. This is how lerobot 0.4.4 (v3.0) combines quantiles
      (``aggregate_feature_stats``); it is an approximation, not the quantile of the
      pooled data.

    Source: lerobot 0.4.4 ``lerobot/datasets/compute_stats.py`` ``aggregate_stats``.
    Feature order is first appearance; an empty sequence gives ``{}``.

    Raises:
        ValueError: a stat is 0-D, a ``count`` is not of shape ``(1,)``, a feature lacks
            ``mean``/``std``/``count`` (all problems listed at once), or a stat's shape
            differs between episodes.
    """
    _validate(episodes)
    keys = list(dict.fromkeys(k for ep in episodes for k in ep))
    out: EpisodeStats = {}
    for key in keys:
        items = [ep[key] for ep in episodes if key in ep]
        shapes = {np.asarray(s["mean"]).shape for s in items}
        if len(shapes) != 1:
            raise ValueError(f"feature {key!r}: 'mean' shapes differ between episodes: {sorted(shapes)}")
        counts = np.array([int(np.asarray(s["count"])[0]) for s in items], dtype=np.int64)
        total = int(counts.sum())
        means = np.stack([np.asarray(s["mean"], dtype=np.float64) for s in items])
        stds = np.stack([np.asarray(s["std"], dtype=np.float64) for s in items])
        w = counts.astype(np.float64).reshape((-1,) + (1,) * (means.ndim - 1))
        mean = (means * w).sum(axis=0) / total
        var = ((stds**2 + (means - mean) ** 2) * w).sum(axis=0) / total
        agg: dict[str, np.ndarray] = {}
        if all("min" in s for s in items):
            agg["min"] = np.min(np.stack([np.asarray(s["min"]) for s in items]), axis=0)
        if all("max" in s for s in items):
            agg["max"] = np.max(np.stack([np.asarray(s["max"]) for s in items]), axis=0)
        agg["mean"] = mean
        agg["std"] = np.sqrt(var)
        agg["count"] = np.array([total], dtype=np.int64)
        for q in QUANTILE_NAMES:
            if all(q in s for s in items):
                agg[q] = (np.stack([np.asarray(s[q], dtype=np.float64) for s in items]) * w).sum(axis=0) / total
        out[key] = agg
    return out


# --------------------------------------------------------------------------- JSON


def stats_to_json(stats: EpisodeStats) -> dict[str, dict[str, Any]]:
    """LeRobot's ``meta/stats.json`` layout: ``{feature: {stat: nested list}}``.

    Arrays become nested lists of Python numbers (ints stay ints, so ``index`` min/max
    read ``[0]`` as in lerobot's files; camera stats ``[[[x]], [[y]], [[z]]]``). Stats
    in the order ``min, max, mean, std, count, q01 ... q99``, then any others.
    Serialize with ``json.dump(..., indent=4)`` as lerobot does (:func:`write_stats_json`).
    """
    out: dict[str, dict[str, Any]] = {}
    for key, feature in stats.items():
        order = [s for s in _ALL_STATS if s in feature] + [s for s in feature if s not in _ALL_STATS]
        out[key] = {s: np.asarray(feature[s]).tolist() for s in order}
    return out


def write_stats_json(stats: EpisodeStats, path: str | PathLike[str]) -> Path:
    """Write ``stats`` to ``path`` (a file, or a dataset root whose ``meta/stats.json`` is meant).

    Same layout and indentation (4) as lerobot 0.4.4 ``write_stats``. Returns the file path.
    """
    target = Path(path)
    if target.suffix != ".json":
        target = target / "meta" / "stats.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(stats_to_json(stats), indent=4, ensure_ascii=False) + "\n")
    return target


def stats_from_json(obj: Mapping[str, Any]) -> EpisodeStats:
    """Parse statistics in LeRobot's layout into arrays.

    Accepts the nested layout of ``meta/stats.json`` / ``episodes_stats.jsonl``
    (``{feature: {stat: list}}``) and the flat one of v3.0 episode rows
    (``{"stats/<feature>/<stat>": list}`` or ``{"<feature>/<stat>": list}``; other
    flat keys are ignored), and a whole v2.1 ``episodes_stats.jsonl`` line
    (``{"episode_index": ..., "stats": {...}}``). Integer lists give int64 arrays, others float64;
    ``count`` is always int64.

    Raises:
        ValueError: a stat value is not a (nested) list of numbers.
    """
    if isinstance(obj.get("stats"), Mapping) and "episode_index" in obj:
        obj = obj["stats"]  # a whole episodes_stats.jsonl line
    out: EpisodeStats = {}
    for key, value in obj.items():
        if isinstance(value, Mapping):
            items = [(key, stat, v) for stat, v in value.items()]
        elif "/" in key:
            flat = key[len("stats/"):] if key.startswith("stats/") else key
            feature, _, stat = flat.rpartition("/")
            if not feature or stat not in _ALL_STATS:
                continue
            items = [(feature, stat, value)]
        else:
            continue
        for feature, stat, v in items:
            if v is None:
                continue
            try:
                arr = np.asarray(v)
                if arr.dtype == object or not (arr.dtype.kind in "iufb"):
                    raise TypeError(arr.dtype)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"stats of {feature!r}/{stat!r}: expected a nested list of numbers, found {str(v)[:80]}"
                ) from exc
            if arr.ndim == 0:
                arr = arr.reshape(1)
            if stat == "count":
                arr = arr.astype(np.int64)
            elif arr.dtype.kind in "iub":
                arr = arr.astype(np.int64)
            else:
                arr = arr.astype(np.float64)
            out.setdefault(feature, {})[stat] = arr
    return out


# --------------------------------------------------------------------------- comparison


@dataclass
class StatsMismatch:
    """One statistic that disagrees between recomputed and declared values.

    Attributes:
        feature: LeRobot feature key.
        stat: ``min``, ``max``, ``mean``, ``std``, ``count`` or ``qNN``.
        episode_index: the episode, or ``None`` for dataset-level stats.
        declared: the source's value, as a nested list.
        computed: the recomputed value, as a nested list.
        max_abs_diff: largest absolute element difference (``inf`` when shapes differ).
    """

    feature: str
    stat: str
    episode_index: int | None
    declared: list
    computed: list
    max_abs_diff: float

    def __str__(self) -> str:
        where = "dataset" if self.episode_index is None else f"episode {self.episode_index}"
        return (
            f"{where}: {self.feature}/{self.stat} declared {_short(self.declared)}, "
            f"computed {_short(self.computed)} (max abs diff {self.max_abs_diff:.3g})"
        )


@dataclass
class StatsComparison:
    """Result of :func:`compare_stats`.

    Attributes:
        mismatches: every feature/stat that disagrees beyond the tolerances.
        compared: how many feature/stat pairs were compared.
        note: why fewer pairs were compared than one might expect (no declared stats,
            features missing on one side, cameras skipped), or ``None``.
    """

    mismatches: list[StatsMismatch] = field(default_factory=list)
    compared: int = 0
    note: str | None = None

    @property
    def ok(self) -> bool:
        """True when no compared statistic disagrees (also when nothing was declared)."""
        return not self.mismatches


def _short(values: list, limit: int = 6) -> str:
    flat = np.asarray(values, dtype=np.float64).ravel()
    text = ", ".join(f"{x:.6g}" for x in flat[:limit])
    return f"[{text}{', ...' if flat.size > limit else ''}]"


def _is_camera_stats(stats: Mapping[str, np.ndarray]) -> bool:
    mean = stats.get("mean")
    return mean is not None and np.asarray(mean).shape == _IMAGE_STAT_SHAPE


def compare_stats(
    computed: EpisodeStats,
    declared: Mapping[str, Any] | None,
    *,
    episode_index: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    features: Iterable[str] | None = None,
    stats: Iterable[str] | None = None,
    accumulation: Any = np.float32,
) -> StatsComparison:
    """Compare recomputed statistics with the ones a source declares.

    Args:
        computed: :func:`compute_episode_stats` (one episode) or :func:`aggregate_stats`
            (dataset) output.
        declared: the source's stats in any layout :func:`stats_from_json` reads (v2.0
            ``meta/stats.json``, one v2.1 ``episodes_stats.jsonl`` ``"stats"`` object,
            the ``stats/<feature>/<stat>`` columns of one v3.0 episode row, v3.0
            ``meta/stats.json``, or ``EpisodeMeta.declared_stats`` /
            ``DatasetMeta.declared_stats``); ``None`` or empty when it declares none.
        episode_index: recorded in each mismatch (``None`` for dataset-level stats).
        rtol, atol: element-wise ``|computed - declared| <= atol + rtol * |declared|``.
            The defaults hold for float32 features at float32 precision.
        features: feature keys to compare. Default: every non-camera feature present
            on both sides (cameras, whose stats come from sampled and, for videos,
            decoded frames, are compared only when named here).
        stats: stat names to compare (default: every stat present on both sides).
        accumulation: the float type the source may have computed ``std`` in
            (default float32: LeRobot 0.4.4 computes ``sqrt(E[x^2] - E[x]^2)``
            in the data's float32). A ``std`` also passes when the variances
            agree within that type's rounding of ``E[x^2]``:
            ``|c^2 - d^2| <= STD_ROUNDING_FACTOR * sqrt(count) * eps * (mean^2 + d^2)``
            (``count``, ``mean`` the computed ones; see :data:`STD_ROUNDING_FACTOR`).
            So a ``std`` near zero next to a large mean, where float32 cannot
            resolve it, is not reported, while a 1 % change of a resolvable
            ``std`` is. ``None``: ``rtol``/``atol`` only.

    Only stats present on both sides are compared: v2.x sources declare no quantiles.
    A source that declares nothing gives an ``ok`` result with a note.

    Tolerances met on the shared samples (see ``tests/test_stats.py``): the defaults
    for every numeric stat of v2.0, v2.1 and the v3.0 sample converted from v2.1;
    for v3.0 files written by lerobot 0.4.4 itself, the defaults except ``std``, which
    LeRobot computes in float32 as ``sqrt(E[x^2] - E[x]^2)`` (up to 2 % off; within the
    ``accumulation`` bound), and camera ``std``, which it writes as 0 (see the module
    docstring). Camera stats of
    video decoded by PyAV agree with declared ones only to about 5e-3 (the declared
    ones come from the frames before encoding).

    Raises:
        ValueError: ``declared`` is not in a layout :func:`stats_from_json` reads.
    """
    if not declared:
        return StatsComparison([], 0, "the source declares no statistics; nothing compared")
    decl = stats_from_json(declared)
    wanted_stats = None if stats is None else set(stats)
    notes: list[str] = []
    if features is None:
        keys = [k for k in computed if k in decl and not _is_camera_stats(computed[k])]
        skipped = [k for k in computed if k in decl and _is_camera_stats(computed[k])]
        if skipped:
            notes.append(f"camera stats not compared (name them in features to compare): {', '.join(skipped)}")
    else:
        wanted = list(dict.fromkeys(features))
        keys = [k for k in wanted if k in computed and k in decl]
        missing_c = [k for k in wanted if k not in computed]
        missing_d = [k for k in wanted if k not in decl]
        if missing_c:
            notes.append(f"not computed: {', '.join(missing_c)}")
        if missing_d:
            notes.append(f"not declared: {', '.join(missing_d)}")
    only_declared = [k for k in decl if k not in computed]
    if features is None and only_declared:
        notes.append(f"declared but not computed: {', '.join(only_declared)}")

    mismatches: list[StatsMismatch] = []
    compared = 0
    for key in keys:
        names = [s for s in computed[key] if s in decl[key] and (wanted_stats is None or s in wanted_stats)]
        if _all_close(computed[key], decl[key], names, rtol, atol):
            compared += len(names)
            continue
        for stat in names:
            c = np.asarray(computed[key][stat])
            d = np.asarray(decl[key][stat])
            compared += 1
            if c.shape != d.shape and c.size == d.size:
                d = d.reshape(c.shape)
            if c.shape != d.shape:
                diff = math.inf
                bad = True
            else:
                c64, d64 = c.astype(np.float64), d.astype(np.float64)
                close = np.isclose(c64, d64, rtol=rtol, atol=atol, equal_nan=True)
                if stat == "std" and accumulation is not None and not close.all():
                    close |= _std_within_rounding(c64, d64, computed[key], accumulation)
                bad = not close.all()
                diff = float(np.nanmax(np.abs(c64 - d64))) if bad and c.size else 0.0
            if bad:
                mismatches.append(StatsMismatch(key, stat, episode_index, d.tolist(), c.tolist(), diff))
    if compared == 0 and not notes:
        notes.append("no feature/stat present on both sides")
    return StatsComparison(mismatches, compared, "; ".join(notes) or None)


def _all_close(computed: Mapping[str, Any], declared: Mapping[str, Any], names: Sequence[str], rtol: float, atol: float) -> bool:
    """Whether every stat in ``names`` has the same shape on both sides and is
    ``np.isclose`` (``equal_nan``) everywhere: one comparison for all of a
    feature's stats (those that are not are then compared one by one)."""
    c = [np.asarray(computed[s]) for s in names]
    d = [np.asarray(declared[s]) for s in names]
    if not names or any(a.shape != b.shape for a, b in zip(c, d, strict=True)):
        return not names
    ravel = [a.ravel() for a in c], [b.ravel() for b in d]
    c64, d64 = np.concatenate(ravel[0], dtype=np.float64), np.concatenate(ravel[1], dtype=np.float64)
    return bool(np.isclose(c64, d64, rtol=rtol, atol=atol, equal_nan=True).all())


def _std_within_rounding(c: np.ndarray, d: np.ndarray, computed: Mapping[str, Any], accumulation: Any) -> np.ndarray:
    """Element-wise: computed std ``c`` and declared std ``d`` agree within the
    rounding of ``E[x^2] - E[x]^2`` summed in ``accumulation`` (see :func:`compare_stats`)."""
    if "mean" not in computed:
        return np.zeros(c.shape, dtype=bool)
    mean = np.asarray(computed["mean"], dtype=np.float64)
    if mean.shape != c.shape:
        return np.zeros(c.shape, dtype=bool)
    n = float(np.max(np.asarray(computed.get("count", [1]), dtype=np.float64)))
    eps = float(np.finfo(accumulation).eps)
    tol = STD_ROUNDING_FACTOR * math.sqrt(max(n, 1.0)) * eps * (mean**2 + d**2)
    return np.abs(c**2 - d**2) <= tol


# --------------------------------------------------------------------------- presentation


def episode_stats_to_struct(stats: EpisodeStats) -> dict[str, dict[str, list[float] | None]]:
    """One episode's stats as a plain dict for one row of a pyarrow struct column.

    Keys are output column names (dots -> underscores); each value has every field
    ``min, max, mean, std, count, q01, q10, q50, q90, q99`` as a flat list of Python
    floats (float64; camera stats flattened from ``(3, 1, 1)`` to 3 values), or
    ``None`` for a stat that was not computed, so every row has the same struct type.
    """
    out: dict[str, dict[str, list[float] | None]] = {}
    for key, feature in stats.items():
        out[column_name(key)] = {
            s: (np.asarray(feature[s], dtype=np.float64).ravel().tolist() if s in feature else None)
            for s in _ALL_STATS
        }
    return out


def plot_mean_std_png(stats: EpisodeStats, keys: Sequence[str], path: str | PathLike[str]) -> None:
    """Save a PNG with one subplot per key: per-dimension mean +- std, min and max marked.

    Uses matplotlib's Agg canvas directly (no global backend change, no display).

    Raises:
        KeyError: a key is not in ``stats``.
        ValueError: ``keys`` is empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not keys:
        raise ValueError("keys must name at least one feature to plot")
    missing = [k for k in keys if k not in stats]
    if missing:
        raise KeyError(f"no stats for {missing}; have {list(stats)}")
    width, height = max(6.0, 0.35 * max(np.asarray(stats[k]["mean"]).size for k in keys)), 2.6 * len(keys)
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    # fixed margins in inches (title above, x label below each subplot) rather
    # than tight_layout, which draws the whole figure once more to measure it
    axes = fig.subplots(len(keys), 1, squeeze=False, gridspec_kw={
        "left": 0.75 / width, "right": 1 - 0.15 / width, "top": 1 - 0.3 / height, "bottom": 0.45 / height,
        "hspace": 0.75 / ((height - 0.75 - 0.75 * (len(keys) - 1)) / len(keys))})[:, 0]
    for ax, key in zip(axes, keys):
        s = stats[key]
        mean = np.asarray(s["mean"], dtype=np.float64).ravel()
        std = np.asarray(s["std"], dtype=np.float64).ravel()
        x = np.arange(mean.size)
        ax.errorbar(x, mean, yerr=std, fmt="o", ms=3, capsize=2, label="mean ± std")
        if "min" in s and "max" in s:
            ax.plot(x, np.asarray(s["min"], dtype=np.float64).ravel(), "v", ms=3, alpha=0.5, label="min")
            ax.plot(x, np.asarray(s["max"], dtype=np.float64).ravel(), "^", ms=3, alpha=0.5, label="max")
        count = int(np.asarray(s.get("count", [0])).ravel()[0])
        ax.set_title(f"{key} (count {count})", fontsize=9)
        ax.set_xlabel("dimension", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="best")
    fig.savefig(Path(path), format="png", dpi=100)


def ranges_markdown(stats: EpisodeStats) -> str:
    """A Markdown table: feature, dims, min..max range, mean of means, count.

    ``dims`` is the number of values per stat (26 for a 26-vector, 3 for a camera);
    the range is the smallest ``min`` to the largest ``max`` over dimensions; numbers
    with 4 significant digits.
    """
    lines = ["| feature | dims | range (min .. max) | mean of means | count |", "|---|---:|---|---:|---:|"]
    for key, s in stats.items():
        mean = np.asarray(s["mean"], dtype=np.float64)
        rng = "n/a"
        if "min" in s and "max" in s:
            lo = float(np.min(np.asarray(s["min"], dtype=np.float64)))
            hi = float(np.max(np.asarray(s["max"], dtype=np.float64)))
            rng = f"{lo:.4g} .. {hi:.4g}"
        count = int(np.asarray(s["count"]).ravel()[0]) if "count" in s else 0
        lines.append(f"| `{key}` | {mean.size} | {rng} | {float(mean.mean()):.4g} | {count} |")
    return "\n".join(lines) + "\n"
