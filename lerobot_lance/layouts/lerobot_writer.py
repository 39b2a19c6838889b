"""Writers of the ``lerobot`` layout (see :mod:`lerobot_lance.layouts.lerobot`).

The conversion's stages (resolve, per-episode staging and checks, publish)
are the card layout's; only what goes into the tables and ``meta/`` differs:

- :func:`write_frames_table`: the checked rows of the published episodes
  (read from the source, :meth:`Conversion.read_frames`), in order, renumbered the way LeRobot's ``delete_episodes`` renumbers a subset
  (lerobot ``dataset_tools._copy_and_reindex_data``): the k-th published
  episode gets ``episode_index`` k, ``index`` counts 0.. over the output, every
  other value stays the source's; the source's episode_index is kept in
  :data:`~lerobot_lance.layouts.lerobot.SOURCE_EPISODE_COLUMN`.
- :func:`write_videos_table`: one row per source mp4 of those episodes,
  verbatim, with its byte index (:func:`video_byte_index`, demux only).
- :func:`build_meta_dir`: ``meta/`` in v3.0 form for every source version,
  the way LeRobot 0.6.1's ``convert_dataset_v21_to_v30`` lays it out
  (``convert_info``, ``convert_tasks``, ``convert_episodes_metadata``), except
  that each v2.x episode's mp4 stays its own file (window from 0).
- :func:`write_meta_table`: the ``meta`` table of those files.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pyarrow as pa

from lerobot_lance.errors import LeRobotLanceError, SourceDataError
from lerobot_lance.frames import frames_schema
from lerobot_lance.lance_io import PendingTable, write_pending
from lerobot_lance.layouts import lerobot as L
from lerobot_lance.model import DatasetMeta

if TYPE_CHECKING:
    from lerobot_lance.conversion import Conversion
    from lerobot_lance.episode_stages import Coverage

_DATA_FILE = re.compile(r"chunk-(\d+)/(?:file|episode)[-_](\d+)\.parquet$")


# --- frames ----------------------------------------------------------------------
def output_frames_schema(meta: DatasetMeta) -> pa.Schema:
    """The card layout's frames schema (:func:`lerobot_lance.frames.frames_schema`)
    plus ``source_episode_index`` (int64)."""
    return frames_schema(meta).append(pa.field(L.SOURCE_EPISODE_COLUMN, pa.int64()))


def episode_mapping(episodes: Sequence[int]) -> dict[int, int]:
    """Source episode_index -> output episode_index: the k-th published episode
    (ascending) becomes k, as ``delete_episodes`` maps kept episodes."""
    return {old: new for new, old in enumerate(sorted(episodes))}


def write_frames_table(conv: Conversion) -> PendingTable:
    """Stream the published episodes' checked rows, renumbered, into pending
    fragments of ``frames.lance``. Row i is the frame with ``index`` i (the
    reader reads rows by position); the rows are read from the source
    (:meth:`~lerobot_lance.conversion.Conversion.read_frames`: one v3.0 data
    file decoded at a time, one episode's rows normalized at a time).

    Raises:
        SourceDataError: episodes failed and ``exclude_failed_episodes`` is off
            (:func:`~lerobot_lance.episode_stages.publishable_episodes`), or a data
            file changed since ``episode_frames`` checked it (nothing is
            committed: the publish has not begun).
    """
    from lerobot_lance.episode_stages import publishable_episodes

    from lerobot_lance.encodings.output import frames_output_schema

    _refuse_skip_videos(conv)
    cov = publishable_episodes(conv)
    schema = frames_output_schema(conv, output_frames_schema(conv.output_meta))  # + JPEG columns, - encoded image cameras
    mapping = episode_mapping(cov.included)

    def batches() -> Iterator[pa.RecordBatch]:
        start = 0
        for ep in sorted(cov.included):
            t = conv.read_frames(ep)
            n = t.num_rows
            t = t.set_column(t.schema.get_field_index("episode_index"), "episode_index",
                             pa.array(np.full(n, mapping[ep], dtype=np.int64)).cast(schema.field("episode_index").type))
            t = t.set_column(t.schema.get_field_index("index"), "index",
                             pa.array(np.arange(start, start + n, dtype=np.int64)).cast(schema.field("index").type))
            t = t.append_column(L.SOURCE_EPISODE_COLUMN, pa.array(np.full(n, ep, dtype=np.int64)))
            start += n
            yield from t.select(schema.names).cast(schema).to_batches()

    return write_pending(
        conv.staging, L.FRAMES_TABLE, conv.uri(L.FRAMES_TABLE), schema, batches(),
        episodes=sorted(cov.included), storage_options=conv.options.storage_options,
    )


def _refuse_skip_videos(conv: Conversion) -> None:
    if conv.options.skip_videos and conv.meta.video_keys:
        raise LeRobotLanceError(
            f"{conv.output}: layout 'lerobot' cannot skip videos: LeRobot's reader decodes every video feature "
            f"of info.json ({', '.join(conv.meta.video_keys)}) from the videos table; use the card layout for a tabular-only conversion"
        )


# --- videos ----------------------------------------------------------------------
def find_moov(path: str | Path) -> tuple[int, int]:
    """Offset and size (bytes) of the top-level ``moov`` box of an mp4 (ISO/IEC
    14496-12 box headers: 32-bit size, 4-byte type; size 1 means a 64-bit size
    follows, size 0 means "to the end of the file").

    Raises:
        SourceDataError: no ``moov`` box (not an mp4, or truncated).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if box == 1:
                box = int.from_bytes(header[8:16], "big")
            elif box == 0:
                box = size - offset
            if kind == b"moov":
                return offset, box
            if box < 8:
                break
            offset += box
    raise SourceDataError(str(path), "no moov box in the mp4", expected="an mp4 with a moov box", found="none")


def keyframe_index(source: str | Path | BinaryIO) -> tuple[list[int], list[int]]:
    """Frame numbers and byte offsets of the keyframe packets of an mp4 (a path,
    or a file object such as ``io.BytesIO`` of a stored blob), from demuxing
    only, sorted by frame; frame = ``round(pts * time_base * fps)`` (constant
    frame rate, as lerobot_lancedb 0.3.1's ``build_video_byte_index`` assumes).

    Raises:
        av.error.FFmpegError, IndexError: not a demuxable video.
    """
    import av

    entries: list[tuple[int, int]] = []
    if isinstance(source, (str, Path)):  # the demux the source checks did (lerobot_lance.video.probe_video)
        from lerobot_lance import video

        kp = video.keyframe_packets(source)
        num, den = kp.time_base.numerator, kp.time_base.denominator
        entries = sorted((round(pts * num / den * kp.nominal_fps), pos) for pts, pos in kp.packets)
        return [i for i, _ in entries], [p for _, p in entries]
    with av.open(source) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        # the stream's time base is every packet's: int / int is the correctly
        # rounded float(pts * time_base), without a Fraction per packet
        num, den = stream.time_base.numerator, stream.time_base.denominator
        for pkt in container.demux(stream):
            if not pkt.is_keyframe:
                continue
            pts, pos = pkt.pts, pkt.pos
            if pts is None or pos is None or pos < 0:
                continue
            entries.append((round(pts * num / den * fps), int(pos)))
    entries.sort()
    return [i for i, _ in entries], [p for _, p in entries]


def video_byte_index(path: str | Path) -> dict[str, Any]:
    """The byte-index columns of one video file, from demuxing (nothing decoded).

    Returns:
        ``{"file_size": int (bytes), "moov_offset": int, "moov_size": int,
        "kf_indices": [frame number of each keyframe], "kf_positions": [byte
        offset of that keyframe's packet]}``, sorted by frame. The frame number
        is ``round(pts * time_base * fps)`` (constant frame rate, as
        lerobot_lancedb 0.3.1's ``build_video_byte_index`` assumes).

    Raises:
        SourceDataError: unreadable file, no video stream, or no ``moov`` box.
    """
    import av

    path = Path(path)
    try:
        kf_indices, kf_positions = keyframe_index(path)
    except (av.error.FFmpegError, IndexError) as exc:
        raise SourceDataError(str(path), f"cannot demux video: {exc}", expected="a readable mp4 video stream", found=type(exc).__name__) from exc
    moov_offset, moov_size = find_moov(path)
    return {
        "file_size": path.stat().st_size,
        "moov_offset": moov_offset,
        "moov_size": moov_size,
        "kf_indices": kf_indices,
        "kf_positions": kf_positions,
    }


def write_videos_table(conv: Conversion) -> PendingTable:
    """Stream each source mp4 of the published episodes, verbatim, with its
    byte index and sha256, into pending fragments of ``videos.lance``: one
    mp4 per row group, the next file read and hashed while Lance writes the
    current one (:func:`lerobot_lance.blobs.read_files_hashed`).

    Memory: at most two files' buffers at once (``blobs.MAX_FILES_HELD``,
    counted until Lance frees them), in ``malloc``'d memory reused from file
    to file and unmapped at the end, after
    :func:`lerobot_lance.blobs.release_freed_memory`. Peak RSS of
    ``convert --layout lerobot`` on the 300-episode v3.0 benchmark (six
    ~209 MB shards), sampled every 50 ms: before, 868-908 MB in 8 runs and
    1,028 MB once (a third shard live, Arrow's mimalloc pool keeping freed
    shards, 217 MB of them still held after this step); after, 791-838 MB in
    9 runs, back to ~430 MB when this step ends. The peak is in this step
    (in three of the runs before, early in ``lance_dataset``, on top of the
    memory this step left)."""
    from lerobot_lance.episode_stages import source_video_files

    from lerobot_lance.episode_stages import publishable_episodes
    from lerobot_lance import blobs
    from lerobot_lance.encodings.output import encoded_video_files

    _refuse_skip_videos(conv)
    blobs.release_freed_memory()
    refs = source_video_files(conv)
    root = conv.source.fetch([r.relative_path for r in refs])
    # image cameras encoded to video (encode_images="video"): one staged mp4 per episode and camera
    files = [(ref, root / ref.relative_path) for ref in refs] + encoded_video_files(conv, publishable_episodes(conv).included)

    def batches() -> Iterator[pa.RecordBatch]:
        # read and hashed one file ahead (remembered for the output checks' source sha256)
        for (ref, path), (data, digest) in zip(files, blobs.read_files_hashed(p for _, p in files)):
            row = {
                "video_key": ref.video_key,
                "chunk_index": int(ref.chunk_index),
                "file_index": int(ref.file_index),
                **video_byte_index(path),
                "relative_path": ref.relative_path,
                "sha256": digest,
            }
            columns = [pa.array([row[f.name]], type=f.type) for f in L.VIDEOS_SCHEMA if f.name != L.VIDEO_BLOB_COLUMN]
            # the mp4 bytes wrapped, not copied, into the blob column (v3.0 shards are ~200 MB)
            blob = blobs.blob_array(data)
            yield pa.RecordBatch.from_arrays([*columns, blob], schema=L.VIDEOS_SCHEMA)
            del data, blob

    # One mp4 per row group: Lance buffers a row group before writing it.
    return write_pending(
        conv.staging, L.VIDEOS_TABLE, conv.uri(L.VIDEOS_TABLE), L.VIDEOS_SCHEMA, batches(),
        storage_options=conv.options.storage_options, max_rows_per_group=1,
    )


# --- meta/ in v3.0 form ------------------------------------------------------------
def _data_file_indices(data_path: str, episode_index: int, chunks_size: int) -> tuple[int, int]:
    m = _DATA_FILE.search(data_path)
    if m:
        return int(m.group(1)), int(m.group(2))
    return episode_index // chunks_size, episode_index


def v3_info(meta: DatasetMeta, total_episodes: int, total_frames: int) -> dict[str, Any]:
    """``info.json`` in v3.0 form (lerobot 0.6.1 ``convert_info``): ``codebase_version``
    v3.0, v2-only keys dropped, v3.0 path templates, file-size settings, ``fps``
    on every non-video feature, totals and ``splits`` of the output, and
    ``"storage_format": "lance"``."""
    from lerobot_lance import formats

    info = json.loads(json.dumps(meta.info))
    for k in L.V2_ONLY_INFO_KEYS:
        info.pop(k, None)
    info["codebase_version"] = L.CODEBASE_VERSION
    info["fps"] = int(info["fps"])
    info.setdefault("chunks_size", formats.DEFAULT_CHUNKS_SIZE)
    info.setdefault("data_files_size_in_mb", L.DEFAULT_DATA_FILE_SIZE_IN_MB)
    info.setdefault("video_files_size_in_mb", L.DEFAULT_VIDEO_FILE_SIZE_IN_MB)
    info["data_path"] = L.V3_DATA_PATH
    info["video_path"] = L.V3_VIDEO_PATH if meta.video_keys else None
    for f in info["features"].values():
        if f.get("dtype") != "video":
            f["fps"] = info["fps"]
    info["total_episodes"] = total_episodes
    info["total_frames"] = total_frames
    info["total_tasks"] = len(meta.tasks)
    info["splits"] = {"train": f"0:{total_episodes}"}
    info["storage_format"] = formats.STORAGE_FORMAT
    return info


def _reindexed_stats(stats: dict[str, Any], new_episode: int, start: int, length: int) -> dict[str, Any]:
    """An episode's stats with ``episode_index`` and ``index`` recomputed for
    the renumbered rows (every other feature's stats are the source rows')."""
    from lerobot_lance import stats as st

    out = st.stats_from_json(stats)
    for key, values in (("episode_index", np.full(length, new_episode, dtype=np.int64)),
                        ("index", np.arange(start, start + length, dtype=np.int64))):
        if key in out:
            computed = st.feature_stats(values, quantiles=any(q in out[key] for q in ("q01", "q50")))
            out[key] = {s: computed[s] for s in out[key] if s in computed}
    return out


def build_meta_dir(
    conv: Conversion, dst: Path, cov: Coverage, tag: str, rows: Mapping[str, int] | None = None,
) -> Path:
    """Write the output's ``meta/`` (v3.0 form) into ``dst`` (created; replaced if present).

    Files: ``info.json`` (:func:`v3_info`), ``tasks.parquet`` (``task_index``,
    index ``task``: lerobot's ``write_tasks``), ``episodes/chunk-000/file-000.parquet``
    (per output episode: ``episode_index``, ``data/chunk_index``,
    ``data/file_index``, ``dataset_from_index``, ``dataset_to_index``, per
    camera ``videos/<key>/chunk_index``, ``file_index``, ``from_timestamp``,
    ``to_timestamp``, ``tasks``, ``length``, ``stats/<feature>/<stat>`` from the
    staged per-episode statistics, ``meta/episodes/chunk_index``,
    ``meta/episodes/file_index``, and ``source_episode_index``),
    ``stats.json`` (aggregated over those episodes like LeRobot's
    ``aggregate_stats``) and ``conversion.json`` (tag, source, revision, the
    source -> output episode mapping, exclusions).

    Raises:
        SourceDataError: an included episode has no staged statistics.
    """
    import pandas as pd

    from lerobot_lance import stats as st
    from lerobot_lance.staging import STATS

    meta = conv.output_meta  # encoded image cameras are video features with their mp4s
    shutil.rmtree(dst, ignore_errors=True)
    (dst / "episodes" / "chunk-000").mkdir(parents=True)
    included = sorted(cov.included)
    mapping = episode_mapping(included)
    chunks_size = int(meta.info.get("chunks_size") or 1000)
    rows_out: list[dict[str, Any]] = []
    per_episode = []
    start = 0
    for ep in included:
        e = meta.episode(ep)
        new = mapping[ep]
        rec = conv.staging.current(STATS, ep, conv.revision)
        if rec is None:
            raise SourceDataError(str(conv.staging.root), "episode statistics not staged", episode_index=ep,
                                  expected="a staged stats record", found="none")
        ep_stats = _reindexed_stats(rec["stats"], new, start, e.length)
        per_episode.append(ep_stats)
        d_chunk, d_file = _data_file_indices(e.data_path, ep, chunks_size)
        row: dict[str, Any] = {
            "episode_index": new,
            "data/chunk_index": d_chunk,
            "data/file_index": d_file,
            "dataset_from_index": start,
            "dataset_to_index": start + e.length,
        }
        for key in meta.video_keys:
            ref = e.videos[key]
            row[f"videos/{key}/chunk_index"] = int(ref.chunk_index)
            row[f"videos/{key}/file_index"] = int(ref.file_index)
            row[f"videos/{key}/from_timestamp"] = float(ref.from_timestamp)
            row[f"videos/{key}/to_timestamp"] = float(ref.to_timestamp)
        row["tasks"] = list(e.tasks)
        row["length"] = e.length
        for feature, fstats in st.stats_to_json(ep_stats).items():
            for stat, value in fstats.items():
                row[f"stats/{feature}/{stat}"] = value
        row["meta/episodes/chunk_index"] = 0
        row["meta/episodes/file_index"] = 0
        row[L.SOURCE_EPISODE_COLUMN] = ep
        rows_out.append(row)
        start += e.length
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows_out), dst / "episodes" / "chunk-000" / "file-000.parquet")
    tasks = pd.DataFrame({"task_index": list(sorted(meta.tasks))},
                         index=pd.Index([meta.tasks[i] for i in sorted(meta.tasks)], name="task"))
    tasks.to_parquet(dst / "tasks.parquet")
    (dst / "stats.json").write_text(json.dumps(st.stats_to_json(st.aggregate_stats(per_episode)), indent=4), encoding="utf-8")
    (dst / "info.json").write_text(json.dumps(v3_info(meta, len(included), start), indent=4), encoding="utf-8")
    conversion = {
        "tag": tag,
        "layout": L.NAME,
        "rows": dict(rows or {}),
        "source": conv.snapshot["source"],
        "revision": conv.revision,
        "codebase_version": meta.codebase_version,
        "episodes": included,
        "episode_mapping": {str(old): new for old, new in mapping.items()},
        "excluded_episodes": {str(k): v for k, v in cov.missing.items()},
        "published_at": datetime.now(timezone.utc).isoformat(),
    }
    (dst / "conversion.json").write_text(json.dumps(conversion, indent=2), encoding="utf-8")
    return dst


