"""Issue 8 item 1: any valid feature name converts; the episodes table's
sequence columns follow one rule (lerobot_lance.column_names)."""

from __future__ import annotations

import json
from pathlib import Path

import lance
import numpy as np
import pyarrow.parquet as pq
import pytest

from lerobot_lance.column_names import episode_sequence_columns, frames_column_collisions
from lerobot_lance.readers import read_dataset_meta
from tests.conftest import EPISODE_LENGTHS, sample
from tests.faults import copy_sample, edit_info, edit_parquet
from tests.faults_names import build_renamed


def _episodes_equal_frames(out: Path, columns: dict[str, str], episode_count: int = 6) -> None:
    """Every sequence column of the episodes table equals the frames of its episode."""
    frames = lance.dataset(str(out / "frames.lance")).to_table()
    episodes = lance.dataset(str(out / "episodes.lance")).to_table().sort_by("episode_index")
    assert episodes["episode_index"].to_pylist() == list(range(episode_count))
    for row, ep in enumerate(episodes["episode_index"].to_pylist()):
        mask = np.asarray(frames["episode_index"].to_numpy()) == ep
        assert episodes["length"][row].as_py() == mask.sum() == EPISODE_LENGTHS[ep]
        ts = np.asarray(frames["timestamp"].to_numpy())[mask]
        assert np.array_equal(np.asarray(episodes["timestamps"][row].values.to_numpy()), ts)
        for frame_col, ep_col in columns.items():
            want = np.asarray(frames[frame_col].combine_chunks().filter(mask).to_pylist())
            got = np.asarray(episodes[ep_col][row].as_py())
            assert got.shape == want.shape and np.array_equal(got, want), (ep, frame_col, ep_col)


@pytest.mark.parametrize("base", ["g1_v21", "g1_v30"])
def test_renamed_features_convert(base: str, tmp_path: Path) -> None:
    from lerobot_lance import convert

    src = build_renamed(base, tmp_path / base)  # action -> actions, observation.state -> state, camera -> image
    summary = convert(str(src), str(tmp_path / "out"), overwrite=True)
    assert summary.rows == {"frames": 2316, "episodes": 6, "videos": 6 if base == "g1_v21" else 3}
    out = tmp_path / "out"
    ep_schema = lance.dataset(str(out / "episodes.lance")).schema
    assert {"actions", "state", "image_video_blob", "image_from_timestamp", "image_to_timestamp"} <= set(ep_schema.names)
    assert "action" not in ep_schema.names and "observation_state" not in ep_schema.names
    assert set(lance.dataset(str(out / "frames.lance")).schema.names) == {
        "state", "actions", "timestamp", "frame_index", "episode_index", "index", "task_index"}
    _episodes_equal_frames(out, {"actions": "actions", "state": "state"})
    # the frames are the source's, bit for bit, under their new names
    frames = lance.dataset(str(out / "frames.lance")).to_table().sort_by("index")
    source = pq.read_table(sample(base) / ("data/chunk-000/file-000.parquet" if base == "g1_v30" else "data/chunk-000/episode_000000.parquet"))
    n = source.num_rows
    assert frames["actions"].to_pylist()[:n] == source["action"].to_pylist()
    assert frames["state"].to_pylist()[:n] == source["observation.state"].to_pylist()
    # the camera's segments hold each episode's frames
    blobs = lance.dataset(str(out / "episodes.lance")).take_blobs("image_video_blob", indices=[0])
    with blobs[0] as f:
        assert len(f.read()) > 1000


def test_colliding_names_get_the_documented_suffix(tmp_path: Path) -> None:
    """A source feature named like a card column (``actions`` next to ``action``)
    or a fixed column (``length``, ``timestamps``) gets ``<name>_feature``."""
    from lerobot_lance import convert

    src = copy_sample("g1_v21", tmp_path / "src")

    def add(t):  # noqa: ANN001, ANN202
        t = t.append_column("actions", t["action"])
        t = t.append_column("length", t["frame_index"])
        return t.append_column("timestamps", t["timestamp"])

    for i in range(6):
        edit_parquet(src, f"data/chunk-000/episode_{i:06d}.parquet", add)

    def declare(info: dict) -> None:
        f = info["features"]
        f["actions"] = dict(f["action"])
        f["length"] = dict(f["frame_index"])
        f["timestamps"] = dict(f["timestamp"])

    edit_info(src, declare)
    meta = read_dataset_meta(src)
    assert episode_sequence_columns(meta.features) == {
        "observation.state": "observation_state", "action": "actions",
        "actions": "actions_feature", "length": "length_feature", "timestamps": "timestamps_feature",
    }
    convert(str(src), str(tmp_path / "out"), overwrite=True)
    _episodes_equal_frames(tmp_path / "out", {
        "action": "actions", "actions": "actions_feature", "length": "length_feature",
        "timestamps": "timestamps_feature", "observation_state": "observation_state",
    })


def test_naming_rule_is_deterministic_and_collision_free() -> None:
    meta = read_dataset_meta(sample("g1_v30"))
    cols = episode_sequence_columns(meta.features)
    assert cols == {"observation.state": "observation_state", "action": "actions"}
    assert frames_column_collisions(list(meta.features)) == {}
    assert frames_column_collisions(["a.b", "x", "a_b"]) == {"a_b": ["a.b", "a_b"]}


def test_frames_collision_is_refused_at_source_meta(tmp_path: Path) -> None:
    from lerobot_lance import doctor
    from tests.faults import make_fault

    make_fault("feature_columns_collide", tmp_path / "v")
    outcomes = {o.name: o for o in doctor(str(tmp_path / "v"))}
    o = outcomes["features_well_formed"]
    assert not o.passed and o.severity == "ERROR"
    text = str(o.offenders[0])
    assert "meta/info.json (features.observation_state)" in text
    assert "['observation.state', 'observation_state']" in text and "'observation_state'" in text
    assert json.loads((tmp_path / "v" / "meta" / "info.json").read_text())["features"]["observation_state"]
