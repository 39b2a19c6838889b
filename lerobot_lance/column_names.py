"""Column names of the output tables, derived from LeRobot feature keys.

One rule per table, used by the writers (:func:`lerobot_lance.frames.frames_schema`,
:func:`lerobot_lance.layouts.card_writer.episodes_schema` and its rows), the source
rule that refuses ambiguous names (``features_well_formed``) and the tests.

``frames``
    every non-video feature under its key with dots replaced by underscores
    (:func:`lerobot_lance.formats.column_name`: ``observation.state`` ->
    ``observation_state``). Two features that map to the same column (``a.b``
    and ``a_b``) cannot both be stored: :func:`frames_column_collisions`
    finds them and the source is refused at ``source_meta``.

``episodes`` (DESIGN.md "Output layout", the lance-format Hub card)
    fixed columns (:data:`EPISODES_FIXED_COLUMNS`, always reserved whether or
    not the dataset fills them), the card's derived sequence names
    (:data:`CARD_SEQUENCE_NAMES`: ``action`` -> ``actions``,
    ``observation.state`` -> ``observation_state``; reserved only when that
    feature exists), the three columns of every video camera
    (``<camera>_video_blob``, ``<camera>_from_timestamp``,
    ``<camera>_to_timestamp``, reserved even with ``--skip-videos`` so that
    names never depend on options), then every other per-frame feature
    under its underscored name. A feature whose underscored name is already
    taken gets ``<name>_feature`` (then ``<name>_feature_2``, ``_3``, ...
    until free), in ``info.json`` feature order. Example: a dataset with
    features ``action`` and ``actions`` gets ``actions`` (from ``action``)
    and ``actions_feature`` (from ``actions``); one with ``actions`` alone
    gets ``actions``; a feature named ``length`` becomes ``length_feature``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from lerobot_lance.formats import INDEX_COLUMNS, column_name

if TYPE_CHECKING:
    from lerobot_lance.model import Feature

#: Columns of the episodes table that no feature may take, in table order.
EPISODES_FIXED_COLUMNS: tuple[str, ...] = (
    "episode_index",
    "task_index",
    "fps",
    "length",
    "tasks",
    "dataset_from_index",
    "dataset_to_index",
    "timestamps",
    "done",
    "success",
    "reward_sum",
    "stats",
)
#: The card's sequence names for two LeRobot features.
CARD_SEQUENCE_NAMES: dict[str, str] = {"action": "actions", "observation.state": "observation_state"}
#: Episode outcome columns and the ``next.*`` feature each is computed from.
OUTCOME_COLUMNS: dict[str, str] = {"next.done": "done", "next.success": "success", "next.reward": "reward_sum"}
#: Suffix given to a feature whose underscored name is taken.
RENAME_SUFFIX = "_feature"


def camera_columns(video_key: str) -> tuple[str, str, str]:
    """``(<camera>_video_blob, <camera>_from_timestamp, <camera>_to_timestamp)`` of a video feature key."""
    col = column_name(video_key)
    return f"{col}_video_blob", f"{col}_from_timestamp", f"{col}_to_timestamp"


def frames_column_collisions(keys: list[str]) -> dict[str, list[str]]:
    """Frames-table columns claimed by more than one feature key.

    Args:
        keys: the feature keys (``info.json["features"]`` order).

    Returns:
        column -> the keys mapping to it, only for columns with two or more
        keys (``{"a_b": ["a.b", "a_b"]}``); empty when every name is unique.
    """
    by_col: dict[str, list[str]] = {}
    for k in keys:
        by_col.setdefault(column_name(k), []).append(k)
    return {c: ks for c, ks in by_col.items() if len(ks) > 1}


def episode_sequence_columns(features: Mapping[str, Feature]) -> dict[str, str]:
    """Feature key -> its sequence column in the episodes table.

    Covers every per-frame feature that becomes a list column (not the
    bookkeeping :data:`~lerobot_lance.formats.INDEX_COLUMNS`, which become the
    fixed ``timestamps`` / ``episode_index`` / ``task_index`` columns, and
    not cameras). Deterministic: depends on the feature keys and their order
    only (see the module docstring for the rule).

    Returns:
        ``{feature_key: column}`` in ``info.json`` feature order; the columns
        are distinct from each other, from :data:`EPISODES_FIXED_COLUMNS` and
        from every video camera's columns.
    """
    taken: set[str] = set(EPISODES_FIXED_COLUMNS)
    for key, f in features.items():
        if f.is_video:
            taken.update(camera_columns(key))
    sequence = [k for k, f in features.items() if k not in INDEX_COLUMNS and not f.is_camera]
    out: dict[str, str] = {}
    for k in sequence:  # the card's names first: they win over a same-named source feature
        if k in CARD_SEQUENCE_NAMES and CARD_SEQUENCE_NAMES[k] not in taken:
            out[k] = CARD_SEQUENCE_NAMES[k]
            taken.add(out[k])
    for k in sequence:
        if k in out:
            continue
        name = column_name(k)
        if name in taken:
            base, n = f"{name}{RENAME_SUFFIX}", 1
            name = base
            while name in taken:
                n += 1
                name = f"{base}_{n}"
        out[k] = name
        taken.add(name)
    return {k: out[k] for k in sequence}
