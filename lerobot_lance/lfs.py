"""Git LFS pointer files: what a dataset repository holds when it was cloned
without git-lfs.

A Hugging Face dataset repository stores its parquet and mp4 files in Git LFS.
Cloned with plain ``git`` (no ``git-lfs`` installed, or ``GIT_LFS_SKIP_SMUDGE=1``),
each such file is a small text file in the pointer format of the Git LFS
specification (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md)::

    version https://git-lfs.github.com/spec/v1
    oid sha256:4d7a2146...
    size 1243421

about 130 bytes in all. ``git lfs pull`` (in the repository) replaces the
pointers with the files' content.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

#: First line of every Git LFS pointer file (the spec's ``version`` key).
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"

#: The spec caps pointer files at 1024 bytes; anything larger is content.
MAX_POINTER_BYTES = 1024

_SIZE = re.compile(rb"^size (\d+)$", re.MULTILINE)

#: What to run to fetch the content of pointer files.
FETCH_HINT = "run `git lfs pull` in the dataset's repository to fetch their content"


def is_lfs_pointer(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a regular file of at most :data:`MAX_POINTER_BYTES`
    bytes that starts with :data:`LFS_POINTER_PREFIX`. Reads at most 1 KiB; a
    missing or unreadable file is not a pointer."""
    p = Path(path)
    try:
        if not p.is_file() or p.stat().st_size > MAX_POINTER_BYTES:
            return False
        with p.open("rb") as f:
            return f.read(len(LFS_POINTER_PREFIX)) == LFS_POINTER_PREFIX
    except OSError:
        return False


def pointer_content_size(path: str | os.PathLike[str]) -> int | None:
    """The ``size`` (bytes of the real content) a pointer file declares, or ``None``."""
    try:
        m = _SIZE.search(Path(path).read_bytes()[:MAX_POINTER_BYTES])
    except OSError:
        return None
    return int(m.group(1)) if m else None


def pointer_detail(path: str | os.PathLike[str]) -> str:
    """A few words for an offender: ``"a Git LFS pointer (131 bytes; content of
    1243421 bytes not fetched)"``."""
    p = Path(path)
    size = pointer_content_size(p)
    content = f"; content of {size} bytes not fetched" if size is not None else "; content not fetched"
    return f"a Git LFS pointer ({p.stat().st_size} bytes{content}), not the file itself"
