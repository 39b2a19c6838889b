"""Per-episode rows: read an episode's parquet rows and normalize them to the
``frames`` table schema.

Output columns (DESIGN.md "Output layout"): every non-video feature, dots
replaced by underscores, in ``info.json`` feature order; vectors become
``fixed_size_list<element, width>`` of the source element type (v2.x parquet
already stores ``fixed_size_list``, v3.0 stores ``list``; the cast is
lossless, values stay bit-identical); scalars keep their source type; image
cameras (``struct<bytes: binary, path: string>``, lerobot's ``datasets.Image``
encoding) keep their encoded bytes verbatim in a ``binary`` column.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lerobot_lance.errors import SourceDataError
from lerobot_lance.lfs import FETCH_HINT, is_lfs_pointer, pointer_detail
from lerobot_lance.model import DatasetMeta, EpisodeMeta, Feature
from lerobot_lance.source import DatasetSource

_SCALAR_TYPES: dict[str, pa.DataType] = {
    "float16": pa.float16(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "uint8": pa.uint8(),
    "uint16": pa.uint16(),
    "uint32": pa.uint32(),
    "uint64": pa.uint64(),
    "bool": pa.bool_(),
    "string": pa.string(),
}


def _is_vector(feature: Feature) -> bool:
    return not feature.is_camera and feature.shape not in ((), (1,))


def read_episode_rows(root: Path, episode: EpisodeMeta) -> pa.Table:
    """Read one episode's rows from its data parquet (all columns, source types).

    For v3.0 shards holding many episodes, only the rows with this
    ``episode_index`` are returned (row-group statistics prune the read).

    Raises:
        SourceDataError: file missing, empty or unreadable, or no ``episode_index`` column.
    """
    tables = read_episodes_rows(root, [episode])
    return tables[episode.episode_index]


def iter_episodes_rows(
    root: Path,
    episodes: Sequence[EpisodeMeta],
    *,
    whole_files: bool = False,
    on_error: Callable[[Sequence[EpisodeMeta], SourceDataError], None] | None = None,
) -> Iterator[tuple[EpisodeMeta, pa.Table]]:
    """Yield ``(episode, rows)`` for each episode, reading each data file once.

    Episodes sharing a v3.0 shard are served from one read of that shard, so a
    batch of partitions costs one read per file, not one per episode. Memory
    is bounded by one data file.

    Args:
        root: local dataset root.
        episodes: the episodes to read.
        whole_files: each data file holds exactly one episode (v2.x,
            :attr:`DatasetMeta.one_file_per_episode`), so all its rows are that
            episode's, whatever their ``episode_index`` says (the tabular rules
            then see rows carrying a wrong ``episode_index``).
        on_error: called with a file's episodes and the error when that file
            cannot be read; reading goes on with the next file. ``None`` raises.

    Raises:
        SourceDataError: a data file is missing, empty, unreadable or has no
            ``episode_index`` column (only when ``on_error`` is ``None``).
    """
    by_file: dict[str, list[EpisodeMeta]] = defaultdict(list)
    for e in episodes:
        by_file[e.data_path].append(e)
    for rel, eps in by_file.items():
        try:
            table = _read_data_file(root, rel, [e.episode_index for e in eps])
        except SourceDataError as err:
            if on_error is None:
                raise
            on_error(eps, err)
            continue
        whole_file = len(eps) == 1 and (whole_files or _single_episode_file(table, eps[0]))
        for e in eps:
            if whole_file:
                yield e, table
            else:
                yield e, table.filter(pc.equal(table["episode_index"], e.episode_index))


def _read_data_file(root: Path, rel: str, episodes: Sequence[int]) -> pa.Table:
    """Read one data file holding ``episodes``; an error names the file and,
    for a shard of several episodes, every one of them (not only the first)."""
    from lerobot_lance.quality.file_locations import episode_list

    path = root / rel
    one = episodes[0] if len(episodes) == 1 else None
    of = f" (data of {episode_list(episodes)})" if one is None else ""
    if not path.is_file():
        raise SourceDataError(rel, f"data file missing{of}", episode_index=one)
    if path.stat().st_size == 0:
        raise SourceDataError(rel, f"data file is empty (0 bytes){of}", episode_index=one)
    if is_lfs_pointer(path):
        raise SourceDataError(rel, f"data file is {pointer_detail(path)}{of}; {FETCH_HINT}", episode_index=one)
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise SourceDataError(rel, f"unreadable parquet ({e}){of}", episode_index=one) from None
    if "episode_index" not in table.column_names:
        raise SourceDataError(rel, f"no episode_index column{of}", episode_index=one)
    return table


def read_episodes_rows(root: Path, episodes: Sequence[EpisodeMeta]) -> dict[int, pa.Table]:
    """Dict form of :func:`iter_episodes_rows` (holds every table: small batches only)."""
    return {e.episode_index: t for e, t in iter_episodes_rows(root, episodes)}


def _single_episode_file(table: pa.Table, episode: EpisodeMeta) -> bool:
    col = table["episode_index"]
    return len(col) > 0 and pc.min(col).as_py() == pc.max(col).as_py() == episode.episode_index


def frames_schema(meta: DatasetMeta) -> pa.Schema:
    """Schema of the ``frames`` table for this dataset, from ``info.json`` alone.

    Vector features: ``fixed_size_list<dtype, width>``; scalars: their dtype;
    image cameras: ``binary``. Taken from the metadata, not from any one
    parquet, so every partition stages the same schema.
    """
    fields = []
    for key in meta.frame_columns():
        f = meta.features[key]
        if f.is_image:
            fields.append(pa.field(f.column, pa.binary()))
        elif _is_vector(f):
            fields.append(pa.field(f.column, pa.list_(_SCALAR_TYPES.get(f.dtype, pa.float32()), f.width)))
        else:
            fields.append(pa.field(f.column, _SCALAR_TYPES.get(f.dtype, pa.float32())))
    return pa.schema(fields)


def normalize_frames(rows: pa.Table, meta: DatasetMeta, episode: EpisodeMeta, schema: pa.Schema | None = None) -> pa.Table:
    """One episode's source rows -> rows of the ``frames`` table.

    Args:
        rows: the episode's rows as read from the source parquet (LeRobot keys).
        meta: dataset metadata.
        episode: the episode (for error messages).
        schema: target schema; defaults to :func:`frames_schema`.

    Returns:
        A table with ``schema`` and ``rows.num_rows`` rows, in source row order.

    Raises:
        SourceDataError: a feature column is missing from the parquet, or a
            vector's width differs from the feature's shape.
    """
    schema = schema or frames_schema(meta)
    arrays = []
    for key, field in zip(meta.frame_columns(), schema):
        f = meta.features[key]
        if key not in rows.column_names:
            raise SourceDataError(
                episode.data_path, f"feature column {key!r} missing", episode_index=episode.episode_index,
                expected=meta.frame_columns(), found=rows.column_names,
            )
        col = rows[key].combine_chunks() if rows.num_rows else pa.array([], rows[key].type)
        if f.is_image:
            if pa.types.is_struct(col.type):
                col = col.field("bytes")
            arrays.append(col.cast(pa.binary()))
        elif _is_vector(f):
            arrays.append(_to_fixed_size(col, field.type, f, episode))
        else:
            arrays.append(col.cast(field.type) if col.type != field.type else col)
    return pa.Table.from_arrays(arrays, schema=schema)


def _to_fixed_size(col: pa.Array, target: pa.DataType, feature: Feature, episode: EpisodeMeta) -> pa.Array:
    if col.type == target:
        return col
    if pa.types.is_fixed_size_list(col.type):
        found = col.type.list_size
        if found != feature.width:
            raise SourceDataError(
                episode.data_path, f"vector width of {feature.key!r} differs from info.json shape",
                episode_index=episode.episode_index, expected=feature.width, found=found,
            )
        # Same width, another element type (e.g. float64 for a float32 feature):
        # the cast below; the values_fit_dtype rule has checked it loses nothing.
    else:
        lengths = pc.list_value_length(col)
        bad = pc.not_equal(lengths, feature.width)
        if pc.any(bad).as_py():
            first = pc.index(bad, True).as_py()
            raise SourceDataError(
                episode.data_path,
                f"vector width of {feature.key!r} differs from info.json shape at row {first}",
                episode_index=episode.episode_index, expected=feature.width, found=lengths[first].as_py(),
            )
    if col.null_count:
        raise SourceDataError(
            episode.data_path, f"null values in {feature.key!r}", episode_index=episode.episode_index,
            expected=0, found=col.null_count,
        )
    values = col.flatten().cast(target.value_type)
    return pa.FixedSizeListArray.from_arrays(values, feature.width)


def stage_source_rows(source: DatasetSource, meta: DatasetMeta, episodes: Sequence[EpisodeMeta]) -> Path:
    """Fetch the data files of these episodes; return the local root."""
    return source.fetch(list(dict.fromkeys(e.data_path for e in episodes)))
