"""Fault kinds of the "guard" area: source files that are symlinks leading out of the dataset root.

Each variant moves one real file of the copy to a folder beside it
(``<root>_outside/``, outside the dataset root) and leaves a symlink in its
place, so the dataset still reads exactly as before if the link is followed:
only ``files_inside_root`` can tell.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.faults import BAD_EP, V2_TASKS, _fault, v2_data, v2_video


def outside_dir(root: Path) -> Path:
    """The folder beside a variant's root that holds the files its symlinks point to."""
    return root.with_name(root.name + "_outside")


def link_outside(root: Path, rel: str) -> Path:
    """Copy ``root/rel`` out of the root, replace it by an absolute symlink to the copy; return the copy."""
    target = outside_dir(root) / Path(rel).name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / rel, target)
    (root / rel).unlink()  # a hard link to the shared sample: unlink, never write through it
    os.symlink(target, root / rel)
    return target


@_fault(
    "parquet_symlink_outside", "g1_v21", "files_inside_root", "source_meta", BAD_EP, v2_data(BAD_EP),
    "episode 2's parquet is a symlink to a copy outside the dataset root",
)
def _parquet_symlink_outside(root: Path) -> None:
    link_outside(root, v2_data(BAD_EP))


@_fault(
    "mp4_symlink_outside", "g1_v21", "files_inside_root", "source_meta", BAD_EP, v2_video(BAD_EP),
    "episode 2's mp4 is a symlink to a copy outside the dataset root",
)
def _mp4_symlink_outside(root: Path) -> None:
    link_outside(root, v2_video(BAD_EP))


@_fault(
    "meta_symlink_outside", "g1_v21", "files_inside_root", "source_meta", None, V2_TASKS,
    "meta/tasks.jsonl is a symlink to a copy outside the dataset root",
)
def _meta_symlink_outside(root: Path) -> None:
    link_outside(root, V2_TASKS)
