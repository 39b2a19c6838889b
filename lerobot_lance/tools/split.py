"""``split``: one new output per split (LeRobot's ``split_dataset``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from lerobot_lance.tools._output import ToolError, ToolResult, check_episode_indices, read_output
from lerobot_lance.tools._select import write_selection

log = logging.getLogger(__name__)


def fractions_to_episodes(total: int, splits: Mapping[str, float]) -> dict[str, list[int]]:
    """Split fractions -> consecutive episode lists, as lerobot 0.4.4
    ``_fractions_to_episode_indices``: ``int(total * fraction)`` episodes each,
    in order; the last split takes the rest; a split of 0 episodes is skipped.

    Raises:
        ToolError: the fractions sum to more than 1.
    """
    if sum(splits.values()) > 1.0 + 1e-9:
        raise ToolError(f"split fractions must sum to <= 1.0, found {sum(splits.values())} ({dict(splits)})")
    out, start, names = {}, 0, list(splits)
    for name, fraction in splits.items():
        n = int(total * fraction)
        if n == 0:
            log.warning("split %r has no episodes, skipping", name)
            continue
        end = total if name == names[-1] else start + n
        out[name] = list(range(start, end))
        start = end
    return out


def parse_splits(text: str) -> dict[str, float | list[int]]:
    """``"train=0.8,val=0.2"`` -> fractions; ``"train=0-3,val=4:5"`` (ranges
    ``a-b`` inclusive, ``:`` separating episodes) -> episode lists.

    Raises:
        ToolError: malformed text.
    """
    out: dict[str, float | list[int]] = {}
    for part in text.split(","):
        name, eq, value = part.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise ToolError(f"--splits {text!r}: expected name=fraction or name=episodes (e.g. train=0.8,val=0.2 or train=0-3,val=4:5), found {part!r}")
        value = value.strip()
        try:
            if "." in value and "-" not in value and ":" not in value:
                out[name.strip()] = float(value)
            else:
                eps: list[int] = []
                for item in value.split(":"):
                    a, dash, b = item.partition("-")
                    eps += list(range(int(a), int(b) + 1)) if dash else [int(a)]
                out[name.strip()] = eps
        except ValueError:
            raise ToolError(f"--splits {text!r}: {value!r} is neither a fraction nor a list of episodes") from None
    return out


def split_dataset(output: str | Path, splits: Mapping[str, float | Sequence[int]], new_output: str | Path) -> dict[str, ToolResult]:
    """Split the output ``output`` into one new output per split,
    ``<new_output>/<split name>``, each renumbered 0..N-1 like
    :func:`~lerobot_lance.tools.delete.delete_episodes`.

    Args:
        splits: split name -> fraction (all floats, summing to <= 1) or
            episode indices of ``output`` (LeRobot's ``split_dataset`` forms).
        new_output: the directory holding one output root per split.

    Raises:
        ToolError: no splits, an empty split, an episode in two splits, an
            index the output lacks; or a result failing its checks.
    """
    state = read_output(output)
    if not splits:
        raise ToolError(f"{state.root}: no splits given")
    if all(isinstance(v, float) for v in splits.values()):
        lists = fractions_to_episodes(len(state.records), splits)  # type: ignore[arg-type]
        order = list(state.records)
        lists = {k: [order[i] for i in v] for k, v in lists.items()}
    else:
        if any(isinstance(v, float) for v in splits.values()):
            raise ToolError(f"--splits: give fractions for every split or episode lists for every split, found {dict(splits)}")
        lists = {k: sorted(int(x) for x in v) for k, v in splits.items()}  # type: ignore[union-attr]
    seen: set[int] = set()
    for name, eps in lists.items():
        if not eps:
            raise ToolError(f"{state.root}: split {name!r} has no episodes")
        if seen & set(eps):
            raise ToolError(f"{state.root}: episodes {sorted(seen & set(eps))} appear in more than one split")
        seen |= set(eps)
        check_episode_indices(state, eps, f"split {name!r}")
    results = {}
    for name, eps in lists.items():
        record = {"verb": "split", "split": name, "split_episodes": eps}
        results[name] = write_selection([state], [(0, e) for e in eps], str(Path(new_output) / name), "split", record)
    return results
