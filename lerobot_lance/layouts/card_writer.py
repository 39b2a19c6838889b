"""Writers of the ``card`` layout (see :mod:`lerobot_lance.layouts.card`): the
table stages of the default three-table layout, beside the ``lerobot``
layout's writers (:mod:`lerobot_lance.layouts.lerobot_writer`).

Each reads the staging area (the records and staged files of the publishable
episodes, :func:`lerobot_lance.episode_stages.publishable_episodes`) and the
source, and writes pending fragments of one table into the output, under the
output's writer lock (:func:`lerobot_lance.conversion.writing`); the publish
(:mod:`lerobot_lance.publish`) commits them::

    write_frames_table      -> pending fragments of frames.lance
    write_episodes_table    -> pending fragments of episodes.lance
    write_videos_table      -> pending fragments of videos.lance
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lerobot_lance import formats
from lerobot_lance.column_names import OUTCOME_COLUMNS, camera_columns, episode_sequence_columns
from lerobot_lance.conversion import Conversion, writing
from lerobot_lance.episode_stages import publishable_episodes, segment_buffer, source_video_files
from lerobot_lance.errors import LeRobotLanceError
from lerobot_lance.frames import frames_schema
from lerobot_lance.lance_io import PendingTable, blob_field, discard_pending, write_pending
from lerobot_lance.model import DatasetMeta
from lerobot_lance.staging import STATS, VIDEOS


def write_frames_table(conv: Conversion) -> PendingTable:
    """Stream the staged frames of every publishable episode into pending
    fragments of ``frames.lance``, in episode order (so ``index`` ascends and
    a scan of one episode reads contiguous rows). One staged episode in memory
    at a time. Under the output's writer lock (:func:`writing`)."""
    with writing(conv):
        from lerobot_lance.encodings.output import frames_output_schema

        cov = publishable_episodes(conv)
        schema = frames_output_schema(conv)  # frames_schema(meta) unless cameras are encoded

        def batches() -> Iterator[pa.RecordBatch]:
            for ep in cov.included:
                yield from conv.read_frames(ep).select(schema.names).to_batches()

        return write_pending(
            conv.staging, formats.FRAMES_TABLE, conv.uri(formats.FRAMES_TABLE), schema, batches(),
            episodes=cov.included, storage_options=conv.options.storage_options,
        )


def episodes_schema(meta: DatasetMeta, with_videos: bool = True, stats_type: pa.DataType | None = None) -> pa.Schema:
    """Schema of the ``episodes`` table (DESIGN.md "Output layout").

    ``episode_index``, ``task_index`` (int64), ``fps`` (int32), ``length``
    (int64, frames), ``tasks`` (list<string>), ``dataset_from_index`` /
    ``dataset_to_index`` (int64), ``timestamps`` (list<float32>), every
    per-frame feature as a list under the name
    :func:`lerobot_lance.column_names.episode_sequence_columns` gives it
    (``actions`` and ``observation_state`` for ``action`` /
    ``observation.state``, the underscored key otherwise, ``<name>_feature``
    when that is taken), the outcome (``done``, ``success``, ``reward_sum``)
    when ``next.*`` features exist, per video camera ``<camera>_video_blob``
    (blob), ``<camera>_from_timestamp`` and ``<camera>_to_timestamp``
    (float64, seconds in the source file: the window the segment was cut
    from, ``from + length / fps``), and ``stats``.
    """
    fschema = frames_schema(meta)
    fields = [
        pa.field("episode_index", pa.int64()),
        pa.field("task_index", pa.int64()),
        pa.field("fps", pa.int32()),
        pa.field("length", pa.int64()),
        pa.field("tasks", pa.list_(pa.string())),
        pa.field("dataset_from_index", pa.int64()),
        pa.field("dataset_to_index", pa.int64()),
        pa.field("timestamps", pa.list_(fschema.field("timestamp").type)),
    ]
    for key, name in episode_sequence_columns(meta.features).items():
        fields.append(pa.field(name, pa.list_(fschema.field(meta.features[key].column).type)))
    for key, name in OUTCOME_COLUMNS.items():
        if key in meta.features:
            fields.append(pa.field(name, pa.float64() if name == "reward_sum" else pa.bool_()))
    if with_videos:
        for key in meta.video_keys:
            blob, lo, hi = camera_columns(key)
            fields += [blob_field(blob), pa.field(lo, pa.float64()), pa.field(hi, pa.float64())]
    if stats_type is not None:
        fields.append(pa.field("stats", stats_type))
    return pa.schema(fields)


