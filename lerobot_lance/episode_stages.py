"""The per-episode stages (no Dagster) and what they cover.

    stage_episode_frames    -> per episode: frames rows (Arrow IPC) + record
    stage_episode_videos    -> per episode and camera: the standalone segment + record
    coverage                -> which selected episodes have current staged output, and why the others do not
    publishable_episodes    -> the episodes the tables will hold (or the located refusal)

Each per-episode stage reads the pinned source (``<staging>/source.json``,
:func:`lerobot_lance.conversion.resolve_source`) and writes into the staging
area only (:class:`~lerobot_lance.staging.Staging`): per episode a record
under ``frames/`` or ``videos/`` and its staged rows or segments; the
statistics stage is :func:`lerobot_lance.conversion_stats.stage_episode_stats`.
It takes any batch of episodes (a Dagster partition range) and never raises
for one bad episode: its record says ``"status": "failed"`` with the located
error and the other episodes are staged. The table stages (the layouts'
writers) and the publish read the coverage of those records.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from lerobot_lance.conversion import Conversion, ConvertOptions
from lerobot_lance.errors import LeRobotLanceError, SourceDataError
from lerobot_lance.frames import frames_schema, iter_episodes_rows, normalize_frames
from lerobot_lance.model import DatasetMeta, EpisodeMeta
from lerobot_lance.staging import FRAMES, STATS, VIDEOS


@dataclass
class BatchResult:
    """Outcome of a per-episode stage over a batch of episodes.

    Attributes:
        ok: episodes staged.
        failed: episode -> located error message.
        rows: frames staged (``stage_episode_frames``) or segments written.
        bytes: bytes staged.
        outcomes: quality outcomes (:class:`~lerobot_lance.quality.result.CheckOutcome`).
    """

    ok: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    rows: int = 0
    bytes: int = 0
    outcomes: list[Any] = field(default_factory=list)


def _record_failure(conv: Conversion, kind: str, ep: int, message: str, result: BatchResult) -> None:
    result.failed[ep] = message
    conv.staging.write_record(kind, ep, {"episode_index": ep, "status": "failed", "revision": conv.revision, "error": message})


ProgressCallback = Callable[[int], None]


def stage_episode_frames(conv: Conversion, episodes: Sequence[int], on_progress: ProgressCallback | None = None) -> BatchResult:
    """Read and validate the frames rows of these episodes; record each one's outcome.

    Each episode's rows are checked by the per-episode tabular rules
    (:func:`lerobot_lance.quality.check_episode_frames`: one validation for the
    whole batch, by Great Expectations when some rule fails) and normalized to the frames schema;
    failing episodes are recorded as failed, the others ``ok`` with their row
    count and the identity of the data file they were read from
    (``source_files``, :func:`lerobot_lance.source_frames.data_file_ids`).
    No copy of the rows is staged: later stages read them from the source
    again (:meth:`Conversion.read_frames`), refusing a file that changed
    since. With ``frames_format="jpeg"`` the JPEG columns are staged
    (``frames/episode_NNNNNN.jpeg.arrow``); ``bytes`` counts them.
    """
    from lerobot_lance.source_frames import SOURCE_FILES, data_file_ids, read_data_file
    from lerobot_lance.testhook import pause_point

    pause_point("stage:episode_frames")  # tests: a worker killed inside this step
    meta, result = conv.meta, BatchResult()
    eps = [meta.episode(i) for i in episodes]
    files = list(dict.fromkeys(e.data_path for e in eps))
    root = conv.source.fetch(files)
    ids = data_file_ids(conv.source, root, files)  # before reading: a file changed meanwhile is refused later
    schema = frames_schema(meta)
    rows_by_ep: dict[int, pa.Table] = {}

    def unreadable(group: Sequence[EpisodeMeta], err: SourceDataError) -> None:  # fails only that file's episodes
        for e in group:
            _record_failure(conv, FRAMES, e.episode_index, str(err), result)

    def read_file(root: Path, rel: str, in_file: Sequence[int]) -> pa.Table:  # cached for the readers after this stage
        return read_data_file(root, rel, in_file, ids[rel])

    for e, rows in iter_episodes_rows(root, eps, whole_files=meta.one_file_per_episode, on_error=unreadable, read_file=read_file):
        rows_by_ep[e.episode_index] = rows
    from lerobot_lance.encodings import jpeg_frames
    from lerobot_lance.quality.episode_rules import check_episode_frames

    bad: dict[int, list[str]] = {}
    if rows_by_ep:
        outcomes = check_episode_frames(meta, rows_by_ep, tolerance_s=conv.options.tolerance_s)
        result.outcomes = list(outcomes)
        for o in outcomes:
            if not o.passed and o.severity == "ERROR":
                for off in o.offenders:
                    if off.episode_index is not None:
                        bad.setdefault(off.episode_index, []).append(f"{o.name}: {off}")
                if not any(off.episode_index is not None for off in o.offenders):
                    for ep in rows_by_ep:
                        bad.setdefault(ep, []).append(f"{o.name}: {o.message}")
    for ep, rows in rows_by_ep.items():
        e = meta.episode(ep)
        if ep in bad:
            _record_failure(conv, FRAMES, ep, "; ".join(bad[ep]), result)
            continue
        try:
            table = normalize_frames(rows, meta, e, schema)
            columns, jpeg, enc = jpeg_frames.encode_episode(conv, e, table)  # frames_format="jpeg"
        except SourceDataError as err:
            _record_failure(conv, FRAMES, ep, str(err), result)
            continue
        result.outcomes += enc
        if any(not o.passed for o in enc):
            _record_failure(conv, FRAMES, ep, "; ".join(f"{o.name}: {o.message}" for o in enc if not o.passed), result)
            continue
        size = conv.staging.write_frames_columns(ep, columns) if columns is not None else 0
        conv.staging.write_record(
            FRAMES, ep, {"episode_index": ep, "status": "ok", "revision": conv.revision, "rows": table.num_rows, "bytes": size,
                         SOURCE_FILES: {e.data_path: ids[e.data_path]}, "checked_at": datetime.now(timezone.utc).isoformat(),
                         **({"jpeg": jpeg} if jpeg else {})}
        )
        result.ok.append(ep)
        result.rows += table.num_rows
        result.bytes += size
        if on_progress:
            on_progress(1)
    return result


def _stats_samples(conv: Conversion, length: int) -> int:
    """Frames sampled per camera for camera statistics of an episode of ``length`` frames (0: none)."""
    samples = conv.options.camera_stats_samples
    if samples == 0 or conv.options.skip_videos:
        return 0
    if samples is None:
        from lerobot_lance.stats import estimate_num_samples

        return estimate_num_samples(length)
    return samples


def _stage_one_episode_videos(conv: Conversion, e: EpisodeMeta) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each camera's segment of episode ``e``, read once: cut (card layout,
    :func:`lerobot_lance.video.stage_window`) or counted (lerobot layout,
    :func:`lerobot_lance.video.inspect_window`), its endpoints decoded and its
    camera statistics sampled in the same pass (one open and one demux of the
    window per camera).

    A cut whose video data are a run of the shard's bytes (a stream copy of a
    LeRobot v3.0 shard) stages only the segment's mp4 header
    (:meth:`~lerobot_lance.staging.Staging.segment_header_path`); its record
    names the shard (``path``), the byte range (``source_range``: offset,
    length) and the shard's identity when it was cut (``source_identity``,
    as :func:`lerobot_lance.source_frames.data_file_ids` gives it), which
    :func:`segment_buffer` checks when the ``episodes`` table is written. A
    re-encoded segment is staged whole.

    Returns:
        (camera key -> the record of its segment, with ``camera_stats`` when
        they were computed; camera key -> ``(first_s, last_s)`` of the decoded
        endpoints, or the error decoding them raised).

    Raises:
        SourceDataError: a camera's file is missing or unreadable, or its
            segment does not hold ``length`` frames; when several cameras fail,
            one error names every camera and file.
    """
    from lerobot_lance import video
    from lerobot_lance.source_frames import data_file_ids
    from lerobot_lance.staging import write_bytes_atomic
    from lerobot_lance.stats import image_stats, stats_to_json

    meta = conv.meta
    root = conv.source.fetch([r.relative_path for r in e.videos.values()], missing_ok=True)
    cams: dict[str, Any] = {}
    kept: dict[str, dict[str, Any]] = {}  # segments kept in their shard: header, byte range, shard identity
    endpoints: dict[str, Any] = {}
    errors: list[tuple[str, LeRobotLanceError]] = []
    samples = _stats_samples(conv, e.length)
    for key, ref in e.videos.items():
        src = root / ref.relative_path
        lo, hi = ref.window(e.length, meta.fps)  # length frames from from_timestamp, whatever to_timestamp says
        try:
            if ref.whole_file:
                probe, facts = video.inspect_file(src, sample_frames=samples)  # one demux: probe, endpoints, sample
                if probe.frame_count != e.length:
                    raise SourceDataError(
                        ref.relative_path, f"video of camera {key!r} does not hold the episode's frames",
                        episode_index=e.episode_index, expected=f"{e.length} frames", found=f"{probe.frame_count} frames",
                    )
                path, method, frames, size = src, "copy", probe.frame_count, src.stat().st_size
            elif conv.options.layout == "lerobot":
                # The lerobot layout keeps every source shard whole: count the
                # window's packets, cut nothing (the segment is the window).
                facts = video.inspect_window(src, lo, hi, sample_frames=samples)
                frames = facts.frame_count
                if frames != e.length:
                    raise SourceDataError(
                        ref.relative_path, f"window of camera {key!r} does not hold the episode's frames",
                        episode_index=e.episode_index, expected=f"{e.length} frames", found=f"{frames} frames",
                    )
                path, method, size = src, "window", 0
            else:
                column = meta.features[key].column
                dst = conv.staging.segment_path(column, e.episode_index)
                header = conv.staging.segment_header_path(column, e.episode_index)
                # one demux of the window: cut, counted, endpoints and stats sample
                # (a re-encoded segment's from the source window, as _camera_frames does)
                staged = video.stage_window(src, lo, hi, e.length, dst, sample_frames=samples, reencode=conv.options.reencode,
                                            crf_or_qp=conv.options.reencode_crf, preset=conv.options.reencode_preset,
                                            in_source=True)
                seg, facts = staged.segment, staged.facts
                method, frames, size = seg.method, seg.frame_count, seg.size_bytes
                if seg.source_range is None:  # written to dst
                    path = dst
                    header.unlink(missing_ok=True)
                else:  # the shard's bytes: stage the header, locate the rest
                    path = src
                    write_bytes_atomic(header, seg.source_range.header)
                    dst.unlink(missing_ok=True)  # a segment an earlier conversion staged
                    kept[key] = {
                        "header": str(header),
                        "source_range": [seg.source_range.offset, seg.source_range.length],
                        "source_identity": data_file_ids(conv.source, root, [ref.relative_path])[ref.relative_path],
                    }
        except LeRobotLanceError as err:  # go on: the error names every camera that fails
            errors.append((key, err))
            continue
        cams[key] = {
            "path": str(path),
            "source_path": ref.relative_path,
            "from_timestamp": lo,
            "to_timestamp": hi,
            "declared_to_timestamp": ref.to_timestamp,
            "method": method,
            "frame_count": frames,
            "size_bytes": size,
            **kept.get(key, {}),
        }
        endpoints[key] = facts.endpoints if facts.endpoint_error is None else facts.endpoint_error
        if key in kept and facts.endpoint_error is None:  # checked as the shard's window: on its timeline
            endpoints[key] = (facts.endpoints[0] + lo, facts.endpoints[1] + lo)
        if facts.sample is not None and len(facts.sample):
            cams[key]["camera_stats"] = stats_to_json({key: image_stats(facts.sample)})[key]
            cams[key]["camera_stats_samples"] = samples
    if len(errors) == 1:
        raise errors[0][1]
    if errors:
        first = errors[0][1]
        raise SourceDataError(
            getattr(first, "path", e.videos[errors[0][0]].relative_path),
            f"{len(errors)} cameras fail: " + "; ".join(f"camera {key}: {err}" for key, err in errors),
            episode_index=e.episode_index,
        )
    return cams, endpoints


