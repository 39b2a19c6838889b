"""Tests of :mod:`lerobot_lance.stats` on hand-computed values and on the shared samples.

Declared statistics are read straight from the source files (not through the
readers): v2.1 ``meta/episodes_stats.jsonl``, v3.0 ``meta/episodes`` stats columns,
v2.0 / v3.0 ``meta/stats.json``.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import json
import math
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from lerobot_lance.model import DatasetMeta, Feature
from lerobot_lance.stats import (
    EpisodeStats,
    StatsComparison,
    StatsMismatch,
    aggregate_stats,
    compare_stats,
    compute_episode_stats,
    downsample_frames,
    episode_stats_to_struct,
    estimate_num_samples,
    feature_stats,
    image_stats,
    plot_mean_std_png,
    ranges_markdown,
    sample_frame_indices,
    stats_from_json,
    stats_to_json,
    write_stats_json,
)

from tests.conftest import SHARED as DATASETS  # ../shared/datasets, or $LEROBOT_LANCE_SHARED
CAM = "observation.images.cam_high"
NUMERIC = ["observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"]
ALL_STATS = ["min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99"]



# ------------------------------------------------------------------ helpers


def meta_from_info(name: str) -> DatasetMeta:
    """A DatasetMeta holding only what stats need (features), built from info.json."""
    info = json.loads((DATASETS / name / "meta" / "info.json").read_text())
    features = {
        k: Feature(k, v["dtype"], tuple(v["shape"]), v.get("names"), v.get("info") or {})
        for k, v in info["features"].items()
    }
    return DatasetMeta(info["codebase_version"], info["fps"], features, {0: "task"}, (), info)


def v21_episode(ep: int) -> pa.Table:
    return pq.read_table(DATASETS / "g1_v21" / "data" / "chunk-000" / f"episode_{ep:06d}.parquet")


def v30_episode(name: str, ep: int) -> pa.Table:
    table = pq.read_table(DATASETS / name / "data" / "chunk-000" / "file-000.parquet")
    return table.filter(pc.equal(table["episode_index"], ep))


def v21_declared() -> dict[int, dict[str, Any]]:
    lines = (DATASETS / "g1_v21" / "meta" / "episodes_stats.jsonl").read_text().splitlines()
    return {row["episode_index"]: row["stats"] for row in map(json.loads, lines)}


def v30_declared(name: str) -> dict[int, dict[str, Any]]:
    rows = pq.read_table(DATASETS / name / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    return {r["episode_index"]: {k: v for k, v in r.items() if k.startswith("stats/")} for r in rows}


def stats_json(name: str) -> dict[str, Any]:
    return json.loads((DATASETS / name / "meta" / "stats.json").read_text())


@pytest.fixture(scope="module")
def v21_recomputed() -> list[EpisodeStats]:
    meta = meta_from_info("g1_v21")
    return [compute_episode_stats(v21_episode(ep), meta) for ep in range(6)]


@pytest.fixture(scope="module")
def image_recomputed() -> list[EpisodeStats]:
    meta = meta_from_info("g1_image_v30")
    return [compute_episode_stats(v30_episode("g1_image_v30", ep), meta) for ep in range(2)]


def assert_stats_close(a: EpisodeStats, b: EpisodeStats, rtol: float = 1e-12, atol: float = 0.0) -> None:
    assert list(a) == list(b) or set(a) == set(b)
    for key in a:
        assert set(a[key]) == set(b[key]), key
        for stat in a[key]:
            assert_allclose(np.asarray(a[key][stat], dtype=np.float64), np.asarray(b[key][stat], dtype=np.float64),
                            rtol=rtol, atol=atol, err_msg=f"{key}/{stat}")


# ------------------------------------------------------------------ feature_stats


def test_feature_stats_hand_computed_vector() -> None:
    values = np.array([[1, 10], [2, 20], [3, 30], [4, 40]], dtype=np.float32)
    s = feature_stats(values)
    assert list(s) == ALL_STATS
    assert_array_equal(s["min"], [1, 10])
    assert_array_equal(s["max"], [4, 40])
    assert s["min"].dtype == np.float32 and s["mean"].dtype == np.float64
    assert_allclose(s["mean"], [2.5, 25.0])
    assert_allclose(s["std"], [math.sqrt(1.25), math.sqrt(125.0)])  # population std, ddof=0
    assert_array_equal(s["count"], [4])
    assert s["count"].shape == (1,) and s["count"].dtype == np.int64
    for q in ALL_STATS[5:]:
        assert s[q].shape == (2,)


def test_feature_stats_histogram_quantiles_hand_computed() -> None:
    # Two values 0 and 1: 5000 bins over [0, 1]; 0 sits in the first bin, 1 in the last.
    # q * 2 <= 1 is reached in bin 0 -> its lower edge (0). Above that, interpolate in
    # the last bin [1 - w, 1]: q90 -> 1 - w + 0.8 w, q99 -> 1 - w + 0.98 w, w = 1/5000.
    s = feature_stats(np.array([0.0, 1.0]))
    w = 1 / 5000
    assert_allclose(s["q01"], [0.0], atol=1e-9)
    assert_allclose(s["q10"], [0.0], atol=1e-9)
    assert_allclose(s["q50"], [0.0], atol=1e-9)
    assert_allclose(s["q90"], [1 - 0.2 * w], atol=1e-9)
    assert_allclose(s["q99"], [1 - 0.02 * w], atol=1e-9)


def test_feature_stats_quantiles_close_to_exact_on_uniform_data() -> None:
    values = np.linspace(-3.0, 5.0, 10_001)
    s = feature_stats(values)
    width = 8.0 / 5000
    for name, q in {"q01": 0.01, "q10": 0.10, "q50": 0.5, "q90": 0.9, "q99": 0.99}.items():
        assert abs(float(s[name][0]) - float(np.quantile(values, q))) <= width


def test_feature_stats_scalar_and_small_inputs() -> None:
    s = feature_stats(np.array([3, 5, 7], dtype=np.int64))
    assert s["min"].shape == (1,) and s["min"].dtype == np.int64
    assert_allclose(s["mean"], [5.0])
    one = feature_stats(np.array([[2.0, 4.0]]))  # a single frame: quantiles are the mean
    assert_array_equal(one["std"], [0.0, 0.0])
    assert_array_equal(one["q01"], [2.0, 4.0])
    constant = feature_stats(np.full((10, 2), 0.5, dtype=np.float32))
    assert_allclose(constant["q50"], [0.5, 0.5])
    assert set(feature_stats(np.zeros((3, 2)), quantiles=False)) == {"min", "max", "mean", "std", "count"}
    b = feature_stats(np.array([True, False, True, True]))
    assert_allclose(b["mean"], [0.75])


@pytest.mark.parametrize(
    "values, match",
    [
        (np.zeros((0, 3)), "0 frames"),
        (np.array(1.0), "frame axis"),
        (np.array([1.0, np.nan]), "NaN"),
        (np.array(["a", "b"]), "dtype"),
    ],
)
def test_feature_stats_errors(values: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        feature_stats(values)


# ------------------------------------------------------------------ sampling and images


def test_sample_frame_indices_follows_lerobot_convention() -> None:
    assert [estimate_num_samples(n) for n in (0, 50, 393, 1000, 2000, 5000, 20000)] == [0, 50, 100, 177, 299, 594, 1681]
    idx = sample_frame_indices(393)
    assert len(idx) == 100 and idx[0] == 0 and idx[-1] == 392 and idx == sorted(set(idx))
    assert idx == np.round(np.linspace(0, 392, 100)).astype(int).tolist()
    assert sample_frame_indices(393) == idx  # deterministic
    assert sample_frame_indices(50) == list(range(50))
    assert sample_frame_indices(11, 3) == [0, 5, 10]
    assert sample_frame_indices(4, 10) == [0, 1, 2, 3]
    assert sample_frame_indices(0) == []
    with pytest.raises(ValueError, match="sample_size"):
        sample_frame_indices(10, 0)
    with pytest.raises(ValueError, match="length"):
        sample_frame_indices(-1)


def test_image_stats_hand_computed() -> None:
    frames = np.zeros((2, 2, 2, 3), dtype=np.uint8)
    frames[0, :, :, 0] = 255  # red: 255 in frame 0, 0 in frame 1
    frames[:, :, :, 1] = 51  # green: constant 0.2
    frames[1, 0, 0, 2] = 255  # blue: one pixel of 8 at 1.0
    s = image_stats(frames)
    assert all(s[k].shape == (3, 1, 1) for k in s if k != "count")
    assert_array_equal(s["count"], [2])
    assert_allclose(s["min"].ravel(), [0.0, 0.2, 0.0])
    assert_allclose(s["max"].ravel(), [1.0, 0.2, 1.0])
    assert_allclose(s["mean"].ravel(), [0.5, 0.2, 1 / 8])
    assert_allclose(s["std"].ravel(), [0.5, 0.0, math.sqrt(1 / 8 - 1 / 64)])
    assert_allclose(s["q50"].ravel(), [0.0, 0.2, 0.0], atol=1e-9)


def test_image_stats_downsamples_like_lerobot() -> None:
    assert downsample_frames(np.zeros((1, 299, 200, 3), np.uint8)).shape == (1, 299, 200, 3)
    assert downsample_frames(np.zeros((1, 480, 640, 3), np.uint8)).shape == (1, 120, 160, 3)  # stride 4
    assert downsample_frames(np.zeros((1, 240, 320, 3), np.uint8)).shape == (1, 120, 160, 3)  # stride 2
    frames = np.zeros((1, 300, 300, 3), np.uint8)
    frames[0, 1::2, :, :] = 255  # odd rows white: stride 2 keeps only even (black) rows
    assert_allclose(image_stats(frames)["mean"].ravel(), [0, 0, 0])
    assert_allclose(image_stats(frames, downsample=False)["mean"].ravel(), [0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="uint8"):
        image_stats(np.zeros((1, 4, 4, 3), np.float32))


# ------------------------------------------------------------------ per-episode stats vs declared


def test_v21_episode_stats_match_declared(v21_recomputed: list[EpisodeStats]) -> None:
    declared = v21_declared()
    for ep, stats in enumerate(v21_recomputed):
        assert list(stats) == NUMERIC  # info.json order; the video camera needs decoded frames
        result = compare_stats(stats, declared[ep], episode_index=ep)  # rtol 1e-5, atol 1e-6
        assert result.ok, [str(m) for m in result.mismatches]
        assert result.compared == 7 * 5  # v2.1 declares no quantiles
        assert "observation.images.cam_high" in (result.note or "")


def test_v30_episode_stats_match_declared_columns() -> None:
    meta = meta_from_info("g1_v30")
    declared = v30_declared("g1_v30")
    for ep in range(6):
        stats = compute_episode_stats(v30_episode("g1_v30", ep), meta)
        result = compare_stats(stats, declared[ep], episode_index=ep)
        assert result.ok, [str(m) for m in result.mismatches]
        assert result.compared == 35


def test_underscored_column_names_give_the_same_stats() -> None:
    meta = meta_from_info("g1_v21")
    table = v21_episode(1)
    renamed = table.rename_columns([c.replace(".", "_") for c in table.column_names])
    assert_stats_close(compute_episode_stats(renamed, meta), compute_episode_stats(table, meta), rtol=0)


def test_lerobot_044_episode_stats(image_recomputed: list[EpisodeStats]) -> None:
    """g1_image_v30 was written by lerobot 0.4.4: quantiles and the camera stats match."""
    declared = v30_declared("g1_image_v30")
    for ep, stats in enumerate(image_recomputed):
        assert list(stats) == ["observation.state", "action", CAM, "timestamp", "frame_index",
                               "episode_index", "index", "task_index"]
        assert_array_equal(stats[CAM]["count"], [100])  # 393 / 343 frames -> 100 sampled
        # Everything but std, numeric and camera, at the defaults (quantiles included).
        no_std = [s for s in ALL_STATS if s != "std"]
        result = compare_stats(stats, declared[ep], episode_index=ep, features=list(stats), stats=no_std)
        assert result.ok, [str(m) for m in result.mismatches]
        assert result.compared == 8 * 9
        # Camera min/max/mean/quantiles are bit-for-bit LeRobot's (same PNGs, same sampling).
        exact = compare_stats(stats, declared[ep], features=[CAM], stats=no_std, rtol=0, atol=1e-15)
        assert exact.ok, [str(m) for m in exact.mismatches]
        # Numeric std: LeRobot computes float32 sqrt(E[x^2] - E[x]^2); agreement to 1e-4.
        loose = compare_stats(stats, declared[ep], stats=["std"], rtol=0, atol=1e-4)
        assert loose.ok, [str(m) for m in loose.mismatches]
        # Camera std: lerobot 0.4.4 squares uint8 pixels, overflows and writes 0.0.
        cam_std = compare_stats(stats, declared[ep], episode_index=ep, features=[CAM], stats=["std"])
        assert [(m.feature, m.stat, m.episode_index) for m in cam_std.mismatches] == [(CAM, "std", ep)]
        assert cam_std.mismatches[0].declared == [[[0.0]], [[0.0]], [[0.0]]]
        assert np.all(stats[CAM]["std"] > 0.1)


def test_image_sample_size_option() -> None:
    meta = meta_from_info("g1_image_v30")
    stats = compute_episode_stats(v30_episode("g1_image_v30", 1), meta, image_sample_size=7)
    assert_array_equal(stats[CAM]["count"], [7])


def test_camera_frames_given_by_caller() -> None:
    meta = meta_from_info("g1_v21")
    frames = np.full((5, 480, 640, 3), 102, dtype=np.uint8)
    stats = compute_episode_stats(v21_episode(0), meta, camera_frames={CAM: frames})
    assert_allclose(stats[CAM]["mean"].ravel(), [0.4, 0.4, 0.4])
    assert_array_equal(stats[CAM]["count"], [5])


def test_compute_episode_stats_errors() -> None:
    meta = meta_from_info("g1_v21")
    table = v21_episode(0)
    with pytest.raises(ValueError, match="'action' has no column"):
        compute_episode_stats(table.drop_columns(["action"]), meta)
    short = table.set_column(
        table.column_names.index("action"), "action", pa.array([[1.0, 2.0]] * table.num_rows, pa.list_(pa.float32()))
    )
    with pytest.raises(ValueError, match="expected 26 values per frame"):
        compute_episode_stats(short, meta)
    with pytest.raises(ValueError, match="0 rows"):
        compute_episode_stats(table.slice(0, 0), meta)
    strings = table.set_column(table.column_names.index("timestamp"), "timestamp", pa.array(["x"] * table.num_rows))
    with pytest.raises(ValueError, match="feature 'timestamp'.*dtype"):
        compute_episode_stats(strings, meta)
    with pytest.raises(ValueError, match="not cameras"):
        compute_episode_stats(table, meta, camera_frames={"action": np.zeros((1, 2, 2, 3), np.uint8)})
    with pytest.raises(ValueError, match=r"camera_frames\['observation.images.cam_high'\]"):
        compute_episode_stats(table, meta, camera_frames={CAM: np.zeros((1, 2, 2), np.uint8)})
    img_meta = meta_from_info("g1_image_v30")
    broken = v30_episode("g1_image_v30", 0)
    idx = broken.column_names.index(CAM)
    broken = broken.set_column(idx, CAM, pa.array([b"not an image"] * broken.num_rows, pa.binary()))
    with pytest.raises(ValueError, match="cannot decode"):
        compute_episode_stats(broken, img_meta)


def test_compute_episode_stats_timing() -> None:
    meta = meta_from_info("g1_v21")
    table = v21_episode(0)
    assert table.num_rows == 393
    start = time.perf_counter()
    compute_episode_stats(table, meta)
    assert time.perf_counter() - start < 1.0


# ------------------------------------------------------------------ aggregation


def test_aggregate_hand_computed() -> None:
    a = {"x": {"min": np.array([1]), "max": np.array([3]), "mean": np.array([2.0]), "std": np.array([1.0]),
               "count": np.array([2]), "q50": np.array([2.0])}}
    b = {"x": {"min": np.array([5]), "max": np.array([5]), "mean": np.array([5.0]), "std": np.array([0.0]),
               "count": np.array([4]), "q50": np.array([5.0])},
         "y": {"mean": np.array([1.0, 2.0]), "std": np.array([0.0, 0.0]), "count": np.array([3])}}
    agg = aggregate_stats([a, b])
    x = agg["x"]
    assert_array_equal(x["min"], [1]) and x["min"].dtype.kind == "i"
    assert_array_equal(x["max"], [5])
    assert_allclose(x["mean"], [4.0])  # (2*2 + 4*5) / 6
    assert_allclose(x["std"], [math.sqrt(14 / 6)])  # == np.std([1, 3, 5, 5, 5, 5])
    assert_allclose(x["std"], [np.std([1, 3, 5, 5, 5, 5])])
    assert_array_equal(x["count"], [6])
    assert_allclose(x["q50"], [4.0])  # count-weighted average of the episodes' q50
    assert_array_equal(agg["y"]["count"], [3])  # only in one episode
    assert_allclose(agg["y"]["mean"], [1.0, 2.0])
    assert aggregate_stats([]) == {}


def test_aggregate_matches_pooled_data() -> None:
    rng = np.random.default_rng(0)
    chunks = [rng.normal(i, 1 + i, size=(n, 3)) for i, n in enumerate((5, 40, 17))]
    agg = aggregate_stats([{"v": feature_stats(c)} for c in chunks])["v"]
    pooled = np.concatenate(chunks)
    assert_allclose(agg["mean"], pooled.mean(axis=0), rtol=1e-12)
    assert_allclose(agg["std"], pooled.std(axis=0), rtol=1e-12)
    assert_allclose(agg["min"], pooled.min(axis=0))
    assert_allclose(agg["max"], pooled.max(axis=0))


def test_aggregate_errors() -> None:
    bad = {"x": {"mean": np.array([1.0]), "std": np.array([0.0]), "count": np.array([1, 2])}}
    with pytest.raises(ValueError, match=r"shape of 'count' must be \(1,\)"):
        aggregate_stats([bad])
    a = {"x": {"mean": np.array([1.0]), "std": np.array([0.0]), "count": np.array([1])}}
    b = {"x": {"mean": np.array([1.0, 2.0]), "std": np.array([0.0, 0.0]), "count": np.array([1])}}
    with pytest.raises(ValueError, match="shapes differ"):
        aggregate_stats([a, b])


def test_aggregate_matches_v20_and_v30_stats_json(v21_recomputed: list[EpisodeStats]) -> None:
    agg = aggregate_stats(v21_recomputed)
    for name in ("g1_v20", "g1_v30"):
        result = compare_stats(agg, stats_json(name))
        assert result.ok, (name, [str(m) for m in result.mismatches])
        assert result.compared == 35
    # The declared per-episode stats (camera included) aggregate to the declared
    # dataset stats: same semantics as LeRobot's aggregate_stats.
    from_declared = aggregate_stats([stats_from_json(s) for s in v21_declared().values()])
    for name in ("g1_v20", "g1_v30"):
        result = compare_stats(from_declared, stats_json(name), features=list(from_declared), rtol=1e-12, atol=1e-12)
        assert result.ok, (name, [str(m) for m in result.mismatches])
        assert result.compared == 8 * 5


def test_aggregate_matches_lerobot_044_stats_json(image_recomputed: list[EpisodeStats]) -> None:
    agg = aggregate_stats(image_recomputed)
    declared = stats_json("g1_image_v30")
    no_std = [s for s in ALL_STATS if s != "std"]
    result = compare_stats(agg, declared, features=list(agg), stats=no_std)
    assert result.ok, [str(m) for m in result.mismatches]
    assert result.compared == 8 * 9
    assert compare_stats(agg, declared, stats=["std"], rtol=0, atol=1e-4).ok


def _lerobot_compute_stats(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """LeRobot's own compute_stats module, or skip.

    A full install (``lerobot`` with torch) is imported as is. Without torch,
    ``compute_stats.py`` is loaded from the ``lerobot`` package found on sys.path or
    in ``$LEROBOT_PKG_DIR`` or ``<repo>/.lerobot_pkg`` (``pip install --no-deps --target
    .lerobot_pkg lerobot==0.4.4``, which ``.ci/run`` does)
    with a stub for the one helper it imports from ``lerobot.datasets.utils``
    (``load_image_as_numpy``, unused by ``aggregate_stats``).
    """
    try:
        return importlib.import_module("lerobot.datasets.compute_stats")
    except ImportError:
        pass
    candidates: list[Path] = []
    if os.environ.get("LEROBOT_PKG_DIR"):
        candidates.append(Path(os.environ["LEROBOT_PKG_DIR"]) / "lerobot")
    candidates.append(Path(__file__).resolve().parents[1] / ".lerobot_pkg" / "lerobot")  # where .ci/run puts it
    try:
        spec = importlib.util.find_spec("lerobot")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    source = next((c / "datasets" / "compute_stats.py" for c in candidates
                   if (c / "datasets" / "compute_stats.py").is_file()), None)
    if source is None:
        pytest.skip("lerobot not available (install it, or set LEROBOT_PKG_DIR to a --no-deps --target dir)")
    for name in ("lerobot", "lerobot.datasets"):
        if name not in sys.modules:
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    utils_stub = types.ModuleType("lerobot.datasets.utils")
    utils_stub.load_image_as_numpy = None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lerobot.datasets.utils", utils_stub)
    spec = importlib.util.spec_from_file_location("_lerobot_compute_stats", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_aggregate_agrees_with_lerobot_aggregate_stats(
    monkeypatch: pytest.MonkeyPatch, v21_recomputed: list[EpisodeStats], image_recomputed: list[EpisodeStats]
) -> None:
    lerobot = _lerobot_compute_stats(monkeypatch)
    for episodes in (v21_recomputed, image_recomputed, [stats_from_json(s) for s in v21_declared().values()]):
        theirs = lerobot.aggregate_stats(episodes)
        ours = aggregate_stats(episodes)
        assert_stats_close(ours, theirs, rtol=1e-12)


# ------------------------------------------------------------------ JSON, comparison, presentation


def test_json_round_trip_and_layout(tmp_path: Path, image_recomputed: list[EpisodeStats]) -> None:
    agg = aggregate_stats(image_recomputed)
    obj = stats_to_json(agg)
    assert list(obj["index"]) == ALL_STATS
    assert obj["index"]["min"] == [0] and isinstance(obj["index"]["min"][0], int)
    assert obj["index"]["count"] == [736]
    assert np.asarray(obj[CAM]["mean"]).shape == (3, 1, 1)
    back = stats_from_json(json.loads(json.dumps(obj)))
    assert_stats_close(back, agg, rtol=0)
    path = write_stats_json(agg, tmp_path / "out")
    assert path == tmp_path / "out" / "meta" / "stats.json"
    assert json.loads(path.read_text()) == obj
    # The flat layout of a v3.0 episodes row reads too.
    flat = stats_from_json(v30_declared("g1_image_v30")[0])
    assert flat["observation.state"]["q99"].shape == (26,)
    assert flat[CAM]["mean"].shape == (3, 1, 1)
    assert flat["index"]["min"].dtype == np.int64
    line = json.loads((DATASETS / "g1_v21" / "meta" / "episodes_stats.jsonl").read_text().splitlines()[2])
    assert_stats_close(stats_from_json(line), stats_from_json(line["stats"]), rtol=0)
    with pytest.raises(ValueError, match="nested list of numbers"):
        stats_from_json({"x": {"mean": ["a"]}})


def test_compare_stats_reports_each_disagreement() -> None:
    computed = {
        "a": {"mean": np.array([1.0, 2.0]), "std": np.array([0.5, 0.5]), "q50": np.array([1.0, 2.0])},
        "b": {"mean": np.array([3.0])},
        "cam": {"mean": np.full((3, 1, 1), 0.5)},
    }
    declared = {"a": {"mean": [1.0, 2.1], "std": [0.5, 0.5]}, "b": {"mean": [3.0, 4.0]}, "cam": {"mean": [[[0]]] * 3}}
    result = compare_stats(computed, declared, episode_index=4)
    assert isinstance(result, StatsComparison) and not result.ok
    assert result.compared == 3  # a/mean, a/std, b/mean; q50 not declared; camera skipped
    by_key = {(m.feature, m.stat): m for m in result.mismatches}
    assert set(by_key) == {("a", "mean"), ("b", "mean")}
    m = by_key[("a", "mean")]
    assert isinstance(m, StatsMismatch) and m.episode_index == 4
    assert m.declared == [1.0, 2.1] and m.computed == [1.0, 2.0]
    assert m.max_abs_diff == pytest.approx(0.1)
    assert by_key[("b", "mean")].max_abs_diff == math.inf  # shapes differ
    assert "cam" in (result.note or "") and "a/mean" in str(m)
    assert compare_stats(computed, declared, rtol=0.1, features=["a"]).ok
    cam = compare_stats(computed, declared, features=["cam", "zzz"])
    assert [x.feature for x in cam.mismatches] == ["cam"] and "zzz" in (cam.note or "")


def test_compare_stats_without_declared_stats_passes_with_note() -> None:
    for declared in (None, {}):
        result = compare_stats({"a": {"mean": np.array([1.0])}}, declared)
        assert result.ok and result.compared == 0 and "no statistics" in (result.note or "")


def test_episode_stats_to_struct_builds_a_struct_column(image_recomputed: list[EpisodeStats]) -> None:
    rows = [episode_stats_to_struct(s) for s in image_recomputed]
    assert set(rows[0]) == {"observation_state", "action", "observation_images_cam_high", "timestamp",
                            "frame_index", "episode_index", "index", "task_index"}
    assert list(rows[0]["action"]) == ALL_STATS
    assert len(rows[0]["observation_images_cam_high"]["mean"]) == 3
    assert all(isinstance(v, float) for v in rows[0]["index"]["min"])
    column = pa.array(rows)
    assert pa.types.is_struct(column.type)
    assert column.type.field("action").type.field("q50").type == pa.list_(pa.float64())
    no_q = episode_stats_to_struct({"x.y": feature_stats(np.zeros((2, 2)), quantiles=False)})
    assert no_q["x_y"]["q50"] is None and no_q["x_y"]["count"] == [2.0]


def test_plot_and_markdown(tmp_path: Path, v21_recomputed: list[EpisodeStats]) -> None:
    agg = aggregate_stats(v21_recomputed)
    png = tmp_path / "stats.png"
    plot_mean_std_png(agg, ["observation.state", "action"], png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KeyError):
        plot_mean_std_png(agg, ["nope"], png)
    md = ranges_markdown(agg)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| feature | dims |") and len(lines) == 2 + 7
    assert "| `index` | 1 | 0 .. 2315 | 1158 | 2316 |" in md
    assert "| `observation.state` | 26 |" in md


def test_image_sample_size_zero_leaves_image_cameras_out() -> None:
    """``camera_stats_samples=0`` (no camera statistics) on an image dataset: the
    image cameras are left out, as video cameras are, and every numeric feature
    keeps the statistics it has with sampling on (it used to raise
    "sample_size must be >= 1")."""
    meta = meta_from_info("g1_image_v30")
    table = v30_episode("g1_image_v30", 0)
    without = compute_episode_stats(table, meta, image_sample_size=0)
    full = compute_episode_stats(table, meta)
    assert meta.camera_keys and not set(meta.camera_keys) & set(without)
    assert set(without) == set(full) - set(meta.camera_keys)
    for key, stats in without.items():
        for name, value in stats.items():
            assert_array_equal(value, full[key][name])
