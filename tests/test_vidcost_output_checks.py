"""The output checks' sha256 and byte-index rules still catch what they catch
when the source's sha256 comes from the hash the videos writer took as it
stored the file (``blobs.read_file_hashed`` / ``blobs.file_sha256``) and the
byte index of a blob equal to its source comes from the source's demux.

One v3.0 sample (``g1_v30``, 3 shards) converted once per layout into a
module-scoped copy whose ``file-001.mp4`` is a real copy (not a hard link to
the shared sample), so it can be changed in place. Each test works on a copy
of an output.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import lance
import pytest

from lerobot_lance import blobs
from lerobot_lance.layouts.lerobot_checks import check_lerobot_output
from lerobot_lance.quality import check_output
from lerobot_lance.readers import read_dataset_meta
from tests.faults import SHARED, copy_sample

SHARD = "videos/observation.images.cam_high/chunk-000/file-001.mp4"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``source`` (a g1_v30 copy), and its ``lerobot`` and ``card`` outputs."""
    from lerobot_lance.api import convert

    base = tmp_path_factory.mktemp("vidcost")
    src = copy_sample("g1_v30", base / "src")
    (src / SHARD).unlink()
    shutil.copyfile(SHARED / "g1_v30" / SHARD, src / SHARD)  # own inode: safe to change in place
    convert(str(src), str(base / "lerobot"), layout="lerobot")
    convert(str(src), str(base / "card"))
    return {"source": src, "lerobot": base / "lerobot", "card": base / "card"}


def _flip_in_place(path: Path, offset: int) -> None:
    """Flip one byte of ``path`` in place and set its times back: same inode,
    size and mtime, only the ctime tells."""
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns and path.stat().st_size == st.st_size


def _corrupt_blob(table: Path, source_file: Path) -> None:
    """Flip one byte inside the stored copy of ``source_file`` (its middle,
    in the ``mdat``) in the files under ``table``'s ``data/`` (Lance keeps a
    large blob in a ``.blob`` file of its own)."""
    data = source_file.read_bytes()
    mid = len(data) // 2
    needle = data[mid : mid + 64]
    for f in sorted(p for p in (table / "data").rglob("*") if p.is_file()):  # data files and dedicated .blob files
        raw = bytearray(f.read_bytes())
        at = raw.find(needle)
        if at >= 0:
            raw[at] ^= 0xFF
            f.write_bytes(bytes(raw))
            return
    raise AssertionError(f"bytes of {source_file.name} not found in {table}")


def _copy_output(out: Path, tmp_path: Path) -> Path:
    dst = tmp_path / out.name
    shutil.copytree(out, dst)
    return dst


def _mdat_offset(path: Path) -> int:
    return path.stat().st_size // 2


def _by_name(outcomes):
    return {o.name: o for o in outcomes}


def _restore_source(src: Path) -> None:
    (src / SHARD).unlink()
    shutil.copyfile(SHARED / "g1_v30" / SHARD, src / SHARD)


def test_writer_remembers_the_hash_of_the_bytes_it_stored(outputs: dict[str, Path]) -> None:
    path = outputs["source"] / SHARD
    assert blobs.file_sha256(path) == blobs.sha256_file(SHARED / "g1_v30" / SHARD)
    for layout in ("lerobot", "card"):
        t = lance.dataset(str(outputs[layout] / "videos.lance")).to_table(columns=["relative_path", "sha256"]).to_pylist()
        got = {r["relative_path"]: r["sha256"] for r in t}
        assert got[SHARD] == blobs.sha256_file(path), layout


def test_lerobot_checks_catch_a_source_changed_in_place_with_its_mtime_set_back(outputs: dict[str, Path], tmp_path: Path) -> None:
    src = outputs["source"]
    out = outputs["lerobot"]
    assert all(o.passed for o in check_lerobot_output(out, src)), "a fresh output passes"
    try:
        _flip_in_place(src / SHARD, _mdat_offset(src / SHARD))
        res = _by_name(check_lerobot_output(out, src))
        sha = res["reader_videos_sha256"]
        assert not sha.passed and sha.n_offenders == 1 and "file-001.mp4" in sha.offenders[0].file
        # the blob no longer equals the source: it is demuxed itself, and its index still holds
        assert res["reader_byte_index"].passed, res["reader_byte_index"].message
    finally:
        _restore_source(src)
    assert all(o.passed for o in check_lerobot_output(out, src))


