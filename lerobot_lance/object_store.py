"""Output roots on object storage (``s3://``, ``gs://``, ``az://``): URIs, options, files.

Lance writes the tables itself (its ``storage_options``); everything else an
output holds (``meta/``, ``conversion.json``, the publish journal, the marker
``.lerobot-lance.json``, the dataset card ``README.md``) goes through a
``pyarrow.fs`` filesystem built here from the same options. Local outputs
(paths, ``file://``) never come here: the callers keep their ``pathlib`` fast
path, and the helpers below that take a *location* (a :class:`~pathlib.Path`
or a URI string) use ``pathlib`` for a local one.

Options and credentials (one set for Lance, pyarrow and the lock):

- ``storage_options`` (datasets.yaml ``storage_options:``, the CLI's
  ``--storage-option KEY=VALUE``, the ``lance_storage`` resource) use Lance's
  keys (the Rust ``object_store`` crate's ``AmazonS3ConfigKey``):
  ``aws_endpoint`` (or ``endpoint``, ``aws_endpoint_url``, ``endpoint_url``),
  ``aws_access_key_id``, ``aws_secret_access_key``, ``aws_session_token``,
  ``aws_region`` (or ``region``), ``allow_http`` (``"true"`` for an
  ``http://`` endpoint);
- keys not given there come from the standard AWS variables, which Lance,
  pyarrow (``S3FileSystem``) and botocore all read themselves:
  ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
  ``AWS_SESSION_TOKEN``, ``AWS_REGION`` / ``AWS_DEFAULT_REGION``,
  ``AWS_ALLOW_HTTP``; and the usual credential chain (profiles, instance roles).

Writes of a whole object (``PutObject``) are atomic on S3: a reader sees the
old object or the new one, never part of one; this is what the ``meta/`` swap
relies on instead of ``os.replace``.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: URI schemes of object stores (anything else with ``://`` is refused by :func:`filesystem`).
OBJECT_STORE_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")

_ENDPOINT_KEYS = ("aws_endpoint", "endpoint", "aws_endpoint_url", "endpoint_url")
_REGION_KEYS = ("aws_region", "region")
_KEY_ID_KEYS = ("aws_access_key_id", "access_key_id")
_SECRET_KEYS = ("aws_secret_access_key", "secret_access_key")
_TOKEN_KEYS = ("aws_session_token", "session_token", "token")
_ALLOW_HTTP_KEYS = ("allow_http", "aws_allow_http")


def is_object_store(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` names an object-store location (has a scheme other than ``file://``)."""
    text = str(uri)
    return "://" in text and not text.startswith("file://")


def scheme(uri: str) -> str:
    """``"s3"`` for ``s3://bucket/key``."""
    return uri.split("://", 1)[0].lower()


def join(uri: str, *parts: str) -> str:
    """``join("s3://b/out", "meta", "info.json")`` -> ``"s3://b/out/meta/info.json"``."""
    out = uri.rstrip("/")
    for p in parts:
        p = str(p).strip("/")
        if p:
            out += "/" + p
    return out


def parent(uri: str) -> str:
    """The URI one level up: ``s3://b/out/x.json`` -> ``s3://b/out``."""
    head, _, _ = uri.rstrip("/").rpartition("/")
    return head