def write_meta_table(conv: Conversion, meta_dir: Path) -> PendingTable:
    """Pending fragments of ``meta.lance``: one row per file under ``meta_dir``,
    ``path`` relative to it (what the reader materializes as ``meta/<path>``)."""
    files = sorted(p for p in meta_dir.rglob("*") if p.is_file())
    batch = pa.RecordBatch.from_pylist(
        [{"path": p.relative_to(meta_dir).as_posix(), "data": p.read_bytes()} for p in files], schema=L.META_SCHEMA
    )
    return write_pending(
        conv.staging, L.META_TABLE, conv.uri(L.META_TABLE), L.META_SCHEMA, [batch],
        storage_options=conv.options.storage_options,
    )


def prepare_meta(conv: Conversion, dest: Path, cov: Coverage, tag: str, rows: Mapping[str, int]) -> tuple[list[str], dict[str, Any]]:
    """Publish hook before the first commit: build the output's ``meta/``
    (v3.0 form, :func:`build_meta_dir`) in ``dest``.

    Returns:
        The files written (relative posix paths; ``conversion.json`` left out:
        the publish writes it last, with the tag and the version vector) and
        this layout's fields of ``conversion.json`` (``layout``,
        ``episode_mapping``: source -> output episode index).
    """
    build_meta_dir(conv, dest, cov, tag, rows)
    doc = json.loads((dest / "conversion.json").read_text(encoding="utf-8"))
    (dest / "conversion.json").unlink()
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    return files, {"layout": doc["layout"], "episode_mapping": doc["episode_mapping"]}


def stage_at_publish(conv: Conversion, meta_dir: Path, files: Sequence[str]) -> dict[str, PendingTable]:
    """Publish hook: stage the ``meta`` table from the prepared ``meta/``
    (one row per file), before the first commit."""
    return {L.META_TABLE: write_meta_table(conv, meta_dir)}
