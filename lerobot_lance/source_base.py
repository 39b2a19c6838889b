"""The interface every dataset source implements, and the path guard they share.

:class:`DatasetSource` lives apart from :mod:`lerobot_lance.source` (which
re-exports it) so that source kinds in their own modules
(:mod:`lerobot_lance.object_store_source`) subclass it without importing the
module that dispatches to them. :func:`source_file_ids` (an identity per
source file, for change detection and for re-reading a checked data file) is
here too, below both :mod:`lerobot_lance.conversion` and
:mod:`lerobot_lance.source_frames`, which use it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path

from lerobot_lance.errors import SourceDataError


class DatasetSource(ABC):
    """A LeRobot dataset readable from a local directory (see module docstring)."""

    #: Human-readable description for logs and errors.
    description: str

    @abstractmethod
    def meta_root(self) -> Path:
        """Local directory whose ``meta/`` folder is present (downloads it if needed)."""

    @abstractmethod
    def fetch(self, relative_paths: Iterable[str], *, missing_ok: bool = False) -> Path:
        """Make these files local (download when needed); return the local root.

        Args:
            relative_paths: files relative to the dataset root.
            missing_ok: skip files the source does not hold instead of raising
                (the quality rules then report them, located).

        Raises:
            SourceDataError: a path escapes the dataset root.
            SourceNotFoundError: a file does not exist in the source and
                ``missing_ok`` is False, or the Hub cannot be reached.
        """

    def list_files(self) -> list[str] | None:
        """Every file of the dataset (relative paths), or ``None`` when only the
        local directory itself can tell (local sources: walk :meth:`meta_root`)."""
        return None

    @abstractmethod
    def revision(self) -> str:
        """A string that changes whenever the source changes: the Hub commit sha,
        or for a local directory a fingerprint of ``meta/`` and the file list."""

    def local_path(self, relative_path: str) -> Path:
        """Local path of one file, fetched if needed, checked to stay under the root."""
        root = self.fetch([relative_path])
        return safe_join(root, relative_path)


def safe_join(root: Path, relative_path: str) -> Path:
    """``root / relative_path``, refusing paths that escape ``root``.

    Raises:
        SourceDataError: ``relative_path`` is absolute or climbs out with ``..``.
    """
    rel = Path(relative_path)
    if rel.is_absolute() or ".." in rel.parts:
        raise SourceDataError(str(relative_path), "path escapes the dataset root", expected=f"a path under {root}")
    return root / rel


def source_file_ids(src: DatasetSource, relative_paths: Sequence[str]) -> dict[str, str]:
    """An identity per source file that changes when the file's content does.

    Local directories: ``"<size>:<mtime_ns>"`` (a replaced or rewritten file
    changes it; a missing file maps to ``"missing"``). Hub repos: the file's
    LFS sha256 or git blob id at the pinned commit, from one
    ``HfApi().dataset_info(..., files_metadata=True)`` call; when the Hub is
    unreachable every file maps to the commit sha itself (so a new commit
    counts as a change of every file: conservative, never wrong).
    """
    if hasattr(src, "file_ids"):  # object-store sources: ETag and size from the pinned listing
        return src.file_ids(relative_paths)
    root = getattr(src, "root", None)
    if root is not None:
        out = {}
        for rel in relative_paths:
            try:
                st = (Path(root) / rel).stat()
                out[rel] = f"{st.st_size}:{st.st_mtime_ns}"
            except FileNotFoundError:
                out[rel] = "missing"
        return out
    rev = src.revision()
    ids: dict[str, str] = {}
    try:
        from huggingface_hub import HfApi

        info = HfApi(token=getattr(src, "token", None)).dataset_info(
            getattr(src, "repo_id"), revision=rev, files_metadata=True
        )
        for s in info.siblings or []:
            lfs = getattr(s, "lfs", None)
            sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
            ids[s.rfilename] = sha or s.blob_id or rev
    except Exception:  # noqa: BLE001 - offline / transient: fall back to the commit sha
        ids = {}
    return {rel: ids.get(rel, rev) for rel in relative_paths}
