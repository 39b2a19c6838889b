"""Sources on object storage: a LeRobot dataset root at ``s3://bucket/prefix``.

The dataset is mirrored into a local cache and the local mirror is handed to
the readers, which read local files only (``pyarrow.parquet``, PyAV). What is
mirrored is what a conversion reads: ``meta/`` first (:meth:`S3Source.meta_root`),
then the data and video files of the selected episodes as the steps ask for
them (:meth:`S3Source.fetch`), exactly as :class:`~lerobot_lance.source.HubSource`
does with the Hugging Face cache.

The listing is the source of truth:

- one ``ListObjectsV2`` of the prefix gives every object's key, ``ETag`` and
  size; the source's **revision** is a hash of that listing
  (:func:`listing_revision`: ``"s3-"`` + 16 hex digits), so re-uploading any
  object (a new ETag, or a new size) changes it and an untouched prefix keeps
  it. The listing of a revision is kept in the cache, so the steps of a run
  (other processes, other machines sharing the cache) reopen the source at the
  pinned revision without listing again; without it they list again and
  refuse a prefix that changed since.
- every download is a ``GetObject`` with ``If-Match: <ETag of the listing>``
  (the object must still be the one listed) and its byte count must equal the
  listed size; otherwise :class:`SourceObjectError` (or, for a short download,
  :class:`SourceTransferError`) names the object URI, the episode(s) that read
  it and what was expected.

Cache layout (``$LEROBOT_LANCE_SOURCE_CACHE``, default
``${XDG_CACHE_HOME:-~/.cache}/lerobot-lance/sources``)::

    <cache>/<bucket>-<hash of endpoint + URI>/
        objects/<sha256(key, ETag, size)>   one file per object version (content-addressed by its listing entry)
        listings/<revision>.json            {key: [etag, size]} of that revision
        <revision>/meta/..., data/..., videos/...   hard links into objects/ (copies across file systems)

So a new revision re-downloads only the objects whose ETag or size changed.
Credentials and endpoint: the output's ``storage_options`` (Lance's keys, see
:mod:`lerobot_lance.object_store`) with the standard AWS variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...) as defaults, through the
same boto3 client the ``s3://`` writer lock uses (extra ``lerobot-lance[s3]``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lerobot_lance.errors import LeRobotLanceError, SourceDataError, SourceNotFoundError
from lerobot_lance.source_base import DatasetSource, safe_join

#: Environment variable naming the cache directory of object-store sources.
SOURCE_CACHE_ENV = "LEROBOT_LANCE_SOURCE_CACHE"
#: URI schemes read as S3 sources.
S3_SCHEMES = ("s3", "s3a")
_CHUNK = 8 << 20  # bytes per read of a GetObject body


class SourceObjectError(SourceDataError):
    """An object of an object-store source is missing, or changed since its listing.

    A :class:`~lerobot_lance.errors.SourceDataError` (``path`` is the object's
    URI, ``episode_index`` the first episode that reads it, ``expected`` /
    ``found`` what the listing promised and what the store gave): bad data for
    the pinned revision, so a step fails at once (no retry can bring the
    object back; a new resolve of the source pins the prefix as it is now).
    """


class SourceTransferError(SourceObjectError, SourceNotFoundError):
    """A download ended short of (or beyond) the object's listed size, or broke off.

    Also a :class:`~lerobot_lance.errors.SourceNotFoundError`, which the
    Dagster steps treat as transient: their retry policy downloads it again.
    """


@dataclass(frozen=True)
class ObjectEntry:
    """One object of the listing: ``etag`` as the store gives it (quotes kept), ``size`` in bytes."""

    etag: str
    size: int


def default_cache_dir() -> Path:
    """``$LEROBOT_LANCE_SOURCE_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/lerobot-lance/sources``."""
    env = os.environ.get(SOURCE_CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "lerobot-lance" / "sources"


def is_s3_uri(source: str) -> bool:
    """Whether ``source`` is an ``s3://`` (or ``s3a://``) URI."""
    return "://" in source and source.split("://", 1)[0].lower() in S3_SCHEMES


