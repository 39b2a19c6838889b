"""The staging area: per-episode output written by partitions, before any table commit.

Layout under ``<staging>`` (outside the output; by default
:func:`default_staging_dir`)::

    source.json                     the resolved source of the current conversion
    frames/episode_000012.json      status record: rows, revision, the identity of
                                    the source data file checked, or the error
    frames/episode_000012.jpeg.arrow  frames_format="jpeg" only: the JPEG columns
    videos/episode_000012.json      per camera: segment path, window, method, frames
    videos/<camera>/episode_000012.mp4.header  a v3.0 segment stream-copied from its shard:
                                    its mp4 header only (the video data are the
                                    shard's bytes, which the record locates)
    videos/<camera>/episode_000012.mp4   a v3.0 segment re-encoded (or whose data
                                    are not a run of the shard's bytes)
    stats/episode_000012.json       per-episode statistics
    pending/<table>.json            fragments written for a table, not yet committed

Staging holds only what the conversion derives (records, re-encoded
segments, segment headers, JPEG columns), never a copy of the source's rows
or video bytes: every reader of an episode's frames reads them from the
source again, after checking that the data file is still the one
``episode_frames`` checked (:func:`lerobot_lance.source_frames.read_frames`),
and the ``episodes`` table reads a stream-copied segment's video data from
its shard, after the same check against the identity ``episode_videos``
recorded (:func:`lerobot_lance.episode_stages.segment_buffer`).

Every file is written to a temporary name and renamed into place
(``os.replace``), so a killed partition leaves either the previous file or the
new one, never half of one; rerunning a partition replaces its files, so rows
are never duplicated. Records carry the source revision they were made from;
records of another revision count as missing.

A staging area may be shared by several machines: with ``shared`` (a
:class:`lerobot_lance.shared_staging.SharedStaging`, the default for
object-store outputs) the folder is a local working copy, every record
written is uploaded after the data files it stands for, and every record
read is fetched from the shared URI first (once per stage), its data files
when they are read. Without it the folder is the staging area itself (local,
or a mount every machine shares at the same path, e.g. NFS/EFS).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

#: Environment variable naming the folder that holds every output's staging area.
STAGING_ENV = "LEROBOT_LANCE_STAGING"

FRAMES = "frames"
VIDEOS = "videos"
STATS = "stats"
PENDING = "pending"
#: Suffix of an episode's staged derived frames columns (the JPEG columns).
FRAMES_COLUMNS_SUFFIX = ".jpeg.arrow"


def episode_stem(episode_index: int) -> str:
    """``12`` -> ``"episode_000012"`` (LeRobot's v2.x file naming)."""
    return f"episode_{episode_index:06d}"


def partition_key(episode_index: int) -> str:
    """Dagster partition key of an episode: its index zero-padded to 6 digits."""
    return f"{episode_index:06d}"


def default_staging_dir(output: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """The staging area of an output when none is configured.

    ``$LEROBOT_LANCE_STAGING/<name>-<hash>``, or without that variable
    ``${XDG_CACHE_HOME:-~/.cache}/lerobot-lance/staging/<name>-<hash>``, where
    ``<name>`` is the output's last path part and ``<hash>`` the first 12 hex
    digits of the sha256 of its absolute URI (``file://`` stripped), so two
    outputs never share one and the same output always finds its own again
    (staged episodes survive for partition reruns and the change sensor).
    ``root`` replaces the folder holding the staging areas (a resource's
    ``staging_root``).
    """
    base = root or os.environ.get(STAGING_ENV)
    if base:
        root = Path(base).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "lerobot-lance" / "staging"
    return root / staging_name(output)


def staging_name(output: str | os.PathLike[str]) -> str:
    """``<name>-<hash>`` of an output's staging area (see :func:`default_staging_dir`)."""
    import hashlib

    text = str(output)
    if "://" not in text or text.startswith("file://"):
        text = str(Path(text.removeprefix("file://")).expanduser().absolute())
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(text.rstrip("/")).name) or "output"
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def write_json_atomic(path: Path, obj: Any, *, indent: int | None = 1) -> None:
    """Write JSON to ``path`` atomically (:func:`write_bytes_atomic`).

    ``indent=None`` writes one line with the C encoder (``json.dump`` and any
    ``indent`` take the pure-Python one, ~10x slower): per-episode records."""
    if indent is None:
        data = json.dumps(obj, default=_json_default).encode("utf-8")
    else:
        data = json.dumps(obj, indent=indent, default=_json_default).encode("utf-8")
    write_bytes_atomic(path, data)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file beside it and an atomic
    rename (readers see the old file or the new one, never a part), creating
    the folder only when it is missing. The file gets the usual mode
    (``0o666`` less the umask)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, flags, 0o666)
    try:
        with open(fd, "wb", closefd=True) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path: Path) -> Any | None:
    """Parsed JSON of ``path``, or ``None`` if the file does not exist."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


#: Parsed per-episode records by path, with the (inode, mtime, size) they were
#: parsed at: the table and publish stages read each record several times
#: (coverage, rows, stats), and every write replaces the file (a new inode).
#: Least recently used first; at most :data:`_RECORDS_MAX` records, so memory
#: does not grow with the number of episodes (a stats record parses to about
#: 60 KB: 1,800 records of 600 episodes held 42 MB).
_RECORDS: OrderedDict[str, tuple[tuple[int, int, int], Any]] = OrderedDict()
_RECORDS_MAX = 256
#: ``(status, revision, has source_files)`` of every record parsed, by path
#: and (inode, mtime, size): what :meth:`Staging.is_current` (coverage, run after run over every
#: episode) needs, a few hundred bytes per record, kept for every record so
#: that the coverage never parses a record twice.
_STATES: dict[str, tuple[tuple[int, int, int], tuple[Any, Any, bool]]] = {}
_STATES_MAX = 200_000


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_json_cached(path: Path) -> Any | None:
    """:func:`read_json` of a record file, parsed once per version of the file
    while it is among the :data:`_RECORDS_MAX` most recently read. The result
    is shared between callers: do not mutate it."""
    stamp = _stamp(path)
    if stamp is None:
        return None
    key = str(path)
    hit = _RECORDS.get(key)
    if hit is not None and hit[0] == stamp:
        _RECORDS.move_to_end(key)
        return hit[1]
    obj = read_json(path)
    _RECORDS[key] = (stamp, obj)
    _RECORDS.move_to_end(key)
    while len(_RECORDS) > _RECORDS_MAX:
        _RECORDS.popitem(last=False)
    if len(_STATES) >= _STATES_MAX:
        _STATES.clear()
    _STATES[key] = (stamp, (obj.get("status"), obj.get("revision"), "source_files" in obj) if isinstance(obj, dict) else (None, None, False))
    return obj


def record_state(path: Path) -> tuple[Any, Any, bool] | None:
    """``(status, revision, whether it names source_files)`` of a record file
    (``None``: no such file), from the file parsed once per version
    (:func:`read_json_cached`)."""
    stamp = _stamp(path)
    if stamp is None:
        return None
    hit = _STATES.get(str(path))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    if read_json_cached(path) is None:
        return None
    hit = _STATES.get(str(path))
    return hit[1] if hit is not None else None


@dataclass(frozen=True)
class Staging:
    """Paths of one output's staging area (see module docstring).

    Attributes:
        root: the local folder (the working copy when ``shared`` is set).
        shared: the shared copy on an object store, or ``None`` (local only).
    """

    root: Path
    shared: Any = field(default=None, compare=False)

    def path(self, kind: str, episode_index: int, suffix: str) -> Path:
        return self.root / kind / f"{episode_stem(episode_index)}{suffix}"

    def segment_path(self, camera_column: str, episode_index: int) -> Path:
        return self.root / VIDEOS / camera_column / f"{episode_stem(episode_index)}.mp4"

    def segment_header_path(self, camera_column: str, episode_index: int) -> Path:
        """Where the header of a segment kept in its source is staged
        (:class:`lerobot_lance.video.SourceRange`): beside where the segment
        itself would be, ``.mp4.header``."""
        return self.root / VIDEOS / camera_column / f"{episode_stem(episode_index)}.mp4.header"

    def _rel(self, kind: str, episode_index: int) -> str:
        return f"{kind}/{episode_stem(episode_index)}.json"

    def record(self, kind: str, episode_index: int) -> dict[str, Any] | None:
        """The episode's record of ``kind`` (parsed once per version of the file;
        shared between callers, so never mutated), or ``None``. With a shared
        copy, the shared record (fetched once per stage; none there: none)."""
        if self.shared is not None:
            self.shared.pull_json(self._rel(kind, episode_index))
        return read_json_cached(self.path(kind, episode_index, ".json"))

    def prefetch(self, kinds: Sequence[str], episodes: Sequence[int]) -> None:
        """Fetch the shared records of these kinds and episodes at once (concurrent
        requests; nothing without a shared copy): what a stage reading every
        episode's records calls first."""
        if self.shared is not None:
            self.shared.pull_many(self._rel(k, ep) for ep in episodes for k in kinds)

    def write_record(self, kind: str, episode_index: int, record: dict[str, Any]) -> None:
        """Write the record (atomic rename). With a shared copy, then upload the
        files it stands for (the JPEG columns of an ``ok`` frames record that
        has them, the staged segments it names) and the record last."""
        write_json_atomic(self.path(kind, episode_index, ".json"), record, indent=None)
        if self.shared is not None:
            data = []
            if kind == FRAMES and record.get("status") == "ok" and record.get("jpeg"):
                data.append(self.path(FRAMES, episode_index, FRAMES_COLUMNS_SUFFIX))
            self.shared.push_record(self._rel(kind, episode_index), record, data)

    def write_frames_columns(self, episode_index: int, columns: pa.Table) -> int:
        """Write the derived frames columns of one episode (the JPEG columns of
        ``frames_format="jpeg"``) as an Arrow IPC file
        ``frames/episode_NNNNNN.jpeg.arrow``; return its size in bytes. Write
        it before the record that stands for it."""
        path = self.path(FRAMES, episode_index, FRAMES_COLUMNS_SUFFIX)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, columns.schema) as writer:
            writer.write_table(columns)
        os.replace(tmp, path)
        return path.stat().st_size

    def read_frames_columns(self, episode_index: int) -> pa.Table:
        """The staged derived frames columns of one episode (memory-mapped,
        zero-copy; with a shared copy fetched and checked first)."""
        path = self.local_file(self.path(FRAMES, episode_index, FRAMES_COLUMNS_SUFFIX), (FRAMES, episode_index))
        with pa.memory_map(str(path)) as source:
            return ipc.open_file(source).read_all()

    def local_file(self, path: str | os.PathLike[str], record: tuple[str, int] | None = None) -> Path:
        """A staged data file (a segment a videos record names), present locally:
        with a shared copy, fetched (and checked against the size and sha256 its
        record gives) when the local copy is missing or differs. ``record``
        (kind, episode) is pulled first when given."""
        if self.shared is None:
            return Path(path)
        if record is not None:
            self.shared.pull_json(self._rel(*record))
        return self.shared.local_file(path)

    def json_file(self, rel: str) -> Path:
        """Local path of a whole-area file (``source.json``, ``dataset_stats.json``,
        ``pending/<table>.json``), fetched from the shared copy first (once per stage)."""
        if self.shared is not None:
            return self.shared.pull_json(rel)
        return self.root / rel

    def write_json(self, rel: str, obj: Any, *, indent: int | None = 1) -> None:
        """Write a whole-area file (atomic rename), then upload it (shared copy)."""
        write_json_atomic(self.root / rel, obj, indent=indent)
        if self.shared is not None:
            self.shared.push_json(rel, obj)

    def remove_file(self, rel: str) -> None:
        """Delete a whole-area file here and in the shared copy."""
        (self.root / rel).unlink(missing_ok=True)
        if self.shared is not None:
            self.shared.remove(rel)

    def remove_records(self, kind: str) -> None:
        """Delete every episode record of ``kind`` (those episodes are staged again)."""
        folder = self.root / kind
        for rec in folder.glob("episode_*.json") if folder.is_dir() else []:
            rec.unlink(missing_ok=True)
        if self.shared is not None:
            self.shared.remove_records(kind)

    def is_current(self, kind: str, episode_index: int, revision: str) -> bool:
        """Whether :meth:`current` is not ``None``, without holding the record
        (:func:`record_state`): what the coverage asks of every episode."""
        if self.shared is not None:
            self.shared.pull_json(self._rel(kind, episode_index))
        state = record_state(self.path(kind, episode_index, ".json"))
        # as current(): a frames record without source_files (a version that copied the rows) is staged again
        return state is not None and state[:2] == ("ok", revision) and (kind != FRAMES or state[2])

    def current(self, kind: str, episode_index: int, revision: str) -> dict[str, Any] | None:
        """The episode's record if it succeeded for this source revision, else
        ``None`` (also for a frames record without ``source_files``: staged by
        a version that copied the rows, it is staged again)."""
        rec = self.record(kind, episode_index)
        if rec and rec.get("status") == "ok" and rec.get("revision") == revision and (kind != FRAMES or "source_files" in rec):
            return rec
        return None

    def clear(self) -> None:
        """Delete the whole staging area (and its shared copy)."""
        shutil.rmtree(self.root, ignore_errors=True)
        if self.shared is not None:
            self.shared.clear()
