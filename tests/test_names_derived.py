"""Issue 8 item 20: frame tables without frame_index / index / task_index /
timestamp convert with the columns derived as LeRobot defines them, a WARN
naming each derived column; what cannot be derived is refused, located."""

from __future__ import annotations

from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import EPISODE_LENGTHS
from tests.faults import make_fault
from tests.faults_names import WALLCLOCK_DRIFT_S, build_dropped, build_wallclock_timestamps


def _frames(out: Path) -> pa.Table:
    return lance.dataset(str(out / "frames.lance")).to_table().sort_by("index")


def _warn_lines(summary, check: str) -> list[str]:  # noqa: ANN001
    return [w for w in summary.warnings if f"/ {check}:" in w]


@pytest.mark.parametrize(
    ("base", "columns"),
    [("g1_v21", ["frame_index"]), ("g1_v30", ["index", "task_index"])],
)
def test_absent_bookkeeping_columns_are_derived(base: str, columns: list[str], tmp_path: Path, converted) -> None:  # noqa: ANN001
    from lerobot_lance import convert, doctor

    src = build_dropped(base, tmp_path / "src", columns)
    # doctor: the derived columns are a WARN naming each of them, nothing fails
    outcomes = {o.name: o for o in doctor(str(src))}
    assert all(o.passed for o in outcomes.values() if o.severity == "ERROR"), [o.message for o in outcomes.values() if not o.passed]
    warn = outcomes["index_columns_derived"]
    assert not warn.passed and warn.severity == "WARN" and warn.n_offenders == 6
    assert outcomes["frame_index_sequence"].passed and "found -1" not in outcomes["frame_index_sequence"].message
    for c in columns:
        assert f"{c} (" in warn.message and "absent from the data file" in warn.message
    summary = convert(str(src), str(tmp_path / "out"), overwrite=True)
    lines = _warn_lines(summary, "index_columns_derived")
    assert lines and all(c in lines[0] for c in columns), summary.warnings
    # the derived values are what the unmodified sample holds
    got, want = _frames(tmp_path / "out"), _frames(converted(base))
    assert got.num_rows == want.num_rows == sum(EPISODE_LENGTHS)
    assert got.schema == want.schema
    for c in ["frame_index", "index", "task_index", "timestamp", "episode_index", "action"]:
        assert got[c].to_pylist() == want[c].to_pylist(), c
    eps = lance.dataset(str(tmp_path / "out" / "episodes.lance")).to_table(columns=["episode_index", "task_index", "length"])
    assert eps.sort_by("episode_index")["task_index"].to_pylist() == [0] * 6


def test_wallclock_timestamps_without_declared_timestamp_convert(tmp_path: Path) -> None:
    """Timestamps drifting up to 1.4 s, ``timestamp`` and ``frame_index`` not
    declared in info.json (frame_index absent): --tolerance-s 2 converts, the
    frames and episodes tables keep the source timestamps."""
    from lerobot_lance import convert
    from pipelines.runner import ConversionFailed

    src = build_wallclock_timestamps("g1_v21", tmp_path / "src")
    with pytest.raises(ConversionFailed) as err:  # the default tolerance refuses the drift, located
        convert(str(src), str(tmp_path / "out0"))
    assert "timestamps_match_fps" in str(err.value) and "data/chunk-000/episode_000000.parquet (episode 0)" in str(err.value)
    assert "Traceback" not in str(err.value) and "KeyError" not in str(err.value)

    summary = convert(str(src), str(tmp_path / "out"), tolerance_s=2.0)
    assert summary.rows["frames"] == 2316
    assert any("frame_index (position in the episode" in w for w in _warn_lines(summary, "index_columns_derived"))
    frames = _frames(tmp_path / "out")
    assert frames.schema.field("timestamp").type == pa.float32() and frames.schema.field("frame_index").type == pa.int64()
    import pyarrow.parquet as pq

    src_ts = np.concatenate([pq.read_table(src / f"data/chunk-000/episode_{i:06d}.parquet")["timestamp"].to_numpy() for i in range(6)])
    assert np.array_equal(frames["timestamp"].to_numpy(), src_ts)  # the source's drifting values, bit for bit
    fi = frames["frame_index"].to_numpy()
    assert np.array_equal(fi, np.concatenate([np.arange(n) for n in EPISODE_LENGTHS]))
    drift = frames["timestamp"].to_numpy().astype(np.float64) - fi / 30
    assert 1.39 < drift.max() <= WALLCLOCK_DRIFT_S + 1e-4
    eps = lance.dataset(str(tmp_path / "out" / "episodes.lance")).to_table(columns=["episode_index", "timestamps"]).sort_by("episode_index")
    assert np.array_equal(np.concatenate([np.asarray(t) for t in eps["timestamps"].to_pylist()]), src_ts.astype(np.float64))


def test_timestamp_absent_is_derived_from_frame_index(tmp_path: Path, converted) -> None:  # noqa: ANN001
    from lerobot_lance import convert

    src = build_dropped("g1_v21", tmp_path / "src", ["timestamp"], undeclare=True)
    summary = convert(str(src), str(tmp_path / "out"))
    assert any("timestamp (frame_index / fps)" in w for w in _warn_lines(summary, "index_columns_derived"))
    got, want = _frames(tmp_path / "out"), _frames(converted("g1_v21"))
    # the sample's timestamps are frame_index / fps in float32 (as LeRobot records them)
    assert got["timestamp"].to_pylist() == want["timestamp"].to_pylist()


def test_task_index_that_cannot_be_derived_is_refused_located(tmp_path: Path) -> None:
    from lerobot_lance import convert, doctor
    from pipelines.runner import ConversionFailed

    make_fault("task_index_absent_multitask", tmp_path / "v")
    o = {x.name: x for x in doctor(str(tmp_path / "v"))}["feature_columns_present"]
    assert not o.passed and o.severity == "ERROR" and o.n_offenders == 1
    text = str(o.offenders[0])
    assert text.startswith("data/chunk-000/episode_000002.parquet (episode 2): ")
    assert "task_index cannot be derived: 2 tasks in the dataset, 2 listed for the episode" in text
    with pytest.raises(ConversionFailed) as err:
        convert(str(tmp_path / "v"), str(tmp_path / "out"))
    assert "feature_columns_present" in str(err.value) and "episode_000002.parquet" in str(err.value)
    summary = convert(str(tmp_path / "v"), str(tmp_path / "out"), overwrite=True, exclude_failed_episodes=True)
    assert summary.rows["frames"] == 2316 - EPISODE_LENGTHS[2]
    frames = _frames(tmp_path / "out")
    assert set(frames["task_index"].to_pylist()) == {0}  # the other episodes' only task


def test_declared_timestamp_absent_is_refused_not_derived(tmp_path: Path) -> None:
    """A timestamp info.json declares is measured data: absent from one file it
    is refused (fault missing_column), never replaced by frame_index / fps."""
    from lerobot_lance import doctor

    make_fault("missing_column", tmp_path / "v")
    o = {x.name: x for x in doctor(str(tmp_path / "v"))}
    present = o["feature_columns_present"]
    assert not present.passed and present.n_offenders == 1
    text = str(present.offenders[0])
    assert text.startswith("data/chunk-000/episode_000002.parquet (episode 2): columns absent from the data file: ['timestamp']")
    assert "declared in info.json" in text
    assert o["index_columns_derived"].passed
