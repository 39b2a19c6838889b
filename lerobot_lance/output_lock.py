"""One writer per output: an exclusive lock on ``<output>/.lerobot-lance.lock``.

A conversion holds the lock of its output root while it writes anything there
(pending fragments, commits, tags, ``meta/``). The lock is an ``fcntl.flock``
on a small file in the output root, so the kernel releases it when the holding
process dies (SIGKILL included): a stale lock file of a dead process never
blocks the next run; the holder record inside it (pid, host, command, since)
is only for the message a second writer gets.

The lock is re-entrant within a process: the CLI's in-process runner takes it
for the whole conversion, and the Dagster steps it executes in the same
process take it again without blocking. Steps of a Dagster UI run (separate
processes) take it for the step's duration only.

An ``s3://`` output has no kernel to release a lock, so its lock is an
object, ``<output>/.lerobot-lance.lock``, created with a conditional
``PutObject`` (``If-None-Match: *``: S3 creates it only if no object of that
key exists, atomically; a second writer gets ``412 Precondition Failed`` and
is refused, naming the holder). The holder record carries a lease
(``expires_at``, :data:`LOCK_TTL_ENV` seconds ahead, default
:data:`DEFAULT_LOCK_TTL_S`) that a thread of the holder renews every third of
it with a conditional overwrite (``If-Match: <its ETag>``). A writer that
died leaves the object behind; once its lease has expired the next writer
takes it over with ``If-Match`` on the stale object's ETag, so of two
writers racing for a stale lock exactly one wins. Release deletes the object
(``If-Match`` on the holder's own ETag: a lock taken over is not deleted).
A publish calls :func:`ensure_lock_held` before its first commit, so a holder
that was paused past its lease and lost the lock commits nothing.
Clocks of the writing machines must agree to well within the lease. This
needs ``boto3`` (extra ``lerobot-lance[s3]``). Other object stores (``gs://``,
``az://``) get no lock: run one writer per output there (see README).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lerobot_lance.errors import LeRobotLanceError

#: Lock file in the output root (hidden; the only file besides the journal and
#: the marker that a publish leaves next to the tables and ``meta/``).
LOCK_FILE = ".lerobot-lance.lock"


class OutputLockedError(LeRobotLanceError):
    """Another process is writing this output.

    Attributes:
        output: the output root.
        holder: the holder record (``pid``, ``host``, ``command``, ``since``), or ``{}``.
    """

    def __init__(self, output: str, holder: dict[str, Any]) -> None:
        self.output, self.holder = output, holder
        who = (
            f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('since')} "
            f"({holder.get('command')})" if holder else "another process (no holder record)"
        )
        super().__init__(
            f"{output}: another conversion is writing this output: {who}; "
            "wait for it to finish (its lock is released when it exits or dies), then run again"
        )


#: Environment variable: lease of an object-store lock in seconds.
LOCK_TTL_ENV = "LEROBOT_LANCE_LOCK_TTL_S"
#: Default lease of an object-store lock (renewed every third of it while held).
DEFAULT_LOCK_TTL_S = 60.0


def is_local(output: str) -> bool:
    """Whether ``output`` is a local directory (a path or a ``file://`` URI)."""
    return "://" not in output or output.startswith("file://")


def local_root(output: str) -> Path:
    return Path(output.removeprefix("file://"))


_held: dict[str, list[Any]] = {}  # lock path -> [fd, depth, pid]
_guard = threading.Lock()


def _holder_record(command: str | None) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "command": command or " ".join(sys.argv)[:500],
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def read_holder(output: str) -> dict[str, Any]:
    """The holder record in the output's lock file (``{}`` when absent or unreadable).

    The record stays in the file after its holder exits; it names the current
    holder only while the lock is held (see :func:`output_lock`)."""
    try:
        return json.loads((local_root(output) / LOCK_FILE).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def holds_lock(output: str) -> bool:
    """Whether this process holds the output's lock."""
    if not is_local(output):
        entry = _held.get(_lock_uri(output))
        return bool(entry) and entry[2] == os.getpid()
    entry = _held.get(str((local_root(output) / LOCK_FILE).resolve()))
    return bool(entry) and entry[2] == os.getpid()


def _reenter(key: str) -> bool:
    """Count one more holder if this process already holds the lock ``key``."""
    with _guard:
        entry = _held.get(key)
        if entry and entry[2] == os.getpid():
            entry[1] += 1
            return True
    return False


def _leave(key: str) -> None:
    """Undo one :func:`_reenter`."""
    with _guard:
        _held[key][1] -= 1


@contextmanager
def output_lock(
    output: str, *, command: str | None = None, storage_options: dict[str, str] | None = None, wait_s: float = 0.0
) -> Iterator[None]:
    """Hold the exclusive writer lock of ``output`` for the ``with`` block,
    waiting up to ``wait_s`` seconds (polled every 0.5 s) while another
    process holds it; ``0`` refuses at once.

    Raises:
        OutputLockedError: another process held the lock for all of ``wait_s``.
        LeRobotLanceError: as :func:`acquire_output_lock`.
    """
    deadline = time.monotonic() + max(0.0, wait_s)
    with ExitStack() as stack:
        while True:
            try:
                stack.enter_context(acquire_output_lock(output, command=command, storage_options=storage_options))
                break
            except OutputLockedError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        yield


@contextmanager
def acquire_output_lock(output: str, *, command: str | None = None, storage_options: dict[str, str] | None = None) -> Iterator[None]:
    """Hold the exclusive writer lock of ``output`` for the ``with`` block.

    Creates the output root if needed. Re-entrant within the process. An
    ``s3://`` output gets the lock object described in the module docstring
    (``storage_options``: see :mod:`lerobot_lance.object_store`); other
    object stores no lock.

    Raises:
        OutputLockedError: another live process holds the lock (exits at once,
            naming the holder: pid, host, command, since when).
        LeRobotLanceError: the output root or the lock file cannot be created
            (a path through a file, no permission), with the OS error; for
            ``s3://``, boto3 is missing or the bucket cannot be reached.
    """
    if not is_local(output):
        from lerobot_lance.object_store import scheme

        if scheme(output) not in ("s3", "s3a"):
            yield
            return
        with _object_store_lock(output, command, storage_options):
            yield
        return
    root = local_root(output)
    try:
        root.mkdir(parents=True, exist_ok=True)
        path = str((root / LOCK_FILE).resolve())
    except OSError as err:
        raise LeRobotLanceError(f"{output}: cannot create the output root: {err}") from None
    if _reenter(path):
        try:
            yield
        finally:
            _leave(path)
        return
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise LeRobotLanceError(f"{output}: cannot create the writer lock {LOCK_FILE}: {err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise OutputLockedError(output, read_holder(output)) from None
    record = json.dumps(_holder_record(command)).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, record, 0)
    with _guard:
        _held[path] = [fd, 1, os.getpid()]
    try:
        yield
    finally:
        with _guard:
            entry = _held[path]
            entry[1] -= 1
            done = entry[1] == 0
            if done:
                del _held[path]
        if done:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


# --- s3:// outputs: a lock object created with If-None-Match ------------------------------
def _lock_uri(output: str) -> str:
    return output.rstrip("/") + "/" + LOCK_FILE


def _lock_ttl() -> float:
    try:
        return max(1.0, float(os.environ.get(LOCK_TTL_ENV, DEFAULT_LOCK_TTL_S)))
    except ValueError:
        return DEFAULT_LOCK_TTL_S


def s3_client(storage_options: dict[str, str] | None = None) -> Any:
    """A boto3 S3 client with the endpoint, region and keys of
    :func:`lerobot_lance.object_store.s3_settings` (``None`` entries left to
    botocore's own chain).

    Raises:
        LeRobotLanceError: boto3 is not installed.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise LeRobotLanceError(
            "s3:// outputs need boto3 for their writer lock (a conditional PutObject); pip install 'lerobot-lance[s3]'"
        ) from None
    from lerobot_lance.object_store import s3_settings

    s = s3_settings(storage_options)
    kw: dict[str, Any] = {"config": Config(retries={"max_attempts": 3, "mode": "standard"})}
    if s["endpoint"]:
        ep = s["endpoint"]
        kw["endpoint_url"] = ep if "://" in ep else ("http://" if s["allow_http"] else "https://") + ep
    if s["region"]:
        kw["region_name"] = s["region"]
    if s["access_key"] and s["secret_key"]:
        kw.update(aws_access_key_id=s["access_key"], aws_secret_access_key=s["secret_key"])
        if s["session_token"]:
            kw["aws_session_token"] = s["session_token"]
    return boto3.client("s3", **kw)


def _error_code(err: Exception) -> tuple[str, int]:
    resp = getattr(err, "response", None) or {}
    return str(resp.get("Error", {}).get("Code", "")), int(resp.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _conflict(err: Exception) -> bool:
    """412 Precondition Failed (the condition did not hold) or 409
    ConditionalRequestConflict (a concurrent conditional write won)."""
    code, status = _error_code(err)
    return status in (409, 412) or code in ("PreconditionFailed", "ConditionalRequestConflict")


def read_object_holder(
    output: str, storage_options: dict[str, str] | None = None, client: Any = None
) -> tuple[dict[str, Any], str | None]:
    """The holder record of an ``s3://`` output's lock object and its ETag (``({}, None)`` when there is none)."""
    from lerobot_lance.object_store import bucket_and_key

    client = client or s3_client(storage_options)
    bucket, key = bucket_and_key(_lock_uri(output))
    try:
        obj = client.get_object(Bucket=bucket, Key=key)
    except client.exceptions.NoSuchKey:
        return {}, None
    try:
        return json.loads(obj["Body"].read() or b"{}"), obj["ETag"]
    except ValueError:
        return {}, obj["ETag"]


@contextmanager
def _object_store_lock(output: str, command: str | None, storage_options: dict[str, str] | None) -> Iterator[None]:
    from botocore.exceptions import BotoCoreError, ClientError

    from lerobot_lance.object_store import bucket_and_key

    uri = _lock_uri(output)
    if _reenter(uri):
        try:
            yield
        finally:
            _leave(uri)
        return
    client = s3_client(storage_options)
    bucket, key = bucket_and_key(uri)
    ttl = _lock_ttl()
    base = _holder_record(command)

    def body() -> bytes:
        expires = datetime.fromtimestamp(datetime.now(timezone.utc).timestamp() + ttl, timezone.utc)
        return json.dumps({**base, "expires_at": expires.isoformat(timespec="seconds"), "lease_s": ttl}).encode()

    try:
        try:
            etag = client.put_object(Bucket=bucket, Key=key, Body=body(), IfNoneMatch="*")["ETag"]
        except ClientError as err:
            if not _conflict(err):
                raise
            holder, stale_etag = read_object_holder(output, storage_options)
            if stale_etag is None or not _expired(holder):
                raise OutputLockedError(output, holder) from None
            try:  # the holder died: its lease ran out; take the lock over (one racer wins)
                etag = client.put_object(Bucket=bucket, Key=key, Body=body(), IfMatch=stale_etag)["ETag"]
            except ClientError as err2:
                if _conflict(err2):
                    raise OutputLockedError(output, read_object_holder(output, storage_options)[0]) from None
                raise
    except (ClientError, BotoCoreError) as err:
        raise LeRobotLanceError(f"{output}: cannot create the writer lock {LOCK_FILE} on the object store: {err}") from None
    state: dict[str, Any] = {"etag": etag, "lost": False, "guard": threading.Lock(), "client": client, "bucket": bucket, "key": key}
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl / 3):
            with state["guard"]:
                try:
                    state["etag"] = client.put_object(Bucket=bucket, Key=key, Body=body(), IfMatch=state["etag"])["ETag"]
                except ClientError as err:
                    if _conflict(err):
                        state["lost"] = True  # taken over: our lease had expired (a pause longer than the lease)
                        return
                except BotoCoreError:
                    pass  # transient: the next renewal retries within the lease

    thread = threading.Thread(target=renew, name=f"lerobot-lance-lock-renew:{output}", daemon=True)
    thread.start()
    with _guard:
        _held[uri] = [state, 1, os.getpid()]
    try:
        yield
    finally:
        with _guard:
            entry = _held[uri]
            entry[1] -= 1
            done = entry[1] == 0
            if done:
                del _held[uri]
        if done:
            stop.set()
            thread.join(timeout=10)
            if not state["lost"]:
                try:
                    client.delete_object(Bucket=bucket, Key=key, IfMatch=state["etag"])
                except (ClientError, BotoCoreError):
                    pass  # taken over meanwhile, or unreachable: the lease expires on its own


def _expired(holder: dict[str, Any]) -> bool:
    """Whether a lock object's lease has run out (a record without a lease never does)."""
    try:
        expires = datetime.fromisoformat(str(holder["expires_at"]))
    except (KeyError, ValueError):
        return False
    return datetime.now(timezone.utc) > expires


def ensure_lock_held(output: str) -> None:
    """Before a publish commits: check that this process still holds the
    output's lock. A local ``flock`` cannot be lost; an ``s3://`` lock object
    can, when the holder was paused past its lease and another writer took it
    over: this reads the object's ETag and compares it with the one this
    process wrote last (one ``HeadObject``).

    Raises:
        OutputLockedError: the lock object is another writer's now (nothing
            of this conversion is committed).
    """
    if is_local(output):
        return
    entry = _held.get(_lock_uri(output))
    if not entry or entry[2] != os.getpid() or not isinstance(entry[0], dict):
        return  # not an s3 lock of this process (gs://, az://: no lock)
    state = entry[0]
    with state["guard"]:
        if not state["lost"]:
            try:
                head = state["client"].head_object(Bucket=state["bucket"], Key=state["key"])
                state["lost"] = head["ETag"] != state["etag"]
            except Exception as err:  # noqa: BLE001 - gone (404) counts as lost; other errors leave it to Lance's commit check
                state["lost"] = _error_code(err)[1] == 404
        lost = state["lost"]
    if lost:
        holder, _ = read_object_holder(output, client=state["client"])
        raise OutputLockedError(output, holder)
