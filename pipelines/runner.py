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
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dagster import AssetKey, DagsterInstance, Definitions, ResourceDefinition

from lerobot_lance.episode_selection import EpisodeRanges
from lerobot_lance.errors import LeRobotLanceError, OutputExistsError
from lerobot_lance.formats import TABLE_NAMES
from lerobot_lance.refusal import FailedCheck, refusal_hint
from lerobot_lance.staging import partition_key
from pipelines.builder import build_definitions, default_resources
from pipelines.config import DatasetConfig
from pipelines.dagster_compat import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG, ephemeral_instance
from pipelines.episode_ranges import contiguous_ranges
from pipelines.jobs import episodes_job_name, publish_job_name, source_job_name


class ConversionFailed(LeRobotLanceError):
    """A run of the conversion failed or a blocking check did not pass.

    Attributes:
        failures: ``"<asset> / <check>: <message>"`` lines, one per failed step or check.
        records: the same failures structured, each with every offender
            (:class:`~lerobot_lance.refusal.FailedCheck`).
        hint: which option would get the sound part through
            (:func:`~lerobot_lance.refusal.refusal_hint`), or ``None``.
    """

    def __init__(self, failures: list[str], records: list[FailedCheck] | None = None, hint: str | None = None) -> None:
        self.failures = failures
        self.records = list(records or [])
        self.hint = hint
        super().__init__("conversion failed:\n  " + "\n  ".join(failures) + (f"\nhint: {hint}" if hint else ""))


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
        kept_episodes: with ``episodes`` over an existing output, the episodes
            it had published that were kept (not requested, still published).
        notes: what the conversion did beyond the plain case, one line each
            (kept episodes, skipped videos, recovered publish).
        encodings: camera encodings (``--encode-images video``,
            ``--frames-format jpeg``): per encoding and camera the settings,
            ``psnr_db``, ``share_differing`` (pixels off by more than
            ``diff_threshold``/255), ``bytes_per_frame``, as ``meta/conversion.json`` records them.
    """

    output: str
    tag: str | None = None
    runs: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)
    kept_episodes: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    encodings: dict[str, Any] = field(default_factory=dict)


def dataset_name_for(output: str) -> str:
    """A Dagster-safe dataset name derived from the output root's last path part."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", Path(output.rstrip("/")).name) or "dataset"
    return base if not base[0].isdigit() else f"d_{base}"


def _instance(stack: ExitStack) -> DagsterInstance:
    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    return stack.enter_context(ephemeral_instance())  # stores no asset or check events (dagster_compat)


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


def _failure_records(result: Any) -> list[FailedCheck]:
    """The blocking failures of one in-process run, structured, with every
    offender (from the checks' ``offenders_json`` / ``failed_episodes``
    metadata and the failed steps' ``error`` metadata)."""
    out: list[FailedCheck] = []
    for ev in result.all_events:
        data = ev.event_specific_data
        if ev.event_type_value == "STEP_FAILURE":
            err = data.error
            if err is not None and err.cls_name == "DagsterAssetCheckFailedError":
                continue
            md = data.user_failure_data.metadata if data.user_failure_data is not None else {}
            obj = md["error"].value if "error" in md else {}
            out.append(FailedCheck(ev.step_key or "", None, _root_message(err), list(obj.get("offenders") or [])))
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION" and not data.passed and data.severity.value != "WARN":
            md = data.metadata
            if "offenders_json" in md:
                offenders = list(md["offenders_json"].value)
            elif "failed_episodes" in md:
                offenders = [{"file": None, "episode_index": int(k), "detail": v, "expected": None, "found": None, "message": f"episode {k}: {v}"}
                             for k, v in dict(md["failed_episodes"].value).items()]
            else:
                offenders = []
            msg = md["message"].value if "message" in md else "; ".join(o["message"] for o in offenders)
            out.append(FailedCheck(data.asset_key.to_user_string(), data.check_name, msg, offenders))
    return out


def _range_tags(lo: int, hi: int) -> dict[str, str]:
    return {ASSET_PARTITION_RANGE_START_TAG: partition_key(lo), ASSET_PARTITION_RANGE_END_TAG: partition_key(hi)}