def stage_episode_videos(conv: Conversion, episodes: Sequence[int], on_progress: ProgressCallback | None = None) -> BatchResult:
    """Produce each episode's standalone segment per video camera.

    v2.x: the episode file is the segment (verbatim; its packet count must
    equal the episode length). v3.0: the window is cut from its shard by
    stream copy, or re-encoded when it does not start on a keyframe
    (:func:`lerobot_lance.video.cut_segment`); the segment must hold exactly
    ``length`` frames, counted from packets. Runs ``options.workers`` episodes
    at a time.
    """
    from lerobot_lance.encodings import image_video
    from lerobot_lance.encodings.output import encoded_image_keys
    from lerobot_lance.encodings.reencode import check_reencoded

    meta, result = conv.meta, BatchResult()
    if conv.options.skip_videos or not (meta.video_keys or encoded_image_keys(meta, conv.options)):
        return result
    eps = [meta.episode(i) for i in episodes]

    from lerobot_lance.quality.episode_rules import check_episode_video
    from lerobot_lance.quality.result import CheckOutcome, Offender, merge_outcomes

    def one(e: EpisodeMeta) -> tuple[int, dict[str, Any] | str, list[CheckOutcome]]:
        try:
            cams, endpoints = _stage_one_episode_videos(conv, e)
            encoded, enc_outcomes = image_video.stage_episode(conv, e)  # encode_images="video"
            enc_outcomes += check_reencoded(conv, e, cams)  # re-encoded windows match their source
        except LeRobotLanceError as err:
            # name the source file relative to the dataset root, as the metadata does
            root = str(conv.source.meta_root()).rstrip("/") + "/"
            text = str(err).replace(root, "")
            path = str(getattr(err, "path", "") or "").replace(root, "") or None
            detail = getattr(err, "detail", None) or text
            off = Offender(path, e.episode_index, detail, getattr(err, "expected", None), getattr(err, "found", None))
            return e.episode_index, f"segment_frame_count: {text}", [CheckOutcome.from_offenders("segment_frame_count", [off])]
        outcomes = check_episode_video(
            e, {k: c["path"] for k, c in cams.items()}, meta.fps, deep=conv.options.deep_video_check,
            windows={k: (c["from_timestamp"], c["to_timestamp"]) for k, c in cams.items() if segment_in_source(c)} or None,
            files={k: c["source_path"] for k, c in cams.items()}, frame_counts={k: c["frame_count"] for k, c in cams.items()},
            endpoints=endpoints,
        ) if cams else []
        outcomes += enc_outcomes
        cams.update(encoded)
        failed = [f"{o.name}: {o.message}" for o in outcomes if not o.passed]
        return e.episode_index, ("; ".join(failed) if failed else cams), outcomes

    all_outcomes: list[CheckOutcome] = []
    with ThreadPoolExecutor(max_workers=max(1, conv.options.workers)) as pool:
        for ep, out, outcomes in pool.map(one, eps):
            all_outcomes += outcomes
            if isinstance(out, str):
                _record_failure(conv, VIDEOS, ep, out, result)
                continue
            conv.staging.write_record(VIDEOS, ep, {"episode_index": ep, "status": "ok", "revision": conv.revision, "cameras": out})
            if on_progress:
                on_progress(1)
            result.ok.append(ep)
            result.rows += len(out)
            result.bytes += sum(c["size_bytes"] - (c["source_range"][1] if "source_range" in c else 0) for c in out.values())
    result.outcomes = merge_outcomes(all_outcomes)
    return result


