"""The asset graph of one configured dataset (DESIGN.md "Asset graph").

::

    source_meta ──► episode_frames[ep] ──► frames_table ──┐
         │      └─► episode_videos[ep] ──► episodes_table ├─► lance_dataset
         │      └─► episode_stats[ep]  ──► dataset_stats ─┘
         └────────► source_videos ───────► videos_table

Assets are thin: each calls one function of :mod:`lerobot_lance.conversion` and
turns its result into Dagster metadata and asset check results. Blocking
checks are declared with the asset (``check_specs``) and evaluated from what
the asset just computed, so no stage re-reads its own output to check it.
"""


import contextlib
import functools
import inspect
import os
import socket
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    BackfillPolicy,
    Backoff,
    Config,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    ResourceParam,
    RetryPolicy,
    RetryRequested,
    BetaWarning,
    asset,
)

import lerobot_lance.conversion as convert
import lerobot_lance.conversion_stats as convert_stats
import lerobot_lance.episode_stages as stages
from lerobot_lance.episode_selection import EpisodeRanges
from lerobot_lance.errors import LeRobotLanceError, SourceNotFoundError
from lerobot_lance.output_root import check_output_root, claim_output_root, source_root_of
from lerobot_lance.snippets import frames_columns, open_snippet
from lerobot_lance.output_info import describe_tables, output_url, tables_markdown
from lerobot_lance.layouts import get_layout, output_check_names, write_table
from lerobot_lance.publish import publish_dataset
from lerobot_lance.quality import (
    CONTENT_RULES,
    EPISODE_FRAME_RULES,
    EPISODE_VIDEO_RULES,
    OUTPUT_RULES,
    SOURCE_FILE_RULES,
    SOURCE_META_RULES,
    CheckOutcome,
    check_source_files,
    check_source_meta,
    merge_outcomes,
)
from lerobot_lance.quality.descriptions import check_description
from lerobot_lance.quality.encoding_rules import ENCODING_RULES
from lerobot_lance.quality.source_rules import source_listing
from lerobot_lance.refusal import error_object
from lerobot_lance.staging import partition_key
from pipelines.config import DatasetConfig
from resources import LanceStorageResource, LeRobotSourceResource, ProgressReporter, VideoCodecResource

# ``backfill_policy`` is beta in Dagster 1.13; we rely on it knowingly.
warnings.filterwarnings("ignore", category=BetaWarning, message=".*backfill_policy.*")

#: Transient failures (Hub network, object-store hiccups) are retried; data
#: errors and other deterministic failures are not (see ``_final_on_bad_data``).
RETRY = RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL)

#: Named checks per asset: one per quality rule (see lerobot_lance.quality).
SOURCE_META_CHECKS = SOURCE_META_RULES
SOURCE_FILE_CHECKS = SOURCE_FILE_RULES
EPISODE_FRAME_CHECKS = EPISODE_FRAME_RULES
EPISODE_VIDEO_CHECKS = EPISODE_VIDEO_RULES
CONTENT_CHECKS = CONTENT_RULES  # severity WARN: non-blocking
OUTPUT_CHECKS = OUTPUT_RULES


def partitions_name(cfg: DatasetConfig) -> str:
    return f"{cfg.name}_episodes"


class SourceMetaConfig(Config):
    """Run config of ``source_meta``.

    Attributes:
        episodes: episodes to convert and publish, e.g. ``"0-9,12"``; empty
            means every episode of the source.
    """

    episodes: str = ""


def parse_episode_ranges(text: str) -> EpisodeRanges | None:
    """``"0-9,12"`` -> the ranges ``0-9`` and ``12`` (not expanded:
    :func:`~lerobot_lance.conversion.resolve_source` checks them against the
    dataset); ``""`` -> ``None`` (all episodes).

    Raises:
        ValueError: a part is not ``N`` or ``N-M`` with ``0 <= N <= M``.
    """
    text = text.strip()
    if not text:
        return None
    try:
        return EpisodeRanges.parse(text)
    except ValueError as e:
        raise ValueError(f"episode range {e}") from None


