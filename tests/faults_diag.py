"""Fault kinds of issue 8's diagnosis items: files where the templates do not
point, files shared by several episodes, Git LFS pointers, near-miss camera keys.

Each registers with :func:`tests.faults._fault`, so ``tests/test_faults.py``
checks that ``doctor`` refuses it under the named check, naming the file and
the episode; ``tests/test_diag_files.py`` checks the located messages.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.faults import CAM, _fault, edit_info, read_jsonl, v2_data, v2_video, v3_shard, write_bytes, write_jsonl

#: Where :func:`_videos_other_folder` moves the mp4s (a real dataset's layout: ``video/<key>/...``).
OTHER_FOLDER = f"video/{CAM}"
#: The two camera keys of :func:`_camera_key_near_miss`: one with every file, one without any.
NEAR_MISS_WITH_FILES = "ego_view"
NEAR_MISS_WITHOUT = "egoview"
MULTICAM = ("observation.images.cam_high", "observation.images.cam_high_crop")


def multicam_shard(key: str) -> str:
    return f"videos/{key}/chunk-000/file-000.mp4"


def lfs_pointer_bytes(size: int) -> bytes:
    """A Git LFS pointer file as ``git clone`` without git-lfs leaves it (spec v1)."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{'0' * 64}\nsize {size}\n".encode()


def _videos_other_folder(root: Path) -> None:
    dst = root / OTHER_FOLDER
    dst.mkdir(parents=True)
    for f in sorted((root / f"videos/chunk-000/{CAM}").iterdir()):
        f.rename(dst / f.name)


@_fault(
    "videos_other_folder", "g1_v21", "files_exist", "source_files", 0, v2_video(0),
    f"every mp4 moved from videos/chunk-000/{CAM}/ to {OTHER_FOLDER}/ (a folder video_path does not name)",
)
def _videos_other_folder_missing(root: Path) -> None:
    _videos_other_folder(root)


@_fault(
    "videos_other_folder_orphans", "g1_v21", "no_orphan_files", "source_files", None, f"{OTHER_FOLDER}/episode_000000.mp4",
    f"every mp4 moved to {OTHER_FOLDER}/: the moved files are orphans, outside data/ and videos/",
)
def _videos_other_folder_orphans(root: Path) -> None:
    _videos_other_folder(root)


@_fault(
    "missing_data_shard_v30", "g1_v30", "files_exist", "source_files", 0, "data/chunk-000/file-000.parquet",
    "v3.0 data shard file-000.parquet (every episode's rows, episodes 0-5) deleted",
)
def _missing_data_shard_v30(root: Path) -> None:
    (root / "data/chunk-000/file-000.parquet").unlink()


@_fault(
    "missing_shards_multicam", "g1_multicam_v30", "files_exist", "source_files", 0, multicam_shard(MULTICAM[0]),
    "both cameras' v3.0 shards (each holding episodes 0 and 1) deleted",
)
def _missing_shards_multicam(root: Path) -> None:
    for key in MULTICAM:
        (root / multicam_shard(key)).unlink()


@_fault(
    "camera_key_near_miss", "g1_v21", "files_exist", "source_files", 0, f"videos/chunk-000/{NEAR_MISS_WITHOUT}/episode_000000.mp4",
    f"the camera renamed {NEAR_MISS_WITH_FILES!r} (its folder renamed too) and a second camera {NEAR_MISS_WITHOUT!r} "
    "declared with the same spec but no files",
)
def _camera_key_near_miss(root: Path) -> None:
    def edit(info: dict) -> None:
        spec = info["features"].pop(CAM)
        info["features"][NEAR_MISS_WITH_FILES] = spec
        info["features"][NEAR_MISS_WITHOUT] = json.loads(json.dumps(spec))
        info["total_videos"] = 2 * info.get("total_videos", 6)

    edit_info(root, edit)
    (root / f"videos/chunk-000/{CAM}").rename(root / f"videos/chunk-000/{NEAR_MISS_WITH_FILES}")
    rows = read_jsonl(root / "meta/episodes_stats.jsonl")
    for r in rows:
        st = r["stats"].pop(CAM)
        r["stats"][NEAR_MISS_WITH_FILES] = st
        r["stats"][NEAR_MISS_WITHOUT] = st
    write_jsonl(root / "meta/episodes_stats.jsonl", rows)


@_fault(
    "lfs_pointer_data", "g1_v21", "files_non_empty", "source_files", 0, v2_data(0),
    "every data parquet replaced by its Git LFS pointer (a clone without git-lfs)",
)
def _lfs_pointer_data(root: Path) -> None:
    for ep in range(6):
        p = root / v2_data(ep)
        write_bytes(p, lfs_pointer_bytes(p.stat().st_size))


@_fault(
    "lfs_pointer_video", "g1_v30", "files_non_empty", "source_files", 0, v3_shard(0),
    "the three v3.0 mp4 shards replaced by their Git LFS pointers",
)
def _lfs_pointer_video(root: Path) -> None:
    for i in range(3):
        p = root / v3_shard(i)
        write_bytes(p, lfs_pointer_bytes(p.stat().st_size))
