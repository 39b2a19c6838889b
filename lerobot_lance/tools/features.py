"""``add-features`` and ``remove-features`` (LeRobot's ``add_features`` /
``remove_feature``, lerobot 0.4.4 ``dataset_tools.modify_features``).

In place, Lance evolves the schema without touching what stays: a new
feature is ``LanceDataset.merge`` of a table keyed by ``index`` (new column
files only); a removed one is ``drop_columns`` (a new manifest, no data file
written) and, for a camera, ``delete`` of its ``videos`` rows (deletion
files). The card layout's ``episodes.stats`` struct is replaced through
``add_columns``/``drop_columns`` (new column files of that one column); no
video blob is ever rewritten. With a new output root every row and blob is
copied (the cost of LeRobot's own tools, which always copy).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import pyarrow as pa

from lerobot_lance import formats
from lerobot_lance import stats as st
from lerobot_lance.column_names import camera_columns, episode_sequence_columns
from lerobot_lance.formats import column_name
from lerobot_lance.tools._output import (
    REQUIRED_FEATURES,
    InPlace,
    OutputState,
    ToolError,
    ToolResult,
    read_output,
    replace_columns,
    write_new_output,
)
from lerobot_lance.tools._select import episodes_writer, frames_writer, selection_plan, videos_writer

#: What ``add_features`` accepts per feature: per-frame values in ``index``
#: order (``(total_frames,)`` or ``(total_frames, d)``), or a callable
#: ``frames batch (pa.RecordBatch) -> values for its rows``.
FeatureValues = Union[np.ndarray, Sequence[Any], pa.Array, Callable[[pa.RecordBatch], Any]]

_DTYPES = {pa.float32(): "float32", pa.float64(): "float64", pa.int64(): "int64", pa.int32(): "int32",
           pa.int16(): "int16", pa.int8(): "int8", pa.uint8(): "uint8", pa.bool_(): "bool", pa.float16(): "float16"}


def _feature_info(name: str, arr: pa.Array) -> dict[str, Any]:
    """LeRobot feature info (``dtype``, ``shape``, ``names``) of a column."""
    t = arr.type
    if pa.types.is_fixed_size_list(t):
        inner, shape = t.value_type, [t.list_size]
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        raise ToolError(f"feature {name!r}: variable-length lists are not a LeRobot feature; expected a fixed width per frame")
    else:
        inner, shape = t, [1]
    if inner not in _DTYPES:
        raise ToolError(f"feature {name!r}: type {t} is not numeric; expected float, int or bool values")
    return {"dtype": _DTYPES[inner], "shape": shape, "names": None}


def _as_array(name: str, values: Any) -> pa.Array:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    arr = np.asarray(values)
    if arr.ndim == 1:
        return pa.array(arr)
    if arr.ndim == 2:
        return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])
    raise ToolError(f"feature {name!r}: values of shape {arr.shape}; expected (frames,) or (frames, width)")


def _values_by_index(state: OutputState, features: Any) -> pa.Table:
    """The new features as one table with ``index`` 0..total_frames-1, sorted."""
    import lance

    total = int(state.info["total_frames"])
    frames = lance.dataset(state.uri(formats.FRAMES_TABLE))
    if isinstance(features, (str, Path)):
        import pyarrow.parquet as pq

        try:
            features = pq.read_table(features)
        except (OSError, pa.ArrowInvalid) as err:
            raise ToolError(f"{features}: cannot be read as parquet ({err})") from None
    if isinstance(features, pa.Table):
        if "index" not in features.column_names:
            raise ToolError(f"--from table: no 'index' column; expected the frames' global index as the key, found {features.column_names}")
        t = features
        idx = t["index"].to_numpy()
        bad = np.setdiff1d(np.arange(total), idx)
        if len(t) != total or len(bad) or len(np.unique(idx)) != len(idx):
            raise ToolError(f"--from table: expected one row per frame, index 0..{total - 1} each once ({total} rows), "
                            f"found {len(t)} rows, {len(bad)} frames missing (first {bad[:5].tolist()}), "
                            f"{len(idx) - len(np.unique(idx))} repeated")
        return t.take(pa.array(np.argsort(idx))).cast(pa.schema([pa.field("index", pa.int64()), *[f for f in t.schema if f.name != "index"]]))
    if not isinstance(features, Mapping) or not features:
        raise ToolError("add-features: expected a table keyed by index, or {name: values | (values, info) | callable}")
    cols: dict[str, pa.Array] = {}
    idx_all = frames.to_table(columns=["index"])["index"].to_numpy()
    order = np.argsort(idx_all)
    for name, spec in features.items():
        values = spec[0] if isinstance(spec, tuple) else spec
        if callable(values):
            parts, idxs = [], []
            for batch in frames.to_batches():
                parts.append(_as_array(name, values(batch)))
                idxs.append(batch["index"].to_numpy())
            arr = pa.concat_arrays(parts)
            arr = arr.take(pa.array(np.argsort(np.concatenate(idxs))))
        else:
            arr = _as_array(name, values)
        if len(arr) != total:
            raise ToolError(f"feature {name!r}: {len(arr)} values; expected one per frame ({total}, in index order)")
        cols[name] = arr
    del order
    return pa.table({"index": pa.array(np.arange(total, dtype=np.int64)), **cols})


def _new_feature_stats(state: OutputState, table: pa.Table, infos: Mapping[str, dict[str, Any]]) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """episode_index -> {feature: stats} of the new features (LeRobot's per-episode stats)."""
    import lance

    ft = lance.dataset(state.uri(formats.FRAMES_TABLE)).to_table(columns=["index", "episode_index"])
    idx, eps = ft["index"].to_numpy(), ft["episode_index"].to_numpy()
    quantiles = any(q in s for ep in state.stats.values() for f in ep.values() for s in [f] for q in st.QUANTILE_NAMES)
    out: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for name, info in infos.items():
        col = table[name].combine_chunks()
        values = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), -1) if pa.types.is_fixed_size_list(col.type) \
            else col.to_numpy(zero_copy_only=False)
        for e in np.unique(eps):
            rows = np.sort(idx[eps == e])
            try:
                out.setdefault(int(e), {})[name] = st.feature_stats(values[rows], quantiles=quantiles)
            except ValueError as err:
                raise ToolError(f"feature {name!r}, episode {int(e)}: {err}") from None
    return out