def check_results(asset_key: AssetKey, outcomes: Iterable[CheckOutcome], declared: Sequence[str]) -> list[AssetCheckResult]:
    """One :class:`AssetCheckResult` per declared check name.

    Outcomes of the same name (several batches) are merged
    (:func:`~lerobot_lance.quality.result.merge_outcomes`); a declared check
    with no outcome passes with a note saying it did not apply.
    """
    merged = {o.name: o for o in merge_outcomes(outcomes)}
    results = []
    for name in declared:
        o = merged.get(name)
        if o is None:
            results.append(
                AssetCheckResult(asset_key=asset_key, check_name=name, passed=True, metadata={"note": "not applicable to this run"})
            )
            continue
        metadata: dict[str, Any] = {"offenders": o.n_offenders}
        if o.note:
            metadata["note"] = o.note
        if o.offenders:
            metadata["first_offenders"] = MetadataValue.md("\n".join(f"- {x}" for x in o.first_offenders))
            # every offender, structured (what ``convert --json`` reports)
            metadata["offenders_json"] = MetadataValue.json([x.to_dict() for x in o.offenders])
        if not o.passed:
            metadata["message"] = o.message  # whole: the CLI summary and logs print it as it is
        metadata.update({k: v for k, v in o.metadata.items() if isinstance(v, (int, float, str, bool))})
        results.append(
            AssetCheckResult(
                asset_key=asset_key,
                check_name=name,
                passed=o.passed,
                severity=AssetCheckSeverity.WARN if o.severity == "WARN" else AssetCheckSeverity.ERROR,
                metadata=metadata,
            )
        )
    return results


def _batch_check(asset_key: AssetKey, name: str, result: stages.BatchResult, description: str) -> AssetCheckResult:
    return AssetCheckResult(
        asset_key=asset_key,
        check_name=name,
        passed=not result.failed,
        metadata={
            "description": description,
            "failed_episodes": MetadataValue.json({str(k): v for k, v in result.failed.items()}),
            "failed_episode_indices": MetadataValue.json(sorted(result.failed)),
            "n_failed": len(result.failed),
            "n_ok": len(result.ok),
        },
    )


