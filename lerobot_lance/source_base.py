"""The interface every dataset source implements, and the path guard they share.

:class:`DatasetSource` lives apart from :mod:`lerobot_lance.source` (which
re-exports it) so that source kinds in their own modules
(:mod:`lerobot_lance.object_store_source`) subclass it without importing the
module that dispatches to them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
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