def _stats_struct_type(state: OutputState, names: Sequence[str], base: pa.DataType) -> pa.DataType:
    fields = list(base)
    template = fields[0].type
    return pa.struct(fields + [pa.field(column_name(n), template) for n in names])


def add_features(output: str | Path, features: Any, *, new_output: str | Path | None = None, in_place: bool = False,
                 infos: Mapping[str, Mapping[str, Any]] | None = None) -> ToolResult:
    """Add per-frame features to the output's ``frames`` table.

    Args:
        output: an output root of ours (either layout).
        features: a pyarrow table or parquet path keyed by ``index`` (every
            other column is a feature), or ``{name: values}`` /
            ``{name: (values, info)}`` with values in ``index`` order (array of
            ``(frames,)`` or ``(frames, width)``) or a callable over frames
            batches (``pa.RecordBatch -> values for its rows``).
        new_output / in_place: a new output root (copies every row and blob),
            or a new tagged version of ``output`` (``LanceDataset.merge``: new
            column files only).
        infos: feature name -> LeRobot feature info (``dtype``, ``shape``,
            ``names``); default inferred from the values' Arrow type.

    The features go to ``info.json``, each episode's statistics and
    ``stats.json`` (aggregated); the card layout's ``episodes`` table gets
    their statistics in ``stats`` (not a sequence column).

    Raises:
        ToolError: a name already a feature or a column, values not one per
            frame, non-numeric values, or neither/both of new_output/in_place.
    """
    if (new_output is None) == (not in_place):
        raise ToolError("add-features: give exactly one of --output NEW or --in-place")
    state = read_output(output)
    table = _values_by_index(state, features)
    names = [c for c in table.column_names if c != "index"]
    given = dict(infos or {})
    if isinstance(features, Mapping):
        given.update({k: v[1] for k, v in features.items() if isinstance(v, tuple)})
    frame_cols = set(state.dataset(formats.FRAMES_TABLE).schema.names)
    info_of: dict[str, dict[str, Any]] = {}
    for n in names:
        if n in state.features or column_name(n) in frame_cols:
            raise ToolError(f"{state.root}: feature {n!r} already exists (a feature or frames column); expected a new name")
        info_of[n] = {**_feature_info(n, table[n].combine_chunks()), **dict(given.get(n, {}))}
    table = table.rename_columns(["index", *[column_name(n) for n in names]])
    new_stats = _new_feature_stats(state, table.rename_columns(["index", *names]), info_of)
    record = {"verb": "add-features", "added_features": names}
    identity = [(0, e) for e in state.records]
    plan = selection_plan([state], identity, record)
    plan.features = {**plan.features, **info_of}
    for p, s in zip(plan.picks, plan.stats):
        s.update(new_stats.get(p.episode_index, {}))
    if in_place:
        import lance

        with InPlace(state, "add-features") as tx:
            lance.dataset(state.uri(formats.FRAMES_TABLE)).merge(table, left_on="index")
            if state.layout == "card":
                _replace_stats_in_place(state, plan, names)
            return tx.finish(plan)
    cols = [column_name(n) for n in names]

    def extra(t: pa.Table) -> dict[str, pa.Array]:
        return {c: table[c].take(pa.array(t["index"].to_numpy())) for c in cols}

    fields = [table.schema.field(c) for c in cols]
    writers = {formats.FRAMES_TABLE: frames_writer([state], plan, extra_fields=fields, extra=extra)}
    if state.layout == "card":
        eschema = state.dataset(formats.EPISODES_TABLE).schema
        stype = _stats_struct_type(state, names, eschema.field("stats").type)
        eschema = eschema.set(eschema.get_field_index("stats"), pa.field("stats", stype))
        writers[formats.EPISODES_TABLE] = episodes_writer([state], plan, schema=eschema)
    v = videos_writer([state], plan)
    if v is not None:
        writers[formats.VIDEOS_TABLE] = v
    return write_new_output([state], plan, str(new_output), writers, "add-features")


