"""Output rules: what the published Lance tables must hold (DESIGN.md "Output layout").

``table_row_counts``
    ``frames`` holds the sum of the published episodes' lengths, ``episodes``
    one row per published episode, ``videos`` one row per source mp4 those
    episodes use.
``videos_sha256``
    each ``videos`` row's ``sha256`` equals the sha256 of its stored blob and of
    the source file's bytes.
``frames_keys_unique``
    ``(episode_index, frame_index)`` is unique in ``frames``.
``tables_share_tag``
    the three tables carry the publish's tag, each on its latest version.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from lerobot_lance import formats
from lerobot_lance.model import DatasetMeta
from lerobot_lance.quality.result import CheckOutcome, Offender

OUTPUT_RULES: tuple[str, ...] = ("table_row_counts", "videos_sha256", "frames_keys_unique", "tables_share_tag")

_DESCRIPTIONS = {
    "table_row_counts": "each table's row count equals what the source's published episodes imply",
    "videos_sha256": "videos.sha256 equals the sha256 of the stored blob and of the source file",
    "frames_keys_unique": "(episode_index, frame_index) is unique in frames",
    "tables_share_tag": "frames, episodes and videos carry the same tag on their latest version",
}


def check_output(
    output: str | Path,
    meta: DatasetMeta,
    source_root: str | Path | None,
    *,
    tag: str | None = None,
    episodes: Sequence[int] | None = None,
    skip_videos: bool = False,
    storage_options: dict[str, str] | None = None,
    versions: dict[str, int] | None = None,
    only: Sequence[str] | None = None,
    threads: int = 2,
) -> list[CheckOutcome]:
    """Check the published tables under ``output`` against the source.

    Args:
        output: output root holding ``frames.lance``, ``episodes.lance``, ``videos.lance``.
        meta: the source metadata.
        source_root: local source root holding the mp4s (for their sha256);
            ``None`` (a dataset tool's result, which has no source at hand):
            compare each row's column with its blob only.
        tag: the publish's tag (default: the ``latest`` tag's target is not
            assumed; the rule then checks that one tag is common to all three).
        episodes: the published episodes (default all of ``meta``).
        skip_videos: the conversion was tabular-only (no ``videos`` table).
        versions: table -> version to check (the publish checks the versions
            it committed before tagging them); default each table's latest.
        only: evaluate only these rules (default all).
        threads: ``videos`` blobs read and hashed at a time.

    Returns:
        One :class:`CheckOutcome` per name in :data:`OUTPUT_RULES`, in that order.
        Reads the ``frames`` key columns (16 bytes per frame) and streams each
        ``videos`` blob once (memory: one 8 MB chunk per thread).
    """
    import lance

    from lerobot_lance.blobs import file_sha256, sha256_stream
    from lerobot_lance.lance_io import table_uri

    output = str(output)
    eps = list(episodes) if episodes is not None else meta.episode_indices
    keep = set(eps)
    names = [t for t in formats.TABLE_NAMES if not (skip_videos and t == formats.VIDEOS_TABLE)]
    tables = {
        t: lance.dataset(table_uri(output, t), version=(versions or {}).get(t), storage_options=storage_options) for t in names
    }
    if only is not None and set(only) <= {"tables_share_tag"}:
        return [_tag_outcome(tables, tag)]

    # row counts
    want_frames = sum(meta.episode(e).length for e in eps)
    video_files = [] if skip_videos else sorted({r.relative_path for e in meta.episodes if e.episode_index in keep for r in e.videos.values()})
    want = {formats.FRAMES_TABLE: want_frames, formats.EPISODES_TABLE: len(eps), formats.VIDEOS_TABLE: len(video_files)}
    rows = {t: ds.count_rows() for t, ds in tables.items()}
    rc = [Offender(f"{t}.lance", None, "row count", expected=want[t], found=rows[t]) for t in names if rows[t] != want[t]]

    # videos sha256: column vs blob vs source bytes
    sha_off: list[Offender] = []
    vt = tables.get(formats.VIDEOS_TABLE)
    n = rows.get(formats.VIDEOS_TABLE, 0)
    if n and vt is not None:
        cols = vt.to_table(columns=["relative_path", "sha256"])
        blobs = vt.take_blobs("video_blob", indices=list(range(n)))

        def stored_sha256(blob: Any) -> str:  # the blob read and hashlib release the GIL
            with blob as f:
                return sha256_stream(f)[0]

        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            stored_digests = list(pool.map(stored_sha256, blobs))
        for i, stored in enumerate(stored_digests):
            rel, declared = cols["relative_path"][i].as_py(), cols["sha256"][i].as_py()
            src = Path(source_root) / rel if source_root is not None else None
            source_sha = (file_sha256(src) if src.is_file() else "missing") if src is not None else stored
            if not (declared == stored == source_sha):
                sha_off.append(Offender(f"videos.lance: {rel}", None, "sha256 of column, blob and source differ",
                                        expected=source_sha, found=f"column {declared}, blob {stored}"))

    # frames keys unique
    ft = tables[formats.FRAMES_TABLE].to_table(columns=["episode_index", "frame_index"])
    keys = ft["episode_index"].to_numpy().astype(np.int64) * (1 << 32) + ft["frame_index"].to_numpy().astype(np.int64)
    uniq, counts = np.unique(keys, return_counts=True)
    repeated = counts > 1
    key_off = [
        Offender("frames.lance", int(k >> 32), "key (episode_index, frame_index) repeated", expected=1, found=int(c))
        for k, c in zip(uniq[repeated], counts[repeated])
    ]

    outcomes = [
        CheckOutcome.from_offenders("table_row_counts", rc, description=_DESCRIPTIONS["table_row_counts"], metadata={f"{t}_rows": v for t, v in want.items()}),
        CheckOutcome.from_offenders("videos_sha256", sha_off, description=_DESCRIPTIONS["videos_sha256"], metadata={"files": n}),
        CheckOutcome.from_offenders("frames_keys_unique", key_off, description=_DESCRIPTIONS["frames_keys_unique"], metadata={"frames": int(len(keys))}),
        _tag_outcome(tables, tag),
    ]
    return [o for o in outcomes if only is None or o.name in only]


def tag_offenders(tables: dict[str, Any], tag: str | None) -> tuple[str | None, list[Offender]]:
    """What fails ``tables_share_tag`` (both layouts): a table without ``tag``
    (default: the newest tag common to all, ``latest`` aside), or whose ``tag``
    is not on its latest version.

    Returns:
        The tag checked (``None`` when the tables share none) and the offenders.
    """
    tag_sets: dict[str, dict[str, Any]] = {t: ds.tags.list() for t, ds in tables.items()}
    if tag is None:
        common = set.intersection(*(set(v) - {"latest"} for v in tag_sets.values())) if tag_sets else set()
        tag = max(common) if common else None
        if tag is None:
            return None, [Offender(None, None, "no tag common to the tables", found={t: sorted(v) for t, v in tag_sets.items()})]
    offs: list[Offender] = []
    for t, ds in tables.items():
        entry = tag_sets[t].get(tag)
        version = entry.get("version") if isinstance(entry, dict) else getattr(entry, "version", None)
        if entry is None:
            offs.append(Offender(f"{t}.lance", None, f"tag {tag!r} missing", expected=tag, found=sorted(tag_sets[t])))
        elif version != ds.latest_version:
            offs.append(Offender(f"{t}.lance", None, f"tag {tag!r} is not on the latest version", expected=ds.latest_version, found=version))
    return tag, offs


def _tag_outcome(tables: dict[str, Any], tag: str | None) -> CheckOutcome:
    """``tables_share_tag`` over the card layout's tables (:func:`tag_offenders`)."""
    tag, offenders = tag_offenders(tables, tag)
    return CheckOutcome.from_offenders("tables_share_tag", offenders, description=_DESCRIPTIONS["tables_share_tag"],
                                       metadata={"tag": tag or ""})


