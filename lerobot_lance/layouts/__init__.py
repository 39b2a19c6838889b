"""Output layouts: each is one place in the code.

A layout names the tables a conversion writes (its constants module:
:mod:`~lerobot_lance.layouts.card`, :mod:`~lerobot_lance.layouts.lerobot`),
the writer of each table, what the publish stages with the commits, how it
writes ``meta/`` and which blocking output checks gate it. The conversion's
stages (read, check, stage, publish) are shared; the table assets and the
publish call :func:`get_layout` once and use what it returns.

``card`` (default): the three-table layout of the lance-format dataset cards.
``lerobot``: what LeRobot's own Lance reader (lerobot_lancedb 0.3.1,
``LanceDBDataset``) serves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from lerobot_lance.conversion import Conversion
    from lerobot_lance.lance_io import PendingTable

from lerobot_lance.layouts.names import DEFAULT_LAYOUT, LAYOUTS, all_table_names, layout_tables, validate_layout

__all__ = ["DEFAULT_LAYOUT", "LAYOUTS", "Layout", "all_table_names", "get_layout", "layout_tables", "output_check_names", "validate_layout", "write_table"]


@dataclass(frozen=True)
class Layout:
    """What one layout writes and checks.

    Attributes:
        name: ``"card"`` or ``"lerobot"``.
        tables: the tables a conversion commits, in commit order.
        writers: table -> writer ``(conv) -> PendingTable`` (the table assets'
            work); a table the layout does not have is absent.
        indexes: table -> {column: scalar index type} built at publish.
        prepare_meta: ``(conv, dest, coverage, tag, rows) -> (files, record)``:
            writes the output's ``meta/`` into ``dest`` before the first commit
            (the files, relative to ``dest``, ``conversion.json`` excluded, and
            the layout's fields of ``conversion.json``), or ``None`` for the
            shared writer (:func:`lerobot_lance.output_meta.prepare_output_meta`:
            the source's ``meta/`` describing the published episodes).
        stage_at_publish: ``(conv, prepared_meta_dir, files) -> {table: PendingTable}``,
            tables staged inside the publish from the prepared ``meta/`` (the
            ``lerobot`` layout's ``meta``), or ``None``.
        output_checks: names of the blocking output checks.
        check_output: ``(conv, tag, episodes, *, versions=None, meta_dir=None) -> [CheckOutcome]``,
            one per name in ``output_checks``; the publish runs it on the
            committed ``versions`` and the prepared ``meta_dir`` before any tag
            moves, and once more for ``tables_share_tag`` after.
    """

    name: str
    tables: tuple[str, ...]
    writers: Mapping[str, Callable[[Conversion], PendingTable]]
    indexes: Mapping[str, Mapping[str, str]]
    prepare_meta: Callable[..., tuple[list[str], dict[str, Any]]] | None
    stage_at_publish: Callable[..., dict[str, PendingTable]] | None
    output_checks: tuple[str, ...]
    check_output: Callable[..., list[Any]]


def _card() -> Layout:
    from lerobot_lance.layouts import card
    from lerobot_lance.layouts import card_writer as w
    from lerobot_lance.quality.output_rules import OUTPUT_RULES, check_output

    def checks(conv: Conversion, tag: str | None, episodes: list[int], *, versions: dict[str, int] | None = None,
               meta_dir: Any = None) -> list[Any]:
        return check_output(
            conv.output, conv.meta, conv.source.meta_root(), tag=tag, episodes=episodes,
            skip_videos=conv.options.skip_videos, storage_options=conv.options.storage_options, versions=versions,
            threads=conv.options.workers,
        )

    return Layout(
        name=card.NAME,
        tables=card.TABLE_NAMES,
        writers={card.FRAMES_TABLE: w.write_frames_table, card.EPISODES_TABLE: w.write_episodes_table, card.VIDEOS_TABLE: w.write_videos_table},
        indexes=card.INDEXES,
        prepare_meta=None,
        stage_at_publish=None,
        output_checks=OUTPUT_RULES,
        check_output=checks,
    )


def _lerobot() -> Layout:
    from lerobot_lance.layouts import lerobot as L
    from lerobot_lance.layouts import lerobot_checks, lerobot_writer as w

    return Layout(
        name=L.NAME,
        tables=L.TABLE_NAMES,
        writers={L.FRAMES_TABLE: w.write_frames_table, L.VIDEOS_TABLE: w.write_videos_table},
        indexes=L.INDEXES,
        prepare_meta=w.prepare_meta,
        stage_at_publish=w.stage_at_publish,
        output_checks=lerobot_checks.OUTPUT_RULES,
        check_output=lerobot_checks.check_conversion_output,
    )


def get_layout(name: str = DEFAULT_LAYOUT) -> Layout:
    """The :class:`Layout` named ``name``.

    Raises:
        LeRobotLanceError: unknown name.
    """
    return {"card": _card, "lerobot": _lerobot}[validate_layout(name)]()


def output_check_names(name: str = DEFAULT_LAYOUT) -> tuple[str, ...]:
    """The blocking output checks of a layout (declared on the publish asset)."""
    if validate_layout(name) == "lerobot":
        from lerobot_lance.layouts.lerobot_checks import OUTPUT_RULES

        return OUTPUT_RULES
    from lerobot_lance.quality.output_rules import OUTPUT_RULES as CARD_RULES

    return CARD_RULES


def write_table(conv: Conversion, table: str) -> PendingTable | None:
    """Stage one table of the conversion's layout; ``None`` when the layout has
    no such table (the ``lerobot`` layout has no ``episodes`` table)."""
    from lerobot_lance.conversion import writing

    writer = get_layout(conv.options.layout).writers.get(table)
    if writer is None:
        return None
    with writing(conv):  # the output's writer lock, an interrupted publish recovered first
        return writer(conv)
