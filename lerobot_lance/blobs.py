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
from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path

import pyarrow as pa

#: Bytes hashed per step.
HASH_CHUNK = 8 << 20


def sha256_file(path: str | PathLike[str], chunk: int = HASH_CHUNK) -> str:
    """Hex sha256 of a file, read ``chunk`` bytes at a time (memory: one chunk)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_buffer(buffer: pa.Buffer, chunk: int = HASH_CHUNK) -> str:
    """Hex sha256 of an Arrow buffer, hashed in views of ``chunk`` bytes (no copy)."""
    h = hashlib.sha256()
    view = memoryview(buffer)
    for start in range(0, len(view), chunk):
        h.update(view[start : start + chunk])
    return h.hexdigest()


def read_file_buffer(path: str | PathLike[str]) -> pa.Buffer:
    """The whole file in one Arrow-allocated buffer (the only copy in memory)."""
    p = Path(path)
    size = p.stat().st_size
    with pa.OSFile(str(p), "rb") as f:
        buf = f.read_buffer(size)
    if buf.size != size:
        raise OSError(f"{p}: read {buf.size} of {size} bytes (file changed while read)")
    return buf


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


def read_file_hashed(path: str | PathLike[str]) -> tuple[pa.Buffer, str]:
    """The whole file in one buffer (:func:`read_file_buffer`) and its hex
    sha256 (:func:`sha256_buffer`), remembered for :func:`file_sha256` when
    the file's version (:func:`_version_key`) is the same before the read and
    after the hash.

    Raises:
        OSError: as :func:`read_file_buffer`.
    """
    before = _version_key(path)
    buf = read_file_buffer(path)
    digest = sha256_buffer(buf)
    if before is not None and before[3] == buf.size and _version_key(path) == before:
        if len(_DIGESTS) >= _DIGESTS_MAX:
            _DIGESTS.clear()
        _DIGESTS[before] = digest
    return buf, digest


def read_files_hashed(paths: Iterable[str | PathLike[str]]) -> Iterator[tuple[pa.Buffer, str]]:
    """:func:`read_file_hashed` of each path, in order, with the next file read
    and hashed in a background thread while the caller writes the current one.

    Arrow's file read and ``hashlib`` release the GIL, so the sha256 of file
    *i + 1* overlaps Lance writing file *i* (on the 300-episode scale-up the
    hash, about 2.4 s for 1.06 GB here, was as long as the blob write itself).
    Memory: the file the caller holds plus the one read ahead. Closing the
    generator early waits for the read in flight, then stops.

    Raises:
        OSError: as :func:`read_file_buffer`, when the caller reaches that file.
    """
    from concurrent.futures import ThreadPoolExecutor

    it = iter(paths)
    with ThreadPoolExecutor(1, thread_name_prefix="lerobot-lance-read-ahead") as pool:
        first = next(it, None)
        ahead = pool.submit(read_file_hashed, first) if first is not None else None
        while ahead is not None:
            current = ahead
            nxt = next(it, None)
            ahead = pool.submit(read_file_hashed, nxt) if nxt is not None else None
            try:
                yield current.result()
            except GeneratorExit:
                if ahead is not None:
                    ahead.cancel()
                raise
            del current


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
