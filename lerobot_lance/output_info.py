"""What a published output holds, per table: where, which version, how many rows and bytes.

Used by the ``lance_dataset`` asset's metadata (assets/dataset_assets.py) and
usable from the Python API; reads only Lance manifests (no data pages), and on
a local output walks the table directory for its size on disk.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lerobot_lance.lance_io import table_uri


@dataclass(frozen=True)
class TableInfo:
    """One published table.

    Attributes:
        name: the table name (``frames``, ``episodes``, ``videos``, ...).
        uri: ``<output>/<name>.lance``.
        version: the version the conversion's tag points to.
        latest_version: the table's newest version (equal to ``version`` right
            after a publish; a user's own later commits make it newer).
        rows: rows at ``version``.
        data_bytes: bytes of the data files of ``version`` (sizes from the
            Lance fragment metadata) plus, on a local output, their blob
            sidecar files (``data/<file>/*.blob``, where Lance keeps
            blob-encoded columns such as the mp4 bytes): what that version
            occupies. On object storage the sidecars are not counted.
        disk_bytes: bytes of everything under the table directory (every
            version's data files, indexes, manifests, blob files), for a local
            output; ``None`` on object storage.
    """

    name: str
    uri: str
    version: int
    latest_version: int
    rows: int
    data_bytes: int
    disk_bytes: int | None


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    return None if "://" in uri else Path(uri)


def output_url(output: str) -> str:
    """A URL for the output root: ``file:///abs/path`` for a local directory,
    the URI itself for object storage (``s3://...``)."""
    local = _local_path(output)
    return local.resolve().as_uri() if local is not None else output


def _dir_bytes(root: Path) -> int:
    return sum(os.path.getsize(Path(d) / f) for d, _, files in os.walk(root) for f in files)


def describe_tables(
    output: str, tables: Iterable[str], tag: str, storage_options: dict[str, str] | None = None
) -> list[TableInfo]:
    """One :class:`TableInfo` per table of ``tables`` at the version ``tag`` names.

    Raises:
        ValueError: a table has no tag ``tag`` (Lance's error, naming the tag).
        OSError / lance errors: a table cannot be opened.
    """
    import lance  # here, not at module level: the code location imports this module

    out = []
    for name in tables:
        uri = table_uri(output, name)
        ds = lance.dataset(uri, version=tag, storage_options=storage_options)
        latest = lance.dataset(uri, storage_options=storage_options).version
        local = _local_path(uri)
        data_bytes = 0
        for fragment in ds.get_fragments():
            for f in fragment.metadata.files:
                size = getattr(f, "file_size_bytes", None)
                if size is None and local is not None:  # older manifests do not record it
                    path = local / "data" / f.path
                    size = path.stat().st_size if path.exists() else 0
                data_bytes += int(size or 0)
                if local is not None:
                    sidecar = local / "data" / Path(f.path).stem
                    if sidecar.is_dir():
                        data_bytes += _dir_bytes(sidecar)
        out.append(
            TableInfo(
                name=name, uri=uri, version=ds.version, latest_version=latest, rows=ds.count_rows(),
                data_bytes=data_bytes, disk_bytes=_dir_bytes(local) if local is not None else None,
            )
        )
    return out


def tables_markdown(infos: Iterable[TableInfo]) -> str:
    """A Markdown table: table, rows, tagged version, latest version, bytes of that version, bytes on disk, URI."""
    lines = [
        "| table | rows | version (tag) | latest version | bytes (this version) | bytes on disk (all versions) | uri |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for t in infos:
        disk = f"{t.disk_bytes:,}" if t.disk_bytes is not None else "n/a"
        lines.append(f"| {t.name} | {t.rows:,} | {t.version} | {t.latest_version} | {t.data_bytes:,} | {disk} | `{t.uri}` |")
    return "\n".join(lines)