# --- what the stages cover (read by the table stages and the publish) -------------
@dataclass
class Coverage:
    """Which selected episodes have current staged output, and why the others do not."""

    included: list[int]
    missing: dict[int, str]


def coverage(conv: Conversion, kinds: Sequence[str] | None = None) -> Coverage:
    """Episodes whose records of every kind in ``kinds`` (default: every kind a
    published episode needs) are ``ok`` for the pinned revision."""
    included, missing = [], {}
    rev = conv.revision
    kinds = _kinds(conv) if kinds is None else kinds
    conv.staging.prefetch(kinds, conv.selected())  # shared staging: every record at once
    for ep in conv.selected():
        reasons = []
        for kind in kinds:
            if not conv.staging.is_current(kind, ep, rev):
                rec = conv.staging.record(kind, ep)
                if rec is None:
                    reasons.append(f"{kind}: not staged")
                elif rec.get("revision") != rev:
                    reasons.append(f"{kind}: staged from another source revision")
                else:
                    reasons.append(f"{kind}: {rec.get('error', 'failed')}")
        if reasons:
            missing[ep] = "; ".join(reasons)
        else:
            included.append(ep)
    return Coverage(included, missing)


def required_kinds(meta: DatasetMeta, options: ConvertOptions) -> list[str]:
    """Staged record kinds a published episode needs: frames, videos (when the
    dataset has video cameras and videos are not skipped) and statistics. The
    episodes table carries the stats, so an episode whose stats stage did not
    run (its batch stopped at a blocking check) is not publishable yet."""
    from lerobot_lance.encodings.output import encoded_image_keys

    kinds = [FRAMES]
    if (meta.video_keys or encoded_image_keys(meta, options)) and not options.skip_videos:
        kinds.append(VIDEOS)
    kinds.append(STATS)
    return kinds


