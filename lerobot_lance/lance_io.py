"""Lance writing: stage fragments, publish all tables at once, tag, index.

Two phases, so a failed or killed run never changes what readers see:

1. :func:`write_pending` streams a table's rows into data files inside the
   table's directory with ``lance.fragment.write_fragments`` — nothing is
   committed, readers see nothing new — and records the returned
   ``FragmentMetadata`` under ``<staging>/pending/<table>.json``.
2. :func:`publish` commits each table's pending fragments as one
   ``LanceOperation.Overwrite`` (one new version per table), builds the
   scalar indexes, and gives the three tables one shared tag (and moves the
   ``latest`` tag). A journal written before the first commit lets
   :func:`recover_interrupted_publish` roll back tables a killed publish had
   already advanced, so the tables always agree with a tag.

Facts (pylance 14.0.2, checked on this machine, see DESIGN.md): blob columns
(``large_binary`` with field metadata ``lance-encoding:blob = "true"``) survive
``write_fragments`` + ``commit``; ``take_blobs`` reads them lazily.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import lance
import pyarrow as pa
from lance.fragment import FragmentMetadata, write_fragments

from lerobot_lance.staging import PENDING, Staging, read_json, write_json_atomic

#: Field metadata that makes Lance store a column as blobs (lazy ``take_blobs``).
BLOB_METADATA = {"lance-encoding:blob": "true"}
#: Tag moved to the newest successful conversion of each table.
LATEST_TAG = "latest"
JOURNAL = "publish_journal.json"


def blob_field(name: str) -> pa.Field:
    """A ``large_binary`` field Lance stores blob-encoded."""
    return pa.field(name, pa.large_binary(), metadata=BLOB_METADATA)


def table_uri(output: str, table: str) -> str:
    """``<output>/<table>.lance`` for a directory or an object-store URI."""
    return f"{output.rstrip('/')}/{table}.lance"


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


@dataclass(frozen=True)
class PendingTable:
    """Fragments written for one table and not yet committed.

    Attributes:
        table: table name (``frames``, ``episodes``, ``videos``).
        uri: the table's URI.
        schema: the table's Arrow schema.
        fragments: Lance fragment metadata as JSON strings.
        rows: total rows across fragments.
        episodes: episode indices the rows cover (empty for ``videos``).
    """

    table: str
    uri: str
    schema: pa.Schema
    fragments: tuple[str, ...]
    rows: int
    episodes: tuple[int, ...] = ()
    lance_schema: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        d = {
            "table": self.table,
            "uri": self.uri,
            "schema": self.schema.serialize().to_pybytes().hex(),
            "fragments": list(self.fragments),
            "rows": self.rows,
            "episodes": list(self.episodes),
        }
        if self.lance_schema is not None:
            d["lance_schema"] = self.lance_schema.hex()
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PendingTable:
        schema = pa.ipc.read_schema(pa.py_buffer(bytes.fromhex(d["schema"])))
        lance_schema = bytes.fromhex(d["lance_schema"]) if d.get("lance_schema") else None
        return cls(d["table"], d["uri"], schema, tuple(d["fragments"]), int(d["rows"]), tuple(d.get("episodes", ())), lance_schema)

    def commit_schema(self) -> Any:
        """What to commit the fragments with: the writer's Lance schema (the field
        ids its data files use) when recorded, else the Arrow schema."""
        return pickle.loads(self.lance_schema) if self.lance_schema is not None else self.schema


def write_pending(
    staging: Staging,
    table: str,
    uri: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    episodes: Iterable[int] = (),
    storage_options: dict[str, str] | None = None,
    max_rows_per_group: int = 1024,
) -> PendingTable:
    """Stream ``batches`` into uncommitted data files of the table at ``uri``.

    Memory stays bounded by what Lance buffers for one row group (plus one
    batch): callers yield small batches (one episode, or one video file).

    Nothing is committed: the returned transaction is dropped and only its
    fragments and canonical schema are kept.

    Returns:
        The :class:`PendingTable`, also saved to ``<staging>/pending/<table>.json``
        (replacing what an earlier attempt staged).
    """
    rows = 0

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        for b in batches:
            rows += b.num_rows
            yield b

    reader = pa.RecordBatchReader.from_batches(schema, counted())
    if _is_local(uri):
        Path(uri.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    # ``return_transaction`` gives Lance's canonical schema: blob columns become
    # ``lance.blob.v2`` structs whose children take field ids, so committing
    # with the plain Arrow schema fails for a blob column that is not last.
    tx = write_fragments(
        reader,
        uri,
        schema=schema,
        mode="overwrite",
        return_transaction=True,
        # One data file per table: pylance 14.0.2 wraps a max_rows_per_file
        # of 2**32 or more (1 << 40 gave one fragment per batch: one per
        # episode of frames, one per mp4 of videos), so stay below it.
        max_rows_per_file=(1 << 31) - 1,
        max_rows_per_group=max_rows_per_group,
        storage_options=storage_options,
    )
    frags: list[FragmentMetadata] = list(tx.operation.fragments)
    canonical = tx.operation.new_schema.to_pyarrow()
    # Over an existing table the writer numbers fields after the stored schema
    # (blob children get new ids at the end), which the canonical Arrow schema
    # does not carry: keep the Lance schema itself (pickled) and commit with it.
    pending = PendingTable(
        table, uri, canonical, tuple(json.dumps(f.to_json()) for f in frags), rows, tuple(episodes),
        lance_schema=pickle.dumps(tx.operation.new_schema),
    )
    write_json_atomic(staging.root / PENDING / f"{table}.json", pending.to_json())
    return pending


def read_pending(staging: Staging, table: str) -> PendingTable | None:
    """The table's pending fragments, or ``None`` if nothing is staged."""
    d = read_json(staging.root / PENDING / f"{table}.json")
    return PendingTable.from_json(d) if d else None


