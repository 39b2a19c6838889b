"""The batched per-episode statistics (``stats.compute_episodes_stats`` /
``stats.runs_stats``, what ``stage_episode_stats`` computes for up to 64
episodes at once) equal, bit for bit, a straightforward reference computed on
one episode's rows alone with LeRobot 0.4.4's definitions
(``lerobot/datasets/compute_stats.py``: ``get_feature_stats`` for min, max,
mean, std (population), count; ``RunningQuantileStats`` for the 5000-bin
histogram quantiles q01..q99), on every numeric feature of the real samples.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from lerobot_lance import stats as st
from lerobot_lance.frames import iter_episodes_rows
from lerobot_lance.readers import read_dataset_meta
from tests.conftest import EPISODE_LENGTHS, sample

QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}


def _reference(x: np.ndarray) -> dict[str, np.ndarray]:
    """One episode's rows ``x`` (n, d) of one feature: LeRobot's statistics, column by column."""
    n = x.shape[0]
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=0)
    out = {
        "min": x.min(axis=0), "max": x.max(axis=0), "mean": mean,
        "std": np.sqrt(np.mean((x64 - mean) ** 2, axis=0)), "count": np.array([n]),
    }
    for name, q in QUANTILES.items():
        out[name] = np.empty(x.shape[1])
    for j in range(x.shape[1]):
        col = x[:, j]
        # RunningQuantileStats: edges over [min - 1e-10, max + 1e-10] in the data's dtype,
        # np.histogram counts, the bin whose cumulative count reaches q * n, linear inside it
        edges = np.linspace(col.min() - 1e-10, col.max() + 1e-10, 5001)
        cum = np.cumsum(np.histogram(col, bins=edges)[0]).astype(np.float64)
        e64 = edges.astype(np.float64)
        for name, q in QUANTILES.items():
            k = int(np.searchsorted(cum, q * n, side="left"))
            if n < 2:
                value = mean[j]
            elif k == 0:
                value = e64[0]
            else:
                value = e64[k] + (q * n - cum[k - 1]) / (cum[k] - cum[k - 1]) * (e64[k + 1] - e64[k])
            out[name][j] = value
    return out


def _episodes(name: str) -> tuple[object, list[pa.Table]]:
    root = sample(name)
    meta = read_dataset_meta(root)
    return meta, [rows for _, rows in iter_episodes_rows(root, meta.episodes, whole_files=meta.one_file_per_episode)]


def _assert_equal_bits(got: dict[str, np.ndarray], want: dict[str, np.ndarray], where: str) -> None:
    assert set(got) == set(want), where
    for stat, value in want.items():
        g = np.asarray(got[stat]).reshape(-1)
        w = np.asarray(value).reshape(-1)
        if stat in ("min", "max"):
            assert g.dtype == w.dtype, (where, stat)
        assert g.astype(np.float64).tobytes() == w.astype(np.float64).tobytes(), (where, stat, g, w)


@pytest.mark.parametrize("name", ["g1_v21", "g1_v30", "g1_image_v30", "g1_multicam_v30"])
def test_batched_equals_per_episode_reference(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """All episodes of a sample in one call, sorted in several padded blocks
    (a small block size), against the reference on each episode's rows."""
    meta, tables = _episodes(name)
    monkeypatch.setattr(st, "_SORT_BLOCK_VALUES", 3 * 400 * 26)  # blocks of ~2 episodes: padding to the longest
    batched = st.compute_episodes_stats(tables, meta)
    assert [t.num_rows for t in tables] == list(EPISODE_LENGTHS[: len(tables)])
    compared = 0
    for i, (table, stats) in enumerate(zip(tables, batched, strict=True)):
        assert list(stats) == [k for k in meta.features if k in stats]  # info.json feature order
        for key in meta.numeric_keys:
            column = table[key].combine_chunks()
            if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
                x = column.flatten().to_numpy().reshape(len(column), -1)
            else:
                x = column.to_numpy().reshape(-1, 1)
            _assert_equal_bits(stats[key], _reference(x), f"{name} episode {i} {key}")
            compared += 1
    assert compared >= len(tables) * 7  # state, action, timestamp, frame_index, episode_index, index, task_index


def test_runs_of_one_and_two_frames_and_ints() -> None:
    """Runs of 1 frame (every quantile is the mean), 2 frames, a constant run,
    int64 and bool columns, together in one call, each equal to its reference."""
    rng = np.random.default_rng(7)
    lengths = [1, 2, 5, 1, 40]
    floats = rng.normal(size=(sum(lengths), 3)).astype(np.float32)
    floats[8:48] = 0.25  # a constant run (the last one)
    ints = rng.integers(-5, 1000, size=(sum(lengths), 2))
    for values in (floats, ints, ints[:, 0] > 300):
        per_run = st.runs_stats(values, lengths)
        a = 0
        for n, got in zip(lengths, per_run, strict=True):
            x = values[a:a + n]
            x = (x.astype(np.int64) if x.dtype == np.bool_ else x).reshape(n, -1)
            _assert_equal_bits(got, _reference(x), f"{values.dtype} run at {a}")
            a += n


def test_runs_stats_names_the_bad_run() -> None:
    values = np.zeros((10, 2), dtype=np.float32)
    values[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"run 2 \(frames 6\.\.9\): values hold 1 NaN"):
        st.runs_stats(values, [3, 3, 4])
    with pytest.raises(ValueError, match="add up to 9 frames"):
        st.runs_stats(values, [3, 3, 3])
    with pytest.raises(ValueError, match="0 frames"):
        st.runs_stats(values, [10, 0])
