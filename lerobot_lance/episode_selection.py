"""Episode selections (``--episodes 0-9,12``) kept as ranges until they meet a dataset.

A selection is parsed into sorted, disjoint, inclusive ranges and expanded
only once it has been checked against the dataset's episode indices, so
``0-200000000`` costs two integers, not 200 million: episodes the dataset
does not hold are refused with a located :class:`SourceDataError`
(``meta/: requested episodes not in the dataset``), and the result is never
larger than the dataset.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from lerobot_lance.errors import SourceDataError

#: Unknown episodes named in a refusal (the count is always complete).
SHOWN_UNKNOWN = 10


@dataclass(frozen=True)
class EpisodeRanges:
    """Episode indices as sorted, disjoint, non-adjacent inclusive ranges ``((lo, hi), ...)``."""

    ranges: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, text: str) -> EpisodeRanges:
        """``"0-9,12"`` -> ``((0, 9), (12, 12))``; overlapping and adjacent parts merge.

        Raises:
            ValueError: a part is not ``N`` or ``N-M`` with ``0 <= N <= M``, or the text is empty.
        """
        parts = []
        for part in text.split(","):
            part = part.strip()
            lo, sep, hi = part.partition("-")
            try:
                a, b = int(lo), int(hi if sep else lo)
            except ValueError:
                raise ValueError(f"{part!r}: expected N or N-M") from None
            if a < 0 or a > b:
                raise ValueError(f"{part!r}: expected 0 <= N <= M")
            parts.append((a, b))
        return cls._merged(parts)

    @classmethod
    def of(cls, episodes: EpisodeRanges | Iterable[int]) -> EpisodeRanges:
        """A selection from ranges (returned as is) or from episode indices."""
        if isinstance(episodes, EpisodeRanges):
            return episodes
        return cls._merged((int(i), int(i)) for i in episodes)

    @classmethod
    def _merged(cls, parts: Iterable[tuple[int, int]]) -> EpisodeRanges:
        out: list[tuple[int, int]] = []
        for a, b in sorted(parts):
            if out and a <= out[-1][1] + 1:
                out[-1] = (out[-1][0], max(out[-1][1], b))
            else:
                out.append((a, b))
        return cls(tuple(out))

    def __str__(self) -> str:
        return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in self.ranges)

    def count(self) -> int:
        """How many episodes the selection names."""
        return sum(b - a + 1 for a, b in self.ranges)

    def __contains__(self, episode: object) -> bool:
        if not isinstance(episode, int):
            return False
        i = bisect.bisect_right(self.ranges, (episode, float("inf"))) - 1
        return i >= 0 and self.ranges[i][0] <= episode <= self.ranges[i][1]

    def within(self, known: Sequence[int]) -> list[int]:
        """The selected indices among ``known`` (sorted), without expanding the ranges."""
        ids = sorted(set(known))
        out: list[int] = []
        for a, b in self.ranges:
            out += ids[bisect.bisect_left(ids, a) : bisect.bisect_right(ids, b)]
        return out

    def _unknown(self, known: set[int]) -> Iterator[int]:
        for a, b in self.ranges:
            for i in range(a, b + 1):  # lazily: the caller stops after a few
                if i not in known:
                    yield i

    def resolve(self, known: Sequence[int], where: str = "meta/") -> list[int]:
        """The selected episodes, checked against the dataset's ``known`` indices.

        Returns:
            The selected indices, sorted (all of them are in ``known``).

        Raises:
            SourceDataError: some selected episodes are not in ``known``; the
                message (located at ``where``) gives the dataset's episodes, how
                many selected ones are unknown and the first
                :data:`SHOWN_UNKNOWN` of them.
        """
        inside = self.within(known)
        n_unknown = self.count() - len(inside)
        if n_unknown:
            ids = sorted(set(known))
            first: list[int] = []
            for i in self._unknown(set(ids)):
                first.append(i)
                if len(first) == SHOWN_UNKNOWN:
                    break
            more = f" ... ({n_unknown} in all)" if n_unknown > len(first) else ""
            raise SourceDataError(
                where, "requested episodes not in the dataset",
                expected=f"{len(ids)} episodes, episode_index {ids[0]}..{ids[-1]}" if ids else "no episodes",
                found=f"{first}{more}",
            )
        return inside


def select_episodes(selection: EpisodeRanges | Iterable[int] | None, known: Sequence[int], where: str = "meta/") -> list[int] | None:
    """:meth:`EpisodeRanges.resolve` for ranges or a list of indices; ``None`` (all episodes) stays ``None``.

    Raises:
        SourceDataError: see :meth:`EpisodeRanges.resolve`.
    """
    if selection is None:
        return None
    return EpisodeRanges.of(selection).resolve(known, where)
