"""``files_inside_root``: no source file may resolve outside the dataset root.

A parquet, mp4 or ``meta/`` file that is a symlink to a file elsewhere would
be read (and, for ``meta/``, copied into the output) as if it belonged to the
dataset. The rule resolves every path (``os.path.realpath``: every symlink on
the way, directories included) and refuses those whose real path is not under
the real dataset root. It only looks at the links (``lstat``/``readlink``),
never at the files' content, so it runs before anything is read from them.

The Hugging Face cache keeps each snapshot file as a symlink into the
repository's blob store (huggingface_hub ``file_download``:
``<cache>/datasets--owner--name/snapshots/<sha>/<path>`` ->
``../../blobs/<hash>``). For a root laid out that way the allowed root is the
cached repository folder ``<cache>/datasets--owner--name``, so those links
stay allowed while a link out of the cache is still refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from lerobot_lance.quality.result import CheckOutcome, Offender

NAME = "files_inside_root"
DESCRIPTION = (
    "every source file (meta/, data parquet, mp4) resolves inside the dataset root "
    "(symlinks into the Hugging Face cache's blobs/ of the same repository allowed)"
)
#: Top-level folders of a LeRobot dataset whose files a conversion reads.
DATASET_FOLDERS = ("meta", "data", "videos")


def allowed_root(root: str | Path) -> Path:
    """The real directory every file of the dataset at ``root`` must resolve into:
    ``root`` itself, or for a huggingface_hub snapshot directory
    (``.../datasets--owner--name/snapshots/<sha>``) the cached repository folder."""
    real = Path(os.path.realpath(root))
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith("datasets--"):
        return real.parent.parent
    return real


def escaping_offender(root: Path, rel: str, allowed: Path, episode_index: int | None = None) -> Offender | None:
    """An :class:`Offender` when ``root / rel`` resolves outside ``allowed`` (else ``None``).

    ``found`` is where the path points: the symlink's own target as written
    and, when that differs, the resolved real path.
    """
    p = root / rel
    real = Path(os.path.realpath(p))
    if real == allowed or allowed in real.parents:
        return None
    link = next((q for q in [p, *p.parents] if q.is_symlink() and (q == root or root in q.parents)), None)
    target = os.readlink(link) if link is not None else str(real)
    via = "" if link is None or link == p else f" (through the symlinked folder {link.relative_to(root)})"
    found = target if target == str(real) else f"{target} -> {real}"
    return Offender(rel, episode_index, f"resolves outside the dataset root{via}", expected=f"a file under {allowed}", found=found)


def _walk(root: Path, folders: Iterable[str]) -> list[str]:
    """Relative paths of every entry under ``root/<folder>`` (symlinked folders listed, not entered)."""
    out = []
    for top in folders:
        d = root / top
        if d.is_symlink():
            out.append(top)
            continue
        for dirpath, dirnames, filenames in os.walk(d) if d.is_dir() else []:
            for n in [*filenames, *(x for x in dirnames if os.path.islink(os.path.join(dirpath, x)))]:
                out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def check_tree_inside_root(root: str | Path, folders: Sequence[str] = DATASET_FOLDERS, episode_of: dict[str, int] | None = None) -> CheckOutcome:
    """``files_inside_root`` over every file present under ``root/meta``, ``root/data``, ``root/videos``.

    Args:
        root: the local dataset root (a directory, or a Hub snapshot directory).
        folders: the top-level folders to walk.
        episode_of: relative path -> the first episode using it, to locate offenders.

    Returns:
        One :class:`CheckOutcome` named :data:`NAME`; each offender names the
        file (relative to ``root``), the episode when known, and where it points.
        Cost: one ``lstat`` per entry (a few ms per thousand files).
    """
    root = Path(root)
    allowed = allowed_root(root)
    entries = _walk(root, folders)
    offenders = [o for rel in entries if (o := escaping_offender(root, rel, allowed, (episode_of or {}).get(rel))) is not None]
    return CheckOutcome.from_offenders(NAME, offenders, description=DESCRIPTION, metadata={"entries_checked": len(entries)})


def check_files_inside_root(root: str | Path, files: dict[str, int | None]) -> tuple[CheckOutcome, set[str]]:
    """``files_inside_root`` over the given files (those that exist).

    Args:
        root: the local dataset root.
        files: relative path -> the first episode using it (or ``None``).

    Returns:
        ``(outcome, escaping)``: the outcome, and the relative paths that
        resolve outside (callers must not read them).
    """
    root = Path(root)
    allowed = allowed_root(root)
    offenders = [
        o for rel, ep in files.items()
        if ((root / rel).exists() or (root / rel).is_symlink()) and (o := escaping_offender(root, rel, allowed, ep)) is not None
    ]
    escaping = {o.file for o in offenders if o.file is not None}  # before the outcome keeps only the first offenders
    outcome = CheckOutcome.from_offenders(NAME, offenders, description=DESCRIPTION, metadata={"files_checked": len(files)})
    return outcome, escaping