def test_lerobot_checks_catch_a_corrupted_blob(outputs: dict[str, Path], tmp_path: Path) -> None:
    src = outputs["source"]
    out = _copy_output(outputs["lerobot"], tmp_path)
    _corrupt_blob(out / "videos.lance", src / SHARD)
    res = _by_name(check_lerobot_output(out, src))
    sha = res["reader_videos_sha256"]
    assert not sha.passed and sha.n_offenders == 1 and "file-001.mp4" in sha.offenders[0].file
    assert f"blob {blobs.sha256_file(src / SHARD)}" not in sha.offenders[0].found


def test_lerobot_checks_catch_a_wrong_byte_index_of_a_blob_equal_to_its_source(outputs: dict[str, Path], tmp_path: Path) -> None:
    """The byte index of a blob whose bytes equal its source's is taken from the
    source's demux: a row listing one keyframe too few is still caught."""
    src = outputs["source"]
    out = _copy_output(outputs["lerobot"], tmp_path)
    ds = lance.dataset(str(out / "videos.lance"))
    row = ds.to_table(columns=["kf_positions", "kf_indices"], filter="file_index = 2").to_pylist()[0]
    pos = ", ".join(f"CAST({p} AS BIGINT)" for p in row["kf_positions"][:-1])
    idx = ", ".join(f"CAST({p} AS BIGINT)" for p in row["kf_indices"][:-1])
    ds.update({"kf_positions": f"make_array({pos})", "kf_indices": f"make_array({idx})"}, where="file_index = 2")
    res = _by_name(check_lerobot_output(out, src))
    bi = res["reader_byte_index"]
    assert not bi.passed and bi.n_offenders == 1 and "file-002.mp4" in bi.offenders[0].file
    assert bi.offenders[0].expected == f"{len(row['kf_positions'])} keyframes"
    assert res["reader_videos_sha256"].passed


def test_card_checks_catch_a_source_changed_in_place_and_a_corrupted_blob(outputs: dict[str, Path], tmp_path: Path) -> None:
    src = outputs["source"]
    meta = read_dataset_meta(src)
    tag = json.loads((outputs["card"] / "meta" / "conversion.json").read_text())["tag"]
    assert all(o.passed for o in check_output(outputs["card"], meta, src, tag=tag))
    try:
        _flip_in_place(src / SHARD, _mdat_offset(src / SHARD))
        sha = _by_name(check_output(outputs["card"], meta, src, tag=tag))["videos_sha256"]
        assert not sha.passed and sha.n_offenders == 1 and "file-001.mp4" in sha.offenders[0].file
    finally:
        _restore_source(src)
    out = _copy_output(outputs["card"], tmp_path)
    _corrupt_blob(out / "videos.lance", src / SHARD)
    sha = _by_name(check_output(out, meta, src, tag=tag))["videos_sha256"]
    assert not sha.passed and sha.n_offenders == 1 and "file-001.mp4" in sha.offenders[0].file


@pytest.mark.parametrize("layout", ["lerobot", "card"])
def test_blobs_checked_on_threads_list_offenders_in_row_order(outputs: dict[str, Path], tmp_path: Path, layout: str) -> None:
    """The blobs are read and hashed ``threads`` at a time: two corrupted blobs
    (rows of ``file-000`` and ``file-002``) are each named once, in the
    ``videos`` rows' order, the same with 1 thread as with 3."""
    src = outputs["source"]
    out = _copy_output(outputs[layout], tmp_path)
    shards = [SHARD.replace("file-001", f"file-00{i}") for i in (0, 2)]
    for rel in shards:
        _corrupt_blob(out / "videos.lance", src / rel)
    order = lance.dataset(str(out / "videos.lance")).to_table(columns=["relative_path"])["relative_path"].to_pylist()
    want = sorted(shards, key=order.index)
    if layout == "lerobot":
        runs = [_by_name(check_lerobot_output(out, src, threads=t))["reader_videos_sha256"] for t in (1, 3)]
    else:
        meta = read_dataset_meta(src)
        runs = [_by_name(check_output(out, meta, src, threads=t))["videos_sha256"] for t in (1, 3)]
    for sha in runs:
        assert not sha.passed and sha.n_offenders == 2
        assert [o.file for o in sha.offenders] == [f"videos.lance: {rel}" for rel in want]
        for o, rel in zip(sha.offenders, want):
            assert o.expected == blobs.sha256_file(src / rel) and f"blob {o.expected}" not in o.found
    assert [(o.file, o.found) for o in runs[0].offenders] == [(o.file, o.found) for o in runs[1].offenders]
