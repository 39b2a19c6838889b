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
