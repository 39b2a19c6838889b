"""``blobs.read_files_hashed``: the table writers' read-ahead of source mp4s.

Real files of the shared samples: every buffer and digest equals a plain read
and ``hashlib`` of the same file, in the caller's order; a missing file fails
at its own position (the files before it were yielded); closing early stops.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest

from lerobot_lance import blobs
from tests.conftest import SHARED


def _mp4s() -> list[Path]:
    files = sorted((SHARED / "g1_v21" / "videos").rglob("*.mp4")) + sorted((SHARED / "g1_multicam_v30" / "videos").rglob("*.mp4"))
    assert len(files) >= 8
    return files


def test_each_buffer_and_digest_equal_the_file_in_order() -> None:
    files = _mp4s()
    got = list(blobs.read_files_hashed(files))
    assert len(got) == len(files)
    for path, (buf, digest) in zip(files, got):
        data = path.read_bytes()
        assert buf.to_pybytes() == data
        assert digest == hashlib.sha256(data).hexdigest()
        assert blobs.file_sha256(path) == digest  # remembered for the output checks


def test_a_missing_file_fails_at_its_position(tmp_path: Path) -> None:
    files = []
    for i, src in enumerate(_mp4s()[:3]):
        files.append(tmp_path / f"{i}.mp4")
        shutil.copy(src, files[-1])
    files.insert(2, tmp_path / "missing.mp4")
    it = blobs.read_files_hashed(files)
    assert next(it)[0].size == files[0].stat().st_size
    assert next(it)[0].size == files[1].stat().st_size
    with pytest.raises(OSError, match="missing.mp4"):
        next(it)


def test_closing_early_stops_the_read_ahead() -> None:
    files = _mp4s()
    it = blobs.read_files_hashed(files)
    next(it)
    it.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("lerobot-lance-read-ahead")]
    with pytest.raises(StopIteration):
        next(it)


def test_at_most_two_files_live_while_the_caller_keeps_the_previous_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A consumer like Lance's writer (it keeps file *i* while it pulls *i + 1*):
    no read starts while two buffers are still alive, and every file still comes."""
    import time
    import weakref

    live = 0
    most_at_read = 0
    lock = threading.Lock()
    original = blobs.read_file_buffer

    def gone() -> None:
        nonlocal live
        with lock:
            live -= 1

    def counted(path, *args):  # type: ignore[no-untyped-def]
        nonlocal live, most_at_read
        with lock:
            most_at_read = max(most_at_read, live)
            live += 1
        buf = original(path, *args)
        weakref.finalize(buf, gone)
        return buf

    monkeypatch.setattr(blobs, "read_file_buffer", counted)
    files = _mp4s()
    previous = None
    sizes = []
    for buf, _digest in blobs.read_files_hashed(files):
        time.sleep(0.02)  # "writing": the read-ahead has time to start
        sizes.append(buf.size)
        previous, buf = buf, None  # noqa: F841 - kept like Lance keeps the batch it writes
    del previous
    assert sizes == [f.stat().st_size for f in files]
    assert most_at_read <= 1, f"a read started with {most_at_read} file buffers alive"
