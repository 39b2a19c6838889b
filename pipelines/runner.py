"""Run the Dagster graph of one dataset in-process (what the CLI and the Python API use).

A conversion is three kinds of runs of the same jobs the UI launches:
``<name>__resolve_source`` (registers the episode partitions),
``<name>__convert_episodes`` over contiguous ranges of partitions (one run
per ``backfill_batch_size`` episodes, like a backfill with
``BackfillPolicy.multi_run``), then ``<name>__publish``. With ``DAGSTER_HOME``
set the runs go to that instance and show in the UI; otherwise to a throwaway
one.
"""

import os
import re
import shutil
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions, ResourceDefinition

from lerobot_lance.errors import LeRobotLanceError, OutputExistsError
from lerobot_lance.formats import TABLE_NAMES
from lerobot_lance.staging import partition_key
from pipelines.config import DatasetConfig
from pipelines.dagster_compat import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from pipelines.definitions import build_definitions, default_resources
from pipelines.episode_ranges import contiguous_ranges
from pipelines.jobs import episodes_job_name, publish_job_name, source_job_name


class ConversionFailed(LeRobotLanceError):
    """A run of the conversion failed or a blocking check did not pass.

    Attributes:
        failures: ``"<asset> / <check>: <message>"`` lines, one per failed step or check.
    """

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        super().__init__("conversion failed:\n  " + "\n  ".join(failures))


@dataclass
class ConversionSummary:
    """What an in-process conversion did.

    Attributes:
        output: the output root.
        tag: the shared tag of the published tables.
        runs: Dagster run ids, in order.
        rows: table -> rows published.
        warnings: failed non-blocking (WARN) checks, one line each.
        step_seconds: asset name -> seconds its steps took, summed over runs
            (from Dagster's ``STEP_SUCCESS``/``STEP_FAILURE`` events).
    """

    output: str
    tag: str | None = None
    runs: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)


