"""The output root: refuse a directory that is not ours, and mark the ones that are.

A conversion deletes and replaces what it wrote before (``meta/`` is swapped
whole, staged files are cleaned up, ``--overwrite`` commits over the tables).
So it must never run in a directory holding someone else's files, nor over
its own source. Before anything is written:

* :func:`check_output_root` refuses
  - an output equal to, inside, or containing the source (real paths, symlinks
    resolved; a Hub source is its huggingface_hub cache folder
    ``<cache>/datasets--owner--name``, which holds the ``snapshots/<sha>/``
    directory the conversion reads and the ``blobs/`` its files point to);
  - an existing non-empty directory without our marker file
    :data:`MARKER_NAME`, with or without ``overwrite``;
  - a path that exists and is not a directory.
* :func:`claim_output_root` then writes the marker (once; it is kept as it
  is afterwards), so later conversions, ``--overwrite`` included, know the
  directory is an output of ours, and with it a dataset card ``README.md``
  whose ``configs:`` let Hugging Face ``datasets`` load each table
  (:func:`dataset_card`).

Object-store outputs (``s3://``, ``gs://``, ``az://``, ...) get the same
rules through :mod:`lerobot_lance.object_store`: one listing of the prefix
(a prefix holding objects but no marker object ``<output>/.lerobot-lance.json``
is refused), the marker and the card written as objects. The source (a local
directory or the Hub cache) cannot lie inside a bucket, so the source rule
does not apply there.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lerobot_lance.errors import LeRobotLanceError

#: The marker file at the root of every output this project writes.
MARKER_NAME = ".lerobot-lance.json"
#: ``tool`` field of the marker.
MARKER_TOOL = "lerobot-lance"
#: Entries an output of an earlier lerobot-lance (before the marker existed)
#: holds at its root; such a directory, with ``meta/conversion.json`` in it,
#: is recognized as ours and gets the marker.
_LEGACY_ENTRIES = frozenset({"README.md", "frames.lance", "episodes.lance", "videos.lance", "meta.lance", "meta", "_staging", ".meta.tmp", ".meta.old"})
#: The dataset card at the output root (Hugging Face ``datasets`` reads its ``configs:``).
CARD_NAME = "README.md"


class OutputRootError(LeRobotLanceError):
    """The output root may not be written: it holds files that are not ours,
    or it is, lies inside, or contains the source.

    Attributes:
        path: the output root as given.
        detail: what is wrong.
        expected: what an acceptable output root is.
        found: what is there instead.
    """

    def __init__(self, path: str, detail: str, *, expected: object = None, found: object = None) -> None:
        self.path, self.detail, self.expected, self.found = str(path), detail, expected, found
        msg = f"{self.path}: {detail}"
        if expected is not None or found is not None:
            msg += f"; expected {expected}, found {found}"
        super().__init__(msg)


def is_local(output: str) -> bool:
    """True for a local directory or a ``file://`` URI (anything without a scheme)."""
    return "://" not in output or output.startswith("file://")


def local_path(output: str) -> Path:
    """The local path of a local output root (``file://`` stripped, ``~`` expanded)."""
    return Path(output.removeprefix("file://")).expanduser()


def source_root_of(source: Any, cache_dir: str | None = None) -> Path | None:
    """The local directory a source's files live in, without any download.

    Args:
        source: a :class:`~lerobot_lance.source.DatasetSource`, or the source
            string the CLI takes (a local directory or a Hub dataset id).
        cache_dir: huggingface_hub cache of a Hub id given as a string
            (``None``: ``HF_HUB_CACHE``).

    Returns:
        A local source's directory; for a Hub source its cache folder
        ``<cache>/datasets--owner--name`` (huggingface_hub's
        ``repo_folder_name``), which holds every snapshot and blob of the
        repository; ``None`` when the source is neither.
    """
    from lerobot_lance.source import HubSource, LocalSource, open_source

    if isinstance(source, str):
        try:
            source = open_source(source, cache_dir=cache_dir)
        except LeRobotLanceError:
            return None
    if isinstance(source, LocalSource):
        return source.root
    if isinstance(source, HubSource):
        from huggingface_hub import constants
        from huggingface_hub.file_download import repo_folder_name

        cache = source.cache_dir or constants.HF_HUB_CACHE
        return Path(cache).expanduser() / repo_folder_name(repo_id=source.repo_id, repo_type="dataset")
    return None


