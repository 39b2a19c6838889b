"""Lance writing: stage fragments, publish all tables at once, tag, index.

Two phases, so a failed or killed run never changes what readers see:

1. :func:`write_pending` streams a table's rows into data files with
   ``lance.fragment.write_fragments`` — nothing is committed, readers see
   nothing new — and records the returned ``FragmentMetadata`` under
   ``<staging>/pending/<table>.json``. A table that has a committed version
   gets the files in its own ``data/`` folder (unreferenced until the commit);
   a table that does not exist yet gets them in the hidden
   ``<output>/.lerobot-lance-pending/<table>.lance``, renamed into place just
   before its first commit, so no ``<table>.lance`` directory ever exists
   without a committed version (``lancedb.connect(out).table_names()`` lists
   only tables ``open_table`` can open).
2. :func:`publish` commits each table's pending fragments as one
   ``LanceOperation.Overwrite`` (one new version per table), builds the
   scalar indexes, verifies the committed versions, then gives every table
   one shared tag (and moves ``latest``), swaps in the prepared ``meta/``
   (``conversion.json`` last), and drops tables the conversion no longer writes.

The publish journal ``<output>/.lerobot-lance-publish.json`` is written
before the first commit and removed last. It lives in the output root, next
to what it describes, so no option that clears the staging area can lose it.
:func:`recover_interrupted_publish` reads it: a publish killed before every
table was committed and verified is rolled back (tables restored to their
versions before it; tables it created removed; tags and ``meta/`` were not yet
touched); one killed after is rolled forward (tags, drops and the ``meta/``
swap completed, each step idempotent).

Facts (pylance 14.0.2, checked on this machine, see DESIGN.md): blob columns
(``large_binary`` with field metadata ``lance-encoding:blob = "true"``) survive
``write_fragments`` + ``commit``; ``take_blobs`` reads them lazily; a
``max_rows_per_file`` of 2**32 or more makes ``write_fragments`` close a data
file after every batch (one fragment per episode), so it stays below 2**31.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from lerobot_lance.errors import LeRobotLanceError
from lerobot_lance import object_store as store
from lerobot_lance.staging import PENDING, Staging, read_json, write_json_atomic
from lerobot_lance.testhook import pause_point

if TYPE_CHECKING:
    from lance.fragment import FragmentMetadata

# ``lance`` is imported in the functions that use it (about 1 s with pandas,
# which ``pyarrow.dataset`` pulls in): the code location (pipelines.definitions)
# imports this module, and a run worker or a run that writes no table
# (an episode backfill run) should not pay for it.

#: Field metadata that makes Lance store a column as blobs (lazy ``take_blobs``),
#: stored as written: ``lance-encoding:compression = "none"`` (lance-encoding's
#: ``COMPRESSION_META_KEY``). Blob values here are mp4 files, already compressed;
#: without it pylance 14.0.2 compresses each blob anyway, for nothing: 1.06 GB of
#: mp4s wrote in 6.2-9.2 s (4-5 s CPU) against 1.5 s (0.6 s CPU) uncompressed,
#: and the file came out 0.03% smaller (measured on the 300-episode scale-up).
BLOB_METADATA = {"lance-encoding:blob": "true", "lance-encoding:compression": "none"}
#: Tag moved to the newest successful conversion of each table.
LATEST_TAG = "latest"
#: The publish journal, in the output root (hidden).
JOURNAL = ".lerobot-lance-publish.json"
#: Hidden folder of the output root holding fragments of tables that have no version yet.
PENDING_TABLES_DIR = ".lerobot-lance-pending"
#: Hidden folder of the output root holding the next ``meta/`` while a publish runs.
PREPARED_META_DIR = ".lerobot-lance-meta.new"
#: Rows per data file: Lance's own default (1 Mi rows); any value >= 2**32
#: makes Lance write one data file per batch.
MAX_ROWS_PER_FILE = 1 << 20


def blob_field(name: str) -> pa.Field:
    """A ``large_binary`` field Lance stores blob-encoded."""
    return pa.field(name, pa.large_binary(), metadata=BLOB_METADATA)


def table_uri(output: str, table: str) -> str:
    """``<output>/<table>.lance`` for a directory or an object-store URI."""
    return f"{output.rstrip('/')}/{table}.lance"


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def _path(uri: str) -> Path:
    return Path(uri.removeprefix("file://"))


def journal_path(output: str) -> Path | str:
    """``<output>/.lerobot-lance-publish.json``: a :class:`Path` for a local
    output, the object's URI for an object-store output (read and written
    through :mod:`lerobot_lance.object_store`)."""
    if not _is_local(output):
        return store.join(output, JOURNAL)
    return _path(output) / JOURNAL


def _journal_root(journal: Path | str) -> Path | str:
    return journal.parent if isinstance(journal, Path) else store.parent(journal)


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
        lance_schema: the writer's Lance schema (pickled), see :meth:`commit_schema`.
        write_uri: where the data files are: ``uri`` for a table that already
            has a version, else its folder under ``.lerobot-lance-pending/``.
    """

    table: str
    uri: str
    schema: pa.Schema
    fragments: tuple[str, ...]
    rows: int
    episodes: tuple[int, ...] = ()
    lance_schema: bytes | None = None
    write_uri: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = {
            "table": self.table,
            "uri": self.uri,
            "write_uri": self.write_uri or self.uri,
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
        return cls(
            d["table"], d["uri"], schema, tuple(d["fragments"]), int(d["rows"]), tuple(d.get("episodes", ())),
            lance_schema, d.get("write_uri") or d["uri"],
        )

    def commit_schema(self) -> Any:
        """What to commit the fragments with: the writer's Lance schema (the field
        ids its data files use) when recorded, else the Arrow schema."""
        return pickle.loads(self.lance_schema) if self.lance_schema is not None else self.schema


def _pending_uri(uri: str) -> str:
    """Where fragments of a table without a version are written (local outputs)."""
    p = _path(uri)
    return str(p.parent / PENDING_TABLES_DIR / p.name)


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
    Data files hold up to :data:`MAX_ROWS_PER_FILE` rows, so the six-episode
    sample's frames are one fragment.

    Nothing is committed: the returned transaction is dropped and only its
    fragments and canonical schema are kept. A local table without a committed
    version is written under ``<output>/.lerobot-lance-pending/`` (see module
    docstring).

    Returns:
        The :class:`PendingTable`, also saved to ``<staging>/pending/<table>.json``
        (replacing what an earlier attempt staged).

    Raises:
        LeRobotLanceError: what ``batches`` raised (e.g. a source data file
            that changed since it was checked), as itself: nothing is staged.
    """
    from lance.fragment import write_fragments

    rows = 0
    failed: list[LeRobotLanceError] = []

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal rows
        try:
            for b in batches:
                rows += b.num_rows
                yield b
                del b  # a batch may hold a whole video file: drop it before the next is read
        except LeRobotLanceError as err:  # bad input met while streaming: re-raised as itself below, not as Lance's wrapper
            failed.append(err)
            raise

    reader = pa.RecordBatchReader.from_batches(schema, counted())
    write_uri = uri
    if _is_local(uri) and current_version(uri, storage_options) is None:
        write_uri = _pending_uri(uri)
        shutil.rmtree(write_uri, ignore_errors=True)  # what an earlier attempt left
        Path(write_uri).mkdir(parents=True, exist_ok=True)
    # ``return_transaction`` gives Lance's canonical schema: blob columns become
    # ``lance.blob.v2`` structs whose children take field ids, so committing
    # with the plain Arrow schema fails for a blob column that is not last.
    try:
        tx = write_fragments(
            reader,
            write_uri,
            schema=schema,
            mode="overwrite",
            return_transaction=True,
            max_rows_per_file=MAX_ROWS_PER_FILE,
            max_rows_per_group=max_rows_per_group,
            storage_options=storage_options,
        )
    except Exception:
        if failed:
            raise failed[0] from None
        raise
    if failed:
        raise failed[0]
    frags: list[FragmentMetadata] = list(tx.operation.fragments)
    canonical = tx.operation.new_schema.to_pyarrow()
    # Over an existing table the writer numbers fields after the stored schema
    # (blob children get new ids at the end), which the canonical Arrow schema
    # does not carry: keep the Lance schema itself (pickled) and commit with it.
    pending = PendingTable(
        table, uri, canonical, tuple(json.dumps(f.to_json()) for f in frags), rows, tuple(episodes),
        lance_schema=pickle.dumps(tx.operation.new_schema), write_uri=write_uri,
    )
    staging.write_json(f"{PENDING}/{table}.json", pending.to_json())  # and to a shared staging area
    return pending


def read_pending(staging: Staging, table: str) -> PendingTable | None:
    """The table's pending fragments, or ``None`` if nothing is staged."""
    d = read_json(staging.json_file(f"{PENDING}/{table}.json"))
    return PendingTable.from_json(d) if d else None


def discard_pending(staging: Staging, table: str) -> None:
    """Forget what is staged for ``table`` (its uncommitted files go at the next publish)."""
    p = read_pending(staging, table)
    staging.remove_file(f"{PENDING}/{table}.json")
    if p is not None and p.write_uri and p.write_uri != p.uri and _is_local(p.write_uri):
        shutil.rmtree(p.write_uri, ignore_errors=True)


def _fragments(p: PendingTable) -> list[FragmentMetadata]:
    from lance.fragment import FragmentMetadata

    return [FragmentMetadata.from_json(f) for f in p.fragments]


def current_version(uri: str, storage_options: dict[str, str] | None = None) -> int | None:
    """The table's latest version, or ``None`` if it does not exist yet."""
    import lance

    try:
        return lance.dataset(uri, storage_options=storage_options).version
    except (ValueError, FileNotFoundError, OSError):
        return None


@dataclass(frozen=True)
class PublishResult:
    """What :func:`publish` committed: the shared tag and each table's new version.

    Attributes:
        tag: the shared tag.
        versions: table -> its tagged version (the version vector of ``conversion.json``).
        rows: table -> rows committed.
        checks: what ``verify`` returned (output check outcomes), if given.
        dropped: tables removed because this conversion does not write them.
    """

    tag: str
    versions: dict[str, int]
    rows: dict[str, int]
    checks: list[Any] | None = None
    dropped: tuple[str, ...] = ()


def new_tag_name(now: datetime | None = None) -> str:
    """A unique, sortable tag name: ``conversion-YYYYmmddTHHMMSSffffffZ``."""
    now = now or datetime.now(timezone.utc)
    return "conversion-" + now.strftime("%Y%m%dT%H%M%S%fZ")


@dataclass(frozen=True)
class MetaSwap:
    """A ``meta/`` prepared before the first commit, swapped in after the tags.

    Attributes:
        prepared: folder holding every new file (same filesystem as ``target``).
        target: the output's ``meta/``.
        files: relative paths of the prepared files (``conversion.json`` excluded).
        conversion: ``conversion.json`` without ``tag`` and ``versions``, which
            the publish adds.
    """

    prepared: str
    target: str
    files: tuple[str, ...]
    conversion: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"prepared": self.prepared, "target": self.target, "files": list(self.files), "conversion": self.conversion}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MetaSwap:
        return cls(d["prepared"], d["target"], tuple(d["files"]), dict(d["conversion"]))


