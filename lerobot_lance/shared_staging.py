"""A staging area shared between machines: a local working copy mirrored to an object store.

Per-episode partitions of one conversion may run on different machines
(Dagster's Celery, Dask or Kubernetes executors); each machine stages into its
own local folder (:class:`lerobot_lance.staging.Staging`: PyAV and Arrow work
on local files), and this layer mirrors that folder to one shared URI
(``s3://bucket/prefix``, or ``gs://`` / ``az://``) through the same
``pyarrow.fs`` filesystem and ``storage_options`` the output uses
(:func:`lerobot_lance.object_store.filesystem`: ``AWS_ENDPOINT_URL`` and the
other ``AWS_*`` variables when the options do not say). The shared copy is
the truth; a local folder is a cache of it.

Layout under the shared URI (the local layout of :mod:`lerobot_lance.staging`)::

    source.json, dataset_stats.json, pending/<table>.json    one object each
    <kind>/episode_000012.json                               the episode's record
    videos/<camera>/episode_000012.mp4.<sha256[:16]>         its data files, named by content
    frames/episode_000012.jpeg.arrow.<sha256[:16]>           (frames_format="jpeg": the JPEG columns)

No copy of the source's frames rows is staged, so none is uploaded: every
machine reads them from the source (:func:`lerobot_lance.source_frames.read_frames`).

Pushing an episode's record (:meth:`SharedStaging.push_record`) uploads its
data files first (the segments the record names, the JPEG columns), each
under a name holding its sha256, then the record itself (one ``PutObject``,
atomic), carrying ``staged_files``: per local file its size, sha256 and
object name. The record is the "done" marker: a partition killed before that
last ``PutObject`` leaves either no record or the previous one, whose data
objects are still there under their own names (a re-stage never overwrites
them; it removes them only after its own record is in place). So a record
seen on the shared URI always names complete data files, and an episode whose
upload was interrupted counts as not staged and is staged again.

Pulling (:meth:`SharedStaging.pull_json`) happens once per file per
:class:`SharedStaging` (one per stage: every asset opens its own
:class:`~lerobot_lance.conversion.Conversion`): the record is fetched, paths
inside it are re-rooted at the local folder, and a local record with no
shared counterpart is deleted (it was never uploaded: it does not count).
Data files are fetched when read (:meth:`SharedStaging.local_file`) unless
the local copy already has the size and sha256 the record names; every
download is checked against both.

Paths inside records that point into the staging folder are stored relative
(``@staging/videos/<camera>/episode_000012.mp4``), so a record made on one
machine names the file on any other. Paths to source files (a v2.x episode
mp4 used verbatim) are kept as they are; a machine where that path does not
exist reads the file from its own source
(:func:`lerobot_lance.episode_stages.camera_file`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lerobot_lance import object_store
from lerobot_lance.errors import LeRobotLanceError

#: Prefix of a path relative to the staging folder inside a shared record.
REL_PREFIX = "@staging/"
#: Key of a shared record listing its data files (never present in a local record).
STAGED_FILES = "staged_files"
#: Name of the folder, next to an object-store output, that holds the shared staging areas.
SHARED_STAGING_DIR = ".lerobot-lance-staging"
#: Concurrent requests of a bulk pull (:meth:`SharedStaging.pull_many`).
PULL_THREADS = 16


def default_shared_staging(output: str, root: str | None = None) -> str:
    """The shared staging URI of an object-store output when none is configured.

    ``<parent of output>/.lerobot-lance-staging/<name>-<hash>`` (``<name>`` and
    ``<hash>`` as in :func:`lerobot_lance.staging.default_staging_dir`): next
    to the output, never inside it, so the published prefix holds only what
    readers read; one lifecycle rule on ``.lerobot-lance-staging/`` expires
    every staging area of that folder. ``root`` (the resource's
    ``shared_staging_root``) replaces ``<parent of output>/.lerobot-lance-staging``.
    An output at a bucket's root stages under ``<bucket>/.lerobot-lance-staging``.
    """
    from lerobot_lance.staging import staging_name

    if root:
        return object_store.join(root, staging_name(output))
    _, key = object_store.bucket_and_key(output)
    base = object_store.parent(output) if key else output.rstrip("/")
    return object_store.join(base, SHARED_STAGING_DIR, staging_name(output))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class SharedStaging:
    """The shared copy of one output's staging area (see module docstring).

    Args:
        uri: the shared staging URI (object store).
        local_root: the local folder mirroring it (the :class:`Staging` root).
        storage_options: object-store options (the output's).

    Attributes:
        requests: requests made, by kind (``get``, ``put``, ``list``, ``delete``).
        bytes_up, bytes_down: bytes uploaded and downloaded.

    Raises (from every method that talks to the store):
        OSError: the object store refused or could not be reached (pyarrow's
            error names the key); a stage fails and its retry stages again.
    """

    def __init__(self, uri: str, local_root: Path, storage_options: Mapping[str, str] | None = None) -> None:
        if not object_store.is_object_store(uri):
            raise ValueError(f"{uri}: a shared staging area is an object-store URI")
        self.uri = uri.rstrip("/")
        self.local_root = Path(local_root)
        self.storage_options = dict(storage_options) if storage_options else None
        self._pulled: set[str] = set()
        self._manifest: dict[str, dict[str, Any]] = {}
        self._verified: dict[str, tuple[int, int, str]] = {}
        self._guard = threading.Lock()
        self.requests = {"get": 0, "put": 0, "list": 0, "delete": 0}
        self.bytes_up = 0
        self.bytes_down = 0

    def __repr__(self) -> str:
        return f"SharedStaging({self.uri!r})"

    def _count(self, kind: str, n: int = 1, up: int = 0, down: int = 0) -> None:
        with self._guard:
            self.requests[kind] += n
            self.bytes_up += up
            self.bytes_down += down

    # --- paths inside records -------------------------------------------------------------
    def _relativize(self, obj: Any) -> Any:
        root = str(self.local_root) + "/"
        if isinstance(obj, str):
            return REL_PREFIX + obj[len(root):] if obj.startswith(root) else obj
        if isinstance(obj, dict):
            return {k: self._relativize(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._relativize(v) for v in obj]
        return obj

    def _localize(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return str(self.local_root / obj[len(REL_PREFIX):]) if obj.startswith(REL_PREFIX) else obj
        if isinstance(obj, dict):
            return {k: self._localize(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._localize(v) for v in obj]
        return obj

    def _staged_paths(self, obj: Any) -> list[Path]:
        """Files inside the staging folder that a record names."""
        root = str(self.local_root) + "/"
        out: list[Path] = []
        if isinstance(obj, str) and obj.startswith(root):
            out.append(Path(obj))
        elif isinstance(obj, dict):
            for v in obj.values():
                out += self._staged_paths(v)
        elif isinstance(obj, list):
            for v in obj:
                out += self._staged_paths(v)
        return out

    # --- push ---------------------------------------------------------------------------------
    def push_json(self, rel: str, obj: Any) -> None:
        """Upload a small JSON file (``source.json``, ``pending/<table>.json``): one ``PutObject``."""
        from lerobot_lance.staging import _json_default

        data = json.dumps(self._relativize(obj), default=_json_default).encode("utf-8")
        object_store.write_bytes(object_store.join(self.uri, rel), data, self.storage_options)
        self._count("put", up=len(data))
        with self._guard:
            self._pulled.add(rel)

    def push_record(self, rel: str, record: Mapping[str, Any], data_files: Iterable[Path] = ()) -> None:
        """Upload an episode's data files, then its record (the "done" marker), then
        remove the data objects of the record it replaced.

        ``data_files``: local files the record stands for beyond the paths it
        names itself (the JPEG columns of a frames record).
        """
        files = list(dict.fromkeys([*data_files, *self._staged_paths(record)]))
        staged: dict[str, dict[str, Any]] = {}
        for path in files:
            frel = path.relative_to(self.local_root).as_posix()
            known = self._manifest.get(frel)
            if not path.is_file():
                if known is not None:  # re-stamped here (a carried-forward record), its data never fetched
                    staged[frel] = known
                continue
            size, digest = path.stat().st_size, sha256_file(path)
            name = f"{frel}.{digest[:16]}"
            if not (known and known["object"] == name):
                fs, p = object_store.filesystem(object_store.join(self.uri, name), self.storage_options)
                with open(path, "rb") as src, fs.open_output_stream(p) as dst:
                    for chunk in iter(lambda: src.read(8 << 20), b""):
                        dst.write(chunk)
                self._count("put", up=size)
            staged[frel] = {"size": size, "sha256": digest, "object": name}
        self.push_json(rel, {**record, STAGED_FILES: staged})  # last: the record says the files are complete
        for frel, entry in staged.items():
            if (self._manifest.get(frel) or {}).get("object") != entry["object"]:
                self._remove_stale_objects(frel, keep=entry["object"])
            with self._guard:
                self._manifest[frel] = entry
            local = self.local_root / frel
            if local.is_file():
                self._verified[frel] = (*self._stamp(local), entry["sha256"])

    def _remove_stale_objects(self, frel: str, keep: str) -> None:
        import pyarrow.fs as pafs

        folder, _, base = frel.rpartition("/")
        fs, p = object_store.filesystem(object_store.join(self.uri, folder), self.storage_options)
        infos = fs.get_file_info(pafs.FileSelector(p, recursive=False, allow_not_found=True))
        self._count("list")
        for i in infos:
            name = i.path.rsplit("/", 1)[-1]
            if name.startswith(base + ".") and name != keep.rsplit("/", 1)[-1] and i.type == pafs.FileType.File:
                fs.delete_file(i.path)
                self._count("delete")

    # --- pull ---------------------------------------------------------------------------------
    def pull_json(self, rel: str) -> Path:
        """Make the local ``rel`` mirror the shared one (once per instance); return its local path.

        A shared record's ``staged_files`` are kept in memory (for
        :meth:`local_file`) and left out of the local copy. No shared file:
        the local one is deleted.
        """
        local = self.local_root / rel
        with self._guard:
            if rel in self._pulled:
                return local
        data = object_store.read_bytes(object_store.join(self.uri, rel), self.storage_options)
        self._count("get", down=len(data or b""))
        if data is None:
            local.unlink(missing_ok=True)
        else:
            obj = json.loads(data.decode("utf-8"))
            staged = obj.pop(STAGED_FILES, None) if isinstance(obj, dict) else None
            obj = self._localize(obj)
            with self._guard:
                for frel, entry in (staged or {}).items():
                    self._manifest[frel] = entry
            from lerobot_lance.staging import read_json, write_json_atomic

            if read_json(local) != obj:
                write_json_atomic(local, obj, indent=None)
        with self._guard:
            self._pulled.add(rel)
        return local

    def pull_many(self, rels: Iterable[str]) -> None:
        """:meth:`pull_json` of many files at once (:data:`PULL_THREADS` requests in flight)."""
        todo = [r for r in dict.fromkeys(rels) if r not in self._pulled]
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=min(PULL_THREADS, len(todo))) as pool:
            list(pool.map(self.pull_json, todo))

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        st = path.stat()
        return st.st_mtime_ns, st.st_size

    def local_file(self, path: str | os.PathLike[str]) -> Path:
        """``path`` (a staged data file named by a pulled record), present locally
        with the size and sha256 the record gives; downloaded when it is not.

        Paths outside the staging folder, and files no pulled record names
        (written here, by this stage), are returned as they are.

        Raises:
            LeRobotLanceError: the downloaded object does not have the size or
                sha256 its record gives (naming the object, both values).
        """
        path = Path(path)
        try:
            frel = path.relative_to(self.local_root).as_posix()
        except ValueError:
            return path
        entry = self._manifest.get(frel)
        if entry is None:
            return path
        if path.is_file():
            stamp = self._stamp(path)
            hit = self._verified.get(frel)
            if hit is not None and hit[:2] == stamp and hit[2] == entry["sha256"]:
                return path
            if stamp[1] == entry["size"] and sha256_file(path) == entry["sha256"]:
                self._verified[frel] = (*stamp, entry["sha256"])
                return path
        src = object_store.join(self.uri, entry["object"])
        fs, p = object_store.filesystem(src, self.storage_options)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        h, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out, fs.open_input_stream(p) as f:
                for chunk in iter(lambda: f.read(8 << 20), b""):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            self._count("get", down=size)
            if size != entry["size"] or h.hexdigest() != entry["sha256"]:
                raise LeRobotLanceError(
                    f"{src}: staged file does not match its record {frel}: expected {entry['size']} bytes sha256 "
                    f"{entry['sha256']}, found {size} bytes sha256 {h.hexdigest()}; re-run the episode's partition"
                )
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._verified[frel] = (*self._stamp(path), entry["sha256"])
        return path

    # --- removal ------------------------------------------------------------------------------
    def remove(self, rel: str) -> None:
        """Delete one shared file (no error when it is not there)."""
        object_store.remove(object_store.join(self.uri, rel), self.storage_options)
        self._count("delete")
        with self._guard:
            self._pulled.add(rel)

    def remove_records(self, kind: str) -> None:
        """Delete every episode record of ``kind`` (their data objects stay until replaced or cleared)."""
        for name in object_store.list_files(object_store.join(self.uri, kind), self.storage_options):
            if "/" not in name and name.startswith("episode_") and name.endswith(".json"):
                self.remove(f"{kind}/{name}")
        self._count("list")

    def clear(self) -> None:
        """Delete the whole shared staging area."""
        object_store.remove_tree(self.uri, self.storage_options)
        with self._guard:
            self._pulled.clear()
            self._manifest.clear()
            self._verified.clear()
