"""Source files as blob values, with one copy of a file in memory at most.

pylance 14.0.2 takes a blob column's value from the Arrow batch it writes
(``write_fragments`` of a ``RecordBatchReader``): a ``large_binary`` value
must be in memory. Its ``lance.blob.Blob.from_uri`` writes a *reference*
to an external file (the table would point at the source instead of
holding its bytes), and its streaming ``DedicatedBlobWriter`` belongs to the
low-level ``LanceFileSession`` API, which ``write_fragments`` does not
expose. So a file is read once, straight into an Arrow buffer that the
batch uses without copying (reading into ``bytes`` and building the array
from it held two copies: 4.6 GB RSS for a shard with 2 GB of trailing
bytes); its sha256 is computed over that buffer, in bounded chunks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO
from os import PathLike
from pathlib import Path

import pyarrow as pa

#: Bytes hashed per step.
HASH_CHUNK = 8 << 20


def sha256_stream(f: BinaryIO, chunk: int = HASH_CHUNK) -> tuple[str, int]:
    """Hex sha256 of what a binary file object holds from its position to its
    end (an open file, a Lance ``BlobFile``), read ``chunk`` bytes at a time
    (memory: one chunk), and the number of bytes read."""
    h = hashlib.sha256()
    size = 0
    while block := f.read(chunk):
        h.update(block)
        size += len(block)
    return h.hexdigest(), size


def sha256_file(path: str | PathLike[str], chunk: int = HASH_CHUNK) -> str:
    """Hex sha256 of a file, read ``chunk`` bytes at a time (memory: one chunk)."""
    with open(path, "rb") as f:
        return sha256_stream(f, chunk)[0]


def sha256_buffer(buffer: pa.Buffer, chunk: int = HASH_CHUNK) -> str:
    """Hex sha256 of an Arrow buffer, hashed in views of ``chunk`` bytes (no copy)."""
    h = hashlib.sha256()
    view = memoryview(buffer)
    for start in range(0, len(view), chunk):
        h.update(view[start : start + chunk])
    return h.hexdigest()


def read_file_buffer(
    path: str | PathLike[str],
    on_release: Callable[[], None] | None = None,
    allocate: Callable[[int], Any] | None = None,
    *,
    prefix: bytes = b"",
    byte_range: tuple[int, int] | None = None,
) -> pa.Buffer:
    """The whole file in one buffer (the only copy in memory), ``uint8`` bytes
    of length ``stat().st_size``; or ``prefix`` followed by ``byte_range``
    (offset, length in bytes) of the file (a segment kept in its shard:
    :func:`lerobot_lance.episode_stages.segment_buffer`).

    The memory comes from the C library's ``malloc`` (a NumPy array wrapped
    by :func:`pyarrow.py_buffer`, not Arrow's mimalloc pool): glibc serves an
    allocation this large (above its 32 MB mmap threshold) with its own
    ``mmap`` and unmaps it as soon as the last reference goes, where
    mimalloc kept freed ~209 MB shards mapped. On the 300-episode v3.0
    benchmark (six ~209 MB shards) the Arrow pool still held 217 MB after the
    ``videos_table`` step, and a run's peak varied by ~200 MB with it.

    Args:
        on_release: called once, from whichever thread drops the last
            reference to the memory (the caller, or Lance releasing the
            batch it wrote), right after the memory is freed; at once when
            this function fails before allocating it.
        allocate: gives a writable one-dimensional ``uint8`` NumPy array of
            the size asked for (default ``numpy.empty``);
            :func:`read_files_hashed` passes views of memory it reuses.

    Raises:
        OSError: the file cannot be read, or it changed size while read (or
            ends inside ``byte_range``).
    """
    import weakref

    import numpy as np

    p = Path(path)
    try:
        offset, size = byte_range if byte_range is not None else (0, p.stat().st_size)
        head = len(prefix)
        mem = allocate(head + size) if allocate is not None else np.empty(head + size, dtype=np.uint8)  # not zero-filled: every byte is set below
    except BaseException:
        if on_release is not None:
            on_release()
        raise
    if on_release is not None:
        weakref.finalize(mem, on_release)
    view = memoryview(mem)
    view[:head] = prefix
    got = 0
    with open(p, "rb", buffering=0) as f:
        if offset:
            f.seek(offset)
        while got < size:
            n = f.readinto(view[head + got :])
            if not n:
                break
            got += n
    del view
    if got != size:
        raise OSError(f"{p}: read {got} of {size} bytes" + (f" from byte {offset}" if byte_range else " (file changed while read)"))
    return pa.py_buffer(mem)


def blob_array(buffer: pa.Buffer) -> pa.LargeBinaryArray:
    """A one-value ``large_binary`` array over ``buffer``, without copying it."""
    offsets = pa.array([0, buffer.size], type=pa.int64()).buffers()[1]
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), 1, [None, offsets, buffer])


# --- digests of files read whole in this process ------------------------------------
#: sha256 of files read whole by :func:`read_file_hashed`, by file version
#: (:func:`_version_key`): the videos writers hash each source file as they
#: store it, and the output checks compare the source's current sha256 with
#: the blob's; a file whose version is unchanged holds the bytes that were
#: hashed, so :func:`file_sha256` need not read it again.
_DIGESTS: dict[tuple[str, int, int, int, int, int], str] = {}
_DIGESTS_MAX = 20_000


def _version_key(path: str | PathLike[str]) -> tuple[str, int, int, int, int, int] | None:
    """(real path, device, inode, size, mtime ns, ctime ns) of a file, ``None``
    when it cannot be stat'ed. Any write to the file changes its ctime (which,
    unlike the mtime, cannot be set back), so an equal key means the same
    bytes for every change made through the file system (POSIX ``stat``)."""
    import os

    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_file_hashed(
    path: str | PathLike[str],
    on_release: Callable[[], None] | None = None,
    allocate: Callable[[int], Any] | None = None,
) -> tuple[pa.Buffer, str]:
    """The whole file in one buffer (:func:`read_file_buffer`, ``on_release``
    and ``allocate`` passed on) and its hex sha256 (:func:`sha256_buffer`), remembered for
    :func:`file_sha256` when the file's version (:func:`_version_key`) is the
    same before the read and after the hash.

    Raises:
        OSError: as :func:`read_file_buffer`.
    """
    before = _version_key(path)
    buf = read_file_buffer(path, on_release, allocate)
    digest = sha256_buffer(buf)
    if before is not None and before[3] == buf.size and _version_key(path) == before:
        if len(_DIGESTS) >= _DIGESTS_MAX:
            _DIGESTS.clear()
        _DIGESTS[before] = digest
    return buf, digest


def release_freed_memory() -> None:
    """Hand memory that earlier steps freed back to the OS before a step that
    holds whole files: glibc's ``malloc_trim(0)`` (a no-op elsewhere: the call
    is skipped when the C library has none) and Arrow's default pool
    ``release_unused()``. On the 300-episode v3.0 benchmark, before the
    ``videos_table`` step: RSS 473 -> 419 MB, in ~20 ms."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        trim = None
    if trim is not None:
        trim(0)
    pa.default_memory_pool().release_unused()