def _replace_stats_in_place(state: OutputState, plan: Any, added: Sequence[str] = (), removed: Sequence[str] = ()) -> None:
    """Card layout: the episodes table's ``stats`` struct for the plan's statistics
    (one new column file; no blob rewritten)."""
    import lance

    uri = state.uri(formats.EPISODES_TABLE)
    base = lance.dataset(uri).schema.field("stats").type
    kept = pa.struct([f for f in base if f.name not in {column_name(r) for r in removed}])
    stype = _stats_struct_type(state, added, kept) if added else kept
    by_ep = {p.episode_index: st.episode_stats_to_struct({k: v for k, v in s.items() if k in plan.features})
             for p, s in zip(plan.picks, plan.stats)}
    order = sorted(by_ep)
    arr = pa.array([by_ep[e] for e in order], stype)
    pos = np.zeros(max(order) + 1, dtype=np.int64)
    for j, e in enumerate(order):
        pos[e] = j
    replace_columns(uri, ["episode_index"], lambda b: {"stats": arr.take(pa.array(pos[b["episode_index"].to_numpy()]))})


def remove_features(output: str | Path, names: Sequence[str], *, new_output: str | Path | None = None,
                    in_place: bool = False) -> ToolResult:
    """Remove features from the output (LeRobot's ``remove_feature``).

    A tabular feature loses its ``frames`` column (card: also its
    ``episodes`` sequence column and ``stats`` field); a video camera loses
    its ``videos`` rows and (card) its three ``episodes`` columns, blob
    included; ``info.json``, the episode metadata and ``stats.json`` drop it.

    Raises:
        ToolError: one of the five index columns (``index``, ``frame_index``,
            ``episode_index``, ``timestamp``, ``task_index``, which LeRobot
            requires), a name that is not a feature (the features are
            listed), or neither/both of new_output/in_place.
    """
    if (new_output is None) == (not in_place):
        raise ToolError("remove-features: give exactly one of --output NEW or --in-place")
    state = read_output(output)
    names = list(dict.fromkeys(names))
    if not names:
        raise ToolError(f"{state.root}: no features to remove")
    required = [n for n in names if n in REQUIRED_FEATURES]
    if required:
        raise ToolError(f"{state.root}: cannot remove {required}: LeRobot requires the index columns {list(REQUIRED_FEATURES)}")
    unknown = [n for n in names if n not in state.features]
    if unknown:
        raise ToolError(f"{state.root}: {unknown} are not features of the output; expected one of {sorted(state.features)}")
    cameras = [n for n in names if state.features[n].get("dtype") == "video"]
    from lerobot_lance.readers import parse_features

    seq = episode_sequence_columns(parse_features(state.info)) if state.layout == "card" else {}
    frame_cols = [column_name(n) for n in names if n not in cameras]
    episode_cols = [seq[n] for n in names if n in seq] + [c for k in cameras for c in camera_columns(k)]
    record = {"verb": "remove-features", "removed_features": names}
    plan = selection_plan([state], [(0, e) for e in state.records], record)
    plan.features = {k: v for k, v in plan.features.items() if k not in names}
    for s in plan.stats:
        for n in names:
            s.pop(n, None)
    if in_place:
        import lance

        from lerobot_lance.layouts import lerobot as L

        with InPlace(state, "remove-features") as tx:
            ds = lance.dataset(state.uri(formats.FRAMES_TABLE))
            present = [c for c in frame_cols if c in ds.schema.names]
            if present:
                ds.drop_columns(present)
            if state.layout == "card":
                eds = lance.dataset(state.uri(formats.EPISODES_TABLE))
                present = [c for c in episode_cols if c in eds.schema.names]
                if present:
                    eds.drop_columns(present)
                _replace_stats_in_place(state, plan, removed=names)
            if cameras and formats.VIDEOS_TABLE in state.tables:
                key_col = "camera_angle" if state.layout == "card" else L.VIDEO_KEY_COLUMNS[0]
                lance.dataset(state.uri(formats.VIDEOS_TABLE)).delete(
                    f"{key_col} IN (" + ", ".join("'" + k.replace("'", "''") + "'" for k in cameras) + ")")
            return tx.finish(plan)
    writers = {formats.FRAMES_TABLE: frames_writer([state], plan, drop=frame_cols)}
    if state.layout == "card":
        eschema = state.dataset(formats.EPISODES_TABLE).schema
        stype = pa.struct([f for f in eschema.field("stats").type if f.name not in {column_name(n) for n in names}])
        eschema = pa.schema([pa.field("stats", stype) if f.name == "stats" else f for f in eschema if f.name not in episode_cols])
        writers[formats.EPISODES_TABLE] = episodes_writer([state], plan, schema=eschema)
    v = videos_writer([state], plan, drop_keys=cameras)
    if v is not None:
        writers[formats.VIDEOS_TABLE] = v
    return write_new_output([state], plan, str(new_output), writers, "remove-features")