def bucket_and_key(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    rest = uri.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key.strip("/")


def _first(options: Mapping[str, str], keys: Iterable[str]) -> str | None:
    for k in keys:
        for cand in (k, k.upper()):
            v = options.get(cand)
            if v not in (None, ""):
                return str(v)
    return None


def _truthy(v: str | None) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def s3_settings(storage_options: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The S3 connection settings of ``storage_options`` with the AWS variables as defaults.

    Returns:
        ``{"endpoint": str | None, "region": str | None, "access_key": str | None,
        "secret_key": str | None, "session_token": str | None, "allow_http": bool}``;
        ``None`` means "let the client's own defaults and credential chain decide".
    """
    so = dict(storage_options or {})
    env = os.environ
    endpoint = _first(so, _ENDPOINT_KEYS) or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    allow = _first(so, _ALLOW_HTTP_KEYS) or env.get("AWS_ALLOW_HTTP")
    return {
        "endpoint": endpoint,
        "region": _first(so, _REGION_KEYS) or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        "access_key": _first(so, _KEY_ID_KEYS) or env.get("AWS_ACCESS_KEY_ID"),
        "secret_key": _first(so, _SECRET_KEYS) or env.get("AWS_SECRET_ACCESS_KEY"),
        "session_token": _first(so, _TOKEN_KEYS) or env.get("AWS_SESSION_TOKEN"),
        "allow_http": _truthy(allow) or bool(endpoint and endpoint.startswith("http://")),
    }


def lance_storage_options(storage_options: Mapping[str, str] | None) -> dict[str, str] | None:
    """What to pass to Lance as ``storage_options``: the user's options as given
    (Lance reads the AWS variables itself), ``None`` when there are none."""
    return dict(storage_options) if storage_options else None


_fs_cache: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
_fs_guard = threading.Lock()


def filesystem(uri: str, storage_options: Mapping[str, str] | None = None) -> tuple[Any, str]:
    """A ``pyarrow.fs`` filesystem for ``uri`` and the path inside it.

    ``s3://`` gets an ``S3FileSystem`` configured from :func:`s3_settings`;
    other schemes (``gs://``, ``az://``) pyarrow's ``FileSystem.from_uri``
    (their credentials from that library's own environment variables).
    Filesystems are cached per scheme and options.

    Raises:
        ValueError: ``uri`` is not an object-store URI.
    """
    import pyarrow.fs as pafs

    sch = scheme(uri)
    if sch not in OBJECT_STORE_SCHEMES:
        raise ValueError(f"{uri}: not an object-store URI (expected one of {', '.join(s + '://' for s in OBJECT_STORE_SCHEMES)})")
    bucket, key = bucket_and_key(uri)
    path = f"{bucket}/{key}".rstrip("/")
    cache_key = (sch, tuple(sorted((storage_options or {}).items())))
    with _fs_guard:
        fs = _fs_cache.get(cache_key)
        if fs is None:
            if sch in ("s3", "s3a"):
                s = s3_settings(storage_options)
                kw: dict[str, Any] = {}
                if s["endpoint"]:
                    ep = s["endpoint"]
                    kw["scheme"] = "http" if ep.startswith("http://") or (s["allow_http"] and "://" not in ep) else "https"
                    kw["endpoint_override"] = ep.split("://", 1)[-1]
                if s["region"]:
                    kw["region"] = s["region"]
                if s["access_key"] and s["secret_key"]:
                    kw.update(access_key=s["access_key"], secret_key=s["secret_key"])
                    if s["session_token"]:
                        kw["session_token"] = s["session_token"]
                fs = pafs.S3FileSystem(**kw)
            else:
                fs, _ = pafs.FileSystem.from_uri(uri)
            _fs_cache[cache_key] = fs
    return fs, path


# --- files of an output: a location is a local Path (or path string) or an object-store URI ----
def _local(loc: str | os.PathLike[str]) -> Path | None:
    return None if is_object_store(loc) else Path(str(loc).removeprefix("file://"))


def read_bytes(loc: str | os.PathLike[str], storage_options: Mapping[str, str] | None = None) -> bytes | None:
    """The whole file, or ``None`` when it does not exist."""
    p = _local(loc)
    if p is not None:
        try:
            return p.read_bytes()
        except FileNotFoundError:
            return None
    fs, path = filesystem(str(loc), storage_options)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        if "NoSuchKey" in str(err) or "Path does not exist" in str(err):
            return None
        raise


def write_bytes(loc: str | os.PathLike[str], data: bytes, storage_options: Mapping[str, str] | None = None) -> None:
    """Write the whole file: an atomic rename locally, one ``PutObject`` on a store
    (readers see the old object or the new one)."""
    p = _local(loc)
    if p is not None:
        import tempfile

        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return
    fs, path = filesystem(str(loc), storage_options)
    with fs.open_output_stream(path) as f:
        f.write(data)


def read_json(loc: str | os.PathLike[str], storage_options: Mapping[str, str] | None = None) -> Any | None:
    """Parsed JSON of the file, or ``None`` when it does not exist."""
    data = read_bytes(loc, storage_options)
    return None if data is None else json.loads(data.decode("utf-8"))


def write_json(loc: str | os.PathLike[str], obj: Any, storage_options: Mapping[str, str] | None = None) -> None:
    """Write ``obj`` as JSON, whole (see :func:`write_bytes`)."""
    p = _local(loc)
    if p is not None:
        from lerobot_lance.staging import write_json_atomic

        write_json_atomic(p, obj)
        return
    from lerobot_lance.staging import _json_default

    write_bytes(loc, json.dumps(obj, indent=1, default=_json_default).encode("utf-8"), storage_options)


def exists(loc: str | os.PathLike[str], storage_options: Mapping[str, str] | None = None) -> bool:
    """Whether a file (or, on a store, any object under the prefix) exists there."""
    p = _local(loc)
    if p is not None:
        return p.exists()
    import pyarrow.fs as pafs

    fs, path = filesystem(str(loc), storage_options)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def remove(loc: str | os.PathLike[str], storage_options: Mapping[str, str] | None = None) -> None:
    """Delete one file; nothing when it does not exist."""
    p = _local(loc)
    if p is not None:
        p.unlink(missing_ok=True)
        return
    fs, path = filesystem(str(loc), storage_options)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass


def remove_tree(loc: str | os.PathLike[str], storage_options: Mapping[str, str] | None = None) -> bool:
    """Delete a folder (a prefix on a store) and everything under it.

    Returns:
        Whether anything was there.
    """
    p = _local(loc)
    if p is not None:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
            return True
        return False
    import pyarrow.fs as pafs

    fs, path = filesystem(str(loc), storage_options)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        return False
    if info.type == pafs.FileType.File:
        fs.delete_file(path)
        return True
    had = bool(list_files(str(loc), storage_options))
    try:
        fs.delete_dir(path)  # the objects under the prefix and pyarrow's empty "directory" marker
    except FileNotFoundError:
        pass
    return had


def list_files(loc: str | os.PathLike[str], storage_options: Mapping[str, str] | None = None) -> list[str]:
    """Relative posix paths of every file under the folder (prefix), sorted; ``[]`` when there is none."""
    p = _local(loc)
    if p is not None:
        return sorted(f.relative_to(p).as_posix() for f in p.rglob("*") if f.is_file()) if p.is_dir() else []
    import pyarrow.fs as pafs

    fs, path = filesystem(str(loc), storage_options)
    try:
        infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    except FileNotFoundError:
        return []
    return sorted(i.path[len(path):].lstrip("/") for i in infos if i.type == pafs.FileType.File)


def list_entries(uri: str, storage_options: Mapping[str, str] | None = None) -> list[str]:
    """Names directly under an object-store prefix (files and "folders"), sorted."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri, storage_options)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False, allow_not_found=True))
    return sorted(i.path[len(path):].strip("/") for i in infos)


def copy_file(src: str, dst: str, storage_options: Mapping[str, str] | None = None) -> None:
    """Copy one object within the store (server-side ``CopyObject`` on S3: ``dst`` appears whole)."""
    fs, s = filesystem(src, storage_options)
    _, d = filesystem(dst, storage_options)
    fs.copy_file(s, d)


def upload_tree(local_dir: Path, uri: str, files: Iterable[str], storage_options: Mapping[str, str] | None = None) -> None:
    """Upload ``files`` (posix paths relative to ``local_dir``) under ``uri``, one whole object each."""
    for rel in files:
        write_bytes(join(uri, rel), (Path(local_dir) / rel).read_bytes(), storage_options)
