"""The "open it" snippet: one template for the CLI summary, the Dagster metadata and README.md.

``lerobot-lance convert`` prints :func:`open_snippet` for its output (with
``version="latest"``, the tag that follows the latest conversion), the
``lance_dataset`` asset records it pinned to the conversion's own tag, and
README's quick start shows what the CLI prints for ``out/g1_multicam``
(``tests/test_readme.py`` checks that and runs it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lerobot_lance.formats import INDEX_COLUMNS, column_name

#: The snippet; ``{output}``, ``{version}`` and ``{columns}`` are filled by :func:`open_snippet`.
OPEN_SNIPPET = """\
import lancedb
db = lancedb.connect({output})
frames = db.open_table("frames", version={version})  # "latest" or a conversion's tag
print(frames.search().where("episode_index = 0 AND frame_index < 10", prefilter=True)
      .select({columns}).limit(10).to_list())"""

#: Bookkeeping columns the snippet always selects.
_BASE_COLUMNS = ("episode_index", "frame_index", "timestamp")
#: Feature columns shown when the frames table has them (LeRobot's usual names), else the first two features.
_PREFERRED = ("action", "observation_state")


def snippet_columns(frame_columns: Iterable[str]) -> list[str]:
    """Columns the snippet selects: ``episode_index``, ``frame_index``, ``timestamp``
    and ``action``/``observation_state`` (or the first two other feature columns)."""
    cols = list(frame_columns)
    if not cols:
        return list(_BASE_COLUMNS)
    features = [c for c in cols if c not in INDEX_COLUMNS]
    chosen = [c for c in _PREFERRED if c in features] or features[:2]
    return [c for c in _BASE_COLUMNS if c in cols] + chosen


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_snippet(output: str, version: str = "latest", frame_columns: Iterable[str] = ()) -> str:
    """The Python snippet that opens ``output``'s frames table at ``version`` and prints ten rows.

    Args:
        output: the output root as the user gave it (a path or an object-store URI).
        version: a tag (``"latest"`` or ``conversion-<UTC time>``) or a version number.
        frame_columns: the frames table's column names (see :func:`snippet_columns`).
    """
    columns = "[" + ", ".join(_quote(c) for c in snippet_columns(frame_columns)) + "]"
    return OPEN_SNIPPET.format(output=_quote(output), version=_quote(version) if isinstance(version, str) else version, columns=columns)


def frames_columns(meta: Any) -> list[str]:
    """The frames table's column names implied by a :class:`~lerobot_lance.model.DatasetMeta`
    (non-video features, underscored, and the bookkeeping columns)."""
    return [column_name(k) for k, f in meta.features.items() if not getattr(f, "is_video", False)] + list(INDEX_COLUMNS)
