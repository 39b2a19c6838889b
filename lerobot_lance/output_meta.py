"""The output's ``meta/``: the source ``meta/`` rewritten to describe what was published.

Prepared in full, from the source, before a publish's first commit
(:func:`prepare_output_meta`), into ``<output>/.lerobot-lance-meta.new/``;
:func:`lerobot_lance.lance_io.publish` swaps it in after the tags. What it
rewrites (LeRobot's own file layout; lerobot 0.3 ``datasets/utils.py`` for
v2.x, lerobot 0.4.4 for v3.0):

- ``info.json``: ``"storage_format": "lance"``; ``total_episodes``,
  ``total_frames`` of the published episodes; ``total_videos`` and
  ``total_chunks`` when the source has them (v2.x); ``splits`` restricted to
  the published episodes (``"a:b"`` episode ranges, several joined by ``,``
  when the published episodes of a split are not contiguous). With
  ``skip_videos`` the video features are dropped, ``video_path`` is ``null``
  and ``total_videos`` is 0: a LeRobot reader would otherwise look for mp4s
  the output does not hold.
- v2.x ``episodes.jsonl`` / ``episodes_stats.jsonl``: only the published
  episodes' lines (source episode indices kept: this layout does not re-index).
- v3.0 ``episodes/chunk-*/file-*.parquet``: only the published episodes' rows
  (files left empty are omitted); with ``skip_videos`` without the
  ``videos/<camera>/...`` and ``stats/<camera>/...`` columns.
- ``stats.json``: the statistics aggregated over the published episodes.
- every other file of the source ``meta/`` is copied as it is.

Raises :class:`~lerobot_lance.errors.SourceDataError` for a ``meta/`` entry
that is not a regular file or cannot be read, before anything is committed.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lerobot_lance import formats
from lerobot_lance.errors import SourceDataError
from lerobot_lance.model import DatasetMeta


def episode_ranges_text(episodes: Sequence[int]) -> str:
    """``[0, 1, 2, 5, 6]`` -> ``"0:3,5:7"`` (half-open ranges, LeRobot's ``splits`` form)."""
    parts: list[list[int]] = []
    for e in sorted(episodes):
        if parts and e == parts[-1][1]:
            parts[-1][1] = e + 1
        else:
            parts.append([e, e + 1])
    return ",".join(f"{a}:{b}" for a, b in parts)


def _split_episodes(text: str) -> set[int]:
    out: set[int] = set()
    for part in str(text).split(","):
        a, _, b = part.partition(":")
        out.update(range(int(a), int(b)))
    return out


def published_info(meta: DatasetMeta, episodes: Sequence[int], *, skip_videos: bool) -> dict[str, Any]:
    """``info.json`` of the output (see module docstring)."""
    info = json.loads(json.dumps(meta.info))
    keep = sorted(episodes)
    info["storage_format"] = formats.STORAGE_FORMAT
    info["total_episodes"] = len(keep)
    info["total_frames"] = sum(meta.episode(e).length for e in keep)
    video_keys = [] if skip_videos else list(meta.video_keys)
    if "total_videos" in info:
        files = {r.relative_path for e in keep for k, r in meta.episode(e).videos.items() if k in video_keys}
        info["total_videos"] = len(files) if not meta.one_file_per_episode else len(keep) * len(video_keys)
    if "total_chunks" in info:
        size = int(info.get("chunks_size") or formats.DEFAULT_CHUNKS_SIZE)
        info["total_chunks"] = len({e // size for e in keep})
    if isinstance(info.get("splits"), dict):
        splits = {}
        for name, text in info["splits"].items():
            try:
                members = _split_episodes(text) & set(keep)
            except ValueError:
                splits[name] = text  # not LeRobot's "a:b" form: left as the source wrote it
                continue
            if members:
                splits[name] = episode_ranges_text(sorted(members))
        info["splits"] = splits
    if skip_videos and meta.video_keys:
        info["features"] = {k: f for k, f in info["features"].items() if k not in meta.video_keys}
        info["video_path"] = None
    return info


def _drop_cameras(stats: Mapping[str, Any], cameras: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in stats.items() if k not in cameras}


def _filter_jsonl(src: Path, rel: str, keep: set[int], cameras: Sequence[str]) -> str:
    lines = []
    for n, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            ep = int(obj["episode_index"])
        except (ValueError, KeyError, TypeError) as err:
            raise SourceDataError(rel, f"line {n} is not an episode record ({err})", expected="a JSON object with episode_index", found=line[:80]) from None
        if ep not in keep:
            continue
        if cameras and isinstance(obj.get("stats"), dict):
            obj["stats"] = _drop_cameras(obj["stats"], cameras)
            line = json.dumps(obj)
        lines.append(line)
    return "".join(line + "\n" for line in lines)


def _filter_episodes_parquet(src: Path, dst: Path, keep: set[int], cameras: Sequence[str]) -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    t = pq.read_table(src)
    mask = pc.is_in(t["episode_index"], value_set=pa.array(sorted(keep), t.schema.field("episode_index").type))
    t = t.filter(mask)
    if cameras:
        drop = [c for c in t.column_names if any(c.startswith((f"videos/{k}/", f"stats/{k}/")) for k in cameras)]
        t = t.drop_columns(drop)
    if t.num_rows == 0:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(t, dst)
    return True


def prepare_output_meta(
    source_root: Path,
    meta: DatasetMeta,
    episodes: Sequence[int],
    dest: Path,
    *,
    dataset_stats: Mapping[str, Any] | None,
    skip_videos: bool,
) -> list[str]:
    """Write the output's ``meta/`` for the published ``episodes`` into ``dest``
    (replaced if it exists), reading the source's ``meta/`` under ``source_root``.

    Returns:
        The written files, relative to ``dest`` (posix paths), sorted.

    Raises:
        SourceDataError: a source ``meta/`` entry is not a regular file or
            cannot be read (named, with what was found).
    """
    src_meta = Path(source_root) / "meta"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    keep = set(episodes)
    cameras = list(meta.video_keys) if skip_videos else []
    written: list[str] = []
    for path in sorted(src_meta.rglob("*")):
        rel = path.relative_to(src_meta).as_posix()
        where = f"meta/{rel}"
        if path.is_dir():
            continue
        if not path.is_file():
            kind = "a dangling symlink" if path.is_symlink() else "not a regular file (FIFO, socket or device)"
            raise SourceDataError(where, "cannot be copied to the output meta/", expected="a regular file", found=kind)
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if rel == "info.json":
                out.write_text(json.dumps(published_info(meta, episodes, skip_videos=skip_videos), indent=4), encoding="utf-8")
            elif rel in ("episodes.jsonl", "episodes_stats.jsonl"):
                out.write_text(_filter_jsonl(path, where, keep, cameras), encoding="utf-8")
            elif rel.startswith("episodes/") and rel.endswith(".parquet"):
                if not _filter_episodes_parquet(path, out, keep, cameras):
                    continue
            elif rel == "stats.json" and dataset_stats is not None:
                continue  # written below
            elif rel == "stats.json" and cameras:
                out.write_text(json.dumps(_drop_cameras(json.loads(path.read_text(encoding="utf-8")), cameras), indent=4), encoding="utf-8")
            elif rel == "conversion.json":
                continue  # the publish writes its own
            else:
                shutil.copyfile(path, out)
        except SourceDataError:
            raise
        except (OSError, ValueError) as err:
            raise SourceDataError(where, f"cannot be read for the output meta/: {err}") from None
        written.append(rel)
    if dataset_stats is not None:
        (dest / "stats.json").write_text(json.dumps(dataset_stats, indent=4), encoding="utf-8")
        written.append("stats.json")
    return sorted(set(written))
