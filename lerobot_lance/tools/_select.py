"""Episode selection shared by delete-episodes, split and merge: the table
writers of a result made of whole episodes of one or more outputs, and the
in-place delete.

Renumbering is LeRobot's (lerobot 0.4.4 ``dataset_tools._copy_and_reindex_data``):
the k-th episode of the result gets ``episode_index`` k, ``index`` counts
0.. over the result in episode order, ``task_index`` follows the result's
tasks; every other value is copied. Each frames row keeps the episode index it
had in the dataset it came from in ``source_episode_index`` (an existing one
is carried over, so after several tools it still names the original
conversion's episode).

Videos: a v2.x card output names each episode's mp4 after its episode
(``video_path`` template), so its ``videos`` rows are renamed to the new
episode index; v3.0 metadata (card v3.0 and the ``lerobot`` layout) refers to
``(video_key, chunk_index, file_index)``, which a single input keeps and a
merge offsets per camera past the files of the inputs before it (as
LeRobot's ``aggregate_datasets`` does), so every reference resolves to
exactly one row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from lerobot_lance import formats
from lerobot_lance import stats as st
from lerobot_lance.tools._output import (
    SOURCE_EPISODE_COLUMN,
    EpisodePick,
    InPlace,
    MetaPlan,
    OutputState,
    ToolResult,
    TableWriter,
    copy_rows,
    layout_indexes,
    picked_stats,
    plan_episodes,
    replace_columns,
    unify_tasks,
    write_new_output,
    writable_schema,
)

_EPISODE_FILE = re.compile(r"episode_(\d+)\.mp4$")


def episode_offsets(ds: Any) -> dict[int, list[int]]:
    """episode_index -> the row offsets holding it, in scan order."""
    e = ds.to_table(columns=["episode_index"])["episode_index"].to_numpy()
    order = np.argsort(e, kind="stable")
    out: dict[int, list[int]] = {}
    uniq, starts = np.unique(e[order], return_index=True)
    bounds = list(starts[1:]) + [len(e)]
    for ep, a, b in zip(uniq, starts, bounds):
        out[int(ep)] = order[a:b].tolist()
    return out


def referenced_files(state: OutputState, episodes: Sequence[int]) -> set[tuple[str, int, int]]:
    """``(video_key, chunk_index, file_index)`` named by these episodes' v3.0 records."""
    out = set()
    for e in episodes:
        rec = state.records[e]
        for key in state.video_keys:
            if f"videos/{key}/chunk_index" in rec:
                out.add((key, int(rec[f"videos/{key}/chunk_index"]), int(rec[f"videos/{key}/file_index"])))
    return out


def video_file_maps(inputs: Sequence[OutputState], picks: Sequence[EpisodePick]) -> list[dict[tuple[str, int, int], tuple[int, int]]]:
    """Per input, each referenced ``(video_key, chunk, file)`` -> the result's
    ``(chunk, file)``: kept for the first input, offset per camera past the
    files of the inputs before for the others."""
    maps, top = [], {}
    for i, s in enumerate(inputs):
        files = referenced_files(s, [p.episode_index for p in picks if p.source == i])
        m = {}
        offset = {k: (top[k] + 1 if k in top else 0) for k in s.video_keys} if i else {k: 0 for k in s.video_keys}
        for key, chunk, file in sorted(files):
            m[(key, chunk, file)] = (chunk, file + offset.get(key, 0))
        for (key, _, _), (_, file) in m.items():
            top[key] = max(top.get(key, -1), file)
        maps.append(m)
    return maps


def _episode_tasks(inputs: Sequence[OutputState], picks: Sequence[EpisodePick], task_maps: Sequence[Mapping[int, int]]) -> dict[int, np.ndarray]:
    """New episode index -> its rows' new task_index values (read from frames)."""
    out = {}
    by_input: dict[int, list[EpisodePick]] = {}
    for p in picks:
        by_input.setdefault(p.source, []).append(p)
    for i, ps in by_input.items():
        t = inputs[i].dataset(formats.FRAMES_TABLE).to_table(columns=["episode_index", "frame_index", "task_index"])
        e = t["episode_index"].to_numpy()
        f = t["frame_index"].to_numpy()
        task = t["task_index"].to_numpy()
        tmap = task_maps[i]
        lut = np.array([tmap.get(k, k) for k in range(max(tmap, default=0) + 1)], dtype=np.int64)
        for p in ps:
            sel = e == p.episode_index
            out[p.new_index] = lut[task[sel][np.argsort(f[sel])]]
    return out


