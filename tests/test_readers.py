"""Readers: the normalized model of every shared sample, and refusals of bad info.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lerobot_lance.errors import UnsupportedFormatError
from lerobot_lance.readers import read_dataset_meta
from tests.conftest import EPISODE_LENGTHS, SAMPLES, sample


@pytest.mark.parametrize("name", ["g1_v20", "g1_v21", "g1_v30", "g1_v30_h264_gop30"])
def test_six_episode_samples_normalize_alike(name: str) -> None:
    meta = read_dataset_meta(sample(name))
    assert meta.fps == 30
    assert [e.length for e in meta.episodes] == list(EPISODE_LENGTHS)
    assert meta.total_frames == 2316
    assert meta.tasks == {0: "Pick up the yellow bottle on the table."}
    assert meta.video_keys == ["observation.images.cam_high"]
    assert meta.features["observation.state"].shape == (26,)
    starts = [e.dataset_from_index for e in meta.episodes]
    assert starts == [sum(EPISODE_LENGTHS[:i]) for i in range(6)]
    for e in meta.episodes:
        ref = e.videos["observation.images.cam_high"]
        assert ref.to_timestamp - ref.from_timestamp == pytest.approx(e.length / 30, abs=1e-6)
        assert (sample(name) / ref.relative_path).is_file()
        assert (sample(name) / e.data_path).is_file()


def test_v30_windows_match_readme() -> None:
    meta = read_dataset_meta(sample("g1_v30"))
    for e in meta.episodes:
        assert e.videos["observation.images.cam_high"].relative_path.endswith(f"file-{e.episode_index // 2:03d}.mp4")
        assert e.declared_stats is not None and "action" in e.declared_stats


def test_image_and_multicam_samples() -> None:
    img = read_dataset_meta(sample("g1_image_v30"))
    assert img.image_keys == ["observation.images.cam_high"] and img.video_keys == []
    mc = read_dataset_meta(sample("g1_multicam_v30"))
    assert mc.video_keys == ["observation.images.cam_high", "observation.images.cam_high_crop"]
    assert [e.length for e in mc.episodes] == [393, 343]


@pytest.mark.parametrize(
    "content, found",
    [
        ({"codebase_version": "v1.6"}, "'v1.6'"),
        ({"codebase_version": "v4.0"}, "'v4.0'"),
        ("", "empty file"),
        ("{not json", "invalid JSON"),
        ({"fps": 30}, "no codebase_version"),
    ],
)
def test_unsupported_info_json_is_refused_clearly(tmp_path: Path, content: object, found: str) -> None:
    root = tmp_path / "ds"
    shutil.copytree(sample("g1_v21") / "meta", root / "meta")
    info_path = root / "meta" / "info.json"
    info_path.chmod(0o644)
    if isinstance(content, dict):
        info = json.loads(info_path.read_text())
        info.pop("codebase_version")
        info.update(content)
        info_path.write_text(json.dumps(info))
    else:
        info_path.write_text(str(content))
    with pytest.raises(UnsupportedFormatError) as err:
        read_dataset_meta(root)
    msg = str(err.value)
    assert str(info_path) in msg and found in msg and "v2.0, v2.1, v3.0" in msg


def test_missing_info_json(tmp_path: Path) -> None:
    (tmp_path / "meta").mkdir()
    with pytest.raises(UnsupportedFormatError, match="missing file"):
        read_dataset_meta(tmp_path)


@pytest.mark.parametrize("name", SAMPLES)
def test_every_sample_parses(name: str) -> None:
    meta = read_dataset_meta(sample(name))
    assert len(meta.episodes) == meta.info["total_episodes"]
    assert meta.total_frames == meta.info["total_frames"]
