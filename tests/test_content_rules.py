"""Content rules on the real G1 samples: the clean episodes, then one injected defect per rule.

The shared samples are read-only: every defect is built in memory on a copy of
the episode's arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from lerobot_lance.model import DatasetMeta, Feature
from lerobot_lance.quality.content_rules import (
    CONTENT_RULES,
    ContentThresholds,
    check_content,
    dimension_labels,
)
from lerobot_lance.quality.result import CheckOutcome
from lerobot_lance.readers import read_dataset_meta

Frames = dict[int, pa.Table]

#: What the clean six G1 episodes give: the right Inspire hand's thumb sits at its
#: normalised limit (the teleop retargeting clips the command to [0, 1]).
CLEAN_CLIPPED = {
    "observation.state[24] (kRightHandThumbBend)": 6,
    "observation.state[25] (kRightHandThumbRotation)": 4,
    "action[24] (kRightHandThumbBend)": 6,
}


@pytest.fixture(scope="module")
def g1(shared: Path) -> tuple[DatasetMeta, Frames]:
    root = shared / "g1_v21"
    meta = read_dataset_meta(root)
    return meta, {e.episode_index: pq.read_table(root / e.data_path) for e in meta.episodes}


@pytest.fixture(scope="module")
def clean(g1: tuple[DatasetMeta, Frames]) -> dict[str, CheckOutcome]:
    meta, frames = g1
    return {o.name: o for o in check_content(meta, frames)}


def vectors(table: pa.Table, key: str) -> np.ndarray:
    col = table.column(key).combine_chunks()
    return col.flatten().to_numpy().reshape(table.num_rows, -1).copy()


def with_vectors(table: pa.Table, key: str, x: np.ndarray) -> pa.Table:
    arr = pa.FixedSizeListArray.from_arrays(pa.array(x.astype(np.float32).ravel()), x.shape[1])
    i = table.schema.get_field_index(key)
    return table.set_column(i, pa.field(key, arr.type), arr)


def edit(frames: Frames, episode: int, key: str, change: Callable[[np.ndarray], None]) -> Frames:
    """A new batch where ``change`` edited (in place) a copy of ``key``'s (frames, width) array."""
    x = vectors(frames[episode], key)
    change(x)
    return {**frames, episode: with_vectors(frames[episode], key, x)}


def run(meta: DatasetMeta, frames: Frames, **thresholds: float) -> dict[str, CheckOutcome]:
    outcomes = check_content(meta, frames, ContentThresholds(**thresholds) if thresholds else None)
    assert [o.name for o in outcomes] == list(CONTENT_RULES)
    assert {o.severity for o in outcomes} == {"WARN"}
    return {o.name: o for o in outcomes}


def located(outcome: CheckOutcome) -> list[tuple[int | None, str]]:
    """(episode, dimension label) of each kept offender."""
    return [(o.episode_index, o.detail.split(" ")[0] + " " + o.detail.split(" ")[1]) for o in outcome.offenders]


def test_clean_g1_v21(clean: dict[str, CheckOutcome]) -> None:
    assert list(clean) == list(CONTENT_RULES)
    assert {o.severity for o in clean.values()} == {"WARN"}
    failing = {name for name, o in clean.items() if not o.passed}
    assert failing == {"clipped_values"}
    clipped = clean["clipped_values"]
    assert clipped.n_offenders == 16
    assert clipped.metadata["offenders_by_dim"] == CLEAN_CLIPPED
    assert clipped.metadata["offending_episodes"] == [0, 1, 2, 3, 4, 5]
    first = clipped.offenders[0]
    assert (first.episode_index, first.file) == (0, "data/chunk-000/episode_000000.parquet")
    assert first.detail.startswith("observation.state[24] (kRightHandThumbBend) sits exactly at its episode max 1 ")
    assert first.found == "33.6% at max 1"
    for name in ("frozen_actuators", "flatlined_sensors", "action_jumps", "encoder_wraparound"):
        assert clean[name].metadata["episodes_examined"] == 6
        assert clean[name].metadata["dims_examined"] == 26
    # Index columns (task_index is constant) and the camera are not examined.
    assert clean["zero_variance_dims"].metadata["features"] == ["observation.state", "action"]
    assert clean["zero_variance_dims"].metadata["dims_examined"] == 52
    assert clean["near_duplicate_episodes"].metadata["pairs_verified"] == 0
    assert clean["short_episodes"].metadata["shortest_episode_frames"] == 343


def test_clean_multicam_v30_split_by_episode(shared: Path) -> None:
    """The v3.0 layout (two episodes in one parquet) gives the same findings for those episodes."""
    root = shared / "g1_multicam_v30"
    meta = read_dataset_meta(root)
    table = pq.read_table(root / "data/chunk-000/file-000.parquet")
    frames = {e: table.filter(pc.equal(table.column("episode_index"), e)) for e in (0, 1)}
    out = run(meta, frames)
    assert {n for n, o in out.items() if not o.passed} == {"clipped_values"}
    assert out["clipped_values"].metadata["offenders_by_dim"] == dict.fromkeys(CLEAN_CLIPPED, 2)


