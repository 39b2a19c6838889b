"""Blocking output checks of the ``lerobot`` layout: the reader's contract itself
(lerobot_lancedb 0.3.1 ``reader.py``, see :mod:`lerobot_lance.layouts.lerobot`).

``reader_frames_rows``
    ``frames`` holds ``info.json["total_frames"]`` rows, the sum of the
    published episodes' lengths, and row i has ``index`` i.
``reader_episodes_tile``
    ``meta/episodes`` lists ``episode_index`` 0..N-1 in order (N =
    ``total_episodes``), whose ``[dataset_from_index, dataset_to_index)``
    ranges tile ``[0, total_frames)``, each ``length`` long, and the frames
    rows of each range carry that episode_index.
``reader_videos_present``
    every ``(video_key, chunk_index, file_index)`` named by the episode
    metadata has exactly one ``videos`` row.
``reader_byte_index``
    per ``videos`` row, the byte index matches the stored blob: ``file_size``
    is its size, a ``moov`` box of ``moov_size`` bytes starts at
    ``moov_offset``, and ``kf_indices``/``kf_positions`` are exactly the frame
    numbers and byte offsets of the keyframe packets found by demuxing the blob.
``reader_videos_sha256``
    each ``videos.sha256`` equals the sha256 of its blob and of the source file.
``meta_table_matches``
    the ``meta`` table holds every file of ``meta/`` (but ``conversion.json``,
    which records the versions only known after the commit) byte for byte.
``tables_share_tag``
    frames, videos and meta carry the publish's tag on their latest version.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from lerobot_lance.layouts import lerobot as L
from lerobot_lance.quality.result import CheckOutcome, Offender

if TYPE_CHECKING:
    from lerobot_lance.conversion import Conversion

OUTPUT_RULES: tuple[str, ...] = (
    "reader_frames_rows",
    "reader_episodes_tile",
    "reader_videos_present",
    "reader_byte_index",
    "reader_videos_sha256",
    "meta_table_matches",
    "tables_share_tag",
)

_DESCRIPTIONS = L.CHECK_DESCRIPTIONS


def blob_byte_index(data: bytes | BinaryIO) -> tuple[list[int], list[int]]:
    """Frame numbers and byte offsets of the keyframe packets of an mp4 held in
    memory or read from a file object such as a Lance blob file
    (:func:`~lerobot_lance.layouts.lerobot_writer.keyframe_index` of it)."""
    from lerobot_lance.layouts.lerobot_writer import keyframe_index

    return keyframe_index(io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data)


def check_lerobot_output(
    output: str | Path,
    source_root: str | Path | None = None,
    *,
    tag: str | None = None,
    expected_frames: int | None = None,
    storage_options: dict[str, str] | None = None,
    versions: dict[str, int] | None = None,
    meta_dir: str | Path | None = None,
    local_files: Mapping[str, Path] | None = None,
    threads: int = 2,
) -> list[CheckOutcome]:
    """Check a ``lerobot``-layout output against the reader's contract.

    Args:
        output: local output root (``frames.lance``, ``videos.lance``,
            ``meta.lance``, ``meta/``).
        source_root: local source root, for the sha256 of the source mp4s
            (``None``: compare column and blob only).
        tag: the publish's tag (``None``: a tag common to the three tables).
        expected_frames: the published episodes' frames (``None``: ``total_frames``).
        versions: table -> Lance version to check (``None``: the latest);
            the publish checks the versions it committed, before any tag moves.
        meta_dir: the ``meta/`` folder to check against (``None``:
            ``<output>/meta``); the publish passes the one it prepared.
        local_files: ``relative_path`` -> the file a ``videos`` row must equal
            when it is not a source file (the mp4s encoded from image cameras).
        threads: blobs read and hashed at a time (the conversion passes its
            ``workers``); offenders are listed in row order whatever it is.

    Returns:
        One :class:`CheckOutcome` per name in :data:`OUTPUT_RULES`, in order.
        Reads the frames ``index``/``episode_index`` columns (16 bytes a frame)
        and each video blob once (memory: a few MB per thread).
    """
    import lance

    from lerobot_lance.blobs import file_sha256, sha256_stream
    from lerobot_lance.layouts.lerobot_writer import keyframe_index
    from lerobot_lance.lance_io import table_uri
    from lerobot_lance.quality.output_rules import tag_offenders
    import pyarrow.parquet as pq

    output = str(output)
    root = Path(output.removeprefix("file://"))
    meta_root = Path(meta_dir) if meta_dir is not None else root / "meta"

    def meta_path(rel: str) -> Path:
        return meta_root / Path(rel).relative_to("meta")

    info = json.loads(meta_path(L.INFO_PATH).read_text())
    total = int(info["total_frames"])
    tables = {
        t: lance.dataset(table_uri(output, t), version=(versions or {}).get(t), storage_options=storage_options) for t in L.TABLE_NAMES
    }
    out: dict[str, list[Offender]] = {n: [] for n in OUTPUT_RULES}

    # frames rows and index order
    ft = tables[L.FRAMES_TABLE].to_table(columns=["index", "episode_index"])
    n_rows = ft.num_rows
    want = total if expected_frames is None else expected_frames
    if n_rows != total or n_rows != want:
        out["reader_frames_rows"].append(Offender("frames.lance", None, "row count", expected=f"{want} (total_frames {total})", found=n_rows))
    index = ft["index"].to_numpy()
    bad = np.flatnonzero(index != np.arange(n_rows))
    if len(bad):
        out["reader_frames_rows"].append(Offender("frames.lance", None, f"row {int(bad[0])} has index {int(index[bad[0]])}",
                                                  expected="index == row number", found=f"{len(bad)} rows differ"))

    # episodes tile
    eps = pq.read_table(meta_path(L.EPISODES_META_PATH))
    ep_index = eps["episode_index"].to_pylist()
    lo, hi, length = (eps[c].to_pylist() for c in ("dataset_from_index", "dataset_to_index", "length"))
    if ep_index != list(range(len(ep_index))) or len(ep_index) != int(info["total_episodes"]):
        out["reader_episodes_tile"].append(Offender(L.EPISODES_META_PATH, None, "episode_index",
                                                    expected=f"0..{int(info['total_episodes']) - 1}", found=ep_index[:10]))
    cursor = 0
    frame_eps = ft["episode_index"].to_numpy()
    for i, (a, b, n) in enumerate(zip(lo, hi, length)):
        if a != cursor or b - a != n:
            out["reader_episodes_tile"].append(Offender(L.EPISODES_META_PATH, i, "range",
                                                        expected=f"[{cursor}, {cursor + n})", found=f"[{a}, {b})"))
        elif b <= n_rows and (frame_eps[a:b] != i).any():
            out["reader_episodes_tile"].append(Offender("frames.lance", i, "frames rows of the range carry another episode_index",
                                                        expected=i, found=sorted(set(frame_eps[a:b].tolist()))[:5]))
        cursor = b
    if cursor != total:
        out["reader_episodes_tile"].append(Offender(L.EPISODES_META_PATH, None, "ranges end", expected=total, found=cursor))

    # videos present
    vt = tables[L.VIDEOS_TABLE]
    vcols = vt.to_table(columns=[*L.VIDEO_KEY_COLUMNS, *L.VIDEO_INDEX_COLUMNS, *L.PROVENANCE_COLUMNS]).to_pylist()
    keys = [(r["video_key"], r["chunk_index"], r["file_index"]) for r in vcols]
    have = {k: keys.count(k) for k in keys}
    video_keys = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    referenced = {
        (key, int(c), int(f))
        for key in video_keys
        for c, f in zip(eps[f"videos/{key}/chunk_index"].to_pylist(), eps[f"videos/{key}/file_index"].to_pylist())
    }
    for k in sorted(referenced):
        if have.get(k, 0) != 1:
            out["reader_videos_present"].append(Offender("videos.lance", None, f"row for {k}", expected=1, found=have.get(k, 0)))

    # byte index and sha256, each blob streamed and read once (memory: a few MB
    # per thread, not the file), ``threads`` blobs at a time: the blob reads and
    # hashlib release the GIL. A blob whose sha256 equals its source file's
    # holds the same bytes, so its keyframe packets are the source's, from the
    # demux the conversion already did (video.keyframe_packets, one per file
    # version); any other blob is demuxed itself.
    def inspect(i: int, row: dict[str, Any]) -> list[tuple[str, Offender]]:
        where = f"videos.lance: {row['relative_path']}"
        src = Path(source_root) / row["relative_path"] if source_root is not None else None
        if local_files and row["relative_path"] in local_files:
            src = Path(local_files[row["relative_path"]])
        found: list[tuple[str, Offender]] = []
        blob = vt.take_blobs(L.VIDEO_BLOB_COLUMN, indices=[i])[0]
        kf_i = kf_p = None
        with blob as f:
            stored, size = sha256_stream(f)
            f.seek(row["moov_offset"])
            box = f.read(8) if 0 <= row["moov_offset"] < size else b""
            source_sha = (file_sha256(src) if src.is_file() else "missing") if src is not None else stored
            same_bytes = src is not None and stored == source_sha
            try:
                if same_bytes:
                    kf_i, kf_p = keyframe_index(src)
                else:
                    f.seek(0)
                    kf_i, kf_p = blob_byte_index(f)
            except Exception as exc:  # noqa: BLE001 - an unreadable blob is this check's finding
                kf_i = kf_p = None
                found.append(("reader_byte_index", Offender(where, None, f"blob does not demux: {exc}")))
        if row["file_size"] != size:
            found.append(("reader_byte_index", Offender(where, None, "file_size", expected=size, found=row["file_size"])))
        if len(box) < 8 or box[4:8] != b"moov" or int.from_bytes(box[:4], "big") not in (row["moov_size"], 1):
            found.append(("reader_byte_index", Offender(where, None, f"no moov box of {row['moov_size']} bytes at offset {row['moov_offset']}",
                                                        expected="moov", found=box[4:8])))
        if kf_p is not None and (kf_p != list(row["kf_positions"]) or kf_i != list(row["kf_indices"])):
            diff = sorted(set(row["kf_positions"]) ^ set(kf_p))[:5]
            found.append(("reader_byte_index", Offender(where, None, "kf_indices/kf_positions are not the keyframe packets",
                                                        expected=f"{len(kf_p)} keyframes", found=f"{len(row['kf_positions'])} listed, differing offsets {diff}")))
        if not (row["sha256"] == stored == source_sha):
            found.append(("reader_videos_sha256", Offender(where, None, "sha256 of column, blob and source differ",
                                                           expected=source_sha, found=f"column {row['sha256']}, blob {stored}")))
        return found

    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for found in pool.map(inspect, range(len(vcols)), vcols):  # results in row order
            for rule, offender in found:
                out[rule].append(offender)

    # meta table
    mt = tables[L.META_TABLE].to_table().to_pylist()
    in_table = {r["path"]: r["data"] for r in mt}
    on_disk = {p.relative_to(meta_root).as_posix(): p for p in meta_root.rglob("*") if p.is_file()}
    for rel in sorted(set(on_disk) | set(in_table)):
        if rel == Path(L.CONVERSION_PATH).name:
            continue  # written last by the publish (tag, version vector); not a reader file
        if rel not in in_table or rel not in on_disk or in_table[rel] != on_disk[rel].read_bytes():
            out["meta_table_matches"].append(Offender("meta.lance", None, f"meta/{rel}",
                                                      expected="in meta/ and the meta table, equal bytes",
                                                      found=f"in table {rel in in_table}, on disk {rel in on_disk}"))

    out["tables_share_tag"] = tag_offenders(tables, tag)[1]
    return [
        CheckOutcome.from_offenders(n, out[n], description=_DESCRIPTIONS[n], metadata=_metadata(n, n_rows, len(vcols), len(ep_index)))
        for n in OUTPUT_RULES
    ]


def _metadata(name: str, frames: int, videos: int, episodes: int) -> dict[str, Any]:
    return {"reader_frames_rows": {"frames": frames}, "reader_episodes_tile": {"episodes": episodes},
            "reader_videos_present": {"videos": videos}, "reader_byte_index": {"files": videos},
            "reader_videos_sha256": {"files": videos}}.get(name, {})


def check_conversion_output(
    conv: Conversion, tag: str | None, episodes: Sequence[int], *, versions: dict[str, int] | None = None,
    meta_dir: str | Path | None = None,
) -> list[CheckOutcome]:
    """:func:`check_lerobot_output` for a conversion being published (``versions``,
    ``meta_dir``: what the publish committed and prepared) or just published."""
    from lerobot_lance.encodings.output import encoded_video_files

    expected = sum(conv.meta.episode(e).length for e in episodes)
    return check_lerobot_output(
        conv.output, conv.source.meta_root(), tag=tag, expected_frames=expected, storage_options=conv.options.storage_options,
        versions=versions, meta_dir=meta_dir, local_files={r.relative_path: p for r, p in encoded_video_files(conv, episodes)},
        threads=conv.options.workers,
    )
