"""Metadata values that parse but disagree with each other (severity WARN).

Run by :func:`lerobot_lance.quality.source_rules.check_source_meta` after the
metadata parsed; they read only the normalized :class:`DatasetMeta`.
Each is a WARN, not a blocking gate, because none of them changes what the
converter reads or writes; each says the source's own metadata is unreliable
for a reader that relies on it:

* ``tasks_unique`` -- two ``task_index`` values with the same task string.
  The data's ``task_index`` column stays unambiguous and is converted as it
  is; only a lookup by text (v2.x ``episodes.jsonl`` names tasks by text;
  LeRobot's ``task_to_task_index`` and the v3.0 ``tasks.parquet`` index map a
  string to one index) gets one of the two.
* ``feature_names_match_shape`` -- a feature's ``names`` do not match its
  ``shape``. ``names`` only label dimensions (the content checks use them in
  their messages and fall back to ``key[j]`` when the count differs); the
  values are read by ``shape`` and ``dtype``.
* ``declared_stats_match_features`` -- a declared statistic (``stats.json``,
  v2.1 ``episodes_stats.jsonl``, v3.0 ``stats/<feature>/<stat>`` columns) has
  another width than its feature. The converter recomputes every statistic
  from the data (the output's ``stats.json`` and the episodes table's
  ``stats``), so the declared one is only compared (``stats_match_source``,
  also WARN).

A negative ``episode_index``, by contrast, is blocking: partitions, file
names and the index ranges are built from it (see ``meta_files_readable``).

Format facts: LeRobot ``lerobot/datasets/utils.py`` (features' ``names`` are
a list of element names, ``{"motors": [...]}``, or for cameras the axis names
``["height", "width", "channels"]``; stats arrays have the feature's shape,
camera stats ``(3, 1, 1)``, ``count`` one value).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

from lerobot_lance import formats
from lerobot_lance.model import DatasetMeta, Feature
from lerobot_lance.quality.result import CheckOutcome, Offender

META_VALUE_RULES: tuple[str, ...] = ("tasks_unique", "feature_names_match_shape", "declared_stats_match_features")

META_VALUE_DESCRIPTIONS: dict[str, str] = {
    "tasks_unique": "no task string is listed under two task_index values",
    "feature_names_match_shape": "each feature's names match its shape (element names of a vector, axis names of a camera)",
    "declared_stats_match_features": "each declared statistic has its feature's width (count: one value)",
}

#: Stats whose arrays have the feature's width (``count`` has one value).
_WIDE_STATS = frozenset((*formats.STAT_NAMES, *formats.QUANTILE_NAMES)) - {"count"}


def _outcome(name: str, offenders: list[Offender], **kw: Any) -> CheckOutcome:
    return CheckOutcome.from_offenders(name, offenders, description=META_VALUE_DESCRIPTIONS[name], severity="WARN", **kw)


def _flat_names(names: Any) -> list[Any] | None:
    """Element names of a feature: a list (nested lists flattened) or the values of
    ``{"motors": [...]}``-style dicts; ``None`` when ``names`` gives none."""
    if names is None:
        return None
    if isinstance(names, Mapping):
        parts: list[Any] = list(names.values())
    elif isinstance(names, (list, tuple)):
        parts = list(names)
    else:
        return [names]
    out: list[Any] = []
    for p in parts:
        if isinstance(p, (list, tuple, Mapping)):
            sub = _flat_names(p)
            out += sub or []
        else:
            out.append(p)
    return out


def names_problem(feature: Feature) -> tuple[str, Any, Any] | None:
    """``(detail, expected, found)`` when ``feature.names`` disagree with its
    shape, else ``None``. Cameras name their axes (one name per dimension of
    ``shape``); other features name their elements (``width`` names), or, for a
    multi-dimensional shape, their axes."""
    flat = _flat_names(feature.names)
    if flat is None:
        return None
    if feature.is_camera:
        if isinstance(feature.names, list) and len(feature.names) == len(feature.shape):
            return None
        return ("names do not name the camera's axes", f"{len(feature.shape)} axis names for shape {list(feature.shape)}", f"{len(flat)} names")
    if len(flat) == feature.width:
        return None
    if len(feature.shape) > 1 and isinstance(feature.names, list) and len(feature.names) == len(feature.shape):
        return None  # axis names of a matrix feature
    return ("names disagree with the shape", f"{feature.width} names (shape {list(feature.shape)})", f"{len(flat)} names")


def _stats_offenders(meta: DatasetMeta, stats: Mapping[str, Any] | None, file: str, ep: int | None) -> list[Offender]:
    out: list[Offender] = []
    for key, per_stat in (stats or {}).items():
        f = meta.features.get(key)
        if f is None or f.is_camera or not isinstance(per_stat, Mapping):
            continue  # camera stats are per channel; unknown features are not compared
        for stat, value in per_stat.items():
            if value is None or (stat not in _WIDE_STATS and stat != "count"):
                continue
            n = int(np.asarray(value).size)
            want = 1 if stat == "count" else f.width
            if n != want:
                out.append(Offender(file, ep, f"{key}/{stat} has {n} value(s)", expected=f"{want} (shape {list(f.shape)})" if stat != "count" else 1, found=n))
    return out


def check_meta_values(meta: DatasetMeta, episode_files: Mapping[int, str]) -> list[CheckOutcome]:
    """The WARN rules of this module, one outcome per name in :data:`META_VALUE_RULES`.

    Args:
        meta: the parsed metadata.
        episode_files: episode_index -> the metadata file that lists it (named in offenders).
    """
    tasks_file = formats.TASKS_PARQUET_PATH if meta.codebase_version == "v3.0" else formats.TASKS_JSONL_PATH
    by_text: dict[str, list[int]] = defaultdict(list)
    for i, text in sorted(meta.tasks.items()):
        by_text[text].append(i)
    dup = [
        Offender(tasks_file, None, f"task {text!r} is listed under several task_index values", expected="each task string once", found=idx)
        for text, idx in by_text.items() if len(idx) > 1
    ]
    names = []
    for key, f in meta.features.items():
        p = names_problem(f)
        if p is not None:
            names.append(Offender(f"{formats.INFO_PATH} (features.{key})", None, p[0], expected=p[1], found=p[2]))
    stats = _stats_offenders(meta, meta.declared_stats, formats.STATS_PATH, None)
    ep_file = formats.EPISODES_STATS_JSONL_PATH if meta.codebase_version == "v2.1" else None
    for e in meta.episodes:
        stats += _stats_offenders(meta, e.declared_stats, ep_file or episode_files.get(e.episode_index, "meta/episodes/"), e.episode_index)
    return [
        _outcome("tasks_unique", dup, metadata={"tasks": len(meta.tasks)}),
        _outcome("feature_names_match_shape", names),
        _outcome("declared_stats_match_features", stats),
    ]