def _episode_row(conv: Conversion, ep: int, schema: pa.Schema, with_videos: bool) -> pa.RecordBatch:
    from lerobot_lance import blobs

    meta = conv.output_meta  # encoded image cameras are video cameras here
    e = meta.episode(ep)
    frames = conv.read_frames(ep)
    values: dict[str, Any] = {
        "episode_index": [ep],
        "task_index": [frames["task_index"][0].as_py() if frames.num_rows else None],
        "fps": [meta.fps],
        "length": [frames.num_rows],
        "tasks": [list(e.tasks)],
        "dataset_from_index": [e.dataset_from_index],
        "dataset_to_index": [e.dataset_to_index],
    }
    arrays: dict[str, pa.Array] = {"timestamps": _as_list_array(frames["timestamp"], schema.field("timestamps").type)}
    for key, name in episode_sequence_columns(meta.features).items():
        arrays[name] = _as_list_array(frames[meta.features[key].column], schema.field(name).type)
    for key, name in OUTCOME_COLUMNS.items():
        if key not in meta.features:
            continue
        col = frames[meta.features[key].column]
        if name == "reward_sum":
            values[name] = [float(pc.sum(col).as_py() or 0.0)]
        else:
            values[name] = [bool(pc.any(col).as_py()) if name == "success" else bool(col[-1].as_py())]
    if "stats" in schema.names:
        rec = conv.staging.current(STATS, ep, conv.revision)
        values["stats"] = [rec["struct"] if rec else None]
    if with_videos and meta.video_keys:
        rec = conv.staging.current(VIDEOS, ep, conv.revision)
        assert rec is not None  # guaranteed by publishable_episodes
        for key in meta.video_keys:
            blob, lo, hi = camera_columns(key)
            cam = rec["cameras"][key]
            if cam.get("method") == "window":  # staged by the lerobot layout: no segment was cut
                raise LeRobotLanceError(
                    f"{conv.staging.root}: episode {ep} camera {key!r} was staged for the lerobot layout (no segment); "
                    "re-materialize episode_videos for the card layout"
                )
            arrays[blob] = blobs.blob_array(segment_buffer(conv, ep, cam))  # one copy in memory
            values[lo] = [float(cam["from_timestamp"])]
            values[hi] = [float(cam["to_timestamp"])]
    columns = [arrays[n] if n in arrays else pa.array(values[n], type=schema.field(n).type) for n in schema.names]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _as_list_array(col: pa.ChunkedArray, list_type: pa.DataType) -> pa.Array:
    values = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), values.cast(list_type.value_type), type=list_type)


def episodes_stats_type(conv: Conversion) -> pa.DataType | None:
    """Arrow type of the per-episode ``stats`` struct, or ``None`` when no stats are staged."""
    for ep in conv.selected():
        rec = conv.staging.current(STATS, ep, conv.revision)
        if rec and rec.get("struct"):
            return pa.array([rec["struct"]]).type
    return None


def write_episodes_table(conv: Conversion) -> PendingTable:
    """Stream one row per publishable episode into pending fragments of
    ``episodes.lance``. One episode's segments in memory at a time; row
    groups of 8 rows bound Lance's buffer to a few segments. A segment kept
    in its shard is its staged header and the shard's bytes, read here
    (:func:`lerobot_lance.episode_stages.segment_buffer`: a shard that
    changed since ``episode_videos`` cut it raises ``SourceDataError``, and
    nothing is committed). Under the output's writer lock (:func:`writing`)."""
    with writing(conv):
        cov = publishable_episodes(conv)
        with_videos = not conv.options.skip_videos
        schema = episodes_schema(conv.output_meta, with_videos, episodes_stats_type(conv))

        def batches() -> Iterator[pa.RecordBatch]:
            for ep in cov.included:
                yield _episode_row(conv, ep, schema, with_videos)

        return write_pending(
            conv.staging, formats.EPISODES_TABLE, conv.uri(formats.EPISODES_TABLE), schema, batches(),
            episodes=cov.included, storage_options=conv.options.storage_options, max_rows_per_group=8,
        )


VIDEOS_SCHEMA = pa.schema(
    [
        pa.field("camera_angle", pa.string()),
        pa.field("chunk_index", pa.int32()),
        pa.field("file_index", pa.int32()),
        pa.field("relative_path", pa.string()),
        pa.field("filename", pa.string()),
        pa.field("file_size_bytes", pa.int64()),
        pa.field("sha256", pa.string()),
        blob_field("video_blob"),
    ]
)


def write_videos_table(conv: Conversion) -> PendingTable | None:
    """Stream each source mp4, verbatim, with its sha256, into pending
    fragments of ``videos.lance``; each file read once into the buffer the
    batch uses, the next one read and hashed ahead, at most two held
    (:func:`lerobot_lance.blobs.read_files_hashed`), after handing the memory
    earlier steps freed back to the OS
    (:func:`lerobot_lance.blobs.release_freed_memory`). Under the
    output's writer lock (:func:`writing`).

    Returns:
        The pending table, or ``None`` with ``skip_videos`` (no videos table
        is written; what an earlier attempt staged for it is discarded).
    """
    with writing(conv):
        if conv.options.skip_videos:
            discard_pending(conv.staging, formats.VIDEOS_TABLE)
            return None
        return _write_videos_table(conv)


def _write_videos_table(conv: Conversion) -> PendingTable:
    from lerobot_lance import blobs

    blobs.release_freed_memory()
    refs = source_video_files(conv)
    root = conv.source.fetch([r.relative_path for r in refs])

    def batches() -> Iterator[pa.RecordBatch]:
        for ref, (data, digest) in zip(refs, blobs.read_files_hashed(root / r.relative_path for r in refs)):  # one file read ahead
            row = {
                "camera_angle": ref.video_key,
                "chunk_index": ref.chunk_index,
                "file_index": ref.file_index,
                "relative_path": ref.relative_path,
                "filename": Path(ref.relative_path).name,
                "file_size_bytes": data.size,
                "sha256": digest,
            }
            yield pa.RecordBatch.from_arrays(
                [blobs.blob_array(data) if f.name == "video_blob" else pa.array([row[f.name]], type=f.type) for f in VIDEOS_SCHEMA],
                schema=VIDEOS_SCHEMA,
            )
            del data  # released before the file after the one read ahead

    # One mp4 per row group: Lance buffers a row group before writing it, and a
    # v3.0 shard is ~200 MB (4 per group held ~800 MB at once).
    return write_pending(
        conv.staging, formats.VIDEOS_TABLE, conv.uri(formats.VIDEOS_TABLE), VIDEOS_SCHEMA, batches(),
        storage_options=conv.options.storage_options, max_rows_per_group=1,
    )