def selection_plan(inputs: Sequence[OutputState], selection: Sequence[tuple[int, int]], record: dict[str, Any]) -> MetaPlan:
    """The :class:`MetaPlan` of a result holding these ``(input, episode)`` in order."""
    picks = plan_episodes(inputs, selection)
    tasks, task_maps = unify_tasks(inputs, picks)
    stats = picked_stats(inputs, picks, task_maps, _episode_tasks(inputs, picks, task_maps))
    return MetaPlan(picks, tasks, task_maps, stats, dict(inputs[0].features), video_file_maps(inputs, picks), record)


# ----------------------------------------------------------------------------- new output
def frames_writer(inputs: Sequence[OutputState], plan: MetaPlan, *, drop: Sequence[str] = (),
                  extra_fields: Sequence[pa.Field] = (), extra: Any = None) -> TableWriter:
    """Frames of the picks in order, renumbered (module docstring); ``drop``:
    columns left out; ``extra(table) -> {column: values}`` adds ``extra_fields``
    (called on each episode's renumbered rows)."""
    first = inputs[0].dataset(formats.FRAMES_TABLE).schema
    schema = first if SOURCE_EPISODE_COLUMN in first.names else first.append(pa.field(SOURCE_EPISODE_COLUMN, pa.int64()))
    schema = pa.schema([f for f in schema if f.name not in drop] + list(extra_fields), metadata=schema.metadata)

    def batches() -> Iterator[pa.RecordBatch]:
        offsets = [episode_offsets(s.dataset(formats.FRAMES_TABLE)) for s in inputs]
        datasets = [s.dataset(formats.FRAMES_TABLE) for s in inputs]
        for p in plan.picks:
            t = datasets[p.source].take(offsets[p.source][p.episode_index])
            t = t.take(pa.array(np.argsort(t["frame_index"].to_numpy(), kind="stable")))
            n = t.num_rows
            tmap = plan.task_maps[p.source]
            if SOURCE_EPISODE_COLUMN not in t.column_names:
                t = t.append_column(SOURCE_EPISODE_COLUMN, pa.array(np.full(n, p.episode_index, dtype=np.int64)))
            new = {
                "episode_index": np.full(n, p.new_index, dtype=np.int64),
                "index": np.arange(p.start, p.start + n, dtype=np.int64),
                "task_index": np.array([tmap.get(int(x), int(x)) for x in t["task_index"].to_numpy()], dtype=np.int64),
            }
            for col, values in new.items():
                i = t.schema.get_field_index(col)
                t = t.set_column(i, col, pa.array(values).cast(t.schema.field(col).type))
            if extra is not None:
                for col, values in extra(t).items():
                    t = t.append_column(col, values)
            yield from t.select(schema.names).cast(schema).to_batches()

    return lambda: (schema, batches())


