"""Episode ranges: how a set of episode indices becomes runs of contiguous partitions.

Dagster-free, so the runner (which builds the Definitions) and the sensors
(part of those Definitions) can both use it without importing each other.
"""

from collections.abc import Sequence


def contiguous_ranges(values: Sequence[int], max_len: int) -> list[tuple[int, int]]:
    """Split episode indices into runs of consecutive values, each at most ``max_len`` long.

    ``values`` need not be sorted; duplicates are ignored. Returns inclusive
    ``(first, last)`` pairs in ascending order, e.g. ``[0, 1, 2, 5]`` with
    ``max_len=2`` gives ``[(0, 1), (2, 2), (5, 5)]``.
    """
    out: list[tuple[int, int]] = []
    for v in sorted(set(values)):
        if out and v == out[-1][1] + 1 and v - out[-1][0] < max_len:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def ranges_text(values: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``; ``"none"`` when empty."""
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in contiguous_ranges(values, 1 << 30)) or "none"
