"""``merge``: one output from several (LeRobot's ``merge_datasets`` / ``aggregate_datasets``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lerobot_lance import formats
from lerobot_lance.tools._output import SOURCE_EPISODE_COLUMN, ToolError, ToolResult, read_output
from lerobot_lance.tools._select import write_selection


def _comparable_features(features: dict) -> dict:
    return {k: {x: v for x, v in f.items() if x != "info"} for k, f in features.items()}


def merge_datasets(outputs: Sequence[str | Path], new_output: str | Path) -> ToolResult:
    """Merge outputs of one layout into a new output: the episodes of the
    first, then of the second, ..., renumbered 0..N-1, ``index`` contiguous,
    tasks unified by their text (one task_index per distinct task), video
    references offset per camera so each names its own ``videos`` row.

    Raises:
        ToolError: fewer than two outputs; outputs of different layouts,
            metadata versions, fps, features (dtype, shape, names) or frames
            schemas, naming both outputs and the difference.
    """
    if len(outputs) < 2:
        raise ToolError(f"merge: expected at least two outputs, found {len(outputs)}")
    states = [read_output(o) for o in outputs]
    first = states[0]
    for s in states[1:]:
        pair = f"{first.root} and {s.root}"
        if s.layout != first.layout:
            raise ToolError(f"merge: {pair} have different layouts ({first.layout} vs {s.layout})")
        if s.codebase_version != first.codebase_version:
            raise ToolError(f"merge: {pair} have different metadata versions ({first.codebase_version} vs {s.codebase_version})")
        if s.fps != first.fps:
            raise ToolError(f"merge: {pair} have different fps ({first.fps} vs {s.fps}); expected the same fps")
        a, b = _comparable_features(first.features), _comparable_features(s.features)
        if a != b:
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            raise ToolError(f"merge: {pair} have different features: {diff} (expected the same keys, dtypes, shapes and names)")
        fa = first.dataset(formats.FRAMES_TABLE).schema.remove_metadata()
        fb = s.dataset(formats.FRAMES_TABLE).schema.remove_metadata()
        strip = lambda sc: [f for f in sc if f.name != SOURCE_EPISODE_COLUMN]  # noqa: E731
        if strip(fa) != strip(fb):
            raise ToolError(f"merge: {pair} have different frames schemas ({fa} vs {fb})")
    selection = [(i, e) for i, s in enumerate(states) for e in s.records]
    record = {"verb": "merge"}
    return write_selection(states, selection, str(new_output), "merge", record)
