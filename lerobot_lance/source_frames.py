"""An episode's frames rows, read from the source every time they are needed.

Staging holds no copy of the source's rows: ``episode_frames``
(:func:`lerobot_lance.conversion.stage_episode_frames`) checks and normalizes
an episode's rows and records, with the episode's status, the identity of the
data file it read them from (:func:`data_file_ids`). Every later reader (the
statistics, the frames and episodes table writers, the content checks) calls
:func:`read_frames`, which reads the source file again, refuses it when its
identity is no longer the recorded one (the rows checked are not the rows that
would be published), and normalizes the rows the same way
(:func:`lerobot_lance.frames.normalize_frames`), joining the staged JPEG
columns of ``frames_format="jpeg"``
(:func:`lerobot_lance.encodings.jpeg_frames.attach_columns`).

The identity of a data file is the one the change detection of
:func:`lerobot_lance.source_base.source_file_ids` uses: for a local directory
``"<size>:<mtime_ns>"`` (a rewritten or replaced file changes it; on a mount
several machines share it is the same on each), for an ``s3://`` source
``"<ETag>:<size>"`` from the pinned listing. A Hub file at a pinned commit
cannot change; its identity is the name of the huggingface_hub cache blob the
snapshot links to (the LFS sha256 or git blob id of its content), so a new
commit that leaves the file alone keeps it.

A v3.0 data file holds many episodes: decoded files are kept in a small
thread-safe cache (:data:`CACHED_FILES` files, keyed by local path and
identity), so a stage reading episodes in order, from a thread pool too,
decodes each file once, and an episode's rows are a zero-copy slice of it.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lerobot_lance.errors import LeRobotLanceError, SourceDataError
from lerobot_lance.source_base import DatasetSource

#: Decoded data files kept in memory (a v3.0 file of 300 episodes of ``g1``
#: decodes to ~60 MB); two cover a thread pool crossing a file boundary.
CACHED_FILES = 2

#: Key of the frames record that holds the identities of the files read.
SOURCE_FILES = "source_files"



class _DataFile:
    """A decoded data file and where each episode's rows are in it."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self._runs: dict[int, tuple[int, int] | None] | None = None

    def rows(self, episode_index: int) -> pa.Table:
        """The rows of one episode, in file order: a zero-copy slice when they
        are contiguous (v3.0 files are written episode after episode), else
        filtered."""
        if self._runs is None:  # computed once; two threads computing it get the same
            ep = np.asarray(self.table["episode_index"].to_numpy())
            runs: dict[int, tuple[int, int] | None] = {}
            if len(ep):
                cut = np.flatnonzero(ep[1:] != ep[:-1]) + 1
                starts, ends = np.r_[0, cut], np.r_[cut, len(ep)]
                for v, lo, hi in zip(ep[starts].tolist(), starts.tolist(), ends.tolist()):
                    runs[v] = None if v in runs else (lo, hi - lo)
            self._runs = runs
        run = self._runs.get(episode_index)
        if run is not None:
            return self.table.slice(*run)
        return self.table.filter(pc.equal(self.table["episode_index"], episode_index))


_lock = threading.Lock()
_files: OrderedDict[tuple[str, str], _DataFile] = OrderedDict()
_loading: dict[tuple[str, str], threading.Lock] = {}


def data_file_ids(src: DatasetSource, root: Path, relative_paths: Sequence[str]) -> dict[str, str]:
    """Per data file (relative path) an identity that changes when its content
    does (see the module docstring). ``root``: the local root ``src.fetch``
    returned for these files (read for Hub sources only)."""
    if hasattr(src, "file_ids") or getattr(src, "root", None) is not None:
        from lerobot_lance.source_base import source_file_ids

        return source_file_ids(src, relative_paths)
    out = {}
    for rel in relative_paths:
        path = root / rel
        try:
            out[rel] = f"blob:{Path(os.readlink(path)).name}" if path.is_symlink() else _stat_id(path)
        except OSError:
            out[rel] = "missing"
    return out


def _stat_id(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def read_data_file(root: Path, rel: str, episodes: Sequence[int], identity: str) -> pa.Table:
    """The decoded data file ``root / rel`` (every row, source types), from the
    cache when this identity of it was decoded already. ``episodes``: those
    it holds, named by an error.

    Raises:
        SourceDataError: the file is missing, empty, unreadable or has no
            ``episode_index`` column (:func:`lerobot_lance.frames._read_data_file`).
    """
    return _data_file(root, rel, episodes, identity).table


def _data_file(root: Path, rel: str, episodes: Sequence[int], identity: str) -> _DataFile:
    from lerobot_lance.frames import _read_data_file

    key = (str(root / rel), identity)
    with _lock:
        hit = _files.get(key)
        if hit is not None:
            _files.move_to_end(key)
            return hit
        loading = _loading.setdefault(key, threading.Lock())
    with loading:  # two threads asking for one file: one decodes it
        with _lock:
            hit = _files.get(key)
        if hit is not None:
            return hit
        try:
            decoded = _DataFile(_read_data_file(root, rel, episodes))
        finally:
            with _lock:
                _loading.pop(key, None)
        with _lock:
            _files[key] = decoded
            while len(_files) > CACHED_FILES:
                _files.popitem(last=False)
    return decoded


def clear_cache() -> None:
    """Forget every decoded data file."""
    with _lock:
        _files.clear()


def read_frames(conv: Any, episode_index: int) -> pa.Table:
    """The normalized frames rows of one checked episode, read from the source.

    ``conv``: a :class:`lerobot_lance.conversion.Conversion`.

    Returns:
        The rows ``episode_frames`` checked, in source row order, with the
        schema :func:`lerobot_lance.frames.frames_schema` gives (plus, for
        ``frames_format="jpeg"``, each camera's JPEG column, staged in
        ``frames/episode_NNNNNN.jpeg.arrow``).

    Raises:
        LeRobotLanceError: the episode has no ``ok`` frames record of the
            pinned revision (:meth:`lerobot_lance.staging.Staging.current`;
            one without file identities, staged by a version that copied
            the rows, does not count).
        SourceDataError: a data file the episode was read from changed since
            ``episode_frames`` checked it (naming the file, the episode, the
            recorded and the current identity), or cannot be read.
    """
    from lerobot_lance.frames import frames_schema, normalize_frames
    from lerobot_lance.staging import FRAMES

    rec = conv.staging.current(FRAMES, episode_index, conv.revision)  # None too for a record without SOURCE_FILES
    if rec is None:
        raise LeRobotLanceError(
            f"{conv.staging.root}: episode {episode_index}: frames not checked for this source revision; "
            "rerun episode_frames for this episode"
        )
    meta = conv.meta
    e = meta.episode(episode_index)
    recorded: dict[str, str] = rec[SOURCE_FILES]
    root = conv.source.fetch(list(recorded))
    now = data_file_ids(conv.source, root, list(recorded))
    for rel, want in recorded.items():
        if now.get(rel) != want:
            raise SourceDataError(
                rel, "changed since episode_frames checked it; rerun episode_frames", episode_index=episode_index,
                expected=f"the file as checked (identity {want})", found=f"identity {now.get(rel)}",
            )
    decoded = _data_file(root, e.data_path, [episode_index], recorded[e.data_path])
    rows = decoded.table if meta.one_file_per_episode else decoded.rows(episode_index)  # v2.x: the whole file, as staged
    frames = normalize_frames(rows, meta, e, frames_schema(meta))
    if rec.get("jpeg"):
        from lerobot_lance.encodings.jpeg_frames import attach_columns

        frames = attach_columns(frames, conv.staging.read_frames_columns(episode_index))
    return frames

