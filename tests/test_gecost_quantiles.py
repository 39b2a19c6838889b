"""The vectorised histogram quantiles (``stats._columns_quantiles``) equal the
column-by-column computation (``stats._binned_quantiles``, LeRobot 0.4.4's
``RunningQuantileStats`` arithmetic) bit for bit, on the shared samples' numeric
features per episode and on edge cases of the edge arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_lance import stats as st

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/datasets")


def _per_column(values: np.ndarray) -> dict[str, np.ndarray]:
    n, d = values.shape
    lo, hi = values.min(axis=0), values.max(axis=0)
    out = {name: np.empty(d) for name in st.QUANTILES}
    for j in range(d):
        for name, value in st._binned_quantiles(values[:, j], None, lo[j], hi[j], n).items():
            out[name][j] = value
    return out


def _assert_bit_identical(values: np.ndarray, what: str) -> None:
    with np.errstate(all="ignore"):
        want = _per_column(values)
        got = st._columns_quantiles(values, values.min(axis=0), values.max(axis=0))
    for name in st.QUANTILES:
        assert got[name].dtype == np.float64 and got[name].tobytes() == want[name].tobytes(), (what, name, got[name], want[name])


def _sample_files() -> list[Path]:
    files = sorted(SHARED.glob("*/data/**/*.parquet"))
    if not files:
        pytest.skip(f"no shared samples under {SHARED}")
    return files


def test_vectorised_quantiles_equal_per_column_on_the_samples() -> None:
    compared = 0
    for f in _sample_files():
        t = pq.read_table(f)
        eps = t["episode_index"].to_numpy()
        for name in t.column_names:
            if not str(t[name].type).startswith(("list", "fixed_size_list")):
                continue
            values = np.stack(t[name].to_numpy(zero_copy_only=False))
            if values.dtype.kind not in "fiu":
                continue
            for e in np.unique(eps):
                _assert_bit_identical(values[eps == e], f"{f}:{name}:episode {e}")
                compared += 1
    assert compared >= 20


def test_vectorised_quantiles_equal_per_column_on_edge_cases() -> None:
    rng = np.random.default_rng(0)
    f32 = np.float32
    cases = {
        "constant float32 (the padding vanishes: zero step)": np.full((50, 4), 0.5, f32),
        "zeros": np.zeros((9, 4), f32),
        "denormal span (the zero-step branch of linspace)": np.tile(np.array([[1e-45], [2e-45], [3e-45]], f32), (1, 4)),
        "denormal float64": np.tile(np.array([[5e-324], [1e-323], [0.0]]), (1, 4)),
        "span of a few ulps at 1000 (repeated edges)": np.tile((f32(1000) + np.arange(10, dtype=f32) * f32(6e-5))[:, None], (1, 5)),
        "signed zeros": np.tile(np.array([[-0.0], [0.0], [-0.0], [0.0]]), (1, 4)),
        "int64": rng.integers(-1000, 10**6, (400, 6)),
        "int64 constant": np.full((30, 4), 7),
        "int32": rng.integers(-5, 5, (101, 4)).astype(np.int32),
        "two frames": np.array([[0.0, 1, 2, 3], [1, 1, 5, -3]], f32),
        "overflowing range (per-column fallback)": np.tile(np.array([[-3e38], [3e38], [0]], f32), (1, 4)),
        "float64 huge range (per-column fallback)": np.tile(np.array([[-1e308], [1e308], [5.0]]), (1, 4)),
        "float16 (per-column fallback)": rng.normal(size=(64, 4)).astype(np.float16),
        "mixed columns": np.stack([np.full(20, 1.0, f32), np.linspace(0, 1, 20, dtype=f32), np.full(20, 1e-45, f32),
                                   np.arange(20, dtype=f32) * f32(1e30), rng.normal(size=20).astype(f32)], axis=1),
    }
    for n in (3, 10, 99, 100, 101, 386, 2317):
        cases[f"normal n={n}"] = rng.normal(size=(n, 6)).astype(f32)
        cases[f"ties n={n}"] = rng.integers(0, 4, size=(n, 5)).astype(f32)
        cases[f"cauchy float64 n={n}"] = rng.standard_cauchy(size=(n, 4))
    for i in range(60):
        n, d = int(rng.integers(2, 500)), int(rng.integers(4, 30))
        scale = 10.0 ** int(rng.integers(-30, 30))
        v = rng.normal(size=(n, d)) * scale + rng.normal() * scale * int(rng.integers(0, 1000))
        cases[f"random {i}"] = (np.round(v * 3) / 3 if i % 3 == 0 else v).astype(rng.choice([np.float32, np.float64]))
    for what, values in cases.items():
        _assert_bit_identical(values, what)


def test_edges_equal_numpy_linspace() -> None:
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        lo = np.concatenate([rng.normal(size=100) * 10.0 ** rng.integers(-40, 30, 100), [0, -0.0, 1e-45, 5e-324, 1000]]).astype(dtype)
        hi = (lo + np.abs(rng.normal(size=lo.size)) * 10.0 ** rng.integers(-45, 5, lo.size)).astype(dtype)
        hi[:10] = lo[:10]
        with np.errstate(all="ignore"):
            got = st._Edges((lo - 1e-10)[:, None], (hi + 1e-10)[:, None]).at(np.arange(st.QUANTILE_BINS + 1)[None, :])
            for j in range(lo.size):
                want = np.linspace(lo[j] - 1e-10, hi[j] + 1e-10, st.QUANTILE_BINS + 1)
                assert want.dtype == got.dtype and want.tobytes() == got[j].tobytes(), (dtype, lo[j], hi[j])
    # a nonzero span whose step underflows to 0: np.linspace's denormal branch (i / div * delta)
    for dtype, (a, b) in ((np.float32, (0.0, 1e-45)), (np.float32, (0.0, 3e-42)), (np.float64, (0.0, 5e-324)), (np.float64, (-1e-320, 0.0))):
        start, stop = np.array([[a]], dtype), np.array([[b]], dtype)
        edges = st._Edges(start, stop)
        assert edges.zero.all() and edges.delta[0, 0] != 0
        want = np.linspace(start[0, 0], stop[0, 0], st.QUANTILE_BINS + 1)
        assert want.tobytes() == edges.at(np.arange(st.QUANTILE_BINS + 1)[None, :])[0].tobytes(), (dtype, a, b)