def _kinds(conv: Conversion) -> list[str]:
    return required_kinds(conv.meta, conv.options)


def publishable_episodes(conv: Conversion) -> Coverage:
    """The episodes the tables will hold.

    Raises:
        SourceDataError: some selected episodes are missing or failed and
            ``options.exclude_failed_episodes`` is off; the message lists them
            with their reasons.
    """
    cov = coverage(conv)
    lines = "; ".join(f"episode {ep}: {why}" for ep, why in cov.missing.items())  # every reason, none dropped
    if cov.missing and not conv.options.exclude_failed_episodes:
        raise SourceDataError(
            str(conv.staging.root), f"{len(cov.missing)} episode(s) not staged or failed: {lines}",
            expected=f"{len(conv.selected())} episodes", found=f"{len(cov.included)} staged",
        )
    if not cov.included:
        raise SourceDataError(
            str(conv.staging.root), f"no episode staged: every selected episode was excluded: {lines}" if lines else "no episode staged",
            expected=">= 1 episode", found=0,
        )
    return cov


def segment_in_source(cam: Mapping[str, Any]) -> bool:
    """Whether a camera's entry in a videos record names a window of a source
    file (its ``path``) rather than a staged segment file: the lerobot
    layout's ``"window"``, or a segment kept in its shard (``source_range``)."""
    return cam.get("method") == "window" or "source_range" in cam