def episodes_writer(inputs: Sequence[OutputState], plan: MetaPlan, schema: pa.Schema | None = None,
                    extra: Mapping[int, Mapping[str, Any]] | None = None) -> TableWriter:
    """The card layout's ``episodes`` rows of the picks, renumbered, ``stats``
    from the plan, blobs copied (``extra``: new episode index -> more columns)."""
    src_schema = inputs[0].dataset(formats.EPISODES_TABLE).schema
    out_schema = writable_schema(schema or src_schema)
    stats_type = out_schema.field("stats").type if "stats" in out_schema.names else None

    def batches() -> Iterator[pa.RecordBatch]:
        for p, s in zip(plan.picks, plan.stats):
            ds = inputs[p.source].dataset(formats.EPISODES_TABLE)
            rows = episode_offsets(ds)[p.episode_index]
            tmap = plan.task_maps[p.source]

            def transform(t: pa.Table, p: EpisodePick = p, s: dict = s, tmap: dict = tmap) -> pa.Table:
                new = {"episode_index": p.new_index, "dataset_from_index": p.start, "dataset_to_index": p.start + p.length,
                       "task_index": tmap.get(int(t["task_index"][0].as_py()), int(t["task_index"][0].as_py()))}
                for col, v in new.items():
                    if col in t.column_names:
                        i = t.schema.get_field_index(col)
                        t = t.set_column(i, col, pa.array([v], t.schema.field(col).type))
                if stats_type is not None:
                    struct = st.episode_stats_to_struct({k: v for k, v in s.items() if k in plan.features})
                    i = t.schema.get_field_index("stats")
                    arr = pa.array([struct], stats_type)
                    t = t.set_column(i, pa.field("stats", stats_type), arr) if i >= 0 else t.append_column(pa.field("stats", stats_type), arr)
                for col, v in ((extra or {}).get(p.new_index) or {}).items():
                    f = out_schema.field(col)
                    arr = pa.array([v], f.type)
                    i = t.schema.get_field_index(col)
                    t = t.set_column(i, f, arr) if i >= 0 else t.append_column(f, arr)
                return t

            yield from copy_rows(ds, rows, transform, out_schema)

    return lambda: (out_schema, batches())


def _v2_episode_of(row: Mapping[str, Any]) -> int:
    m = _EPISODE_FILE.search(str(row.get("relative_path") or ""))
    return int(m.group(1)) if m else int(row["file_index"])


