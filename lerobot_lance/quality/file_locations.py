"""Where a dataset's files are, against where its path templates say they are.

Used by the file rules of :mod:`lerobot_lance.quality.source_rules`
(``files_exist``, ``no_orphan_files``): the dataset's file listing (every file
under the root, not only under ``data/`` and ``videos/``, since real datasets
keep videos in folders their ``video_path`` does not name), and the search for
a missing file's misplaced copy.

A misplaced copy is a file that no episode references, of the same kind
(``.parquet`` / ``.mp4``), that has the missing file's name or sits in a
folder named after the missing file's camera. A file in a folder named after
*another* declared camera is never offered: it belongs to that camera, even
when the two keys differ by one character (``egoview`` / ``ego_view``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

#: Suffixes of the files the path templates locate (LeRobot: ``data_path``
#: parquet, ``video_path`` mp4).
DATASET_FILE_SUFFIXES = (".parquet", ".mp4")
#: The metadata folder: its parquet files (v3.0 ``meta/episodes/``, ``meta/tasks.parquet``) are not data files.
META_DIR = "meta"


def is_dataset_file(rel: str) -> bool:
    """True for a ``.parquet`` / ``.mp4`` path outside ``meta/`` and outside
    hidden folders (``.git``, ``.cache``, ...): a file some template should name."""
    parts = PurePosixPath(rel).parts
    return (
        bool(parts)
        and rel.endswith(DATASET_FILE_SUFFIXES)
        and parts[0] != META_DIR
        and not any(p.startswith(".") for p in parts)
    )


def _is_output_dir(d: Path) -> bool:
    """A folder this converter writes: a Lance table (``*.lance``), the staging
    area (``_staging``) or an output root (``meta/conversion.json``), e.g. an
    ``--output`` inside the dataset's own folder."""
    return d.name.endswith(".lance") or d.name == "_staging" or (d / "meta" / "conversion.json").is_file()


def dataset_listing(root: Path) -> set[str]:
    """Every regular file under ``root`` (relative, POSIX separators), hidden
    folders (``.git``, ``.cache``, ``.huggingface``) and this converter's own
    output folders (:func:`_is_output_dir`) left out."""
    root = Path(root)
    out: set[str] = set()
    if not root.is_dir():
        return out
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = list(d.iterdir())
        except OSError:
            continue
        for p in entries:
            if p.name.startswith("."):
                continue
            if p.is_dir() and not p.is_symlink():
                if not _is_output_dir(p):
                    stack.append(p)
            elif p.is_file():
                out.add(p.relative_to(root).as_posix())
    return out


def episode_list(episodes: Iterable[int]) -> str:
    """``[2, 3, 4, 7]`` -> ``"episodes 2-4, 7"``; one episode -> ``"episode 7"``.
    Every episode is named (runs are written as ranges, so the text stays short)."""
    eps = sorted(set(episodes))
    if len(eps) == 1:
        return f"episode {eps[0]}"
    runs: list[list[int]] = []
    for e in eps:
        if runs and e == runs[-1][1] + 1:
            runs[-1][1] = e
        else:
            runs.append([e, e])
    text = ", ".join(f"{a}" if a == b else f"{a}, {b}" if b == a + 1 else f"{a}-{b}" for a, b in runs)
    return f"episodes {text}"


class SimilarFiles:
    """Finds where a missing file's misplaced copy may be.

    Args:
        present: every file of the dataset, relative to its root.
        referenced: every path the templates give for any episode (data and
            videos); such a file is some episode's own file, never a copy.
        camera_keys: the declared camera (video) keys.
    """

    def __init__(self, present: Iterable[str], referenced: Iterable[str], camera_keys: Sequence[str]) -> None:
        ref = set(referenced)
        self.camera_keys = list(camera_keys)
        self._by_name: dict[str, list[str]] = defaultdict(list)
        self._by_camera: dict[str, list[str]] = defaultdict(list)
        keys = set(self.camera_keys)
        for p in sorted(present):
            if p in ref or not is_dataset_file(p):
                continue
            pp = PurePosixPath(p)
            self._by_name[pp.name].append(p)
            for part in pp.parts[:-1]:
                if part in keys:
                    self._by_camera[part].append(p)

    def _other_camera(self, path: str, camera_key: str | None) -> bool:
        parts = PurePosixPath(path).parts[:-1]
        return any(part in self.camera_keys and part != camera_key for part in parts) and (camera_key not in parts)

    def find(self, rel: str, camera_key: str | None = None) -> list[str]:
        """Candidate copies of the missing ``rel`` (of camera ``camera_key``, or
        a data file when ``None``), best first: same name in a folder named
        after the camera, then same name elsewhere, then any file of the same
        suffix in a folder named after the camera. Files in another declared
        camera's folder are left out."""
        name = PurePosixPath(rel).name
        suffix = PurePosixPath(rel).suffix
        same_name = [p for p in self._by_name.get(name, []) if p != rel and not self._other_camera(p, camera_key)]
        if camera_key is not None:
            in_cam = [p for p in same_name if camera_key in PurePosixPath(p).parts[:-1]]
            rest = [p for p in same_name if p not in set(in_cam)]
            folder = [p for p in self._by_camera.get(camera_key, []) if p.endswith(suffix) and p not in set(same_name)]
            return in_cam + rest + folder
        return same_name


def common_folder(paths: Sequence[str]) -> str | None:
    """The folder holding most of ``paths`` (``"video/cam/"``), or ``None`` when empty."""
    if not paths:
        return None
    folder, _ = Counter(str(PurePosixPath(p).parent) + "/" for p in paths).most_common(1)[0]
    return folder