class PublishRefused(Exception):
    """Raised by a ``verify`` callback: the committed versions failed a check;
    :func:`publish` rolls them back before re-raising."""


def publish(
    pendings: Mapping[str, PendingTable],
    *,
    journal: Path | str,
    tag: str | None = None,
    indexes: Mapping[str, Mapping[str, str]] | None = None,
    commit_message: str | None = None,
    storage_options: dict[str, str] | None = None,
    verify: Callable[[dict[str, int]], list[Any]] | None = None,
    meta: MetaSwap | None = None,
    drop: Sequence[str] = (),
    staging: Staging | None = None,
) -> PublishResult:
    """Commit every pending table as one new version each, index, verify, and tag them alike.

    The caller holds the output's writer lock (:mod:`lerobot_lance.output_lock`),
    has recovered an interrupted publish (:func:`recover_interrupted_publish`)
    and has then prepared everything the publish needs (``meta``): after the
    first commit nothing reads the source.

    Args:
        pendings: table name -> its :class:`PendingTable` (the tables this
            conversion writes).
        journal: the publish journal path (:func:`journal_path`).
        tag: the shared tag; default :func:`new_tag_name`.
        indexes: table -> {column: index type}, e.g. ``{"frames": {"episode_index": "BTREE"}}``.
        commit_message: recorded in each table's transaction.
        verify: called with the committed versions before any tag moves; it
            returns check outcomes or raises (any exception): then the commits
            are rolled back and the exception re-raised.
        meta: the prepared ``meta/`` (:class:`MetaSwap`), swapped in last.
        drop: table URIs to remove after tagging (tables of an earlier
            conversion this one does not write, e.g. ``videos`` with ``--skip-videos``).
        staging: staging area whose ``pending/<table>.json`` records are removed after.

    Returns:
        The tag, and each table's tagged version and row count.

    Pause points (:mod:`lerobot_lance.testhook`): ``commit:<t>``,
    ``index:<t>:<column>``, ``committed`` (journal says so), then those of
    :func:`_roll_forward`.
    """
    import lance

    tag = tag or new_tag_name()
    if store.exists(journal, storage_options):
        raise RuntimeError(f"{journal}: a publish is in flight or was interrupted; recover it first (recover_interrupted_publish)")
    before = {t: current_version(p.uri, storage_options) for t, p in pendings.items()}
    doc: dict[str, Any] = {
        "state": "committing",
        "tag": tag,
        "tables": {t: {"uri": p.uri, "write_uri": p.write_uri or p.uri, "before": before[t]} for t, p in pendings.items()},
        "drop": list(drop),
        "meta": meta.to_json() if meta else None,
        "started_at": datetime.now(timezone.utc).isoformat(),
    }
    store.write_json(journal, doc, storage_options)
    versions: dict[str, int] = {}
    checks = None
    try:
        for t, p in pendings.items():
            write_uri = p.write_uri or p.uri
            if write_uri != p.uri:
                # First version of this table: its files move into place, then commit.
                if _path(p.uri).exists() and current_version(p.uri, storage_options) is None:
                    shutil.rmtree(_path(p.uri))
                os.rename(write_uri, p.uri)
            op = lance.LanceOperation.Overwrite(p.commit_schema(), _fragments(p))
            ds = lance.LanceDataset.commit(
                p.uri, op, read_version=before[t], storage_options=storage_options, commit_message=commit_message
            )
            pause_point(f"commit:{t}")
            for column, index_type in (indexes or {}).get(t, {}).items():
                ds.create_scalar_index(column, index_type)
                pause_point(f"index:{t}:{column}")
            versions[t] = lance.dataset(p.uri, storage_options=storage_options).version
        if verify is not None:
            checks = verify(dict(versions))
    except BaseException:
        _roll_back(doc, storage_options)
        store.remove(journal, storage_options)
        raise
    # Every table is committed and verified: from here on recovery rolls forward.
    doc.update(state="committed", committed=versions)
    store.write_json(journal, doc, storage_options)
    pause_point("committed")
    dropped = _roll_forward(doc, journal, storage_options)
    if staging is not None:
        for t in pendings:
            staging.remove_file(f"{PENDING}/{t}.json")
    return PublishResult(tag=tag, versions=versions, rows={t: p.rows for t, p in pendings.items()}, checks=checks, dropped=dropped)


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
    stay). Safe only under the output's writer lock, which every writer of
    pending fragments holds (:mod:`lerobot_lance.output_lock`).

    Returns:
        Number of files removed.
    """
    import lance

    try:
        ds = lance.dataset(uri, storage_options=storage_options)
    except (ValueError, FileNotFoundError, OSError):
        return 0
    stats = ds.cleanup_old_versions(older_than=_KEEP_ALL_VERSIONS, delete_unverified=True, error_if_tagged_old_versions=False)
    return int(stats.data_files_removed + stats.index_files_removed + stats.deletion_files_removed)


def _tag_all(versions_by_table: Mapping[str, tuple[str, int]], tag: str, storage_options: dict[str, str] | None) -> None:
    import lance

    for t, (uri, version) in versions_by_table.items():
        tags = lance.dataset(uri, storage_options=storage_options).tags
        for name in (tag, LATEST_TAG):
            existing = tags.list()
            if name in existing:
                if existing[name]["version"] != version:
                    tags.update(name, version)
            else:
                tags.create(name, version)
            pause_point(f"tag:{t}:{name}")


def _swap_meta(spec: MetaSwap, tag: str, versions: Mapping[str, int], storage_options: dict[str, str] | None = None) -> None:
    """Move the prepared files into ``meta/`` one ``os.replace`` at a time, so
    ``meta/`` always exists and every file in it is whole; remove the files
    the previous conversion wrote that this one does not; write
    ``conversion.json`` last. Idempotent (a prepared file already moved is
    skipped), so recovery can redo it. An object-store ``meta/`` is the same
    with one server-side copy (a whole object) per file, see :func:`_swap_meta_remote`."""
    if not _is_local(spec.target):
        _swap_meta_remote(spec, tag, versions, storage_options)
        return
    prepared, target = Path(spec.prepared), Path(spec.target)
    target.mkdir(parents=True, exist_ok=True)
    previous = read_json(target / "conversion.json") or {}
    for rel in spec.files:
        src, dst = prepared / rel, target / rel
        if not src.exists():
            if not dst.exists():
                raise FileNotFoundError(f"{src}: prepared meta file missing (and not in {target})")
            continue  # moved by an earlier attempt
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)
        os.replace(src, dst)
        pause_point(f"meta:{rel}")
    keep = set(spec.files) | {"conversion.json"}
    for rel in previous.get("meta_files") or []:
        if rel not in keep and ".." not in Path(rel).parts:
            old = target / rel
            if old.is_file() or old.is_symlink():
                old.unlink()
                _prune_empty_dirs(old.parent, target)
    record = {**spec.conversion, "tag": tag, "versions": dict(versions), "meta_files": sorted(spec.files)}
    write_json_atomic(target / "conversion.json", record)
    pause_point("meta:conversion.json")
    shutil.rmtree(prepared, ignore_errors=True)


def _swap_meta_remote(spec: MetaSwap, tag: str, versions: Mapping[str, int], storage_options: dict[str, str] | None) -> None:
    """:func:`_swap_meta` on an object store: ``spec.prepared`` is a prefix of
    the output (``<out>/.lerobot-lance-meta.new``) uploaded before the first
    commit; each file is copied over its ``meta/`` object (``CopyObject``: the
    object is replaced whole, so every file in ``meta/`` is whole at every
    instant), then its prepared copy deleted (so a redo skips it); files of
    the previous conversion this one does not write are deleted;
    ``conversion.json`` is written last."""
    previous = store.read_json(store.join(spec.target, "conversion.json"), storage_options) or {}
    for rel in spec.files:
        src, dst = store.join(spec.prepared, rel), store.join(spec.target, rel)
        if not store.exists(src, storage_options):
            if not store.exists(dst, storage_options):
                raise FileNotFoundError(f"{src}: prepared meta file missing (and not in {spec.target})")
            continue  # moved by an earlier attempt
        store.copy_file(src, dst, storage_options)
        store.remove(src, storage_options)
        pause_point(f"meta:{rel}")
    keep = set(spec.files) | {"conversion.json"}
    for rel in previous.get("meta_files") or []:
        if rel not in keep and ".." not in Path(rel).parts:
            store.remove(store.join(spec.target, rel), storage_options)
    record = {**spec.conversion, "tag": tag, "versions": dict(versions), "meta_files": sorted(spec.files)}
    store.write_json(store.join(spec.target, "conversion.json"), record, storage_options)
    pause_point("meta:conversion.json")
    store.remove_tree(spec.prepared, storage_options)


def _prune_empty_dirs(d: Path, stop: Path) -> None:
    while d != stop and d.is_dir() and not any(d.iterdir()):
        d.rmdir()
        d = d.parent


def _roll_forward(doc: Mapping[str, Any], journal: Path | str, storage_options: dict[str, str] | None) -> tuple[str, ...]:
    """Finish a publish whose tables are committed and verified: tags,
    ``meta/``, drops, cleanup; then remove the journal. Pause points
    ``tag:<t>:<tag>``, ``meta:<path>``, ``drop:<t>``."""
    committed = {t: (doc["tables"][t]["uri"], int(v)) for t, v in doc["committed"].items()}
    _tag_all(committed, doc["tag"], storage_options)
    if doc.get("meta"):
        spec = MetaSwap.from_json(doc["meta"])
        _swap_meta(spec, doc["tag"], {t: v for t, (_, v) in committed.items()}, storage_options)
        if spec.conversion.get("source") and spec.conversion.get("tables"):
            # the dataset card, also when recovery finishes a killed publish (kept if present)
            from lerobot_lance.output_root import write_dataset_card

            write_dataset_card(_journal_root(journal), spec.conversion["source"], spec.conversion["tables"], storage_options=storage_options)
    # Dropped last: until the new conversion.json is in place, readers pin the
    # previous one, whose tag the dropped table may still carry.
    dropped = []
    for uri in doc.get("drop") or []:
        if _is_local(uri) and _path(uri).exists():
            shutil.rmtree(_path(uri))
            dropped.append(_path(uri).name.removesuffix(".lance"))
            pause_point(f"drop:{_path(uri).name}")
        elif not _is_local(uri) and store.remove_tree(uri, storage_options):
            dropped.append(uri.rstrip("/").rpartition("/")[2].removesuffix(".lance"))
            pause_point(f"drop:{uri.rstrip('/').rpartition('/')[2]}")
    store.remove(journal, storage_options)
    for uri, _ in committed.values():
        remove_unreferenced_files(uri, storage_options)
    if isinstance(journal, Path):
        _remove_pending_dir(journal.parent)
    return tuple(dropped)


def _roll_back(doc: Mapping[str, Any], storage_options: dict[str, str] | None) -> list[str]:
    """Undo the commits of a publish that did not reach its tags: restore each
    table to its version before the publish (``LanceDataset.restore``: a new
    version with the old content, ``latest`` moved to it), remove tables the
    publish created, and the prepared ``meta/``."""
    import lance

    rolled = []
    for t, spec in doc["tables"].items():
        uri, before = spec["uri"], spec.get("before")
        write_uri = spec.get("write_uri") or uri
        if before is None:
            if _is_local(uri):
                if _path(uri).exists():
                    shutil.rmtree(_path(uri))
                    rolled.append(t)
                if write_uri != uri:
                    shutil.rmtree(_path(write_uri), ignore_errors=True)
            elif store.remove_tree(uri, storage_options):  # object store: the prefix of the table it created
                rolled.append(t)
            continue
        now = current_version(uri, storage_options)
        if now is not None and now != before:
            ds = lance.dataset(uri, version=before, storage_options=storage_options)
            ds.restore()
            head = lance.dataset(uri, storage_options=storage_options)
            latest = head.tags.list().get(LATEST_TAG)
            if latest is not None and latest["version"] == before:
                head.tags.update(LATEST_TAG, head.version)
            rolled.append(t)
        remove_unreferenced_files(uri, storage_options)
    if doc.get("meta"):
        store.remove_tree(doc["meta"]["prepared"], storage_options)
    return rolled


def _remove_pending_dir(root: Path) -> None:
    shutil.rmtree(root / PENDING_TABLES_DIR, ignore_errors=True)


def remove_uncommitted_tables(output: str, storage_options: dict[str, str] | None = None) -> list[str]:
    """Remove ``<output>/*.lance`` folders that hold no committed version
    (only fragments an interrupted run wrote: ``open_table`` cannot open them).

    A folder counts as such when it has no ``_versions`` manifest at all;
    anything else is left alone. Call under the output's writer lock.

    Returns:
        The table names removed.
    """
    if not _is_local(output):
        removed = []
        for name in store.list_entries(output, storage_options):
            uri = store.join(output, name)
            if name.endswith(".lance") and not store.exists(store.join(uri, "_versions"), storage_options) \
                    and current_version(uri, storage_options) is None:
                store.remove_tree(uri, storage_options)
                removed.append(name.removesuffix(".lance"))
        return removed
    if not _path(output).is_dir():
        return []
    removed = []
    for d in _path(output).glob("*.lance"):
        if d.is_dir() and not d.is_symlink() and not (d / "_versions").exists() and current_version(str(d)) is None:
            shutil.rmtree(d)
            removed.append(d.name.removesuffix(".lance"))
    return removed


def recover_interrupted_publish(journal: Path | str, storage_options: dict[str, str] | None = None) -> list[str]:
    """Finish or undo a publish that was killed (see module docstring).

    A journal in state ``committed`` (every table committed and verified) is
    rolled forward: tags, drops, ``meta/`` swap, cleanup. Otherwise the tables
    it advanced are rolled back to the versions it recorded before its first
    commit, tables it created are removed, and its prepared ``meta/`` is
    deleted: tags and ``meta/`` were not yet touched. Without a journal,
    nothing to do besides removing table folders that hold no version
    (:func:`remove_uncommitted_tables`). Call under the output's writer lock.

    Returns:
        Names of the tables that were rolled back (or removed).
    """
    j = store.read_json(journal, storage_options)
    root = _journal_root(journal)
    if not j:
        # of a publish killed before its journal
        store.remove_tree(root / PREPARED_META_DIR if isinstance(root, Path) else store.join(root, PREPARED_META_DIR), storage_options)
        # On an object store a table's first fragments are written in place
        # (no rename there): a versionless table may be another stage's pending
        # output, so only a failed conversion removes those (discard_unpublished).
        return remove_uncommitted_tables(str(root), storage_options) if isinstance(root, Path) else []
    if j.get("state") == "committed" or (j.get("committed") and "tables" not in j):
        if "tables" not in j:  # journal of an older version: uris + committed
            j = {"tag": j["tag"], "tables": {t: {"uri": u} for t, u in j["uris"].items()}, "committed": j["committed"]}
        _roll_forward(j, journal, storage_options)
        return []
    if "tables" not in j:
        j = {"tables": {t: {"uri": u, "before": j["before"].get(t)} for t, u in j["uris"].items()}}
    rolled = _roll_back(j, storage_options)
    store.remove(journal, storage_options)
    if isinstance(root, Path):
        rolled += remove_uncommitted_tables(str(root), storage_options)
        _remove_pending_dir(root)
    return rolled
