"""Per-episode rows: read an episode's parquet rows and normalize them to the
``frames`` table schema.

Output columns (DESIGN.md "Output layout"): every non-video feature, dots
replaced by underscores, in ``info.json`` feature order; vectors become
``fixed_size_list<element, width>`` of the source element type (v2.x parquet
already stores ``fixed_size_list``, v3.0 stores ``list``; the cast is
lossless, values stay bit-identical); scalars keep their source type; image
cameras (``struct<bytes: binary, path: string>``, lerobot's ``datasets.Image``
encoding) keep their encoded bytes verbatim in a ``binary`` column.

The bookkeeping columns (:data:`~lerobot_lance.formats.INDEX_COLUMNS`) are
always in the table, after the declared features when ``info.json`` does not
declare them (types: LeRobot's ``DEFAULT_FEATURES`` in
``lerobot/datasets/utils.py``: ``timestamp`` float32, the others int64).
Frame tables written by other tools may lack some of them; what LeRobot's
format defines unambiguously is derived (:func:`derived_columns`,
:func:`derive_column`): ``frame_index`` = position in the episode,
``index`` = ``dataset_from_index`` + position, ``task_index`` = the
dataset's only task, or the episode's only task in the episodes metadata
(whether or not ``info.json`` declares them: the metadata fixes their
values), and ``timestamp`` = ``frame_index / fps`` when ``info.json`` does
not declare it (LeRobot's recorder writes exactly that when given no
timestamp, ``LeRobotDataset.add_frame``). Refused with a located error: a
``task_index`` the metadata does not fix (several tasks for the episode) and
a declared ``timestamp`` absent from the file (measured data, which
``frame_index / fps`` would silently replace). The rule ``index_columns_derived`` (WARN) names
each derived column.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lerobot_lance.errors import SourceDataError
from lerobot_lance.formats import INDEX_COLUMNS, column_name
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


#: Types of the bookkeeping columns ``info.json`` does not declare (LeRobot ``DEFAULT_FEATURES``).
INDEX_COLUMN_TYPES: dict[str, pa.DataType] = {
    "timestamp": pa.float32(),
    "frame_index": pa.int64(),
    "episode_index": pa.int64(),
    "index": pa.int64(),
    "task_index": pa.int64(),
}
#: Bookkeeping columns the converter derives when the data file lacks them
#: (``episode_index`` is needed to read a shard at all, so it is never derived).
DERIVABLE_COLUMNS: tuple[str, ...] = ("frame_index", "index", "timestamp", "task_index")


def frame_keys(meta: DatasetMeta) -> list[str]:
    """Source keys of the frames table's columns, in table order: every
    non-video feature (:meth:`DatasetMeta.frame_columns`), then the
    bookkeeping columns ``info.json`` does not declare."""
    keys = meta.frame_columns()
    return keys + [c for c in INDEX_COLUMNS if c not in meta.features]


def derivable_task_index(meta: DatasetMeta, episode: EpisodeMeta) -> int | None:
    """The ``task_index`` of every frame of ``episode`` when the metadata
    alone fixes it: the dataset has exactly one task (``meta/tasks``), or the
    episode lists exactly one task string that the tasks table holds.
    ``None`` when it is ambiguous."""
    if len(meta.tasks) == 1:
        return next(iter(meta.tasks))
    if len(episode.tasks) == 1:
        found = [i for i, t in meta.tasks.items() if t == episode.tasks[0]]
        if len(found) == 1:
            return found[0]
    return None


def derived_columns(meta: DatasetMeta, episode: EpisodeMeta, column_names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(derived, underivable)``: the bookkeeping columns absent from an
    episode's rows that will be derived, and those that cannot be:
    ``task_index`` of an episode whose task the metadata does not fix, and a
    ``timestamp`` that ``info.json`` declares (a declared timestamp is
    measured data, maybe wall-clock, which ``frame_index / fps`` would
    silently replace; only an undeclared one is derived). ``episode_index``
    is required to read the rows at all."""
    absent = [c for c in DERIVABLE_COLUMNS if c not in column_names]
    bad = [
        c for c in absent
        if (c == "task_index" and derivable_task_index(meta, episode) is None) or (c == "timestamp" and c in meta.features)
    ]
    return [c for c in absent if c not in bad], bad