def segment_buffer(conv: Conversion, episode_index: int, cam: Mapping[str, Any]) -> pa.Buffer:
    """The bytes of a camera's segment (card layout), in one buffer: the staged
    file (:func:`camera_file`), or for a segment kept in its shard the staged
    header followed by the shard's byte range (:func:`lerobot_lance.blobs.read_file_buffer`).

    Raises:
        SourceDataError: the shard's identity is not the one recorded when
            ``episode_videos`` cut it (the file changed: naming the file, the
            episode, both identities), or it cannot be read.
    """
    from lerobot_lance import blobs

    if "source_range" not in cam:
        return blobs.read_file_buffer(camera_file(conv, cam))
    from lerobot_lance.source_frames import data_file_ids

    rel = cam["source_path"]
    root = conv.source.fetch([rel])
    now = data_file_ids(conv.source, root, [rel])[rel]
    if now != cam["source_identity"]:
        raise SourceDataError(
            rel, "changed since episode_videos cut it; rerun episode_videos", episode_index=episode_index,
            expected=f"the file as cut (identity {cam['source_identity']})", found=f"identity {now}",
        )
    header = conv.staging.local_file(cam["header"]).read_bytes()
    offset, length = cam["source_range"]
    try:
        return blobs.read_file_buffer(root / rel, prefix=header, byte_range=(offset, length))
    except OSError as exc:
        raise SourceDataError(rel, f"cannot read the segment's video data: {exc}", episode_index=episode_index) from exc


def camera_file(conv: Conversion, cam: Mapping[str, Any]) -> Path:
    """The local file of a camera's entry in a videos record: the staged segment
    (fetched from a shared staging area when needed), or for a v2.x episode mp4
    used verbatim (``method`` ``"copy"``) staged on another machine whose
    source path does not exist here, the same file fetched from this
    machine's source."""
    path = conv.staging.local_file(cam["path"])
    if cam.get("method") == "copy" and cam.get("source_path") and not path.exists():
        return conv.source.fetch([cam["source_path"]]) / cam["source_path"]
    return path


def source_video_files(conv: Conversion) -> list[Any]:
    """Source mp4s (one :class:`~lerobot_lance.model.VideoRef` per file) holding the published episodes."""
    if conv.options.skip_videos:
        return []
    cov = publishable_episodes(conv)
    keep = set(cov.included)
    refs: dict[str, Any] = {}
    for e in conv.meta.episodes:
        if e.episode_index in keep:
            for ref in e.videos.values():
                refs.setdefault(ref.relative_path, ref)
    order = {k: i for i, k in enumerate(conv.meta.video_keys)}
    return sorted(refs.values(), key=lambda r: (order[r.video_key], r.chunk_index, r.file_index))


def episodes_to_convert(conv: Conversion, episodes: Sequence[int]) -> list[int]:
    """Those of ``episodes`` whose staged output (every kind a published
    episode needs) is not current for the pinned revision."""
    kinds = _kinds(conv)
    conv.staging.prefetch(kinds, episodes)
    return [ep for ep in episodes if not all(conv.staging.is_current(k, ep, conv.revision) for k in kinds)]