def _failed_episodes(events: Sequence[Any]) -> set[int]:
    """Episodes an ``episodes_staged`` check of one run reported as failed, from
    the run's events (``result.all_events``: the throwaway instance does not
    store check evaluations, ``pipelines.dagster_compat.ephemeral_instance``)."""
    import json

    out: set[int] = set()
    for ev in events:
        if ev.event_type_value != "ASSET_CHECK_EVALUATION":
            continue
        data = ev.event_specific_data
        if data.check_name == "episodes_staged" and not data.passed and "failed_episode_indices" in data.metadata:
            value = data.metadata["failed_episode_indices"].value
            out |= {int(k) for k in (value if isinstance(value, list) else json.loads(value))}
    return out


def run_conversion(
    source: str,
    output: str,
    *,
    revision: str | None = None,
    episodes: Sequence[int] | EpisodeRanges | None = None,
    overwrite: bool = False,
    options: dict[str, Any] | None = None,
    name: str | None = None,
    progress: Callable[[str, int], Any] | None = None,
    on_stage: Callable[[str, int], Any] | None = None,
    resources: dict[str, Any] | None = None,
    staging_dir: str | None = None,
) -> ConversionSummary:
    """Convert ``source`` into ``output`` by running the dataset's Dagster graph in-process.

    Args:
        source: local directory or Hub dataset id.
        output: output root (directory or object-store URI).
        revision: Hub branch, tag or commit.
        episodes: episode indices or :class:`EpisodeRanges` to convert
            (default all; checked against the dataset before expanding). Over
            an output that holds a publish of the same source, the other
            episodes it published are kept (re-converted only if their staged
            output is gone), as a partition rerun does; ``kept_episodes`` and
            ``meta/conversion.json`` say which.
        overwrite: allow replacing existing tables (a new version; history is
            kept) and start from an empty staging area. Never discards what
            recovering an interrupted publish needs: recovery runs first.
        options: :class:`~lerobot_lance.conversion.ConvertOptions` fields and ``backfill_batch_size``.
        name: dataset/group name (default derived from ``output``).
        progress: ``(stage, n)`` callback, called as episodes and tables finish.
        on_stage: ``(stage, total)`` callback, called when a stage's total is known.
        resources: override the code location's resources.
        staging_dir: the staging area (default
            :func:`lerobot_lance.staging.default_staging_dir`, outside the output).

    The output's writer lock (:mod:`lerobot_lance.output_lock`) is held for the
    whole conversion, and an interrupted publish of the output is recovered
    before anything else.

    Returns:
        A :class:`ConversionSummary`.

    Raises:
        OutputRootError: ``output`` holds files that are not ours, or is, lies
            inside or contains the source (:func:`lerobot_lance.output_root.check_output_root`).
        OutputExistsError: ``output`` already holds tables, ``overwrite`` is
            False and no ``episodes`` selection asks for a partial update.
        OutputLockedError: another process is writing ``output``.
        ConversionFailed: a step or blocking check failed; lists each failure.
    """
    from lerobot_lance.output_lock import output_lock
    from lerobot_lance.output_root import check_output_root, claim_output_root, source_root_of

    so = _storage_options(options, resources)
    # Nothing is written before the output root is known to be ours and apart from the source.
    check_output_root(
        output, source_root_of(source, getattr((resources or {}).get("lerobot_source"), "cache_dir", None)), overwrite, storage_options=so
    )

    command = "lerobot-lance convert " + " ".join(sys.argv[1:]) if sys.argv and "lerobot" in sys.argv[0] else None
    with output_lock(output, command=command, storage_options=so):
        claim_output_root(output, source, storage_options=so)
        return _run_conversion_locked(
            source, output, revision=revision, episodes=episodes, overwrite=overwrite, options=options, name=name,
            progress=progress, on_stage=on_stage, resources=resources, staging_dir=staging_dir,
        )


def _storage_options(options: dict[str, Any] | None, resources: dict[str, Any] | None) -> dict[str, str] | None:
    """The object-store options of a run: the ``lance_storage`` resource's, then
    the dataset's own (``options["storage_options"]``) over them."""
    from resources import LanceStorageResource

    storage = (resources or {}).get("lance_storage")
    base = storage.storage_options if isinstance(storage, LanceStorageResource) else None
    merged = {**(base or {}), **((options or {}).get("storage_options") or {})}
    return merged or None


@contextmanager
def _discard_on_failure(conv: Any) -> Iterator[None]:
    """A failed conversion leaves no pending table files of its own in the output
    (:func:`lerobot_lance.publish.discard_unpublished`)."""
    try:
        yield
    except BaseException:
        from lerobot_lance.publish import discard_unpublished

        discard_unpublished(conv)
        raise