def derive_column(name: str, n: int, meta: DatasetMeta, episode: EpisodeMeta, frame_index: pa.Array | None = None) -> pa.Array:
    """The values of bookkeeping column ``name`` for an episode of ``n`` rows
    that lacks it (see the module docstring for each definition).

    Args:
        frame_index: the episode's ``frame_index`` (source or derived), for ``timestamp``.

    Raises:
        SourceDataError: ``task_index`` cannot be derived (several tasks).
    """
    pos = np.arange(n, dtype=np.int64)
    if name == "frame_index":
        return pa.array(pos)
    if name == "index":
        return pa.array(episode.dataset_from_index + pos)
    if name == "episode_index":
        return pa.array(np.full(n, episode.episode_index, dtype=np.int64))
    if name == "timestamp":
        fi = pos if frame_index is None else np.asarray(frame_index.to_numpy(zero_copy_only=False), dtype=np.float64)
        return pa.array((fi / float(meta.fps)).astype(np.float32))
    if name == "task_index":
        t = derivable_task_index(meta, episode)
        if t is None:
            raise SourceDataError(
                episode.data_path, "no task_index column, and the metadata does not fix the episode's task",
                episode_index=episode.episode_index, expected="a task_index column, or one task for the episode",
                found=f"{len(meta.tasks)} tasks in the dataset, {len(episode.tasks)} listed for the episode",
            )
        return pa.array(np.full(n, t, dtype=np.int64))
    raise ValueError(f"not a derivable column: {name!r}")


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
    read_file: Callable[[Path, str, Sequence[int]], pa.Table] | None = None,
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
        read_file: ``(root, relative path, episode indices) -> table`` that
            decodes one data file (default: read it; the conversion passes
            :func:`lerobot_lance.source_frames.read_data_file`'s cache).

    Raises:
        SourceDataError: a data file is missing, empty, unreadable or has no
            ``episode_index`` column (only when ``on_error`` is ``None``).
    """
    by_file: dict[str, list[EpisodeMeta]] = defaultdict(list)
    for e in episodes:
        by_file[e.data_path].append(e)
    for rel, eps in by_file.items():
        try:
            table = (read_file or _read_data_file)(root, rel, [e.episode_index for e in eps])
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
    image cameras: ``binary``; undeclared bookkeeping columns: their
    :data:`INDEX_COLUMN_TYPES`. Taken from the metadata, not from any one
    parquet, so every partition stages the same schema.
    """
    fields = []
    for key in frame_keys(meta):
        if key not in meta.features:
            fields.append(pa.field(column_name(key), INDEX_COLUMN_TYPES[key]))
            continue
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
        A table with ``schema`` and ``rows.num_rows`` rows, in source row order;
        bookkeeping columns the rows lack are derived (:func:`derive_column`).

    Raises:
        SourceDataError: a feature column is missing from the parquet (a
            bookkeeping column that cannot be derived included), or a
            vector's width differs from the feature's shape.
    """
    schema = schema or frames_schema(meta)
    arrays = []
    n = rows.num_rows
    keys = frame_keys(meta)
    frame_index = rows["frame_index"].combine_chunks() if "frame_index" in rows.column_names else None
    derived, _ = derived_columns(meta, episode, rows.column_names)
    for key, field in zip(keys, schema):
        if key in derived:
            arrays.append(derive_column(key, n, meta, episode, frame_index).cast(field.type))
            continue
        if key not in meta.features:  # an undeclared bookkeeping column the rows carry
            col = rows[key].combine_chunks() if n else pa.array([], rows[key].type)
            arrays.append(col.cast(field.type) if col.type != field.type else col)
            continue
        f = meta.features[key]
        if key not in rows.column_names:
            raise SourceDataError(
                episode.data_path, f"feature column {key!r} missing", episode_index=episode.episode_index,
                expected=keys, found=rows.column_names,
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
