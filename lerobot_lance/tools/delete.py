"""``delete-episodes``: remove episodes from an output (LeRobot's ``delete_episodes``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lerobot_lance.tools._output import ToolError, ToolResult, check_episode_indices, read_output
from lerobot_lance.tools._select import delete_in_place, write_selection


def delete_episodes(output: str | Path, episodes: Sequence[int], *, new_output: str | Path | None = None,
                    in_place: bool = False) -> ToolResult:
    """Delete ``episodes`` from the output ``output`` (either layout).

    The kept episodes are renumbered 0..N-1 in order and ``index`` made
    contiguous, as lerobot 0.4.4 ``dataset_tools.delete_episodes`` does; each
    frame's previous episode index stays in ``frames.source_episode_index``
    and ``meta/conversion.json`` (``tool.episode_mapping``: old -> new).

    Args:
        output: an output root of ours.
        episodes: episode indices of ``output`` to delete.
        new_output: write the result as this new output root (a copy: every
            kept row and blob is written again).
        in_place: commit the result as a new tagged version of ``output``
            (deletion files plus new files for the renumbered columns; no
            blob rewritten); the previous tag keeps opening the old state.

    Returns:
        :class:`~lerobot_lance.tools._output.ToolResult`.

    Raises:
        ToolError: no episodes, an index the output lacks, every episode
            deleted, or neither/both of ``new_output`` and ``in_place``; or the
            result fails an output check (nothing published).
    """
    if (new_output is None) == (not in_place):
        raise ToolError("delete-episodes: give exactly one of --output NEW or --in-place")
    state = read_output(output)
    if not episodes:
        raise ToolError(f"{state.root}: no episodes to delete")
    check_episode_indices(state, episodes, "--episodes")
    keep = [e for e in state.records if e not in set(episodes)]
    if not keep:
        raise ToolError(f"{state.root}: cannot delete every episode ({len(state.records)}); expected at least one kept")
    record = {"verb": "delete-episodes", "deleted_episodes": sorted(set(episodes))}
    if in_place:
        return delete_in_place(state, keep, record)
    return write_selection([state], [(0, e) for e in keep], str(new_output), "delete-episodes", record)