def _fragments(p: PendingTable) -> list[FragmentMetadata]:
    return [FragmentMetadata.from_json(f) for f in p.fragments]


def current_version(uri: str, storage_options: dict[str, str] | None = None) -> int | None:
    """The table's latest version, or ``None`` if it does not exist yet."""
    try:
        return lance.dataset(uri, storage_options=storage_options).version
    except (ValueError, FileNotFoundError, OSError):
        return None


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish` committed: the shared tag and each table's new version."""

    tag: str
    versions: dict[str, int]
    rows: dict[str, int]


def new_tag_name(now: datetime | None = None) -> str:
    """A unique, sortable tag name: ``conversion-YYYYmmddTHHMMSSffffffZ``."""
    now = now or datetime.now(timezone.utc)
    return "conversion-" + now.strftime("%Y%m%dT%H%M%S%fZ")


def publish(
    staging: Staging,
    pendings: Mapping[str, PendingTable],
    *,
    tag: str | None = None,
    indexes: Mapping[str, Mapping[str, str]] | None = None,
    commit_message: str | None = None,
    storage_options: dict[str, str] | None = None,
) -> PublishResult:
    """Commit every pending table as one new version each, index, and tag them alike.

    Args:
        staging: the staging area (holds the journal).
        pendings: table name -> its :class:`PendingTable`.
        tag: the shared tag; default :func:`new_tag_name`.
        indexes: table -> {column: index type}, e.g. ``{"frames": {"episode_index": "BTREE"}}``.
        commit_message: recorded in each table's transaction.

    Returns:
        The tag, and each table's tagged version and row count.

    A journal of the versions before the publish is written first and removed
    last; see :func:`recover_interrupted_publish`.
    """
    tag = tag or new_tag_name()
    recover_interrupted_publish(staging, storage_options=storage_options)
    before = {t: current_version(p.uri, storage_options) for t, p in pendings.items()}
    journal = staging.root / JOURNAL
    write_json_atomic(journal, {"tag": tag, "before": before, "uris": {t: p.uri for t, p in pendings.items()}})
    versions: dict[str, int] = {}
    for t, p in pendings.items():
        op = lance.LanceOperation.Overwrite(p.commit_schema(), _fragments(p))
        ds = lance.LanceDataset.commit(
            p.uri, op, read_version=before[t], storage_options=storage_options, commit_message=commit_message
        )
        for column, index_type in (indexes or {}).get(t, {}).items():
            ds.create_scalar_index(column, index_type)
        ds = lance.dataset(p.uri, storage_options=storage_options)
        versions[t] = ds.version
    # Every table is committed: from here on recovery rolls forward, not back.
    write_json_atomic(
        journal,
        {"tag": tag, "before": before, "uris": {t: p.uri for t, p in pendings.items()}, "committed": versions},
    )
    _tag_all({p.uri: versions[t] for t, p in pendings.items()}, tag, storage_options)
    journal.unlink(missing_ok=True)
    for t in pendings:
        (staging.root / PENDING / f"{t}.json").unlink(missing_ok=True)
    for p in pendings.values():
        remove_unreferenced_files(p.uri, storage_options)
    return PublishResult(tag=tag, versions=versions, rows={t: p.rows for t, p in pendings.items()})


#: ``older_than`` that keeps every version: cleanup then only deletes files no version references.
_KEEP_ALL_VERSIONS = timedelta(days=365 * 100)


def remove_unreferenced_files(uri: str, storage_options: dict[str, str] | None = None) -> int:
    """Delete data, index and deletion files of the table that no version references.

    These are what killed runs leave: fragments written by a table stage (or a
    publish) that never committed them. Every version and tag stays readable:
    this is Lance's ``cleanup_old_versions`` with ``older_than`` far in the
    past, so no version is old enough to be removed, and
    ``delete_unverified=True``, so unreferenced files are removed at once
    instead of after Lance's 7-day grace period (checked on pylance 14.0.2:
    only the uncommitted data file goes; all versions, tags and their data
    stay). Safe only when no other writer is staging fragments for this table,
    which holds inside a publish (one publish per dataset at a time).

    Returns:
        Number of files removed.
    """
    try:
        ds = lance.dataset(uri, storage_options=storage_options)
    except (ValueError, FileNotFoundError, OSError):
        return 0
    stats = ds.cleanup_old_versions(older_than=_KEEP_ALL_VERSIONS, delete_unverified=True, error_if_tagged_old_versions=False)
    return int(stats.data_files_removed + stats.index_files_removed + stats.deletion_files_removed)


def _tag_all(versions_by_uri: Mapping[str, int], tag: str, storage_options: dict[str, str] | None) -> None:
    for uri, version in versions_by_uri.items():
        tags = lance.dataset(uri, storage_options=storage_options).tags
        existing = tags.list()
        for name in (tag, LATEST_TAG):
            if name in existing:
                tags.update(name, version)
            else:
                tags.create(name, version)


def recover_interrupted_publish(staging: Staging, storage_options: dict[str, str] | None = None) -> list[str]:
    """Undo a publish that was killed between its first commit and its tags.

    If the dead publish had committed every table, its tags are completed
    (roll forward). Otherwise tables whose version moved past the journal's
    recorded version are restored to it (``LanceDataset.restore``, a new
    version with the old content), so every table again matches the last
    shared tag.

    Returns:
        Names of the tables that were rolled back.
    """
    journal = staging.root / JOURNAL
    j = read_json(journal)
    if not j:
        return []
    if j.get("committed"):
        _tag_all({j["uris"][t]: v for t, v in j["committed"].items()}, j["tag"], storage_options)
        os.unlink(journal)
        return []
    rolled = []
    for t, uri in j["uris"].items():
        before = j["before"].get(t)
        now = current_version(uri, storage_options)
        if now is None or now == before:
            continue
        if before is None:
            # The table did not exist before: drop what the dead run created.
            if _is_local(uri):
                import shutil

                shutil.rmtree(uri.removeprefix("file://"), ignore_errors=True)
        else:
            lance.dataset(uri, version=before, storage_options=storage_options).restore()
        rolled.append(t)
    os.unlink(journal)
    return rolled
