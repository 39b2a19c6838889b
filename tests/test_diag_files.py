"""Issue 8, diagnosis items: the located messages of the file rules, scan on
metadata it cannot fully read, camera shapes, and offender lists kept whole.

Built from the shared samples (``tests/faults_diag.py`` kinds and local edits);
``tests/test_faults.py`` already checks each kind fails its named check.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from lerobot_lance.camera_shape import camera_dims
from lerobot_lance.quality.result import MAX_OFFENDERS, CheckOutcome, Offender, merge_outcomes
from tests.faults import CAM, SHARED, copy_sample, edit_info, make_fault, v2_data, v2_video
from tests.faults_diag import MULTICAM, NEAR_MISS_WITH_FILES, NEAR_MISS_WITHOUT, OTHER_FOLDER, multicam_shard


def _doctor(root: Path) -> dict[str, Any]:
    from lerobot_lance.quality.doctor import run_doctor

    return {o.name: o for o in run_doctor(str(root))}


def _source_files(root: Path, **kw: Any) -> dict[str, CheckOutcome]:
    from lerobot_lance.quality.source_rules import check_source_files
    from lerobot_lance.readers import read_dataset_meta

    return {o.name: o for o in check_source_files(root, read_dataset_meta(root), **kw)}


def test_videos_in_another_folder_are_found_and_named(tmp_path: Path) -> None:
    make_fault("videos_other_folder", tmp_path / "ds")
    out = _source_files(tmp_path / "ds")
    exist, orphans = out["files_exist"], out["no_orphan_files"]
    assert not exist.passed and exist.n_offenders == len(exist.offenders) == 6
    # the summary names the template, one expected path and where the files are
    template = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    assert template in exist.note and v2_video(0) in exist.note and f"{OTHER_FOLDER}/" in exist.note
    assert "6 of 6 files of camera" in exist.note
    for ep, off in enumerate(exist.offenders):
        assert off.file == v2_video(ep) and off.episode_index == ep
        assert f"{OTHER_FOLDER}/episode_{ep:06d}.mp4" in off.detail
    assert exist.note in exist.message
    # the moved mp4s are orphans although they are outside data/ and videos/
    assert not orphans.passed
    assert [o.file for o in orphans.offenders] == [f"{OTHER_FOLDER}/episode_{ep:06d}.mp4" for ep in range(6)]
    assert all(f"looks like the missing {v2_video(ep)}" in o.detail for ep, o in enumerate(orphans.offenders))


def test_orphans_anywhere_but_meta_and_hidden_folders(tmp_path: Path) -> None:
    root = copy_sample("g1_v21", tmp_path / "ds")
    (root / "extra" / "deep").mkdir(parents=True)
    os.link(root / v2_data(0), root / "extra/deep/stray.parquet")
    (root / ".git" / "lfs").mkdir(parents=True)
    os.link(root / v2_video(0), root / ".git/lfs/object.mp4")  # git's own store: not the dataset's
    os.link(root / v2_data(0), root / "meta/extra.parquet")      # meta/ parquet files are metadata
    orphans = _source_files(root)["no_orphan_files"]
    assert [o.file for o in orphans.offenders] == ["extra/deep/stray.parquet"]


def test_another_cameras_folder_is_never_offered(tmp_path: Path) -> None:
    make_fault("camera_key_near_miss", tmp_path / "ds")
    out = _doctor(tmp_path / "ds")
    exist = out["files_exist"]
    assert not exist.passed and exist.n_offenders == 6
    assert {o.file for o in exist.offenders} == {f"videos/chunk-000/{NEAR_MISS_WITHOUT}/episode_{ep:06d}.mp4" for ep in range(6)}
    text = exist.message + " ".join(o.detail for o in exist.offenders)
    assert f"/{NEAR_MISS_WITH_FILES}/" not in text and "misplaced" not in text and "under" not in text
    assert out["no_orphan_files"].passed  # ego_view's files are ego_view's own


def test_misplaced_shard_found_by_camera_folder_not_by_other_cameras_file_of_same_name(tmp_path: Path) -> None:
    # v3.0 shards of every camera are all called file-000.mp4
    root = copy_sample("g1_multicam_v30", tmp_path / "ds")
    moved = f"video/{MULTICAM[0]}/chunk-000/file-000.mp4"
    (root / moved).parent.mkdir(parents=True)
    (root / multicam_shard(MULTICAM[0])).rename(root / moved)
    exist = _source_files(root)["files_exist"]
    assert [o.file for o in exist.offenders] == [multicam_shard(MULTICAM[0])]
    assert moved in exist.offenders[0].detail and multicam_shard(MULTICAM[1]) not in exist.offenders[0].detail


def test_shared_files_name_every_episode_and_camera(tmp_path: Path) -> None:
    make_fault("missing_data_shard_v30", tmp_path / "data")
    exist = _source_files(tmp_path / "data")["files_exist"]
    assert exist.offenders[0].file == "data/chunk-000/file-000.parquet"
    assert "episodes 0-5" in exist.offenders[0].detail

    make_fault("missing_shards_multicam", tmp_path / "mc")
    exist = _source_files(tmp_path / "mc")["files_exist"]
    assert [o.file for o in exist.offenders] == [multicam_shard(k) for k in MULTICAM]
    for key, off in zip(MULTICAM, exist.offenders):
        assert f"camera {key}, episodes 0, 1" in off.detail
    assert all(k in exist.message for k in MULTICAM)


def test_lfs_pointers_are_named_and_counted(tmp_path: Path) -> None:
    make_fault("lfs_pointer_data", tmp_path / "data")
    out = _doctor(tmp_path / "data")
    ne = out["files_non_empty"]
    assert not ne.passed and ne.n_offenders == 6 and ne.metadata["lfs_pointers"] == 6
    assert "6 of 12 referenced files are Git LFS pointers" in ne.message and "git lfs pull" in ne.message
    assert all("Git LFS pointer" in o.detail for o in ne.offenders)
    everything = " ".join(o.message + " ".join(str(x) for x in o.offenders) for o in out.values())
    assert "magic bytes" not in everything.lower()

    make_fault("lfs_pointer_video", tmp_path / "video")
    out = _doctor(tmp_path / "video")
    ne = out["files_non_empty"]
    assert ne.n_offenders == 3 and "3 of 4 referenced files are Git LFS pointers" in ne.message
    assert "camera observation.images.cam_high, episodes 2, 3" in ne.offenders[1].detail
    # the pointers are reported once, by the file rule, not again as unreadable containers
    assert out["video_frames_cover_episodes"].passed and out["segment_frame_count"].skipped


def test_lfs_pointer_data_refused_by_convert_with_the_cause(tmp_path: Path) -> None:
    from lerobot_lance import convert
    from pipelines.runner import ConversionFailed

    make_fault("lfs_pointer_data", tmp_path / "ds")
    with pytest.raises(ConversionFailed) as err:
        convert(str(tmp_path / "ds"), str(tmp_path / "out"), skip_videos=True)
    text = str(err.value)
    assert "Git LFS pointer" in text and "git lfs pull" in text and v2_data(0) in text and "magic" not in text.lower()


def test_skip_videos_keeps_declared_videos_as_the_datasets_own(tmp_path: Path) -> None:
    out = _source_files(SHARED / "g1_v21", videos=False)
    assert out["no_orphan_files"].passed and out["no_orphan_files"].metadata["files_listed"] >= 12
    assert out["files_exist"].metadata["video_files"] == 0
    make_fault("orphan_parquet", tmp_path / "ds")
    orphans = _source_files(tmp_path / "ds", videos=False)["no_orphan_files"]
    assert [o.file for o in orphans.offenders] == [v2_data(99)]


def test_outcomes_keep_every_offender_text_abbreviates() -> None:
    offs = [Offender(f"data/f{i}.parquet", i, "bad") for i in range(25)]
    o = CheckOutcome.from_offenders("files_exist", offs)
    assert len(o.offenders) == o.n_offenders == 25 and len(o.to_dict()["offenders"]) == 25
    assert "(+22 more)" in o.message and len(o.first_offenders) == MAX_OFFENDERS
    merged = merge_outcomes([o, CheckOutcome.from_offenders("files_exist", offs)])[0]
    assert len(merged.offenders) == merged.n_offenders == 50


@pytest.mark.parametrize(
    ("shape", "names", "hwc"),
    [
        ([480, 640, 3], ["height", "width", "channels"], (480, 640, 3)),
        ([3, 224, 224], None, (224, 224, 3)),
        ([3, 120, 160], None, (120, 160, 3)),
        ([120, 160, 1], None, (120, 160, 1)),
        ([4, 120, 160], None, (120, 160, 4)),
        ([3, 120, 160], ["channels", "height", "width"], (120, 160, 3)),
        ([160, 3, 120], ["width", "channel", "height"], (120, 160, 3)),
        ([3, 480, 3], None, (3, 480, 3)),        # both ends could be channels: LeRobot's channel-last wins
        ([480, 640], None, (480, 640, None)),
    ],
)
def test_camera_dims(shape: list[int], names: Any, hwc: tuple) -> None:
    assert tuple(camera_dims(shape, names)) == hwc


def test_scan_channel_first_image_without_names(tmp_path: Path) -> None:
    from lerobot_lance.api import scan

    root = copy_sample("g1_image_v30", tmp_path / "ds")

    def edit(info: dict) -> None:
        info["features"][CAM]["shape"] = [3, 120, 160]
        info["features"][CAM].pop("names", None)

    edit_info(root, edit)
    cam = scan(str(root))["cameras"][CAM]
    assert (cam["width"], cam["height"], cam["channels"]) == (160, 120, 3)


def test_scan_describes_and_lists_problems_of_an_unknown_template_field(tmp_path: Path) -> None:
    from lerobot_lance.api import scan

    root = copy_sample("g1_v21", tmp_path / "ds")
    bad = "data/chunk-{chunk_index:03d}/episode_{episode_index:06d}.parquet"
    edit_info(root, lambda info: info.__setitem__("data_path", bad))
    report = scan(str(root))
    assert (report["episodes"], report["frames"], report["fps"]) == (6, 2316, 30)
    assert set(report["cameras"]) == {CAM} and (report["cameras"][CAM]["width"], report["cameras"][CAM]["height"]) == (640, 480)
    assert report["features"]["observation.state"] == {"dtype": "float32", "shape": [26]}
    assert report["tasks"] == {"0": "Pick up the yellow bottle on the table."}
    assert report["problems"] and all(p["check"] for p in report["problems"])
    text = " ".join(p["message"] for p in report["problems"])
    assert "chunk_index" in text and "data_path" in text
    assert scan(str(SHARED / "g1_v21"))["problems"] == []


def test_convert_names_every_camera_of_a_missing_shard(tmp_path: Path) -> None:
    from lerobot_lance import convert
    from pipelines.runner import ConversionFailed

    make_fault("missing_shards_multicam", tmp_path / "ds")
    with pytest.raises(ConversionFailed) as err:
        convert(str(tmp_path / "ds"), str(tmp_path / "out"))
    staged = next(r for r in err.value.records if r.check == "episodes_staged")
    assert sorted(o["episode_index"] for o in staged.offenders) == [0, 1]
    for o in staged.offenders:  # each episode's reason names both cameras and both files
        for key in MULTICAM:
            assert f"camera {key}" in o["detail"] and multicam_shard(key) in o["detail"]
    assert "--skip-videos" in (err.value.hint or "")


def test_convert_credits_a_missing_data_shard_to_every_episode(tmp_path: Path) -> None:
    from lerobot_lance import convert
    from pipelines.runner import ConversionFailed

    make_fault("missing_data_shard_v30", tmp_path / "ds")
    with pytest.raises(ConversionFailed) as err:
        convert(str(tmp_path / "ds"), str(tmp_path / "out"))
    staged = next(r for r in err.value.records if r.check == "episodes_staged")
    assert sorted(o["episode_index"] for o in staged.offenders) == list(range(6))
    for o in staged.offenders:
        assert "data/chunk-000/file-000.parquet" in o["detail"] and "episodes 0-5" in o["detail"]
        assert "(episode 0)" not in o["detail"]


def test_an_output_inside_the_dataset_folder_is_not_orphaned(tmp_path: Path) -> None:
    root = copy_sample("g1_v30", tmp_path / "ds")
    for rel in ("out/_staging/segments/ep0.mp4", "out2/meta/conversion.json", "out2/frames.lance/data/x.parquet"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    os.link(root / "data/chunk-000/file-000.parquet", root / "out2/copy.parquet")  # inside an output root
    assert _source_files(root)["no_orphan_files"].passed