def _run_conversion_locked(
    source: str,
    output: str,
    *,
    revision: str | None,
    episodes: Sequence[int] | None,
    overwrite: bool,
    options: dict[str, Any] | None,
    name: str | None,
    progress: Callable[[str, int], Any] | None,
    on_stage: Callable[[str, int], Any] | None,
    resources: dict[str, Any] | None,
    staging_dir: str | None,
) -> ConversionSummary:
    from lerobot_lance.conversion import Conversion, writing
    from lerobot_lance.episode_stages import episodes_to_convert
    from resources import LanceStorageResource, ProgressReporter

    local_out = None if ("://" in output and not output.startswith("file://")) else Path(output.removeprefix("file://"))
    opts = dict(options or {})
    if staging_dir is not None:
        opts["staging_dir"] = str(staging_dir)
    cfg = DatasetConfig(name=name or dataset_name_for(output), source=source, output=output, revision=revision, options=opts)
    if not os.environ.get("DAGSTER_HOME"):
        cfg.options.setdefault("stats_plot", False)  # runs go to a throwaway instance: no UI shows the plot
    res = dict(resources or default_resources())
    # The assets return MaterializeResult (Nothing outputs): no value goes through an IO
    # manager, and Dagster's default fs_io_manager costs ~0.1-0.2 s (upath, fsspec's entry points).
    from dagster import mem_io_manager

    res.setdefault("io_manager", mem_io_manager)
    storage = res.get("lance_storage")
    conv = storage.conversion(cfg) if isinstance(storage, LanceStorageResource) else Conversion.at(output, opts.get("staging_dir"))
    summary = ConversionSummary(output=output)
    from lerobot_lance.lance_io import JOURNAL

    from lerobot_lance import object_store
    from lerobot_lance.lance_io import current_version

    had_journal = object_store.exists(conv.journal, conv.options.storage_options)
    with writing(conv):  # recover an interrupted publish before anything else
        pass
    if had_journal:
        summary.notes.append("recovered an interrupted publish of this output before converting")
    holds_tables = (
        any((local_out / f"{t}.lance").exists() for t in TABLE_NAMES) if local_out is not None
        else any(current_version(conv.uri(t), conv.options.storage_options) is not None for t in TABLE_NAMES)
    )
    if not overwrite and holds_tables:
        from lerobot_lance.conversion import published_record

        prev = published_record(conv) or {}
        same_source = prev.get("source") in (
            source, source.removeprefix("hf://datasets/").split("@")[0], str(Path(source).expanduser().resolve())
        )
        if episodes is None or not same_source:
            raise OutputExistsError(
                f"{output}: already holds Lance tables"
                + (f" of another source ({prev.get('source')})" if episodes is not None and prev.get("source") else "")
                + "; pass --overwrite to replace them (a new version)"
                + ("" if episodes is not None else ", or --episodes to re-convert some episodes and keep the others")
            )
    if overwrite:
        conv.staging.clear()
    res["progress"] = ResourceDefinition.hardcoded_resource(ProgressReporter(progress))
    defs: Definitions = build_definitions([cfg], res, tools=False)
    stage = on_stage or (lambda s, n: None)
    # Dagster's console log (every event, stack traces of failed steps) is for
    # debugging; the summary and ConversionFailed carry what a user acts on,
    # and with DAGSTER_HOME set every event is still in the instance (the UI).
    log_level = os.environ.get("LEROBOT_LANCE_DAGSTER_LOG_LEVEL", "CRITICAL").upper()
    with ExitStack() as stack:
        stack.enter_context(_discard_on_failure(conv))
        instance = _instance(stack)
        # A throwaway instance keeps its run and step events in memory
        # (in-memory SQLite; no asset or check events: dagster_compat). Nothing
        # reads a finished episode run's events once its failures are taken
        # (from the run's result), so the run is deleted then
        # (DagsterInstance.delete_run). A DAGSTER_HOME instance keeps them (the UI).
        forget: Callable[[str], None] = instance.delete_run if instance.is_ephemeral else (lambda run_id: None)

        def run(job_name: str, *, final: bool = True, run_config: dict[str, Any] | None = None, **kw: Any) -> list[str]:
            config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": log_level}}}}
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance, raise_on_error=False, run_config=config, **kw
            )
            summary.runs.append(result.run_id)
            last_events[:] = result.all_events
            for ev in result.all_events:
                if ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and ev.step_key:
                    ms = getattr(ev.event_specific_data, "duration_ms", None) or 0.0
                    asset = ev.step_key.split("__", 1)[-1]
                    summary.step_seconds[asset] = summary.step_seconds.get(asset, 0.0) + ms / 1000
            failed, warns = _failures(result)
            summary.warnings += warns
            if not result.success and not failed:
                failed = [f"run {result.run_id} of {job_name} failed"]
            records.extend(_failure_records(result) if failed else [])
            if failed and final:
                raise refused(failed)
            return failed

        def refused(failed: list[str]) -> ConversionFailed:
            bad = {o["episode_index"] for r in records if r.check == "episodes_staged" for o in r.offenders}
            n = EpisodeRanges.of(episodes).count() if episodes is not None else len(instance.get_dynamic_partitions(partitions_name(cfg)))
            return ConversionFailed(failed, records, refusal_hint(records, failed_episodes=bad, selected_episodes=n, options=cfg.options))

        records: list[FailedCheck] = []
        last_events: list[Any] = []  # the latest run's events (its execution stream)
        from assets import partitions_name

        ep_text = str(EpisodeRanges.of(episodes)) if episodes is not None else ""  # ranges: never expanded here
        stage("source_meta", 1)
        run(source_job_name(cfg), run_config={"ops": {f"{cfg.name}__source_meta": {"config": {"episodes": ep_text}}}})

        registered = [int(k) for k in instance.get_dynamic_partitions(partitions_name(cfg))]
        selected = EpisodeRanges.of(episodes).within(registered) if episodes is not None else sorted(registered)
        kept = list(conv.snapshot.get("kept") or []) if episodes is not None else []
        if kept:
            # Episodes published before and not requested stay published: from
            # their staged output, re-converted only where it is gone.
            restage = episodes_to_convert(conv, kept)
            selected = sorted(set(selected) | set(restage))
            summary.kept_episodes = kept
            summary.notes.append(
                f"kept {len(kept)} previously published episode(s) ({_ranges(kept)})"
                + (f"; re-converted {len(restage)} of them whose staged output was gone" if restage else "")
            )
        for s in ("episode_frames", "episode_videos", "episode_stats"):
            stage(s, len(selected))
        episode_failures: list[str] = []
        for lo, hi in contiguous_ranges(selected, cfg.backfill_batch_size):
            failed = run(episodes_job_name(cfg), final=False, tags=_range_tags(lo, hi))
            if not failed:
                forget(summary.runs[-1])
                continue
            # A blocking per-episode check stopped this batch's downstream steps.
            # Re-run only the steps after it, for the batch's sound episodes, so a
            # bad episode fails its own partition and not its neighbours'.
            episode_failures += failed
            bad = _failed_episodes(last_events)
            forget(summary.runs[-1])
            good = [e for e in range(lo, hi + 1) if e in set(selected) and e not in bad]
            for glo, ghi in contiguous_ranges(good, cfg.backfill_batch_size) if bad else []:
                episode_failures += run(
                    episodes_job_name(cfg), final=False, tags=_range_tags(glo, ghi),
                    asset_selection=[AssetKey([cfg.name, "episode_stats"])],
                )
                forget(summary.runs[-1])
        if episode_failures and not cfg.options.get("exclude_failed_episodes"):
            raise refused(episode_failures)
        summary.warnings += [f"excluded: {f}" for f in episode_failures]
        for s in ("frames_table", "episodes_table", "videos_table", "dataset_stats", "lance_dataset"):
            stage(s, 1)
        run(publish_job_name(cfg))
    if cfg.options.get("skip_videos"):
        summary.notes.append("videos skipped: no videos table; video features dropped from meta/info.json")
    from lerobot_lance.conversion import published_record

    info = published_record(conv)
    if info:
        summary.tag, summary.rows = info["tag"], info["rows"]
        summary.encodings = info.get("encodings") or {}  # camera encodings: settings, PSNR, bytes per frame
    return summary


def _ranges(values: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"`` (the ``--episodes`` syntax)."""
    return ",".join(f"{lo}-{hi}" if hi > lo else str(lo) for lo, hi in contiguous_ranges(values, 1 << 62))
