"""Source mp4s with trailing bytes go to ``videos.lance`` verbatim, read once (issue 8, item 17).

The memory bound itself is a benchmark figure (``/usr/bin/time -v`` on a
shard padded with 500 MiB; see the closing note of issue 8), not a timed
test: here the padded shard's blob must equal the file byte for byte, its
sha256 and size must be the file's, and the blob array must use the buffer
the file was read into (no second copy).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from lerobot_lance import blobs
from tests.faults import copy_sample, v3_shard, write_bytes

PAD = 3 << 20  # trailing bytes after the shard's mp4 boxes


def test_blob_helpers(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40_000 + b"tail"
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    assert blobs.sha256_file(p, chunk=4096) == want
    buf = blobs.read_file_buffer(p)
    assert buf.size == len(data) and blobs.sha256_buffer(buf, chunk=1000) == want
    arr = blobs.blob_array(buf)
    assert arr.type == pa.large_binary() and len(arr) == 1 and arr[0].as_py() == data
    assert arr.buffers()[2].address == buf.address  # the value is the buffer read, not a copy


def test_padded_shard_is_stored_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lerobot_lance.conversion as c
    import lerobot_lance.episode_stages as stages
    from lerobot_lance.layouts import card_writer

    root = copy_sample("g1_v30", tmp_path / "src")
    shard = root / v3_shard(0)
    padded = shard.read_bytes() + bytes(range(256)) * (PAD // 256)
    write_bytes(shard, padded)

    conv = c.Conversion.at(tmp_path / "out")
    c.resolve_source(conv, str(root))
    cov = stages.Coverage(conv.meta.episode_indices, {})
    monkeypatch.setattr(stages, "publishable_episodes", lambda conv: cov)  # only the videos stage is under test
    pending = card_writer.write_videos_table(conv)
    from lance.fragment import FragmentMetadata

    frags = [FragmentMetadata.from_json(f) for f in pending.fragments]
    # a first version is written under the output's hidden pending folder (write_uri), moved at publish
    ds = lance.LanceDataset.commit(pending.write_uri or pending.uri, lance.LanceOperation.Overwrite(pending.commit_schema(), frags))
    rows = ds.to_table(columns=["relative_path", "file_size_bytes", "sha256"]).to_pylist()
    assert [r["relative_path"] for r in rows] == [v3_shard(i) for i in range(3)]
    for i, r in enumerate(rows):
        source = (root / r["relative_path"]).read_bytes()
        assert r["file_size_bytes"] == len(source) and r["sha256"] == hashlib.sha256(source).hexdigest()
        assert ds.take_blobs("video_blob", indices=[i])[0].readall() == source
    assert rows[0]["file_size_bytes"] == len(padded)