def _real(p: Path) -> Path:
    """``p`` with every symlink resolved (non-existing tails kept as they are)."""
    return Path(os.path.realpath(p))


def _within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def read_marker(output: str | Path) -> dict[str, Any] | None:
    """The marker of a local output root, or ``None`` when there is none (or it is not ours)."""
    p = Path(output) / MARKER_NAME
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == MARKER_TOOL else None


def _legacy_output(root: Path, entries: list[str]) -> bool:
    """An output written before the marker existed: only our entries, and ``meta/conversion.json`` with a tag."""
    if not {e for e in entries if not e.startswith(".lerobot-lance")} <= _LEGACY_ENTRIES:  # lock, journal: ours
        return False
    try:
        return "tag" in json.loads((root / "meta" / "conversion.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def check_output_root(
    output: str, source_root: str | Path | None, overwrite: bool = False, *, storage_options: dict[str, str] | None = None
) -> None:
    """Refuse an output root this conversion may not write; writes nothing.

    Args:
        output: the output root (local directory, ``file://`` URI, or an
            object-store URI: see the module docstring).
        source_root: the source's local directory (see :func:`source_root_of`);
            ``None`` skips the source comparison.
        overwrite: the user asked to replace existing tables. It does not
            lift any refusal here: ``--overwrite`` replaces outputs of ours only.

    Raises:
        OutputRootError: the output is, lies inside, or contains the source;
            it exists and is not a directory; or it is a non-empty directory
            without :data:`MARKER_NAME` (and not an output of an earlier
            lerobot-lance).
        storage_options: object-store options (:mod:`lerobot_lance.object_store`).
    """
    if not is_local(output):
        _check_object_store_root(output, overwrite, storage_options)
        return
    out = local_path(output)
    real_out = _real(out)
    if source_root is not None:
        real_src = _real(Path(source_root).expanduser())
        where = str(real_out) if real_out != Path(os.path.abspath(out)) else None
        if _within(real_out, real_src):
            what = "is the source dataset" if real_out == real_src else f"lies inside the source dataset {real_src}"
            raise OutputRootError(
                output, f"the output {what}{f' (resolves to {where})' if where else ''}; a conversion would rewrite the source",
                expected="an output directory outside the source", found=str(real_src),
            )
        if _within(real_src, real_out):
            raise OutputRootError(
                output, f"the output contains the source dataset {real_src}; a conversion would rewrite the source",
                expected="an output directory outside the source", found=str(real_out),
            )
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise OutputRootError(output, "exists and is not a directory", expected="a directory (or a path that does not exist)",
                              found="a file" if out.is_file() else "not a directory")
    entries = sorted(os.listdir(out))
    if not entries or read_marker(out) is not None or _legacy_output(out, entries):
        return
    shown = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
    raise OutputRootError(
        output,
        f"is a non-empty directory that is not a lerobot-lance output (no {MARKER_NAME}); nothing was written"
        + (" (--overwrite replaces only outputs of lerobot-lance)" if overwrite else "")
        + "; choose a new or empty directory",
        expected=f"a new or empty directory, or an output holding {MARKER_NAME}", found=shown,
    )


def _check_object_store_root(output: str, overwrite: bool, storage_options: dict[str, str] | None) -> None:
    from lerobot_lance import object_store

    try:
        entries = object_store.list_entries(output, storage_options)
    except OSError as err:
        raise OutputRootError(output, f"cannot list the object-store prefix ({err})") from None
    if not entries or MARKER_NAME in entries:
        return
    if "meta" in entries and set(entries) <= _LEGACY_ENTRIES | {e for e in entries if e.startswith(".lerobot-lance")}:
        conv = object_store.read_json(object_store.join(output, "meta", "conversion.json"), storage_options)
        if isinstance(conv, dict) and "tag" in conv:
            return  # written by an earlier lerobot-lance (no marker on object stores then)
    shown = ", ".join(entries[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
    raise OutputRootError(
        output,
        f"is a non-empty object-store prefix that is not a lerobot-lance output (no {MARKER_NAME}); nothing was written"
        + (" (--overwrite replaces only outputs of lerobot-lance)" if overwrite else "")
        + "; choose a new or empty prefix",
        expected=f"a new or empty prefix, or an output holding {MARKER_NAME}", found=shown,
    )


def _marker_record(source: str) -> dict[str, Any]:
    from lerobot_lance import __version__

    return {"tool": MARKER_TOOL, "version": __version__, "created_at": datetime.now(timezone.utc).isoformat(), "source": source}


def claim_output_root(output: str, source: str, *, storage_options: dict[str, str] | None = None) -> Path | str | None:
    """Create the output root if needed and write its marker (unless it has one).
    The dataset card (:func:`write_dataset_card`) is written by the first
    successful publish, naming the tables it published.

    Call right after :func:`check_output_root`. The marker is JSON:
    ``{"tool": "lerobot-lance", "version", "created_at" (UTC ISO 8601), "source"}``,
    written to a temporary name and renamed into place; an existing marker is
    kept unchanged (it records who created the root, and when).

    Returns:
        The marker's path (its URI for an object-store output, written as one
        object unless there is one).

    Raises:
        OutputRootError: the directory cannot be created (a parent is a file,
            no permission).
    """
    if not is_local(output):
        from lerobot_lance import object_store

        uri = object_store.join(output, MARKER_NAME)
        marker = object_store.read_json(uri, storage_options)
        if not (isinstance(marker, dict) and marker.get("tool") == MARKER_TOOL):
            object_store.write_json(uri, _marker_record(source), storage_options)
        return uri
    root = local_path(output)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a parent is a file, no permission, read-only file system
        raise OutputRootError(output, f"cannot create the output directory ({e.strerror or e}: {e.filename or root})") from None
    path = root / MARKER_NAME
    if read_marker(root) is not None:
        return path
    tmp = root / f".{MARKER_NAME}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(_marker_record(source), indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def dataset_card(source: str, tables: Sequence[str]) -> str:
    """A Hugging Face dataset card whose ``configs:`` name one config per table.

    ``datasets.load_dataset(<out>)`` then loads the frames table (the default
    config) and ``load_dataset(<out>, "episodes", columns=[...])`` another table:
    the card's ``data_files`` globs keep each table's files apart (a bare
    ``load_dataset("lance", data_dir=<out>)`` globs every table, and anything
    else under the root, into one split and fails). Checked with datasets
    5.2.0 and pylance 14.0.2; its Lance builder cannot load blob columns
    (``extension<lance.blob.v2>``), so the episodes and videos tables load
    with ``columns=`` naming the other columns.
    """
    configs = "".join(
        f"- config_name: {t}\n" + ("  default: true\n" if t == "frames" else "") + f"  data_files:\n  - split: train\n    path: {t}.lance/**\n"
        for t in tables
    )
    return (
        f"---\nconfigs:\n{configs}---\n\n"
        f"Lance tables of the LeRobot dataset `{source}`, written by lerobot-lance: "
        + ", ".join(f"`{t}.lance`" for t in tables)
        + "; `meta/` holds the dataset's metadata and `meta/conversion.json` the tag of the conversion.\n"
    )


def write_dataset_card(
    root: Path | str, source: str, tables: Sequence[str], *, storage_options: dict[str, str] | None = None
) -> Path | str | None:
    """Write :func:`dataset_card` for ``tables`` as ``<root>/README.md`` unless a
    file of that name exists (a card someone edited is never replaced).
    ``root`` may be an object-store URI (one object)."""
    if isinstance(root, str) and not is_local(root):
        from lerobot_lance import object_store

        uri = object_store.join(root, CARD_NAME)
        if object_store.exists(uri, storage_options):
            return None
        object_store.write_bytes(uri, dataset_card(source, tables).encode("utf-8"), storage_options)
        return uri
    root = Path(root)
    card = root / CARD_NAME
    if card.exists():
        return None
    card.write_text(dataset_card(source, tables), encoding="utf-8")
    return card
