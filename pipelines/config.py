"""Dataset configuration: which datasets the code location converts.

``datasets.yaml`` (path from ``LEROBOT_LANCE_DATASETS``, default the repo's
``datasets.yaml``) lists one entry per dataset::

    datasets:
      - name: g1_sample                # asset group and key prefix
        source: examples/g1_sample     # local directory, a Hub id "owner/name", or s3://bucket/prefix
        revision: null                 # Hub branch, tag or commit (s3: a pinned listing revision "s3-...")
        output: out/g1_sample          # output root (directory or object-store URI)
        schedule: null                 # cron (UTC) of a full re-conversion; absent/null: no schedule
        storage_options:               # object-store outputs and s3:// sources: Lance's keys (lerobot_lance/object_store.py);
          aws_endpoint: http://127.0.0.1:9000   # absent keys come from AWS_ENDPOINT_URL, AWS_REGION, ...
          allow_http: "true"
        options:                       # see lerobot_lance.conversion.ConvertOptions
          reencode: auto
          skip_videos: false
          exclude_failed_episodes: false
          layout: card                 # or lerobot: what LeRobot's Lance reader serves
          encode_images: none          # or video: image cameras to mp4 (video_preset: lerobot | lossless)
          frames_format: source        # or jpeg (jpeg_quality: 95, jpeg_subsampling: "4:2:0")
          backfill_batch_size: 100    # episode partitions per run of a backfill (and of the CLI)
          backfill_policy: multi_run   # or single_run: a backfill's episodes in one run

A top-level ``executor:`` section (optional, one key: ``in_process``,
``multiprocess``, ``celery``, ``dask`` or ``k8s_job``, with that executor's
config) sets the executor of every run of the code location; see
:mod:`pipelines.executor`. Without it runs are in-process.

Relative ``source`` and ``output`` paths are resolved against the YAML file's folder.
A ``schedule`` gives the dataset a ``<name>__full_reconversion`` schedule,
running from the start (pipelines/automation.py); without one the dataset has
no schedule.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "datasets.yaml"
#: Values of ``options.backfill_policy``.
BACKFILL_POLICIES = ("multi_run", "single_run")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DatasetConfig:
    """One configured dataset (see module docstring for the YAML keys)."""

    name: str
    source: str
    output: str
    revision: str | None = None
    schedule: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def backfill_batch_size(self) -> int:
        """Episodes per run in a backfill (Dagster ``BackfillPolicy.multi_run``)."""
        return int(self.options.get("backfill_batch_size", 100))

    @property
    def backfill_policy(self) -> str:
        """``"multi_run"`` (default: a backfill's episode partitions in runs of at
        most :attr:`backfill_batch_size`, Dagster ``BackfillPolicy.multi_run``) or
        ``"single_run"`` (all of them in one run, ``BackfillPolicy.single_run``)."""
        return str(self.options.get("backfill_policy", "multi_run"))


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The datasets YAML: ``path``, else ``$LEROBOT_LANCE_DATASETS``, else the repo's ``datasets.yaml``."""
    return Path(path or os.environ.get("LEROBOT_LANCE_DATASETS") or DEFAULT_CONFIG)


def load_executor_settings(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The ``executor:`` section of the datasets YAML (``{}`` when absent: in-process).

    Raises:
        ValueError: the section is not a mapping with exactly one key; the
            message names the file.
    """
    path = config_path(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    section = doc.get("executor") or {}
    if not isinstance(section, dict) or len(section) > 1:
        raise ValueError(f"{path}: executor: must map one executor kind to its config, found {section!r}")
    return section


def load_dataset_configs(path: str | os.PathLike[str] | None = None) -> list[DatasetConfig]:
    """Parse the datasets YAML.

    Raises:
        ValueError: missing keys, a name that is not a Python identifier, a
            name used twice, or a ``schedule`` that is not a cron string; the
            message names the file and the entry.
    """
    path = config_path(path)
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = doc.get("datasets") or []
    out: list[DatasetConfig] = []
    base = path.resolve().parent
    for i, d in enumerate(entries):
        missing = [k for k in ("name", "source", "output") if not d.get(k)]
        if missing:
            raise ValueError(f"{path}: dataset entry {i} lacks {missing}")
        if not _NAME.match(d["name"]):
            raise ValueError(f"{path}: dataset name {d['name']!r} must be a Python identifier (letters, digits, _)")
        out.append(
            DatasetConfig(
                name=d["name"],
                source=_resolve(base, d["source"], hub_ok=True),
                output=_resolve(base, d["output"]),
                revision=d.get("revision"),
                schedule=_schedule(path, d),
                options=_options(path, d),
            )
        )
        if out[-1].backfill_policy not in BACKFILL_POLICIES:
            raise ValueError(
                f"{path}: dataset {d['name']!r}: options.backfill_policy must be one of {list(BACKFILL_POLICIES)}, "
                f"found {out[-1].backfill_policy!r}"
            )
    names = [c.name for c in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError(f"{path}: dataset names used twice: {sorted(dup)}")
    return out


def _options(path: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """The entry's ``options`` with its ``storage_options`` (a mapping of
    strings; booleans and numbers become Lance's string form) folded in."""
    opts = dict(entry.get("options") or {})
    staging = str(opts.get("staging_dir") or "")
    if "://" in staging and not staging.startswith("file://"):
        from lerobot_lance.object_store import OBJECT_STORE_SCHEMES, scheme

        if scheme(staging) not in OBJECT_STORE_SCHEMES:
            raise ValueError(
                f"{path}: dataset {entry['name']!r}: options.staging_dir must be a directory or an object-store URI "
                f"({', '.join(s + '://' for s in OBJECT_STORE_SCHEMES)}), found {staging!r}"
            )
    so = entry.get("storage_options", opts.get("storage_options"))
    if so is None:
        opts.pop("storage_options", None)
        return opts
    if not isinstance(so, dict) or not all(isinstance(k, str) for k in so):
        raise ValueError(f"{path}: dataset {entry['name']!r}: storage_options must be a mapping of option names to values, found {so!r}")
    opts["storage_options"] = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in so.items()}
    return opts


def _schedule(path: Path, entry: dict[str, Any]) -> str | None:
    """The entry's cron string, or None when ``schedule`` is absent, null or empty."""
    from pipelines.dagster_compat import is_valid_cron_string  # Dagster's own cron grammar

    value = entry.get("schedule")
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not is_valid_cron_string(value):
        raise ValueError(
            f"{path}: dataset {entry['name']!r}: schedule must be a cron string such as \"0 3 * * 0\" "
            f"(or absent for no schedule), found {value!r}"
        )
    return value


def _resolve(base: Path, value: str, hub_ok: bool = False) -> str:
    if "://" in value or Path(value).is_absolute():
        return value
    candidate = base / value
    if hub_ok and not candidate.exists() and value.count("/") == 1:
        return value  # a Hub dataset id
    return str(candidate)
