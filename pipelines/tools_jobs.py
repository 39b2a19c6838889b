"""Dagster jobs of the dataset tools, launched from the UI (*Jobs* → ``tools__*``
→ *Launchpad*) with a run config naming the output(s).

Each job is two ops: the tool (a plain call of :mod:`lerobot_lance.tools`,
which already refuses to publish a result that fails a blocking output
check), then ``tools_output_checks``, which runs the same output checks as a
conversion of that layout on what was published (latest versions, shared
tag included) and fails the run, listing each failed check, if any fails.
The tools take the output's writer lock (one writer per output: a second
writer of the same output fails at once, naming the holder).

Example run config (``tools__delete_episodes``)::

    ops:
      delete_episodes_op:
        config: {output: out/g1, episodes: [1, 3], new_output: out/g1_kept}
"""

# No ``from __future__ import annotations``: Dagster reads the config classes' annotations at decoration time.
from pathlib import Path
from typing import Any, Optional

from dagster import Config, Failure, In, JobDefinition, MetadataValue, OpExecutionContext, Out, job, op

from lerobot_lance.tools import _output as tool_output


class DeleteEpisodesConfig(Config):
    """``lerobot-lance delete-episodes``: give ``new_output`` or ``in_place``."""

    output: str
    episodes: list[int]
    new_output: Optional[str] = None
    in_place: bool = False


class SplitConfig(Config):
    """``lerobot-lance split``: ``splits`` as on the command line (``train=0.8,val=0.2``)."""

    output: str
    splits: str
    new_output: str


class MergeConfig(Config):
    """``lerobot-lance merge``."""

    outputs: list[str]
    new_output: str


class AddFeaturesConfig(Config):
    """``lerobot-lance add-features``: ``table`` is a parquet file keyed by ``index``."""

    output: str
    table: str
    new_output: Optional[str] = None
    in_place: bool = False


class RemoveFeaturesConfig(Config):
    """``lerobot-lance remove-features``."""

    output: str
    features: list[str]
    new_output: Optional[str] = None
    in_place: bool = False


class PushConfig(Config):
    """``lerobot-lance push``; the token comes from ``HF_TOKEN`` in the run's environment."""

    output: str
    repo_id: str
    private: bool = False
    revision: Optional[str] = None
    large: bool = False


def _report(context: OpExecutionContext, results: dict[str, Any]) -> list[str]:
    """Log each result's tag, rows and bytes as op output metadata; the result roots."""
    meta: dict[str, Any] = {}
    for name, r in results.items():
        prefix = f"{name}/" if name else ""
        meta[f"{prefix}output"] = MetadataValue.path(r.output)
        meta[f"{prefix}tag"] = r.tag
        meta[f"{prefix}rows"] = MetadataValue.json(r.rows)
        meta[f"{prefix}bytes_written"] = r.bytes_written
        meta[f"{prefix}output_bytes"] = r.output_bytes
        meta[f"{prefix}in_place"] = r.in_place
    context.add_output_metadata(meta)
    return [r.output for r in results.values()]


@op(out=Out(list), description="Delete episodes (renumbered 0..N-1 like LeRobot's delete_episodes).")
def delete_episodes_op(context: OpExecutionContext, config: DeleteEpisodesConfig) -> list[str]:
    from lerobot_lance.tools import delete_episodes

    r = delete_episodes(config.output, config.episodes, new_output=config.new_output, in_place=config.in_place)
    return _report(context, {"": r})


@op(out=Out(list), description="Split into one output per split (LeRobot's split_dataset).")
def split_op(context: OpExecutionContext, config: SplitConfig) -> list[str]:
    from lerobot_lance.tools import split_dataset
    from lerobot_lance.tools.split import parse_splits

    return _report(context, split_dataset(config.output, parse_splits(config.splits), config.new_output))


@op(out=Out(list), description="Merge outputs with the same features and fps.")
def merge_op(context: OpExecutionContext, config: MergeConfig) -> list[str]:
    from lerobot_lance.tools import merge_datasets

    return _report(context, {"": merge_datasets(config.outputs, config.new_output)})


@op(out=Out(list), description="Add per-frame features from a parquet table keyed by index.")
def add_features_op(context: OpExecutionContext, config: AddFeaturesConfig) -> list[str]:
    from lerobot_lance.tools import add_features

    r = add_features(config.output, config.table, new_output=config.new_output, in_place=config.in_place)
    return _report(context, {"": r})


@op(out=Out(list), description="Remove features (not the five index columns).")
def remove_features_op(context: OpExecutionContext, config: RemoveFeaturesConfig) -> list[str]:
    from lerobot_lance.tools import remove_features

    r = remove_features(config.output, config.features, new_output=config.new_output, in_place=config.in_place)
    return _report(context, {"": r})


@op(out=Out(list), description="Upload an output to a Hub dataset repo with a generated dataset card.")
def push_op(context: OpExecutionContext, config: PushConfig) -> list[str]:
    from lerobot_lance.tools import push_to_hub

    r = push_to_hub(config.output, config.repo_id, private=config.private, revision=config.revision, large=config.large)
    context.add_output_metadata({"repo_id": r.repo_id, "revision": r.revision, "files": len(r.files), "bytes": r.bytes})
    return [config.output]


@op(ins={"outputs": In(list)}, description="The layout's blocking output checks on each result (as after a conversion).")
def tools_output_checks(context: OpExecutionContext, outputs: list[str]) -> dict[str, dict[str, bool]]:
    report: dict[str, dict[str, bool]] = {}
    failed: list[str] = []
    for out in outputs:
        state = tool_output.read_output(out)
        root = Path(out)
        outcomes = tool_output.run_output_checks(root, state.layout, tag=state.conversion.get("tag"),
                                                 skip_videos=state.layout == "card" and "videos" not in state.tables)
        report[out] = {o.name: o.passed for o in outcomes}
        failed += [f"{out}: {o.name}: {o.message}" for o in tool_output.failed(outcomes)]
    context.add_output_metadata({"checks": MetadataValue.json(report)})
    if failed:
        raise Failure(description="output checks failed: " + "; ".join(failed), metadata={"checks": MetadataValue.json(report)})
    return report


def _job(name: str, tool: Any, description: str) -> JobDefinition:
    @job(name=name, description=description, tags={"lerobot_lance/tool": name})
    def _j() -> None:
        tools_output_checks(tool())

    return _j


def build_tools_jobs() -> list[JobDefinition]:
    """One job per tool: ``tools__delete_episodes``, ``tools__split``,
    ``tools__merge``, ``tools__add_features``, ``tools__remove_features``,
    ``tools__push``."""
    return [
        _job("tools__delete_episodes", delete_episodes_op, "Delete episodes from an output, then run its output checks."),
        _job("tools__split", split_op, "Split an output into one output per split, then run their output checks."),
        _job("tools__merge", merge_op, "Merge outputs into a new output, then run its output checks."),
        _job("tools__add_features", add_features_op, "Add per-frame features to an output, then run its output checks."),
        _job("tools__remove_features", remove_features_op, "Remove features from an output, then run its output checks."),
        _job("tools__push", push_op, "Push an output to the Hugging Face Hub (checks the output as pushed)."),
    ]