def test_frozen_actuator(g1: tuple[DatasetMeta, Frames], clean: dict[str, CheckOutcome]) -> None:
    meta, frames = g1

    def freeze(x: np.ndarray) -> None:
        x[:, 3] = x[0, 3]

    out = run(meta, edit(frames, 2, "action", freeze))
    frozen = out["frozen_actuators"]
    assert not frozen.passed and frozen.n_offenders == 1
    (o,) = frozen.offenders
    assert o.episode_index == 2 and o.file == "data/chunk-000/episode_000002.parquet"
    assert o.detail.startswith("action[3] (kLeftElbow) constant at ")
    assert "for 357 of 357 frames (frames 0-356) while it varies in 5 other episode(s)" in o.detail
    assert (o.expected, o.found) == ("constant runs < 322 frames", "357 frames")
    assert out["flatlined_sensors"].passed
    assert out["clipped_values"].metadata["offenders_by_dim"] == CLEAN_CLIPPED


def test_flatlined_sensor(g1: tuple[DatasetMeta, Frames]) -> None:
    meta, frames = g1

    def hold(x: np.ndarray) -> None:  # the reading stops updating after frame 20 (390 of 410 frames)
        x[20:, 10] = x[20, 10]

    out = run(meta, edit(frames, 4, "observation.state", hold))
    flat = out["flatlined_sensors"]
    assert located(flat) == [(4, "observation.state[10] (kRightElbow)")]
    assert "for 390 of 410 frames (frames 20-409)" in flat.offenders[0].detail
    assert out["frozen_actuators"].passed
    # A stuck dimension is left to the stuck rules, not also reported as clipped.
    assert out["clipped_values"].metadata["offenders_by_dim"] == CLEAN_CLIPPED


def test_frozen_in_single_episode_batch_needs_moving_state(g1: tuple[DatasetMeta, Frames]) -> None:
    """With no other episode to compare, a frozen command is reported because its state moves."""
    meta, frames = g1

    def freeze(x: np.ndarray) -> None:
        x[:, 7] = x[0, 7]

    single = {2: edit(frames, 2, "action", freeze)[2]}
    frozen = run(meta, single)["frozen_actuators"]
    assert located(frozen) == [(2, "action[7] (kRightShoulderPitch)")]
    assert "observation.state[7] (kRightShoulderPitch) moves by" in frozen.offenders[0].detail
    # A state motion floor above the real motion: nothing left to compare against.
    assert run(meta, single, partner_motion_min=10.0)["frozen_actuators"].passed


def test_clipped_values(g1: tuple[DatasetMeta, Frames]) -> None:
    meta, frames = g1

    def clip(x: np.ndarray) -> None:  # saturate at the 60th percentile: ~40 % of frames at the max
        x[:, 0] = np.minimum(x[:, 0], np.quantile(x[:, 0], 0.6))

    batch = edit(frames, 1, "action", clip)
    col = vectors(batch[1], "action")[:, 0]
    at_max = int((col == col.max()).sum())
    clipped = run(meta, batch)["clipped_values"]
    label = "action[0] (kLeftShoulderPitch)"
    assert clipped.metadata["offenders_by_dim"] == {**CLEAN_CLIPPED, label: 1}
    (o,) = [o for o in clipped.offenders if o.detail.startswith(label)]
    assert o.episode_index == 1
    assert f"sits exactly at its episode max {float(col.max()):.6g} in {at_max} of 343 frames" in o.detail
    assert o.found == f"{at_max / 343:.1%} at max {float(col.max()):.6g}"


def test_action_jump(g1: tuple[DatasetMeta, Frames]) -> None:
    meta, frames = g1

    def step(x: np.ndarray) -> None:  # the command leaps by 0.6 rad at frame 100 and stays there
        x[100:, 5] += 0.6

    batch = edit(frames, 3, "action", step)
    col = vectors(batch[3], "action")[:, 5]
    jumps = run(meta, batch)["action_jumps"]
    assert located(jumps) == [(3, "action[5] (kLeftWristPitch)")]
    o = jumps.offenders[0]
    assert f"jumps by {float(col[100] - col[99]):+.4g} from frame 99 to frame 100 (typical step" in o.detail
    assert o.found == f"{float(col[100] - col[99]):.4g} at frame 100"
    assert o.expected == "|step| <= 0.25 per frame"


def test_action_spike_counts_both_steps(g1: tuple[DatasetMeta, Frames]) -> None:
    meta, frames = g1

    def spike(x: np.ndarray) -> None:
        x[200, 12] -= 0.5

    (o,) = run(meta, edit(frames, 0, "action", spike))["action_jumps"].offenders
    assert o.episode_index == 0
    assert o.detail.startswith("action[12] (kRightWristPitch) jumps by -0.4")
    assert "from frame 199 to frame 200; 2 jumps in all" in o.detail


