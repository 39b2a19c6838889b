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

Object-store outputs (``s3://``, ``gs://``, ``az://``) get no lock here; see
``deploy/README.md`` for what Lance's commit protocol guarantees there.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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
        return False
    entry = _held.get(str((local_root(output) / LOCK_FILE).resolve()))
    return bool(entry) and entry[2] == os.getpid()


@contextmanager
def output_lock(output: str, *, command: str | None = None) -> Iterator[None]:
    """Hold the exclusive writer lock of ``output`` for the ``with`` block.

    Creates the output root if needed. Re-entrant within the process.

    Raises:
        OutputLockedError: another live process holds the lock (exits at once,
            naming the holder: pid, host, command, since when).
        LeRobotLanceError: the output root or the lock file cannot be created
            (a path through a file, no permission), with the OS error.
    """
    if not is_local(output):
        yield
        return
    root = local_root(output)
    try:
        root.mkdir(parents=True, exist_ok=True)
        path = str((root / LOCK_FILE).resolve())
    except OSError as err:
        raise LeRobotLanceError(f"{output}: cannot create the output root: {err}") from None
    with _guard:
        entry = _held.get(path)
        if entry and entry[2] == os.getpid():
            entry[1] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[path][1] -= 1
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
