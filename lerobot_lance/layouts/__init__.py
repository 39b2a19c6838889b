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

from lerobot_lance.errors import LeRobotLanceError

if TYPE_CHECKING:
    from lerobot_lance.conversion import Conversion
    from lerobot_lance.lance_io import PendingTable

#: Layout names accepted by ``--layout``, ``ConvertOptions.layout`` and ``datasets.yaml``.
LAYOUTS: tuple[str, ...] = ("card", "lerobot")
DEFAULT_LAYOUT = "card"


@dataclass(frozen=True)
class Layout:
    """What one layout writes and checks.

    Attributes:
        name: ``"card"`` or ``"lerobot"``.
        tables: the tables a conversion commits, in commit order.
        writers: table -> writer ``(conv) -> PendingTable`` (the table assets'
            work); a table the layout does not have is absent.
        indexes: table -> {column: scalar index type} built at publish.
        stage_at_publish: ``(conv, tag, coverage, dataset_stats) -> {table: PendingTable}``,
            tables staged inside the publish (the ``lerobot`` layout's ``meta``), or ``None``.
        write_meta: ``(conv, publish_result, coverage, dataset_stats) -> None``,
            writes ``<output>/meta`` after the commits.
        output_checks: names of the blocking output checks.
        check_output: ``(conv, tag, episodes) -> [CheckOutcome]``, one per name in ``output_checks``.
    """

    name: str
    tables: tuple[str, ...]
    writers: Mapping[str, Callable[[Conversion], PendingTable]]
    indexes: Mapping[str, Mapping[str, str]]
    stage_at_publish: Callable[..., dict[str, PendingTable]] | None
    write_meta: Callable[..., None]
    output_checks: tuple[str, ...]
    check_output: Callable[..., list[Any]]


def validate_layout(name: str) -> str:
    """``name`` if it is a known layout.

    Raises:
        LeRobotLanceError: unknown name (the message lists the known ones).
    """
    if name not in LAYOUTS:
        raise LeRobotLanceError(f"unknown layout {name!r}: expected one of {', '.join(LAYOUTS)}")
    return name


def _card() -> Layout:
    from lerobot_lance import conversion as c
    from lerobot_lance.layouts import card
    from lerobot_lance.quality.output_rules import OUTPUT_RULES, check_output

    def checks(conv: Conversion, tag: str | None, episodes: list[int]) -> list[Any]:
        return check_output(
            conv.output, conv.meta, conv.source.meta_root(), tag=tag, episodes=episodes,
            skip_videos=conv.options.skip_videos, storage_options=conv.options.storage_options,
        )

    return Layout(
        name=card.NAME,
        tables=card.TABLE_NAMES,
        writers={card.FRAMES_TABLE: c.write_frames_table, card.EPISODES_TABLE: c.write_episodes_table, card.VIDEOS_TABLE: c.write_videos_table},
        indexes=c.INDEXES,
        stage_at_publish=None,
        write_meta=c._write_output_meta,
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
        stage_at_publish=w.stage_at_publish,
        write_meta=w.write_output_meta,
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
    writer = get_layout(conv.options.layout).writers.get(table)
    return writer(conv) if writer is not None else None
