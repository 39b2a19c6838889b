"""The publish stage (no Dagster): the table stages' pending fragments made
one snapshot of the output, and the clean-up of a failed conversion.

    publish_dataset         -> one commit per table, shared tag, meta/ swapped in
    discard_unpublished     -> a failed conversion's pending fragments forgotten

Reads the pending tables the layout's writers staged
(:mod:`lerobot_lance.layouts.card_writer`,
:mod:`lerobot_lance.layouts.lerobot_writer`), the coverage of the staged
episodes (:func:`lerobot_lance.episode_stages.coverage`) and the source's
``meta/``; writes the tables' commits, indexes and tags, the output's
``meta/`` (``conversion.json`` last) and the dataset card, under the output's
writer lock (:func:`lerobot_lance.conversion.writing`).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lerobot_lance import formats
from lerobot_lance.conversion import Conversion, writing
from lerobot_lance.episode_stages import coverage
from lerobot_lance.errors import LeRobotLanceError
from lerobot_lance.lance_io import (
    PENDING_TABLES_DIR,
    PREPARED_META_DIR,
    MetaSwap,
    PendingTable,
    PublishRefused,
    PublishResult,
    discard_pending,
    publish,
    read_pending,
)
from lerobot_lance.output_lock import is_local, local_root


def tables_written(conv: Conversion) -> list[str]:
    """The tables this conversion writes and publishes, in commit order: its
    layout's tables (:mod:`lerobot_lance.layouts`), without ``videos`` when
    ``skip_videos``."""
    from lerobot_lance.layouts.names import layout_tables

    names = list(layout_tables(conv.options.layout))
    return [t for t in names if not (conv.options.skip_videos and t == formats.VIDEOS_TABLE)]


def publish_dataset(
    conv: Conversion, layout: Any, tag: str | None = None, dataset_stats: Mapping[str, Any] | None = None
) -> PublishResult:
    """Publish what the table stages wrote, as one snapshot.

    ``layout`` is the conversion's :class:`~lerobot_lance.layouts.Layout`
    (``get_layout(conv.options.layout)``, passed in so that this module does not
    import the layouts' writers, which import it): its tables, indexes, meta
    writer and output checks.

    Under the output's writer lock, after recovering an interrupted publish
    (:func:`writing`), in this order:

    1. everything is read and checked before the first commit: the pending
       table of every table this conversion writes (:func:`tables_written`),
       the coverage, and the output ``meta/``, prepared in full from the
       source into ``<output>/.lerobot-lance-meta.new/``
       (:func:`lerobot_lance.output_meta.prepare_output_meta`: totals, episode
       lists and ``stats.json`` of the published episodes);
    2. :func:`lerobot_lance.lance_io.publish` commits each table once, builds
       the indexes, runs the blocking output checks on the committed
       versions (a failure rolls every commit back), tags the tables alike
       (the new tag and ``latest``), removes a ``videos`` table an earlier
       conversion left when this one skips videos, and swaps ``meta/`` in
       (``conversion.json`` last: tag, version vector, episodes, exclusions,
       ``skipped_videos``, ``kept_episodes``).

    Returns:
        The :class:`~lerobot_lance.lance_io.PublishResult`; ``checks`` holds the
        output check outcomes (``tables_share_tag`` evaluated after the tags).

    Raises:
        LeRobotLanceError: a table has nothing pending (its stage did not run);
            a blocking output check failed (nothing published).
        SourceDataError: the source ``meta/`` cannot be copied.
        OutputLockedError: another process is writing this output.
    """
    from lerobot_lance.lance_io import new_tag_name
    from lerobot_lance.output_meta import prepare_output_meta
    with writing(conv):
        tag = tag or new_tag_name()
        pendings = {}
        for t in tables_written(conv):
            if t not in layout.writers:
                continue  # staged by the layout's publish hook below
            p = read_pending(conv.staging, t)
            if p is None or not _pending_files_present(p):
                raise LeRobotLanceError(f"{conv.staging.root}: table {t!r} has no staged fragments; materialize {t}_table first")
            pendings[t] = p
        cov = coverage(conv)
        snap = conv.snapshot
        prepared = local_root(conv.output) / PREPARED_META_DIR if is_local(conv.output) else conv.staging.root / "prepared_meta"
        try:
            if layout.prepare_meta is None:
                files = prepare_output_meta(
                    conv.source.meta_root(), conv.output_meta, cov.included, prepared,
                    dataset_stats=dataset_stats, skip_videos=conv.options.skip_videos,
                )
                extra: dict[str, Any] = {}
            else:
                files, extra = layout.prepare_meta(conv, prepared, cov, tag, {t: p.rows for t, p in pendings.items()})
            if layout.stage_at_publish is not None:
                pendings.update(layout.stage_at_publish(conv, prepared, files))
        except BaseException:
            shutil.rmtree(prepared, ignore_errors=True)
            raise
        record = {
            "rows": {t: p.rows for t, p in pendings.items()},
            "tables": list(pendings),
            "layout": layout.name,
            "source": snap["source"],
            "revision": conv.revision,
            "codebase_version": conv.meta.codebase_version,
            "episodes": cov.included,
            "excluded_episodes": {str(k): v for k, v in cov.missing.items()},
            "requested_episodes": snap.get("requested"),
            "kept_episodes": snap.get("kept") or [],
            "skipped_videos": conv.options.skip_videos,
            "dropped_video_features": list(conv.meta.video_keys) if conv.options.skip_videos else [],
            **_encodings_record(conv, cov.included),
            "published_at": datetime.now(timezone.utc).isoformat(),
            **extra,
        }
        if is_local(conv.output):
            meta_swap = MetaSwap(str(prepared), str(local_root(conv.output) / "meta"), tuple(files), record)
        else:
            # Object store: the prepared meta/ goes next to the tables before the
            # first commit, so a recovery on any machine can finish the swap.
            from lerobot_lance import object_store

            remote_prepared = object_store.join(conv.output, PREPARED_META_DIR)
            object_store.remove_tree(remote_prepared, conv.options.storage_options)
            object_store.upload_tree(prepared, remote_prepared, files, conv.options.storage_options)
            meta_swap = MetaSwap(remote_prepared, object_store.join(conv.output, "meta"), tuple(files), record)
        message = json.dumps({"source": snap["source"], "revision": conv.revision, "excluded_episodes": cov.missing})
        drop = [conv.uri(formats.VIDEOS_TABLE)] if conv.options.skip_videos else []

        def verify(versions: dict[str, int]) -> list[Any]:
            outcomes = layout.check_output(conv, None, cov.included, versions=versions, meta_dir=prepared)
            failed = [o for o in outcomes if not o.passed and o.severity == "ERROR" and o.name != "tables_share_tag"]
            if failed:
                raise PublishRefused("; ".join(f"{o.name}: {o.message}" for o in failed))
            return [o for o in outcomes if o.name != "tables_share_tag"]

        from lerobot_lance.output_lock import ensure_lock_held

        ensure_lock_held(conv.output)  # an s3:// lock object taken over by another writer: commit nothing
        try:
            result = publish(
                pendings, journal=conv.journal, tag=tag, indexes={t: layout.indexes[t] for t in pendings if t in layout.indexes},
                commit_message=message, storage_options=conv.options.storage_options, verify=verify,
                meta=meta_swap, drop=drop, staging=conv.staging,
            )
        except PublishRefused as err:
            raise LeRobotLanceError(f"{conv.output}: publish refused, every commit rolled back: {err}") from None
        from lerobot_lance.output_root import write_dataset_card

        shared = [_tables_share_tag(conv, layout, list(pendings), result.tag)]
        if is_local(conv.output):
            write_dataset_card(local_root(conv.output), snap["source"], list(pendings))
        else:  # the local copy of the prepared meta/ is what was swapped in
            write_dataset_card(conv.output, snap["source"], list(pendings), storage_options=conv.options.storage_options)
            shutil.rmtree(prepared, ignore_errors=True)
        result = dataclasses.replace(result, checks=[*(result.checks or []), *shared])
        remove_staging_leftovers(conv)
        return result


def _tables_share_tag(conv: Conversion, layout: Any, tables: Sequence[str], tag: str) -> Any:
    """The ``tables_share_tag`` outcome after the tags moved: only the tags of
    the published tables are read (the layout's other output checks ran on
    the committed versions before, see :func:`publish_dataset`)."""
    import lance

    from lerobot_lance.quality.output_rules import tag_offenders
    from lerobot_lance.quality.result import CheckOutcome

    if layout.name == "lerobot":
        from lerobot_lance.layouts.lerobot import CHECK_DESCRIPTIONS as _DESCRIPTIONS
    else:
        from lerobot_lance.quality.output_rules import _DESCRIPTIONS
    datasets = {t: lance.dataset(conv.uri(t), storage_options=conv.options.storage_options) for t in tables}
    checked, offenders = tag_offenders(datasets, tag)
    return CheckOutcome.from_offenders(
        "tables_share_tag", offenders, description=_DESCRIPTIONS["tables_share_tag"],
        metadata={"tag": checked or ""} if layout.name != "lerobot" else {},
    )


def _encodings_record(conv: Conversion, episodes: Sequence[int]) -> dict[str, Any]:
    """``{"encodings": settings and per-camera fidelity figures}`` for ``conversion.json``, or ``{}``."""
    from lerobot_lance.encodings.output import encodings_summary

    enc = encodings_summary(conv, episodes)
    return {"encodings": enc} if enc else {}


def discard_unpublished(conv: Conversion) -> None:
    """Forget the pending fragments of every table (after a failed conversion):
    the records in the staging area and the hidden folder of first versions,
    so a failed run leaves no table files of its own in the output. Data files
    it wrote into existing tables are unreferenced; the next publish removes
    them. Under the output's writer lock."""
    from lerobot_lance.layouts.names import all_table_names

    with writing(conv):
        for t in all_table_names():
            discard_pending(conv.staging, t)
        if is_local(conv.output):
            shutil.rmtree(local_root(conv.output) / PENDING_TABLES_DIR, ignore_errors=True)
        else:  # first fragments of a table are written in place there
            from lerobot_lance.lance_io import remove_uncommitted_tables

            remove_uncommitted_tables(conv.output, conv.options.storage_options)


def _pending_files_present(p: PendingTable) -> bool:
    """Whether every data file the pending fragments name is still there (local
    outputs; a recovery's cleanup removes the files of a rolled-back publish)."""
    root = p.write_uri or p.uri
    if not is_local(root):
        return True
    for frag in p.fragments:
        for f in json.loads(frag).get("files", []):
            if not (local_root(root) / "data" / f["path"]).is_file():
                return False
    return True


def remove_staging_leftovers(conv: Conversion) -> list[Path]:
    """Delete temporary files a killed run left in the staging area.

    Every staged file is written under a temporary dot-name and renamed into
    place (``.<name>.*.tmp``, ``.<name>.tmp``, ``.<name>.tmp-<id>``); a run
    killed between the two leaves the temporary file behind. Called by a
    successful publish, which must not overlap a per-episode run of the same
    dataset (the asset graph orders them; see ``deploy/README.md``).

    Returns:
        The files removed.
    """
    removed = []
    root = conv.staging.root
    for p in root.rglob(".*") if root.is_dir() else []:
        if p.is_file() and ".tmp" in p.name:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