def _final_on_bad_data(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Retry only what a retry can fix; every other error is final.

    Transient (re-raised, so :data:`RETRY` runs the step again): a
    :class:`SourceNotFoundError` (the Hub or a network share not answering)
    and other ``OSError``\ s (network, object-store hiccups; huggingface_hub's
    HTTP errors are ``OSError``\ s) except the local filesystem ones no retry
    can fix (a path through a file, no permission, a directory where a file
    belongs). Final (``Failure(allow_retries=False)``, the message -- file,
    episode, expected, found -- as the step's failure description): every
    other :class:`LeRobotLanceError` (bad data) and every other exception
    (``KeyError``, ``TypeError``, ``ValueError``, ...), which fails the same
    way on the same input, so retrying it only delays the report."""

    @contextlib.contextmanager
    def final() -> Iterator[None]:
        try:
            yield
        except SourceNotFoundError:
            raise
        except LeRobotLanceError as e:
            # the structured error travels with the failure (``convert --json``)
            md = {"error": MetadataValue.json(error_object(e))}
            raise Failure(description=str(e), metadata=md, allow_retries=False) from e
        except (NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError) as e:
            raise Failure(description=f"{type(e).__name__}: {e}", allow_retries=False) from e
        except OSError:
            raise
        except (Failure, RetryRequested):
            raise
        except Exception as e:  # noqa: BLE001 - deterministic: the same input fails the same way
            raise Failure(description=f"{type(e).__name__}: {e}", allow_retries=False) from e

    if inspect.isgeneratorfunction(fn):  # an asset that yields its result, then observations

        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            with final():
                yield from fn(*args, **kwargs)

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with final():
            return fn(*args, **kwargs)

    return wrapper


def failed_partition_observations(
    context: AssetExecutionContext, stage: str, result: stages.BatchResult
) -> Iterator[AssetObservation]:
    """One observation per episode of the batch that failed this stage, on that
    episode's partition, carrying the located reason (file, episode, expected,
    found). A batch is one run materializing every partition of its range, so
    the reason goes where the partition page shows it: an observation logged
    after the materialization appears in that partition's metadata."""
    for ep, reason in sorted(result.failed.items()):
        yield AssetObservation(
            asset_key=context.asset_key,
            partition=partition_key(ep),
            description=f"{stage} failed for episode {ep}",
            metadata={
                "status": "failed",
                "failure_reason": MetadataValue.text(reason),
                "episode_index": ep,
                "check": "episodes_staged",
            },
        )


def _encodings_metadata(conv: convert.Conversion, episodes: Sequence[int]) -> dict[str, Any]:
    """Per camera encoding figures of these episodes (PSNR, share of pixels
    differing, bytes per frame) as asset metadata, or nothing when no camera is encoded."""
    from lerobot_lance.encodings.output import encodings_summary, summary_lines

    enc = encodings_summary(conv, episodes)
    if not any(enc.values()):
        return {}
    return {"encodings": MetadataValue.json(enc), "encodings_summary": MetadataValue.md("\n".join(f"- {x}" for x in summary_lines(enc)))}


def worker_metadata() -> dict[str, Any]:
    """Where this step ran: ``worker_pid`` (int) and ``worker_host``. With a
    distributed executor each step runs on some worker process; the
    per-episode assets record it so a run's events show which worker staged
    which episodes."""
    return {"worker_pid": os.getpid(), "worker_host": socket.gethostname()}


def _specs(key: AssetKey, names: Iterable[str], blocking: bool = True) -> list[AssetCheckSpec]:
    """One check spec per rule name, described by its rule (what it checks, what fails it)."""
    return [AssetCheckSpec(n, asset=key, blocking=blocking, description=check_description(n, blocking=blocking)) for n in names]


def build_dataset_assets(cfg: DatasetConfig) -> list[AssetsDefinition]:
    """The assets and blocking checks of one dataset, keyed ``[<name>, <asset>]``
    and grouped under ``<name>``."""
    ds = cfg.name
    group = ds
    episodes = DynamicPartitionsDefinition(name=partitions_name(cfg))
    backfill = (
        BackfillPolicy.single_run() if cfg.backfill_policy == "single_run"
        else BackfillPolicy.multi_run(max_partitions_per_run=cfg.backfill_batch_size)
    )

    def k(name: str) -> AssetKey:
        return AssetKey([ds, name])

    # The output layout (``options.layout``) picks the table writers, the
    # publish's meta writer and the blocking output checks.
    layout_name = str(cfg.options.get("layout", "card"))
    output_checks = output_check_names(layout_name)

    def conv_of(storage: LanceStorageResource, codec: VideoCodecResource | None = None) -> convert.Conversion:
        return storage.conversion(cfg, codec)

    @asset(
        key=k("source_meta"),
        group_name=group,
        description="Resolve the source (meta/ only), parse it, pin its revision and register one partition per episode.",
        check_specs=_specs(k("source_meta"), SOURCE_META_CHECKS),
        retry_policy=RETRY,
        kinds={"python"},
    )
    @_final_on_bad_data
    def source_meta(
        context: AssetExecutionContext,
        config: SourceMetaConfig,
        lerobot_source: LeRobotSourceResource,
        lance_storage: LanceStorageResource,
        video_codec: VideoCodecResource,
        progress: ResourceParam[ProgressReporter],
    ) -> MaterializeResult:
        conv = conv_of(lance_storage, video_codec)  # the codec settings decide which staged segments stay current
        src = lerobot_source.open(cfg.source, cfg.revision, conv.options.storage_options)
        # UI runs: the same output-root guard as the CLI, before anything is written.
        check_output_root(cfg.output, source_root_of(src), storage_options=conv.options.storage_options)
        claim_output_root(cfg.output, cfg.source, storage_options=conv.options.storage_options)
        outcomes = check_source_meta(src.meta_root())
        failed = [o for o in outcomes if not o.passed and o.severity == "ERROR"]
        if failed:
            # Record the failed checks, then stop: nothing downstream may run.
            context.log.error("; ".join(f"{o.name}: {o.message}" for o in failed))
        meta = convert.resolve_source(conv, src, episodes=parse_episode_ranges(config.episodes)) if not failed else None
        if meta is not None:
            keys = [partition_key(i) for i in meta.episode_indices]
            existing = set(context.instance.get_dynamic_partitions(episodes.name))
            new = [p for p in keys if p not in existing]
            if new:
                context.instance.add_dynamic_partitions(episodes.name, new)
        md: dict[str, Any] = {"source": src.description}
        if meta is not None:
            md.update(
                {
                    "codebase_version": meta.codebase_version,
                    "revision": conv.revision,
                    "fps": meta.fps,
                    "episodes": len(meta.episodes),
                    "frames": meta.total_frames,
                    "cameras": MetadataValue.json(meta.camera_keys),
                    "tasks": MetadataValue.json({str(i): t for i, t in meta.tasks.items()}),
                }
            )
        progress.advance("source_meta")
        return MaterializeResult(metadata=md, check_results=check_results(k("source_meta"), outcomes, SOURCE_META_CHECKS))

    @asset(
        key=k("source_videos"),
        group_name=group,
        deps=[source_meta],
        description="Check every source data and video file: present, non-empty, no orphans, containers covering their episodes.",
        check_specs=_specs(k("source_videos"), SOURCE_FILE_CHECKS),
        retry_policy=RETRY,
    )
    @_final_on_bad_data
    def source_videos(lance_storage: LanceStorageResource) -> MaterializeResult:
        conv = conv_of(lance_storage)
        meta = conv.meta
        # Fetch and check the files of the episodes this conversion publishes
        # (on the Hub the local snapshot holds nothing else); orphans are looked
        # for among all the dataset's files (Hub: the repository's listing).
        keep = set(conv.selected())
        if conv.options.exclude_failed_episodes:
            # check the files of the episodes that staged; the others are excluded
            # from the publish, and their reasons recorded with it
            keep = set(stages.coverage(conv).included)
        sel = [e for e in meta.episodes if e.episode_index in keep]
        with_videos = not conv.options.skip_videos
        data = list(dict.fromkeys(e.data_path for e in sel))
        refs = list(dict.fromkeys(r.relative_path for e in sel for r in e.videos.values())) if with_videos else []
        root = conv.source.fetch([*data, *refs], missing_ok=True)
        listing, orphans = source_listing(conv.source)
        # skip_videos: the mp4s are not checked, but they stay the dataset's own (no orphans)
        outcomes = check_source_files(
            root, meta, episodes=sorted(keep), listing=listing, orphans=orphans, videos=with_videos
        )
        return MaterializeResult(
            metadata={"video_files": len(refs), "data_files": len(data)},
            check_results=check_results(k("source_videos"), outcomes, SOURCE_FILE_CHECKS),
        )

    @asset(
        key=k("episode_frames"),
        group_name=group,
        deps=[source_meta],
        partitions_def=episodes,
        backfill_policy=backfill,
        description="Read, validate and stage each episode's frames rows.",
        check_specs=[*_specs(k("episode_frames"), ["episodes_staged", *EPISODE_FRAME_CHECKS, *ENCODING_RULES]),
                     *_specs(k("episode_frames"), CONTENT_CHECKS, blocking=False)],
        retry_policy=RETRY,
    )
    @_final_on_bad_data
    def episode_frames(
        context: AssetExecutionContext, lance_storage: LanceStorageResource, progress: ResourceParam[ProgressReporter]
    ) -> Iterator[MaterializeResult | AssetObservation]:
        conv = conv_of(lance_storage)
        eps = [int(p) for p in context.partition_keys]
        result = stages.stage_episode_frames(conv, eps, progress.for_stage("episode_frames"))
        content = convert_stats.content_outcomes(conv, result.ok)
        checks = [
            _batch_check(k("episode_frames"), "episodes_staged", result, "every episode of the run read and staged"),
            *check_results(k("episode_frames"), result.outcomes, EPISODE_FRAME_CHECKS),
            *check_results(k("episode_frames"), result.outcomes, ENCODING_RULES),  # --frames-format jpeg
            *check_results(k("episode_frames"), content, CONTENT_CHECKS),
        ]
        yield MaterializeResult(
            metadata={"episodes": len(eps), "staged": len(result.ok), "failed": len(result.failed), "rows": result.rows, "bytes": result.bytes,
                      **_encodings_metadata(conv, result.ok), **worker_metadata()},
            check_results=checks,
        )
        yield from failed_partition_observations(context, "episode_frames", result)

    @asset(
        key=k("episode_videos"),
        group_name=group,
        deps=[source_meta],
        partitions_def=episodes,
        backfill_policy=backfill,
        description="Make each episode's standalone mp4 per camera: verbatim (v2.x), stream copy or lossless re-encode (v3.0).",
        check_specs=_specs(k("episode_videos"), ["episodes_staged", *EPISODE_VIDEO_CHECKS, *ENCODING_RULES]),
        retry_policy=RETRY,
    )
    @_final_on_bad_data
    def episode_videos(
        context: AssetExecutionContext,
        lance_storage: LanceStorageResource,
        video_codec: VideoCodecResource,
        progress: ResourceParam[ProgressReporter],
    ) -> Iterator[MaterializeResult | AssetObservation]:
        conv = conv_of(lance_storage, video_codec)
        eps = [int(p) for p in context.partition_keys]
        result = stages.stage_episode_videos(conv, eps, progress.for_stage("episode_videos"))
        yield MaterializeResult(
            metadata={"episodes": len(eps), "segments": result.rows, "failed": len(result.failed), "bytes": result.bytes,
                      **_encodings_metadata(conv, result.ok), **worker_metadata()},
            check_results=[
                _batch_check(k("episode_videos"), "episodes_staged", result, "every episode's segments hold exactly its frames"),
                *check_results(k("episode_videos"), result.outcomes, EPISODE_VIDEO_CHECKS),
                *check_results(k("episode_videos"), result.outcomes, ENCODING_RULES),  # --encode-images video
            ],
        )
        yield from failed_partition_observations(context, "episode_videos", result)

    @asset(
        key=k("episode_stats"),
        group_name=group,
        deps=[episode_frames, episode_videos],
        partitions_def=episodes,
        backfill_policy=backfill,
        description="Per-episode statistics of every numeric feature and camera, compared with the source's own.",
        check_specs=[*_specs(k("episode_stats"), ["episodes_staged"]), *_specs(k("episode_stats"), ["stats_match_source"], blocking=False)],
        retry_policy=RETRY,
    )
    @_final_on_bad_data
    def episode_stats(
        context: AssetExecutionContext, lance_storage: LanceStorageResource, progress: ResourceParam[ProgressReporter]
    ) -> Iterator[MaterializeResult | AssetObservation]:
        conv = conv_of(lance_storage)
        eps = [int(p) for p in context.partition_keys]
        result = convert_stats.stage_episode_stats(conv, eps, progress.for_stage("episode_stats"))
        yield MaterializeResult(
            metadata={"episodes": len(eps), "staged": len(result.ok), "failed": len(result.failed), **worker_metadata()},
            check_results=[
                _batch_check(k("episode_stats"), "episodes_staged", result, "statistics computed for every episode"),
                *check_results(k("episode_stats"), result.outcomes, ["stats_match_source"]),
            ],
        )
        yield from failed_partition_observations(context, "episode_stats", result)

    def _table_result(name: str, pending: Any, cov: stages.Coverage, expected_rows: int) -> MaterializeResult:
        key = k(name)
        return MaterializeResult(
            metadata={
                "rows": pending.rows,
                "uri": pending.uri,
                "fragments": len(pending.fragments),
                "episodes": len(cov.included),
                "missing_episodes": MetadataValue.json({str(e): why for e, why in list(cov.missing.items())[:50]}),
            },
            check_results=[
                AssetCheckResult(
                    asset_key=key,
                    check_name="row_count",
                    passed=pending.rows == expected_rows,
                    metadata={"expected": expected_rows, "found": pending.rows},
                )
            ],
        )

    def _expected_frames(conv: convert.Conversion, eps: Sequence[int]) -> int:
        return sum(conv.meta.episode(e).length for e in eps)

    @asset(
        key=k("frames_table"),
        group_name=group,
        # episode_stats too: which episodes a table holds depends on every per-episode
        # stage (stages.publishable_episodes), so no table may run before the last one.
        deps=[episode_frames, episode_stats],
        description="Stage frames.lance: every published episode's rows, in episode order (committed by lance_dataset).",
        check_specs=_specs(k("frames_table"), ["row_count"]),
        kinds={"lance"},
    )
    @_final_on_bad_data
    def frames_table(lance_storage: LanceStorageResource, progress: ResourceParam[ProgressReporter]) -> MaterializeResult:
        conv = conv_of(lance_storage)
        pending = write_table(conv, "frames")
        cov = stages.publishable_episodes(conv)
        progress.advance("frames_table")
        return _table_result("frames_table", pending, cov, _expected_frames(conv, cov.included))

    @asset(
        key=k("episodes_table"),
        group_name=group,
        deps=[episode_videos, episode_frames, episode_stats],
        description="Stage episodes.lance: one row per episode with trajectories, stats and per-camera mp4 segment blobs.",
        check_specs=_specs(k("episodes_table"), ["row_count"]),
        kinds={"lance"},
    )
    @_final_on_bad_data
    def episodes_table(lance_storage: LanceStorageResource, progress: ResourceParam[ProgressReporter]) -> MaterializeResult:
        conv = conv_of(lance_storage)
        pending = write_table(conv, "episodes")
        cov = stages.publishable_episodes(conv)
        progress.advance("episodes_table")
        if pending is None:  # not a table of this layout
            return MaterializeResult(
                metadata={"note": f"layout {conv.options.layout!r} has no episodes table", "episodes": len(cov.included)},
                check_results=[AssetCheckResult(asset_key=k("episodes_table"), check_name="row_count", passed=True,
                                                metadata={"note": "not applicable to this layout"})],
            )
        return _table_result("episodes_table", pending, cov, len(cov.included))

    @asset(
        key=k("videos_table"),
        group_name=group,
        deps=[source_videos, episode_videos, episode_stats],  # see frames_table
        description="Stage videos.lance: each source mp4 verbatim (blob) with its sha256.",
        check_specs=_specs(k("videos_table"), ["row_count"]),
        kinds={"lance"},
    )
    @_final_on_bad_data
    def videos_table(lance_storage: LanceStorageResource, progress: ResourceParam[ProgressReporter]) -> MaterializeResult:
        conv = conv_of(lance_storage)
        pending = write_table(conv, "videos")
        cov = stages.publishable_episodes(conv)
        progress.advance("videos_table")
        if pending is None:  # skip_videos: no videos table is published
            return MaterializeResult(
                metadata={"rows": 0, "skipped_videos": True},
                check_results=[AssetCheckResult(asset_key=k("videos_table"), check_name="row_count", passed=True,
                                                metadata={"note": "skip_videos: no videos table"})],
            )
        from lerobot_lance.encodings.output import encoded_video_files

        # the lerobot layout's videos table also holds the mp4s encoded from image cameras
        encoded = len(encoded_video_files(conv, cov.included)) if conv.options.layout == "lerobot" else 0
        return _table_result("videos_table", pending, cov, len(stages.source_video_files(conv)) + encoded)

    @asset(
        key=k("dataset_stats"),
        group_name=group,
        deps=[episode_stats],
        description="Dataset statistics aggregated over episodes like LeRobot (count-weighted mean, pooled variance).",
        check_specs=_specs(k("dataset_stats"), ["stats_match_source"], blocking=False),
    )
    @_final_on_bad_data
    def dataset_stats(lance_storage: LanceStorageResource, progress: ResourceParam[ProgressReporter]) -> MaterializeResult:
        conv = conv_of(lance_storage)
        summary = convert_stats.aggregate_dataset_stats(conv)
        progress.advance("dataset_stats")
        md: dict[str, Any] = {"features": len(summary.stats), "episodes": summary.episodes}
        if summary.ranges_markdown:
            md["ranges"] = MetadataValue.md(summary.ranges_markdown)
        if summary.plot_path:
            md["mean_std_plot"] = MetadataValue.md(summary.plot_markdown)
        return MaterializeResult(
            metadata=md, check_results=check_results(k("dataset_stats"), summary.outcomes, ["stats_match_source"])
        )

    @asset(
        key=k("lance_dataset"),
        group_name=group,
        deps=[frames_table, episodes_table, videos_table, dataset_stats],
        description="Publish: commit the three tables once each, index, tag them alike, write meta/.",
        check_specs=_specs(k("lance_dataset"), output_checks),
        kinds={"lance"},
    )
    @_final_on_bad_data
    def lance_dataset(context: AssetExecutionContext, lance_storage: LanceStorageResource, progress: ResourceParam[ProgressReporter]) -> MaterializeResult:
        conv = conv_of(lance_storage)
        result = publish_dataset(conv, get_layout(conv.options.layout), dataset_stats=convert_stats.read_dataset_stats_json(conv))
        cov = stages.coverage(conv)
        progress.advance("lance_dataset")
        outcomes = result.checks or []  # evaluated by the publish on the versions it committed
        tables = describe_tables(conv.output, result.versions, result.tag, conv.options.storage_options)
        return MaterializeResult(
            metadata={  # in the order the UI lists them: where, what, then the machine-readable parts
                "output": MetadataValue.path(conv.output),
                "output_url": MetadataValue.url(output_url(conv.output)),
                "tag": result.tag,
                "tables": MetadataValue.md(tables_markdown(tables)),
                "versions": MetadataValue.json(result.versions),
                "table_latest_versions": MetadataValue.json({t.name: t.latest_version for t in tables}),
                "table_bytes": MetadataValue.json({t.name: t.data_bytes for t in tables}),
                "rows": MetadataValue.json(result.rows),
                "excluded_episodes": MetadataValue.json({str(e): w for e, w in cov.missing.items()}),
                "open_with": MetadataValue.md(f"```python\n{open_snippet(conv.output, result.tag, frames_columns(conv.meta))}\n```"),
                **_encodings_metadata(conv, cov.included),
            },
            check_results=check_results(k("lance_dataset"), outcomes, output_checks),
        )

    return [
        source_meta,
        source_videos,
        episode_frames,
        episode_videos,
        episode_stats,
        frames_table,
        episodes_table,
        videos_table,
        dataset_stats,
        lance_dataset,
    ]