def videos_writer(inputs: Sequence[OutputState], plan: MetaPlan, drop_keys: Sequence[str] = ()) -> TableWriter | None:
    """``videos`` rows of the files the picks use (module docstring), blobs copied;
    ``None`` when the inputs have no videos table."""
    from lerobot_lance.layouts import lerobot as L

    base = inputs[0]
    if formats.VIDEOS_TABLE not in base.tables:
        return None
    key_col = "camera_angle" if base.layout == "card" else L.VIDEO_KEY_COLUMNS[0]
    schema = writable_schema(base.dataset(formats.VIDEOS_TABLE).schema)
    size = int(base.info.get("chunks_size") or formats.DEFAULT_CHUNKS_SIZE)
    template = base.info.get("video_path") or (formats.V2_VIDEO_PATH if base.is_v2 else formats.V3_VIDEO_PATH)

    def batches() -> Iterator[pa.RecordBatch]:
        for i, s in enumerate(inputs):
            ds = s.dataset(formats.VIDEOS_TABLE)
            cols = ds.to_table(columns=[key_col, "chunk_index", "file_index", "relative_path"]).to_pylist()
            new_of = {p.episode_index: p.new_index for p in plan.picks if p.source == i}
            wanted: list[tuple[int, dict[str, Any]]] = []
            for off, row in enumerate(cols):
                key = row[key_col]
                if key in drop_keys:
                    continue
                if base.layout == "card" and base.is_v2:
                    old = _v2_episode_of(row)
                    if old not in new_of:
                        continue
                    new = new_of[old]
                    rel = template.format(episode_chunk=new // size, video_key=key, episode_index=new)
                    wanted.append((off, {"chunk_index": new // size, "file_index": new, "relative_path": rel, "filename": rel.rsplit("/", 1)[-1]}))
                else:
                    ref = (key, int(row["chunk_index"]), int(row["file_index"]))
                    if ref not in plan.video_files[i]:
                        continue
                    chunk, file = plan.video_files[i][ref]
                    upd: dict[str, Any] = {"chunk_index": chunk, "file_index": file}
                    if base.layout == "card":
                        rel = template.format(video_key=key, chunk_index=chunk, file_index=file)
                        upd.update(relative_path=rel, filename=rel.rsplit("/", 1)[-1])
                    wanted.append((off, upd))
            for off, upd in wanted:
                def transform(t: pa.Table, upd: dict = upd) -> pa.Table:
                    for col, v in upd.items():
                        j = t.schema.get_field_index(col)
                        t = t.set_column(j, col, pa.array([v], t.schema.field(col).type))
                    return t

                yield from copy_rows(ds, [off], transform, schema)

    return lambda: (schema, batches())


def selection_writers(inputs: Sequence[OutputState], plan: MetaPlan) -> dict[str, TableWriter]:
    """The table writers of a selection result, in the layout's commit order."""
    writers: dict[str, TableWriter] = {formats.FRAMES_TABLE: frames_writer(inputs, plan)}
    if inputs[0].layout == "card":
        writers[formats.EPISODES_TABLE] = episodes_writer(inputs, plan)
    v = videos_writer(inputs, plan)
    if v is not None:
        writers[formats.VIDEOS_TABLE] = v
    return writers


def write_selection(inputs: Sequence[OutputState], selection: Sequence[tuple[int, int]], dest: str, verb: str,
                    record: dict[str, Any]) -> ToolResult:
    """Write a new output holding ``selection`` (``(input, episode_index)`` in order)."""
    plan = selection_plan(inputs, selection, record)
    return write_new_output(inputs, plan, dest, selection_writers(inputs, plan), verb)


# ----------------------------------------------------------------------------- in place
def _lut(mapping: Mapping[int, int], size: int, fill: int = 0) -> np.ndarray:
    lut = np.full(max(size, max(mapping, default=-1) + 1), fill, dtype=np.int64)
    for k, v in mapping.items():
        lut[k] = v
    return lut


def delete_in_place(state: OutputState, keep: Sequence[int], record: dict[str, Any]) -> ToolResult:
    """Delete the episodes not in ``keep`` from the output itself: Lance
    ``delete`` (deletion files), then the renumbered columns through
    :func:`~lerobot_lance.tools._output.replace_columns` (new column files for
    ``episode_index``, ``index``, ``task_index`` and, in the card layout, the
    episodes table's range and ``stats`` columns and the v2.x videos names).
    No blob and no other column is rewritten."""
    import lance

    keep = sorted(keep)
    drop = sorted(set(state.records) - set(keep))
    with InPlace(state, "delete-episodes") as tx:
        plan = selection_plan([state], [(0, e) for e in keep], record)
        picks = {p.episode_index: p for p in plan.picks}
        tmap = plan.task_maps[0]
        indexes = layout_indexes(state.layout)
        where = f"episode_index IN ({', '.join(map(str, drop))})"
        frames_uri = state.uri(formats.FRAMES_TABLE)
        ft = lance.dataset(frames_uri).to_table(columns=["episode_index", "index"])
        e_all, i_all = ft["episode_index"].to_numpy(), ft["index"].to_numpy()
        start_old = {int(e): int(i_all[e_all == e].min()) for e in np.unique(e_all)}
        n_lut = max(state.records) + 1
        new_ep = _lut({e: p.new_index for e, p in picks.items()}, n_lut)
        shift = _lut({e: p.start - start_old[e] for e, p in picks.items()}, n_lut)
        task_lut = _lut(tmap, max(tmap, default=0) + 1)
        ds = lance.dataset(frames_uri)
        ds.delete(where)
        if SOURCE_EPISODE_COLUMN not in ds.schema.names:
            ds = lance.dataset(frames_uri)
            ds.add_columns(lambda b: pa.RecordBatch.from_arrays([b["episode_index"].cast(pa.int64())], [SOURCE_EPISODE_COLUMN]),
                           read_columns=["episode_index"])
        schema = lance.dataset(frames_uri).schema

        def frames_cols(b: pa.RecordBatch) -> dict[str, pa.Array]:
            e = b["episode_index"].to_numpy()
            return {"episode_index": pa.array(new_ep[e]).cast(schema.field("episode_index").type),
                    "index": pa.array(b["index"].to_numpy() + shift[e]).cast(schema.field("index").type),
                    "task_index": pa.array(task_lut[b["task_index"].to_numpy()]).cast(schema.field("task_index").type)}

        replace_columns(frames_uri, ["episode_index", "index", "task_index"], frames_cols, indexes.get(formats.FRAMES_TABLE))

        if state.layout == "card":
            eps_uri = state.uri(formats.EPISODES_TABLE)
            ds = lance.dataset(eps_uri)
            ds.delete(where)
            eschema = ds.schema
            stats_type = eschema.field("stats").type
            structs = [st.episode_stats_to_struct({k: v for k, v in s.items() if k in plan.features}) for s in plan.stats]
            struct_arr = pa.array(structs, stats_type)
            pos = _lut({p.episode_index: j for j, p in enumerate(plan.picks)}, n_lut)
            start = _lut({e: p.start for e, p in picks.items()}, n_lut)
            length = _lut({e: p.length for e, p in picks.items()}, n_lut)

            def eps_cols(b: pa.RecordBatch) -> dict[str, pa.Array]:
                e = b["episode_index"].to_numpy()
                return {"episode_index": pa.array(new_ep[e]).cast(eschema.field("episode_index").type),
                        "task_index": pa.array(task_lut[b["task_index"].to_numpy()]).cast(eschema.field("task_index").type),
                        "dataset_from_index": pa.array(start[e]).cast(eschema.field("dataset_from_index").type),
                        "dataset_to_index": pa.array(start[e] + length[e]).cast(eschema.field("dataset_to_index").type),
                        "stats": struct_arr.take(pa.array(pos[e]))}

            replace_columns(eps_uri, ["episode_index", "task_index"], eps_cols, indexes.get(formats.EPISODES_TABLE))
        if formats.VIDEOS_TABLE in state.tables:
            _videos_in_place(state, plan, drop)
        return tx.finish(plan)


def _videos_in_place(state: OutputState, plan: MetaPlan, dropped: Sequence[int]) -> None:
    import lance

    from lerobot_lance.layouts import lerobot as L

    uri = state.uri(formats.VIDEOS_TABLE)
    key_col = "camera_angle" if state.layout == "card" else L.VIDEO_KEY_COLUMNS[0]
    if state.layout == "card" and state.is_v2:
        gone = list(dropped)
        if gone:
            rows = lance.dataset(uri).to_table(columns=["relative_path", "file_index"]).to_pylist()
            paths = [r["relative_path"] for r in rows if _v2_episode_of(r) in set(gone)]
            if paths:
                lance.dataset(uri).delete("relative_path IN (" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + ")")
        size = int(state.info.get("chunks_size") or formats.DEFAULT_CHUNKS_SIZE)
        template = state.info.get("video_path") or formats.V2_VIDEO_PATH
        new_of = {p.episode_index: p.new_index for p in plan.picks}
        schema = lance.dataset(uri).schema

        def cols(b: pa.RecordBatch) -> dict[str, pa.Array]:
            rels: list[str] = []
            files: list[int] = []
            for key, rel, fi in zip(b[key_col].to_pylist(), b["relative_path"].to_pylist(), b["file_index"].to_pylist()):
                new = new_of.get(_v2_episode_of({"relative_path": rel, "file_index": fi}), 0)
                path = template.format(episode_chunk=new // size, video_key=key, episode_index=new)
                rels.append(path)
                files.append(new)
            return {"relative_path": pa.array(rels, schema.field("relative_path").type),
                    "filename": pa.array([r.rsplit("/", 1)[-1] for r in rels], schema.field("filename").type),
                    "file_index": pa.array(files, schema.field("file_index").type),
                    "chunk_index": pa.array([f // size for f in files], schema.field("chunk_index").type)}

        replace_columns(uri, [key_col, "relative_path", "file_index"], cols)
        return
    keep = set(plan.video_files[0])
    rows = lance.dataset(uri).to_table(columns=[key_col, "chunk_index", "file_index"]).to_pylist()
    gone = [r for r in rows if (r[key_col], int(r["chunk_index"]), int(r["file_index"])) not in keep]
    if gone:
        cond = " OR ".join(f"({key_col} = '{r[key_col]}' AND chunk_index = {r['chunk_index']} AND file_index = {r['file_index']})" for r in gone)
        lance.dataset(uri).delete(cond)