def test_zero_variance_dim(g1: tuple[DatasetMeta, Frames]) -> None:
    meta, frames = g1
    batch = frames
    for ep in frames:
        batch = edit(batch, ep, "action", lambda x: x.__setitem__((slice(None), 7), 0.25))
    out = run(meta, batch)
    zero = out["zero_variance_dims"]
    assert located(zero) == [(None, "action[7] (kRightShoulderPitch)")]
    assert zero.offenders[0].found == "constant 0.25"
    assert "all 2316 frames of the 6 episode(s)" in zero.offenders[0].detail
    # The command is also stuck in every episode while the arm's state moves.
    assert located(out["frozen_actuators"]) == [(ep, "action[7] (kRightShoulderPitch)") for ep in range(6)]


def test_zero_variance_on_int_and_bool_features(g1: tuple[DatasetMeta, Frames]) -> None:
    meta, frames = g1
    features = {
        **meta.features,
        "next.done": Feature("next.done", "bool", (1,)),
        "observation.mode": Feature("observation.mode", "int64", (1,), names=["control_mode"]),
    }
    meta2 = DatasetMeta(meta.codebase_version, meta.fps, features, meta.tasks, meta.episodes, meta.info)
    batch = {
        ep: t.append_column("next.done", pa.array(np.zeros(t.num_rows, dtype=bool))).append_column(
            "observation.mode", pa.array(np.full(t.num_rows, 2, dtype=np.int64))
        )
        for ep, t in frames.items()
    }
    zero = run(meta2, batch)["zero_variance_dims"]
    assert [o.detail.split(" is ")[0] for o in zero.offenders] == ["next.done", "observation.mode (control_mode)"]
    assert [o.found for o in zero.offenders] == ["constant False", "constant 2"]


@pytest.mark.parametrize("unit", ["rad", "deg"])
def test_encoder_wraparound(g1: tuple[DatasetMeta, Frames], unit: str) -> None:
    meta, frames = g1

    def wrap(x: np.ndarray) -> None:  # shift the wrist yaw so it crosses +π at frame 150, then wrap to [-π, π)
        shifted = x[:, 6].astype(np.float64) + math.pi - x[150, 6] - 1e-3
        angle = np.mod(shifted + math.pi, 2 * math.pi) - math.pi
        x[:, 6] = np.degrees(angle) if unit == "deg" else angle

    wraps = run(meta, edit(frames, 1, "observation.state", wrap))["encoder_wraparound"]
    label = "observation.state[6] (kLeftWristYaw)"
    assert wraps.metadata["offenders_by_dim"] == {label: 1}
    (o,) = wraps.offenders
    assert o.episode_index == 1 and o.detail.startswith(label)
    turn = 360.0 if unit == "deg" else 2 * math.pi
    step = float(o.found.split(" ")[0])
    assert abs(abs(step) - turn) < 0.05 * turn
    assert o.found.split(" ")[1] == unit


def test_near_duplicate_episodes(g1: tuple[DatasetMeta, Frames]) -> None:
    meta, frames = g1
    dup = run(meta, {**frames, 6: frames[2]})["near_duplicate_episodes"]
    assert dup.n_offenders == 1
    (o,) = dup.offenders
    assert o.episode_index == 6 and o.file is None
    assert o.detail.startswith("episodes 2 and 6 have the same 357 frames of action, observation.state")
    assert dup.metadata["duplicate_pairs"] == [[6, 2]]
    assert dup.metadata["pairs_verified"] == 1

    # Within the tolerance: still a duplicate; beyond it: not.
    rng = np.random.default_rng(0)
    for noise, flagged in ((2e-5, True), (1e-3, False)):
        copy = edit(frames, 2, "action", lambda x, n=noise: x.__iadd__(rng.uniform(-n, n, x.shape)))[2]
        out = run(meta, {**frames, 6: copy})["near_duplicate_episodes"]
        assert (out.n_offenders == 1) is flagged


def test_short_episode(g1: tuple[DatasetMeta, Frames]) -> None:
    meta, frames = g1
    out = run(meta, {**frames, 3: frames[3].slice(0, 5)})
    short = out["short_episodes"]
    assert located(short) == [(3, "5 frame(s)")]
    assert (short.offenders[0].expected, short.offenders[0].found) == (">= 16 frames", 5)
    assert "(0.17 s at 30 fps)" in short.offenders[0].detail
    assert run(meta, frames, policy_window_frames=344)["short_episodes"].episodes == [1]


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([["a", "b", "c"]], ["k[0] (a)", "k[1] (b)", "k[2] (c)"]),
        (["a", "b", "c"], ["k[0] (a)", "k[1] (b)", "k[2] (c)"]),
        ({"motors": ["a", "b", "c"]}, ["k[0] (a)", "k[1] (b)", "k[2] (c)"]),
        (None, ["k[0]", "k[1]", "k[2]"]),
        (["a", "b"], ["k[0]", "k[1]", "k[2]"]),
    ],
)
def test_dimension_labels(names: object, expected: list[str]) -> None:
    assert dimension_labels(Feature("k", "float32", (3,), names=names), 3) == expected


def test_thresholds_are_validated() -> None:
    with pytest.raises(ValueError, match="clip_fraction must be in"):
        ContentThresholds(clip_fraction=0.0)
    with pytest.raises(ValueError, match="policy_window_frames must be >= 0"):
        ContentThresholds(policy_window_frames=-1)
