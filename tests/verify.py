"""An independent verifier of a converted output, reading the source files directly
(pyarrow, json, hashlib, PyAV) rather than through the converter's readers."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import av
import lance
import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def source_frames(src: Path) -> pa.Table:
    """All source data rows, sorted by ``index``, with LeRobot column names."""
    tables = [pq.read_table(p) for p in sorted((src / "data").rglob("*.parquet"))]
    t = pa.concat_tables([t.cast(tables[0].schema) if t.schema != tables[0].schema else t for t in tables])
    return t.sort_by("index")


def decoded_md5s(path: Path | str | bytes, start: float | None = None, stop: float | None = None) -> list[str]:
    """md5 of every decoded RGB frame (of the window [start, stop) seconds, if given)."""
    f = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    out = []
    with av.open(f) as c:
        s = c.streams.video[0]
        if start:
            c.seek(int(start / s.time_base), stream=s, backward=True, any_frame=False)
        for fr in c.decode(s):
            t = float(fr.pts * s.time_base)
            if start is not None and t < start - 1e-3:
                continue
            if stop is not None and t >= stop - 1e-3:
                break
            out.append(hashlib.md5(fr.to_ndarray(format="rgb24").tobytes()).hexdigest())
    return out


def verify_output(out: Path, src: Path, *, decode: bool = True) -> dict[str, int]:
    """Assert the output at ``out`` is a faithful conversion of ``src``; return row counts."""
    info = json.loads((src / "meta" / "info.json").read_text())
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    db = lancedb.connect(str(out))
    frames = lance.dataset(str(out / "frames.lance"))
    episodes = lance.dataset(str(out / "episodes.lance"))
    videos = lance.dataset(str(out / "videos.lance"))

    # frames: rows, columns, types, and values equal to the source
    src_t = source_frames(src)
    got = frames.to_table().sort_by("index")
    assert got.num_rows == src_t.num_rows == info["total_frames"]
    for key, feat in info["features"].items():
        if feat["dtype"] == "video":
            assert key.replace(".", "_") not in got.column_names
            continue
        col = key.replace(".", "_")
        assert col in got.column_names, col
        a, b = got[col].combine_chunks(), src_t[key].combine_chunks()
        if feat["dtype"] == "image":
            assert got.schema.field(col).type == pa.binary()
            assert a.to_pylist() == b.field("bytes").to_pylist()
        elif len(feat["shape"]) == 1 and feat["shape"][0] > 1:
            assert pa.types.is_fixed_size_list(got.schema.field(col).type)
            assert got.schema.field(col).type.list_size == feat["shape"][0]
            # bit-identical: compare raw bytes of the flattened values
            assert a.flatten().to_numpy().tobytes() == b.flatten().to_numpy(zero_copy_only=False).astype(a.type.value_type.to_pandas_dtype()).tobytes()
        else:
            assert a.to_numpy().tobytes() == b.to_numpy().tobytes(), col
    for col, typ in {"timestamp": pa.float32(), "frame_index": pa.int64(), "episode_index": pa.int64(), "index": pa.int64(), "task_index": pa.int64()}.items():
        assert got.schema.field(col).type == typ

    # the dataset card's query
    rows = (
        db.open_table("frames").search().where("episode_index = 0 AND frame_index < 10", prefilter=True)
        .select(["episode_index", "frame_index", "timestamp", "action", "observation_state"]).limit(10).to_list()
    )
    assert len(rows) == 10 and sorted(r["frame_index"] for r in rows) == list(range(10))

    # episodes: one row per episode, sequences equal to the frames
    ep = episodes.to_table(columns=[c for c in episodes.schema.names if not c.endswith("_video_blob")]).sort_by("episode_index")
    assert ep.num_rows == info["total_episodes"]
    assert ep.schema.field("fps").type == pa.int32()
    assert ep.schema.field("timestamps").type == pa.list_(pa.float32())
    for i in range(ep.num_rows):
        e = ep["episode_index"][i].as_py()
        mask = pc.equal(src_t["episode_index"], e)
        rows_e = src_t.filter(mask)
        assert ep["length"][i].as_py() == rows_e.num_rows
        assert ep["timestamps"][i].values.to_numpy().tobytes() == rows_e["timestamp"].to_numpy().tobytes()
        got_actions = ep["actions"][i].values.flatten().to_numpy()
        src_actions = rows_e["action"].combine_chunks().flatten().to_numpy()
        assert got_actions.tobytes() == src_actions.astype(got_actions.dtype).tobytes()

    # videos: verbatim bytes and sha256 of every source mp4
    src_mp4 = sorted((src / "videos").rglob("*.mp4")) if (src / "videos").is_dir() else []
    vt = videos.to_table(columns=["relative_path", "sha256", "file_size_bytes", "camera_angle", "chunk_index", "file_index", "filename"])
    assert vt.num_rows == len(src_mp4)
    assert vt.schema.field("chunk_index").type == pa.int32() and vt.schema.field("file_size_bytes").type == pa.int64()
    blobs = videos.take_blobs("video_blob", indices=list(range(vt.num_rows))) if vt.num_rows else []
    for i, blob in enumerate(blobs):
        rel = vt["relative_path"][i].as_py()
        data = (src / rel).read_bytes()
        with blob as f:
            stored = f.read()
        assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest() == vt["sha256"][i].as_py()
        assert vt["file_size_bytes"][i].as_py() == len(data)

    # episode segments: exactly the episode's frames, pixel-identical to the source window
    if video_keys:
        ept = episodes.to_table(columns=["episode_index"])
        for key in video_keys:
            col = key.replace(".", "_")
            segs = episodes.take_blobs(f"{col}_video_blob", indices=list(range(ept.num_rows)))
            win = episodes.to_table(columns=["episode_index", f"{col}_from_timestamp", f"{col}_to_timestamp", "length"]).to_pylist()
            for blob, w in zip(segs, win):
                with blob as f:
                    seg = f.read()
                with av.open(io.BytesIO(seg)) as c:
                    packets = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
                assert packets == w["length"], (key, w["episode_index"], packets)
                if decode:
                    src_file = _source_video(src, info, key, w["episode_index"])
                    expect = decoded_md5s(src_file, w[f"{col}_from_timestamp"], w[f"{col}_to_timestamp"])
                    assert decoded_md5s(seg) == expect, (key, w["episode_index"])
                    assert len(expect) == w["length"]
    return {"frames": got.num_rows, "episodes": ep.num_rows, "videos": vt.num_rows}


def _source_video(src: Path, info: dict, key: str, episode_index: int) -> Path:
    if info["codebase_version"].startswith("v2"):
        chunk = episode_index // info.get("chunks_size", 1000)
        return src / info["video_path"].format(episode_chunk=chunk, video_key=key, episode_index=episode_index)
    meta = pq.read_table(next((src / "meta" / "episodes").rglob("*.parquet"))).to_pylist()
    row = next(r for r in meta if r["episode_index"] == episode_index)
    return src / info["video_path"].format(
        video_key=key, chunk_index=row[f"videos/{key}/chunk_index"], file_index=row[f"videos/{key}/file_index"]
    )