def dataset_name_for(output: str) -> str:
    """A Dagster-safe dataset name derived from the output root's last path part."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", Path(output.rstrip("/")).name) or "dataset"
    return base if not base[0].isdigit() else f"d_{base}"


def _instance(stack: ExitStack) -> DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    return stack.enter_context(DagsterInstance.ephemeral())


_FAILURE_PREFIX = re.compile(r"^(?:\w+\.)*Failure: ")


def _root_message(err: Any) -> str:
    """A step failure's message, followed by the error that caused it (Dagster
    wraps the cause, e.g. "Exceeded max_retries of 2", around the real error)."""
    if err is None:
        return "failed"
    parts: list[str] = []
    while err is not None:
        text = _FAILURE_PREFIX.sub("", err.message.strip())  # "<module path>.Failure: " of a raised Failure
        if text and not any(text in p or p in text for p in parts):
            parts.append(text)
        err = err.cause
    return " <- ".join(parts) or "failed"


def _failures(result: Any) -> tuple[list[str], list[str]]:
    """(blocking failures, warnings) of one in-process run."""
    failed, warns = [], []
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error
            if err is not None and err.cls_name == "DagsterAssetCheckFailedError":
                continue  # the failed checks themselves are listed below
            failed.append(f"{ev.step_key}: {_root_message(err)}")
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if not data.passed:
                md = data.metadata
                if "message" in md:
                    msg = md["message"].value
                elif "first_offenders" in md:
                    msg = md["first_offenders"].value
                elif "failed_episodes" in md:  # episodes_staged: episode -> reason
                    msg = "; ".join(f"episode {k}: {v}" for k, v in dict(md["failed_episodes"].value).items())
                else:
                    msg = ""
                line = f"{data.asset_key.to_user_string()} / {data.check_name}: {msg}".strip()
                (warns if data.severity.value == "WARN" else failed).append(line)
    return failed, warns


def _range_tags(lo: int, hi: int) -> dict[str, str]:
    return {ASSET_PARTITION_RANGE_START_TAG: partition_key(lo), ASSET_PARTITION_RANGE_END_TAG: partition_key(hi)}


def _failed_episodes(instance: DagsterInstance, run_id: str) -> set[int]:
    """Episodes an ``episodes_staged`` check of this run reported as failed."""
    import json

    from dagster import DagsterEventType

    out: set[int] = set()
    records = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records
    for rec in records:
        data = rec.event_log_entry.dagster_event.event_specific_data
        if data.check_name == "episodes_staged" and not data.passed and "failed_episode_indices" in data.metadata:
            value = data.metadata["failed_episode_indices"].value
            out |= {int(k) for k in (value if isinstance(value, list) else json.loads(value))}
    return out


def run_conversion(
    source: str,
    output: str,
    *,
    revision: str | None = None,
    episodes: Sequence[int] | None = None,
    overwrite: bool = False,
    options: dict[str, Any] | None = None,
    name: str | None = None,
    progress: Callable[[str, int], Any] | None = None,
    on_stage: Callable[[str, int], Any] | None = None,
    resources: dict[str, Any] | None = None,
) -> ConversionSummary:
    """Convert ``source`` into ``output`` by running the dataset's Dagster graph in-process.

    Args:
        source: local directory or Hub dataset id.
        output: output root (directory or object-store URI).
        revision: Hub branch, tag or commit.
        episodes: episode indices to convert and publish (default all).
        overwrite: allow replacing existing tables (a new version; history is kept).
        options: :class:`~lerobot_lance.conversion.ConvertOptions` fields and ``backfill_batch_size``.
        name: dataset/group name (default derived from ``output``).
        progress: ``(stage, n)`` callback, called as episodes and tables finish.
        on_stage: ``(stage, total)`` callback, called when a stage's total is known.
        resources: override the code location's resources.

    Returns:
        A :class:`ConversionSummary`.

    Raises:
        OutputExistsError: ``output`` already holds tables and ``overwrite`` is False.
        ConversionFailed: a step or blocking check failed; lists each failure.
    """
    local_out = None if ("://" in output and not output.startswith("file://")) else Path(output.removeprefix("file://"))
    if local_out is not None and not overwrite and any((local_out / f"{t}.lance").exists() for t in TABLE_NAMES):
        raise OutputExistsError(f"{output}: already holds Lance tables; pass --overwrite to replace them (a new version)")
    if local_out is not None and overwrite:
        shutil.rmtree(local_out / "_staging", ignore_errors=True)
    cfg = DatasetConfig(name=name or dataset_name_for(output), source=source, output=output, revision=revision, options=dict(options or {}))
    from resources import ProgressReporter

    if not os.environ.get("DAGSTER_HOME"):
        cfg.options.setdefault("stats_plot", False)  # runs go to a throwaway instance: no UI shows the plot
    res = dict(resources or default_resources())
    res["progress"] = ResourceDefinition.hardcoded_resource(ProgressReporter(progress))
    defs: Definitions = build_definitions([cfg], res)
    summary = ConversionSummary(output=output)
    stage = on_stage or (lambda s, n: None)
    # Dagster's console log (every event, stack traces of failed steps) is for
    # debugging; the summary and ConversionFailed carry what a user acts on,
    # and with DAGSTER_HOME set every event is still in the instance (the UI).
    log_level = os.environ.get("LEROBOT_LANCE_DAGSTER_LOG_LEVEL", "CRITICAL").upper()
    with ExitStack() as stack:
        instance = _instance(stack)

        def run(job_name: str, *, final: bool = True, run_config: dict[str, Any] | None = None, **kw: Any) -> list[str]:
            config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": log_level}}}}
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance, raise_on_error=False, run_config=config, **kw
            )
            summary.runs.append(result.run_id)
            for ev in result.all_events:
                if ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and ev.step_key:
                    ms = getattr(ev.event_specific_data, "duration_ms", None) or 0.0
                    asset = ev.step_key.split("__", 1)[-1]
                    summary.step_seconds[asset] = summary.step_seconds.get(asset, 0.0) + ms / 1000
            failed, warns = _failures(result)
            summary.warnings += warns
            if not result.success and not failed:
                failed = [f"run {result.run_id} of {job_name} failed"]
            if failed and final:
                raise ConversionFailed(failed)
            return failed

        ep_text = ",".join(str(e) for e in episodes) if episodes is not None else ""
        stage("source_meta", 1)
        run(source_job_name(cfg), run_config={"ops": {f"{cfg.name}__source_meta": {"config": {"episodes": ep_text}}}})
        from assets import partitions_name

        registered = [int(k) for k in instance.get_dynamic_partitions(partitions_name(cfg))]
        selected = sorted(episodes) if episodes is not None else sorted(registered)
        for s in ("episode_frames", "episode_videos", "episode_stats"):
            stage(s, len(selected))
        episode_failures: list[str] = []
        for lo, hi in contiguous_ranges(selected, cfg.backfill_batch_size):
            failed = run(episodes_job_name(cfg), final=False, tags=_range_tags(lo, hi))
            if not failed:
                continue
            # A blocking per-episode check stopped this batch's downstream steps.
            # Re-run only the steps after it, for the batch's sound episodes, so a
            # bad episode fails its own partition and not its neighbours'.
            episode_failures += failed
            bad = _failed_episodes(instance, summary.runs[-1])
            good = [e for e in range(lo, hi + 1) if e in set(selected) and e not in bad]
            for glo, ghi in contiguous_ranges(good, cfg.backfill_batch_size) if bad else []:
                episode_failures += run(
                    episodes_job_name(cfg), final=False, tags=_range_tags(glo, ghi),
                    asset_selection=[AssetKey([cfg.name, "episode_stats"])],
                )
        if episode_failures and not cfg.options.get("exclude_failed_episodes"):
            raise ConversionFailed(episode_failures)
        summary.warnings += [f"excluded: {f}" for f in episode_failures]
        for s in ("frames_table", "episodes_table", "videos_table", "dataset_stats", "lance_dataset"):
            stage(s, 1)
        run(publish_job_name(cfg))
    if local_out is not None:
        import json

        info = json.loads((local_out / "meta" / "conversion.json").read_text())
        summary.tag, summary.rows = info["tag"], info["rows"]
    return summary