def listing_revision(listing: Mapping[str, ObjectEntry]) -> str:
    """``"s3-"`` + the first 16 hex digits of sha256 over every ``key, ETag, size``
    (keys sorted, relative to the prefix): changes when any object is added,
    removed or re-uploaded, and only then."""
    h = hashlib.sha256()
    for key in sorted(listing):
        e = listing[key]
        h.update(f"{key}\0{e.etag}\0{e.size}\n".encode())
    return "s3-" + h.hexdigest()[:16]


def _client(storage_options: Mapping[str, str] | None) -> Any:
    try:
        import boto3  # noqa: F401
    except ImportError:
        raise LeRobotLanceError("s3:// sources need boto3 (ETag listing, conditional GetObject); pip install 'lerobot-lance[s3]'") from None
    from lerobot_lance.output_lock import s3_client

    return s3_client(dict(storage_options) if storage_options else None)


def _error_code(err: Exception) -> tuple[str, int]:
    resp = getattr(err, "response", None) or {}
    return str(resp.get("Error", {}).get("Code", "")), int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


class S3Source(DatasetSource):
    """A LeRobot dataset root (v2.0, v2.1 or v3.0 layout) under an ``s3://`` prefix,
    mirrored on demand into a local cache (see the module docstring).

    Args:
        uri: ``s3://bucket/prefix`` of the dataset root (the folder holding ``meta/``).
        revision: a revision this source must have (:func:`listing_revision`),
            e.g. the one pinned in a conversion's ``source.json``; ``None``
            takes the prefix as it is listed now.
        storage_options: Lance-style keys (``aws_endpoint``, ``aws_access_key_id``,
            ...; :func:`lerobot_lance.object_store.s3_settings`); the AWS
            variables fill in what they leave out.
        cache_dir: the mirror's root; ``None``: :func:`default_cache_dir`.

    Raises:
        SourceNotFoundError: ``uri`` names no bucket (raised here); later, on
            first use: the prefix holds no objects, cannot be listed, or no
            longer has the requested ``revision``.

    Nothing is listed or downloaded until a method needs it.
    """

    kind = "s3"

    def __init__(
        self,
        uri: str,
        revision: str | None = None,
        *,
        storage_options: Mapping[str, str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if not is_s3_uri(uri):
            raise SourceNotFoundError(f"{uri}: not an s3:// URI")
        rest = uri.split("://", 1)[1]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise SourceNotFoundError(f"{uri}: the URI names no bucket (expected s3://bucket/prefix)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.description = self.uri
        self.requested_revision = revision
        self.storage_options = dict(storage_options) if storage_options else None
        from lerobot_lance.object_store import s3_settings

        endpoint = s3_settings(self.storage_options)["endpoint"] or "aws"
        digest = hashlib.sha256(f"{endpoint}\0{self.uri}".encode()).hexdigest()[:16]
        self.cache_root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.cache = self.cache_root / f"{bucket}-{digest}"
        self._listing: dict[str, ObjectEntry] | None = None
        self._revision: str | None = None
        self._client_obj: Any = None
        self._episodes_by_file: dict[str, list[int]] | None = None

    # --- the listing ------------------------------------------------------------------
    def _s3(self) -> Any:
        if self._client_obj is None:
            self._client_obj = _client(self.storage_options)
        return self._client_obj

    def object_uri(self, relative_path: str) -> str:
        """``s3://bucket/prefix/<relative_path>``."""
        return f"{self.uri}/{relative_path}"

    def list_objects(self) -> dict[str, ObjectEntry]:
        """List the prefix now (``ListObjectsV2``, every page): key relative to the
        prefix -> :class:`ObjectEntry`. Folder markers (keys ending in ``/``) are left out.

        Raises:
            SourceNotFoundError: the bucket does not exist or cannot be listed
                (the store's error code in the message).
        """
        from botocore.exceptions import BotoCoreError, ClientError

        base = self.prefix + "/" if self.prefix else ""
        out: dict[str, ObjectEntry] = {}
        try:
            for page in self._s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
                for obj in page.get("Contents", []) or []:
                    key = obj["Key"][len(base):]
                    if key and not key.endswith("/"):
                        out[key] = ObjectEntry(str(obj.get("ETag", "")), int(obj["Size"]))
        except ClientError as err:
            code, status = _error_code(err)
            raise SourceNotFoundError(f"{self.uri}: cannot list the prefix ({code or status}: {err})") from None
        except BotoCoreError as err:
            raise SourceNotFoundError(f"{self.uri}: cannot reach the object store ({err})") from None
        return out

    def listing(self) -> dict[str, ObjectEntry]:
        """The listing this source reads, fixed for its lifetime: the cached listing of
        the requested revision when the cache holds it, else :meth:`list_objects`.

        Raises:
            SourceNotFoundError: the prefix holds no objects, or its listing is
                not the requested revision (the prefix changed since it was pinned).
        """
        if self._listing is None:
            listing = self._cached_listing(self.requested_revision) if self.requested_revision else None
            if listing is None:
                listing = self.list_objects()
                if not listing:
                    raise SourceNotFoundError(
                        f"{self.uri}: no objects under this prefix (expected a LeRobot dataset root holding meta/info.json)"
                    )
            rev = listing_revision(listing)
            if self.requested_revision and rev != self.requested_revision:
                raise SourceNotFoundError(
                    f"{self.uri}: the objects changed since revision {self.requested_revision} was pinned "
                    f"(now {rev}); resolve the source again (the source_meta asset, or a new convert)"
                )
            self._store_listing(rev, listing)
            self._listing, self._revision = listing, rev
        return self._listing

    def _cached_listing(self, revision: str) -> dict[str, ObjectEntry] | None:
        try:
            doc = json.loads((self.cache / "listings" / f"{revision}.json").read_text(encoding="utf-8"))
            return {k: ObjectEntry(str(v[0]), int(v[1])) for k, v in doc.items()}
        except (OSError, ValueError, TypeError, IndexError):
            return None

    def _store_listing(self, revision: str, listing: Mapping[str, ObjectEntry]) -> None:
        path = self.cache / "listings" / f"{revision}.json"
        if path.exists():
            return
        from lerobot_lance.staging import write_json_atomic

        write_json_atomic(path, {k: [e.etag, e.size] for k, e in sorted(listing.items())})

    def revision(self) -> str:
        """:func:`listing_revision` of :meth:`listing`."""
        self.listing()
        assert self._revision is not None
        return self._revision

    def list_files(self) -> list[str]:
        """Every object of the dataset, relative to the prefix, sorted."""
        return sorted(self.listing())

    def file_ids(self, relative_paths: Iterable[str]) -> dict[str, str]:
        """Per file ``"<ETag>:<size>"`` from the listing (``"missing"`` when it lists no
        such object): what :func:`lerobot_lance.source_base.source_file_ids` uses to
        tell which episodes a new revision touched."""
        listing = self.listing()
        return {rel: (f"{listing[rel].etag}:{listing[rel].size}" if rel in listing else "missing") for rel in relative_paths}

    # --- the mirror ------------------------------------------------------------------------
    def mirror_root(self) -> Path:
        """The local mirror of the pinned revision (only fetched files exist in it)."""
        return self.cache / self.revision()

    def meta_root(self) -> Path:
        """Download every ``meta/`` object of the listing (once per revision) and return the mirror."""
        return self.fetch([k for k in self.listing() if k.startswith("meta/")])

    def fetch(self, relative_paths: Iterable[str], *, missing_ok: bool = False) -> Path:
        """Mirror these objects (those already mirrored with the listed size are kept).

        Raises:
            SourceDataError: a path escapes the dataset root.
            SourceObjectError: an object is not in the listing (unless
                ``missing_ok``), or was deleted or re-uploaded since it was listed.
            SourceTransferError: a download broke off, or its byte count is
                not the listed size (transient: a retry downloads it again).
            SourceNotFoundError: the object store cannot be reached.
        """
        listing = self.listing()
        root = self.mirror_root()
        for rel in relative_paths:
            target = safe_join(root, rel)
            entry = listing.get(rel)
            if entry is None:
                if missing_ok:
                    continue
                raise self._object_error(rel, "the object does not exist", expected=f"an object listed under {self.uri}/",
                                         found=f"no such key in the listing of revision {self.revision()}")
            try:
                if target.stat().st_size == entry.size:
                    continue
            except FileNotFoundError:
                pass
            self._place(rel, entry, target)
        return root

    def _place(self, rel: str, entry: ObjectEntry, target: Path) -> None:
        name = hashlib.sha256(f"{rel}\0{entry.etag}\0{entry.size}".encode()).hexdigest()[:40]
        blob = self.cache / "objects" / name
        try:
            have = blob.stat().st_size
        except FileNotFoundError:
            have = -1
        if have != entry.size:
            self._download(rel, entry, blob)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # steps may fetch from threads
        try:
            try:
                os.link(blob, tmp)
            except OSError:
                shutil.copyfile(blob, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def _download(self, rel: str, entry: ObjectEntry, blob: Path) -> None:
        """``GetObject`` with ``If-Match`` the listed ETag into ``blob`` (a temp file renamed whole)."""
        from botocore.exceptions import BotoCoreError, ClientError

        blob.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=blob.parent, prefix=f".{blob.name}.", suffix=".part")
        key = f"{self.prefix}/{rel}" if self.prefix else rel
        got = 0
        try:
            with os.fdopen(fd, "wb") as f:
                try:
                    kw = {"IfMatch": entry.etag} if entry.etag else {}
                    body = self._s3().get_object(Bucket=self.bucket, Key=key, **kw)["Body"]
                    while chunk := body.read(_CHUNK):
                        f.write(chunk)
                        got += len(chunk)
                except ClientError as err:
                    code, status = _error_code(err)
                    if code in ("NoSuchKey", "404") or status == 404:
                        raise self._object_error(rel, "the object was deleted after the source was listed",
                                                 expected=f"{entry.size} bytes, ETag {entry.etag}", found="no such key") from None
                    if code == "PreconditionFailed" or status == 412:
                        raise self._object_error(
                            rel, f"the object was re-uploaded after revision {self.revision()} was listed; resolve the source again",
                            expected=f"ETag {entry.etag}", found="another ETag") from None
                    raise SourceNotFoundError(f"{self.object_uri(rel)}: cannot download ({code or status}: {err})") from None
                except BotoCoreError as err:  # connection cut mid-body, ...
                    raise self._object_error(rel, f"the download failed after {got} bytes ({err})",
                                             expected=f"{entry.size} bytes (its listed size)", found=f"{got} bytes",
                                             cls=SourceTransferError) from None
            if got != entry.size:
                raise self._object_error(rel, "the download is truncated" if got < entry.size else "the download is longer than listed",
                                         expected=f"{entry.size} bytes (its listed size)", found=f"{got} bytes",
                                         cls=SourceTransferError)
            os.replace(tmp, blob)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _object_error(
        self, rel: str, message: str, *, expected: object, found: object, cls: type[SourceObjectError] = SourceObjectError
    ) -> SourceObjectError:
        episodes = self._episodes_reading(rel)
        if len(episodes) > 1:
            message += f" (read by episodes {', '.join(map(str, episodes[:10]))}{', ...' if len(episodes) > 10 else ''})"
        return cls(self.object_uri(rel), message, episode_index=episodes[0] if episodes else None,
                                 expected=expected, found=found)

    def _episodes_reading(self, rel: str) -> list[int]:
        """Episodes whose data or video file is ``rel`` (from the mirrored ``meta/``; ``[]`` when unreadable)."""
        if self._episodes_by_file is None:
            by_file: dict[str, list[int]] = {}
            try:
                from lerobot_lance.readers import read_dataset_meta

                meta = read_dataset_meta(self.mirror_root())
                for e in meta.episodes:
                    for p in dict.fromkeys([e.data_path, *(r.relative_path for r in e.videos.values())]):
                        by_file.setdefault(p, []).append(e.episode_index)
            except (LeRobotLanceError, OSError, ValueError):
                pass
            self._episodes_by_file = by_file
        return self._episodes_by_file.get(rel, [])