#: Source files whose buffers :func:`read_files_hashed` lets exist at once by default.
MAX_FILES_HELD = 2


def read_files_hashed(paths: Iterable[str | PathLike[str]], max_held: int = MAX_FILES_HELD) -> Iterator[tuple[pa.Buffer, str]]:
    """:func:`read_file_hashed` of each path, in order, with the next file read
    and hashed in a background thread while the caller writes the current one.

    Arrow's file read and ``hashlib`` release the GIL, so the sha256 of file
    *i + 1* overlaps Lance writing file *i* (on the 300-episode scale-up the
    hash, about 2.4 s for 1.06 GB here, was as long as the blob write itself).

    Memory: at most ``max_held`` file buffers exist at once, counted until
    their memory is freed (not until the caller drops its reference). Lance
    frees the batch of file *i* just after it has pulled file *i + 1*, so an
    unbounded read-ahead of *i + 2* could start first: three ~209 MB shards
    at once (2 of the 5 read-aheads in one traced run of the 300-episode
    v3.0 benchmark). The
    read of a file the caller is waiting for never waits (a caller that keeps
    every buffer, like ``list()``, still gets them all). A freed buffer's
    memory is reused for a later file (up to ``max_held`` kept, all of it
    unmapped when the generator ends): fresh ``malloc`` memory for every
    file cost 0.5-1.2 s more system CPU for the six shards (page faults),
    which Arrow's pool avoided by keeping the pages, and the RSS with them.
    Closing the generator early waits for the read in flight, then stops.

    Raises:
        OSError: as :func:`read_file_buffer`, when the caller reaches that file.
    """
    import threading
    import weakref
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    cond = threading.Condition()
    spare: list[Any] = []  # memory of freed buffers, pages already faulted in
    held = 0
    wanted = -1  # position of the file the caller waits for
    closing = False

    def freed() -> None:
        nonlocal held
        with cond:
            held -= 1
            cond.notify_all()

    def recycle(memory: Any) -> None:
        with cond:
            if not closing and len(spare) < max_held:
                spare.append(memory)

    def allocate(size: int) -> Any:
        with cond:
            fits = [a for a in spare if a.size >= size]
            memory = min(fits, key=lambda a: a.size) if fits else None
            if memory is not None:
                spare.remove(memory)
            elif spare:
                spare.pop()  # too small for this file: unmapped, not kept beside the new one
        if memory is None:
            # room for a slightly larger next shard (v3.0 shards of one camera
            # differ by a few MB); pages never written are never resident
            memory = np.empty(size + size // 8, dtype=np.uint8)
        view = memory[:size]
        weakref.finalize(view, recycle, memory)  # the view dies when Lance frees the batch
        return view

    def read(k: int, path: str | PathLike[str]) -> tuple[pa.Buffer, str] | None:
        nonlocal held
        with cond:
            cond.wait_for(lambda: held < max_held or wanted >= k or closing)
            if closing:
                return None
            held += 1
        return read_file_hashed(path, freed, allocate)

    it = iter(paths)
    with ThreadPoolExecutor(1, thread_name_prefix="lerobot-lance-read-ahead") as pool:
        k = 0
        first = next(it, None)
        ahead = pool.submit(read, k, first) if first is not None else None
        try:
            while ahead is not None:
                current = ahead
                nxt = next(it, None)
                ahead = pool.submit(read, k + 1, nxt) if nxt is not None else None
                with cond:
                    wanted = k
                    cond.notify_all()
                result = current.result()
                del current
                assert result is not None
                yield result
                del result
                k += 1
        finally:
            with cond:
                closing = True
                spare.clear()
                cond.notify_all()


def file_sha256(path: str | PathLike[str]) -> str:
    """Hex sha256 of the file's current bytes: remembered from
    :func:`read_file_hashed` when the file is the version it read, else
    :func:`sha256_file` (read again).

    Raises:
        OSError: the file cannot be read.
    """
    key = _version_key(path)
    hit = _DIGESTS.get(key) if key is not None else None  # type: ignore[arg-type]
    return hit if hit is not None else sha256_file(path)
