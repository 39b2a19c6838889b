"""The output layouts' names and table lists (no writer, no Dagster): what the
conversion's shared stages need to know of a layout without importing its
writers (:mod:`lerobot_lance.layouts` builds the :class:`~lerobot_lance.layouts.Layout`
objects, which import the conversion)."""

from __future__ import annotations

from lerobot_lance.errors import LeRobotLanceError
from lerobot_lance.layouts import card, lerobot

#: Layout names accepted by ``--layout``, ``ConvertOptions.layout`` and ``datasets.yaml``.
LAYOUTS: tuple[str, ...] = (card.NAME, lerobot.NAME)
DEFAULT_LAYOUT = card.NAME
_TABLES: dict[str, tuple[str, ...]] = {card.NAME: card.TABLE_NAMES, lerobot.NAME: lerobot.TABLE_NAMES}


def validate_layout(name: str) -> str:
    """``name`` if it is a known layout.

    Raises:
        LeRobotLanceError: unknown name (the message lists the known ones).
    """
    if name not in LAYOUTS:
        raise LeRobotLanceError(f"unknown layout {name!r}: expected one of {', '.join(LAYOUTS)}")
    return name


def layout_tables(name: str) -> tuple[str, ...]:
    """The tables a conversion of this layout commits, in commit order."""
    return _TABLES[validate_layout(name)]


def all_table_names() -> tuple[str, ...]:
    """Every table name any layout writes (what cleanup of a failed run looks for)."""
    return tuple(dict.fromkeys(t for tables in _TABLES.values() for t in tables))
