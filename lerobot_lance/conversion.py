"""The conversion's stages as plain functions (no Dagster).

The Dagster assets, the CLI and the Python API all call these, in this order::

    resolve_source          -> <staging>/source.json, the pinned source revision
    stage_episode_frames    -> per episode: frames rows (Arrow IPC) + record
    stage_episode_videos    -> per episode and camera: the standalone segment + record
    stage_episode_stats     -> per episode: statistics record
    write_frames_table      -> pending fragments of frames.lance
    write_episodes_table    -> pending fragments of episodes.lance
    write_videos_table      -> pending fragments of videos.lance
    publish_dataset         -> one commit per table, shared tag, meta/ swapped in

Per-episode stages take any batch of episodes (a Dagster partition range) and
never raise for one bad episode: its record says ``"status": "failed"`` with
the located error, the other episodes are staged, and the table stages report
which episodes are missing and why.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from lerobot_lance import formats
from lerobot_lance.episode_selection import EpisodeRanges, select_episodes
from lerobot_lance.errors import LeRobotLanceError, SourceDataError
from lerobot_lance.frames import frames_schema, iter_episodes_rows, normalize_frames
from lerobot_lance.lance_io import journal_path, recover_interrupted_publish, table_uri
from lerobot_lance.model import DatasetMeta, EpisodeMeta
from lerobot_lance.readers import read_dataset_meta
from lerobot_lance.source import DatasetSource, open_source
from lerobot_lance.output_lock import is_local, local_root, output_lock
from lerobot_lance.staging import FRAMES, STATS, VIDEOS, Staging, default_staging_dir, read_json, read_json_cached


@dataclass(frozen=True)
class ConvertOptions:
    """Options of one conversion.

    Attributes:
        reencode: ``"auto"`` (stream copy when a v3.0 window starts on a
            keyframe, lossless libx264 otherwise), ``"always"`` or ``"never"``.
        skip_videos: tabular-only conversion: no segments, no ``videos`` rows.
        exclude_failed_episodes: publish the sound episodes when some failed,
            recording the exclusions; otherwise a failed episode stops the publish.
        tolerance_s: timestamp tolerance in seconds (LeRobot's default 1e-4).
        camera_stats_samples: decoded frames per episode and camera for camera
            statistics (default 10, spread over the episode and snapped to
            keyframes: about 40 ms per episode for 640x480 AV1);
            ``None`` uses LeRobot's own sample size (``estimate_num_samples``:
            100 frames for episodes up to ~460 frames, ~10x the cost); ``0``
            skips camera statistics.
        deep_video_check: decode every frame of every segment (slow, opt-in).
        policy_window_frames: episodes shorter than this (frames) are reported
            by the ``short_episodes`` content check (WARN).
        workers: threads for per-episode video work.
        storage_options: object-store options passed to Lance.
        stats_plot: render the mean ± std PNG of state and action (Dagster
            metadata of ``dataset_stats``; matplotlib, ~1 s). The CLI turns it
            off when its runs go to a throwaway instance, where nobody sees it.
        layout: output layout, ``"card"`` (default: the three-table layout of
            the dataset cards) or ``"lerobot"`` (what LeRobot's own Lance
            reader serves); see :mod:`lerobot_lance.layouts`.
        encode_images, video_preset, video_codec, video_crf, video_qp,
            video_gop, video_pix_fmt: image cameras to video (``"video"``) and
            how; frames_format, jpeg_quality, jpeg_subsampling: the JPEG
            frames format; reencode_crf (0: lossless qp 0), reencode_preset:
            libx264 settings of the v3.0 re-encode fallback; min_psnr_db:
            the floor of ``decoded_pixels_match_source`` for lossy
            encodings (dB). See :mod:`lerobot_lance.encodings`.
        lock_wait_s: how long a stage waits for the output's writer lock
            when another process holds it (seconds; ``0``: refuse at once,
            the CLI's behaviour). Dagster runs wait
            (:class:`resources.LanceStorageResource`), because the steps of
            one run may execute in several processes (multiprocess or Celery
            executor) and each takes the lock in turn; the run queue's
            ``lerobot_lance/output_writer`` limit keeps two runs apart.
    """

    reencode: str = "auto"
    skip_videos: bool = False
    exclude_failed_episodes: bool = False
    tolerance_s: float = formats.DEFAULT_TOLERANCE_S
    camera_stats_samples: int | None = 10
    deep_video_check: bool = False
    policy_window_frames: int = 16
    workers: int = 2
    storage_options: dict[str, str] | None = None
    stats_plot: bool = True
    layout: str = "card"
    # camera encodings (lerobot_lance.encodings.settings documents each)
    encode_images: str = "none"
    video_preset: str = "lerobot"
    video_codec: str | None = None
    video_crf: int | None = None
    video_qp: int | None = None
    video_gop: int | None = None
    video_pix_fmt: str | None = None
    frames_format: str = "source"
    jpeg_quality: int = 95
    jpeg_subsampling: str = "4:2:0"
    reencode_crf: int = 0
    reencode_preset: str = "veryfast"
    min_psnr_db: float = 30.0
    lock_wait_s: float = 0.0

    def __post_init__(self) -> None:
        from lerobot_lance.encodings.settings import validate_options
        from lerobot_lance.layouts.names import validate_layout

        validate_layout(self.layout)
        validate_options(self)


#: (source meta root, pinned revision) -> its metadata, see :attr:`Conversion.meta`.
_META_CACHE: dict[tuple[str, str], DatasetMeta] = {}


@dataclass
class Conversion:
    """One output root and the source it is converted from.

    Attributes:
        output: output root, a directory or an object-store URI.
        staging: the staging area, outside the output (default
            :func:`~lerobot_lance.staging.default_staging_dir`).
        options: see :class:`ConvertOptions`.
    """

    output: str
    staging: Staging
    options: ConvertOptions = field(default_factory=ConvertOptions)
    _source: DatasetSource | None = None
    _meta: DatasetMeta | None = None

    @classmethod
    def at(
        cls, output: str | Path, staging_dir: str | Path | None = None, options: ConvertOptions | None = None,
        cache_dir: str | Path | None = None,
    ) -> Conversion:
        """The conversion of ``output`` (a directory or an object-store URI) staging in ``staging_dir``.

        ``staging_dir``: a directory (local, or a mount every machine shares)
        is the staging area itself; an object-store URI is a shared staging
        area (:mod:`lerobot_lance.shared_staging`) mirrored by the local
        ``cache_dir`` (default :func:`~lerobot_lance.staging.default_staging_dir`).
        ``None``: an object-store output stages to the shared
        :func:`~lerobot_lance.shared_staging.default_shared_staging` next to
        it, a local output in ``cache_dir`` or the default directory.
        """
        from lerobot_lance.object_store import is_object_store
        from lerobot_lance.shared_staging import SharedStaging, default_shared_staging

        output = str(output)
        options = options or ConvertOptions()
        shared_uri = None
        if staging_dir is not None and is_object_store(staging_dir):
            shared_uri = str(staging_dir)
        elif staging_dir is not None:
            cache_dir = str(staging_dir).removeprefix("file://")
        elif is_object_store(output):
            shared_uri = default_shared_staging(output)
        local = Path(cache_dir) if cache_dir is not None else default_staging_dir(output)
        shared = SharedStaging(shared_uri, local, options.storage_options) if shared_uri else None
        return cls(output=output, staging=Staging(local, shared), options=options)

    # --- the pinned source --------------------------------------------------
    @property
    def snapshot(self) -> dict[str, Any]:
        """``source.json`` written by :func:`resolve_source`.

        Raises:
            LeRobotLanceError: the source has not been resolved for this output.
        """
        snap = read_json_cached(self.staging.json_file("source.json"))  # parsed once per version of the file
        if not snap:
            raise LeRobotLanceError(f"{self.staging.root}: no resolved source; run resolve_source (the source_meta asset) first")
        return snap

    @property
    def revision(self) -> str:
        return str(self.snapshot["revision"])

    @property
    def source(self) -> DatasetSource:
        if self._source is None:
            snap = self.snapshot
            pinned = snap["revision"] if snap["kind"] in ("hub", "s3") else None
            self._source = open_source(snap["source"], pinned, storage_options=self.options.storage_options)
        return self._source

    @property
    def meta(self) -> DatasetMeta:
        """The source's metadata, read once per process for each pinned revision
        (every stage of a run opens its own :class:`Conversion`; a v3.0
        ``meta/episodes`` parquet of 300 episodes takes ~0.3 s to read)."""
        if self._meta is None:
            key = (str(self.source.meta_root()), self.revision)
            meta = _META_CACHE.get(key)
            if meta is None:
                meta = read_dataset_meta(self.source.meta_root())
                if len(_META_CACHE) >= 8:
                    _META_CACHE.clear()
                _META_CACHE[key] = meta
            self._meta = meta
        return self._meta

    @property
    def output_meta(self) -> DatasetMeta:
        """The metadata the output describes (``meta`` with encoded image
        cameras as video features: :func:`lerobot_lance.encodings.output.output_meta`)."""
        from lerobot_lance.encodings.output import output_meta

        return output_meta(self)

    def selected(self) -> list[int]:
        """Episodes this conversion publishes (all, or the ``--episodes`` selection)."""
        sel = self.snapshot.get("selected")
        return list(sel) if sel is not None else self.meta.episode_indices

    def uri(self, table: str) -> str:
        return table_uri(self.output, table)

    @property
    def journal(self) -> Path | str:
        """The publish journal ``<output>/.lerobot-lance-publish.json``: a path
        for a local output, an object URI for an object-store output."""
        return journal_path(self.output)


@contextmanager
def writing(conv: Conversion) -> Iterator[None]:
    """Hold the output's writer lock and recover an interrupted publish first.

    Every stage that writes the output (or decides what it will hold) runs
    inside this: :func:`resolve_source`, the layouts' ``write_*_table``
    stages and :func:`~lerobot_lance.publish.publish_dataset`. Re-entrant
    within a process (the CLI's runner holds the lock for the whole
    conversion).

    Waits up to ``conv.options.lock_wait_s`` seconds for a lock another
    process holds.

    Raises:
        OutputLockedError: another process is writing this output (and still
            was after ``lock_wait_s``).
    """
    with output_lock(conv.output, storage_options=conv.options.storage_options, wait_s=conv.options.lock_wait_s):
        recover_interrupted_publish(conv.journal, storage_options=conv.options.storage_options)
        yield


def published_record(conv: Conversion) -> dict[str, Any] | None:
    """The output's ``meta/conversion.json`` (what the last publish recorded), or ``None``."""
    try:
        if not is_local(conv.output):
            from lerobot_lance import object_store

            return object_store.read_json(object_store.join(conv.output, "meta", "conversion.json"), conv.options.storage_options)
        return read_json(local_root(conv.output) / "meta" / "conversion.json")
    except ValueError:
        return None


# --- source_meta -------------------------------------------------------------
def resolve_source(
    conv: Conversion,
    source: DatasetSource | str,
    revision: str | None = None,
    episodes: Sequence[int] | EpisodeRanges | None = None,
) -> DatasetMeta:
    """Resolve the source (download ``meta/`` only), parse it, pin its revision.

    Writes ``<staging>/source.json`` so every later stage reads the same
    revision. Staged episodes of another revision are then ignored. Runs under
    the output's writer lock, after recovering an interrupted publish
    (:func:`writing`).

    ``episodes`` over an output that already holds a publish of the same
    source: those episodes are (re)converted and the other published episodes
    are kept (``source.json`` records ``requested`` and ``kept``; the
    selection published is their union).

    Returns:
        The normalized metadata.

    Raises:
        UnsupportedFormatError, SourceDataError (also: ``episodes`` names
        episodes the dataset does not hold), SourceNotFoundError,
        OutputLockedError.
    """
    with writing(conv):
        return _resolve_source(conv, source, revision, episodes)


def _resolve_source(
    conv: Conversion, source: DatasetSource | str, revision: str | None, episodes: Sequence[int] | None
) -> DatasetMeta:
    src = open_source(source, revision, storage_options=conv.options.storage_options) if isinstance(source, str) else source
    meta = read_dataset_meta(src.meta_root())
    rev = src.revision()
    episodes = select_episodes(episodes, meta.episode_indices)  # ranges are checked before they are expanded
    kind = getattr(src, "kind", None) or ("hub" if src.__class__.__name__ == "HubSource" else "local")
    source_name = getattr(src, "repo_id", None) or src.description
    kept: list[int] = []
    if episodes is not None:
        # A partial run over an existing output re-converts these episodes and
        # keeps the others it published (what a partition rerun does).
        prev = published_record(conv)
        if prev and prev.get("source") == source_name:
            kept = sorted((set(prev.get("episodes") or []) & set(meta.episode_indices)) - set(episodes))
    conv.staging.root.mkdir(parents=True, exist_ok=True)
    fingerprints = episode_fingerprints(src, meta)
    previous = read_json(conv.staging.json_file("source.json"))
    if previous:
        carry_forward_records(conv, previous, rev, fingerprints)
        from lerobot_lance.encodings.staging_keys import invalidate_changed

        invalidate_changed(conv, previous)  # records staged with other encoding options are not reused
    conv.staging.write_json(
        "source.json",
        {
            "source": source_name,
            "kind": kind,
            "revision": rev,
            "codebase_version": meta.codebase_version,
            "episodes": meta.episode_indices,
            "selected": sorted(set(episodes) | set(kept)) if episodes is not None else None,
            "requested": sorted(episodes) if episodes is not None else None,
            "kept": kept,
            "fingerprints": {str(k): v for k, v in fingerprints.items()},
            "encodings": _encoding_key(conv),
            "resolved_at": datetime.now(timezone.utc).isoformat(),
        },
    )
    conv._source, conv._meta = src, meta
    return meta


def _encoding_key(conv: Conversion) -> dict[str, Any]:
    from lerobot_lance.encodings.staging_keys import encoding_key

    return encoding_key(conv.options)


# --- change detection ----------------------------------------------------------------
#: ``info.json`` keys whose change alters every episode's output (totals and
#: splits are left out: they change whenever episodes are added).
_GLOBAL_INFO_KEYS = ("codebase_version", "fps", "features")


def source_file_ids(src: DatasetSource, relative_paths: Sequence[str]) -> dict[str, str]:
    """An identity per source file that changes when the file's content does.

    Local directories: ``"<size>:<mtime_ns>"`` (a replaced or rewritten file
    changes it; a missing file maps to ``"missing"``). Hub repos: the file's
    LFS sha256 or git blob id at the pinned commit, from one
    ``HfApi().dataset_info(..., files_metadata=True)`` call; when the Hub is
    unreachable every file maps to the commit sha itself (so a new commit
    counts as a change of every file: conservative, never wrong).
    """
    if hasattr(src, "file_ids"):  # object-store sources: ETag and size from the pinned listing
        return src.file_ids(relative_paths)
    root = getattr(src, "root", None)
    if root is not None:
        out = {}
        for rel in relative_paths:
            try:
                st = (Path(root) / rel).stat()
                out[rel] = f"{st.st_size}:{st.st_mtime_ns}"
            except FileNotFoundError:
                out[rel] = "missing"
        return out
    rev = src.revision()
    ids: dict[str, str] = {}
    try:
        from huggingface_hub import HfApi

        info = HfApi(token=getattr(src, "token", None)).dataset_info(
            getattr(src, "repo_id"), revision=rev, files_metadata=True
        )
        for s in info.siblings or []:
            lfs = getattr(s, "lfs", None)
            sha = (lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)) if lfs else None
            ids[s.rfilename] = sha or s.blob_id or rev
    except Exception:  # noqa: BLE001 - offline / transient: fall back to the commit sha
        ids = {}
    return {rel: ids.get(rel, rev) for rel in relative_paths}


def episode_fingerprints(src: DatasetSource, meta: DatasetMeta) -> dict[int, str]:
    """Per episode, a short hash of everything its staged output depends on:
    the dataset-wide schema (``codebase_version``, ``fps``, ``features``), the
    episode's metadata record (length, tasks, index range, file paths, video
    windows, declared stats) and the identity of the files it reads
    (:func:`source_file_ids`).

    Two revisions of a source give an episode the same fingerprint exactly when
    its converted rows, segments and stats cannot differ, so a new revision
    re-converts only the episodes it touched (see :func:`carry_forward_records`).
    """
    import dataclasses
    import hashlib

    info = meta.info
    glob = json.dumps({k: info.get(k) for k in _GLOBAL_INFO_KEYS}, sort_keys=True, default=str)
    paths = sorted({p for e in meta.episodes for p in [e.data_path, *(r.relative_path for r in e.videos.values())]})
    ids = source_file_ids(src, paths)
    out = {}
    for e in meta.episodes:
        files = {p: ids.get(p) for p in [e.data_path, *(r.relative_path for r in e.videos.values())]}
        doc = json.dumps({"g": glob, "e": dataclasses.asdict(e), "f": files}, sort_keys=True, default=str)
        out[e.episode_index] = hashlib.sha256(doc.encode()).hexdigest()[:20]
    return out


def carry_forward_records(conv: Conversion, previous: Mapping[str, Any], revision: str, fingerprints: Mapping[int, str]) -> list[int]:
    """Re-stamp the staged records of unchanged episodes with the new revision.

    Records count only for the pinned revision (:meth:`Staging.current`), so
    without this a new revision (a new episode, one fixed file) would make every
    staged episode stale. An episode whose fingerprint is the one recorded in
    the previous ``source.json`` keeps its ``ok`` records, re-stamped; changed,
    new and failed episodes keep theirs as they are (stale or failed) and must
    be converted again. Idempotent: a resolve killed half-way is finished by
    the next one (records already carrying ``revision`` are left alone).

    Returns:
        The episodes carried forward.
    """
    old_rev = previous.get("revision")
    old_fps = {int(k): v for k, v in (previous.get("fingerprints") or {}).items()}
    if not old_rev or old_rev == revision or not old_fps:
        return []
    carried = []
    conv.staging.prefetch((FRAMES, VIDEOS, STATS), [ep for ep, fp in fingerprints.items() if old_fps.get(ep) == fp])
    for ep, fp in fingerprints.items():
        if old_fps.get(ep) != fp:
            continue
        for kind in (FRAMES, VIDEOS, STATS):
            rec = conv.staging.record(kind, ep)
            if rec and rec.get("status") == "ok" and rec.get("revision") == old_rev:
                conv.staging.write_record(kind, ep, {**rec, "revision": revision})
        carried.append(ep)
    return carried


# --- per-episode stages ---------------------------------------------------------
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
    """Read, validate and stage the frames rows of these episodes.

    Each episode's rows are checked by the per-episode tabular rules
    (:func:`lerobot_lance.quality.check_episode_frames`: one Great Expectations
    validation for the whole batch) and normalized to the frames schema;
    failing episodes are recorded as failed, the others staged.
    """
    from lerobot_lance.testhook import pause_point

    pause_point("stage:episode_frames")  # tests: a worker killed inside this step
    meta, result = conv.meta, BatchResult()
    eps = [meta.episode(i) for i in episodes]
    root = conv.source.fetch(list(dict.fromkeys(e.data_path for e in eps)))
    schema = frames_schema(meta)
    rows_by_ep: dict[int, pa.Table] = {}

    def unreadable(group: Sequence[EpisodeMeta], err: SourceDataError) -> None:  # fails only that file's episodes
        for e in group:
            _record_failure(conv, FRAMES, e.episode_index, str(err), result)

    for e, rows in iter_episodes_rows(root, eps, whole_files=meta.one_file_per_episode, on_error=unreadable):
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
            table, jpeg, enc = jpeg_frames.encode_episode(conv, e, table)  # frames_format="jpeg"
        except SourceDataError as err:
            _record_failure(conv, FRAMES, ep, str(err), result)
            continue
        result.outcomes += enc
        if any(not o.passed for o in enc):
            _record_failure(conv, FRAMES, ep, "; ".join(f"{o.name}: {o.message}" for o in enc if not o.passed), result)
            continue
        size = conv.staging.write_frames(ep, table)
        conv.staging.write_record(
            FRAMES, ep, {"episode_index": ep, "status": "ok", "revision": conv.revision, "rows": table.num_rows, "bytes": size,
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
    """Each camera's segment of episode ``e``, read once: cut (card layout)
    or counted (lerobot layout), its endpoints decoded and its camera
    statistics sampled in the same pass (:func:`lerobot_lance.video.inspect_window`).

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
    from lerobot_lance.stats import image_stats, stats_to_json

    meta = conv.meta
    root = conv.source.fetch([r.relative_path for r in e.videos.values()], missing_ok=True)
    cams: dict[str, Any] = {}
    endpoints: dict[str, Any] = {}
    errors: list[tuple[str, LeRobotLanceError]] = []
    samples = _stats_samples(conv, e.length)
    for key, ref in e.videos.items():
        src = root / ref.relative_path
        lo, hi = ref.window(e.length, meta.fps)  # length frames from from_timestamp, whatever to_timestamp says
        try:
            if ref.whole_file:
                probe = video.probe_video(src)
                if probe.frame_count != e.length:
                    raise SourceDataError(
                        ref.relative_path, f"video of camera {key!r} does not hold the episode's frames",
                        episode_index=e.episode_index, expected=f"{e.length} frames", found=f"{probe.frame_count} frames",
                    )
                path, method, frames, size = src, "copy", probe.frame_count, src.stat().st_size
                facts = video.inspect_window(src, sample_frames=samples)
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
                dst = conv.staging.segment_path(meta.features[key].column, e.episode_index)
                dst.parent.mkdir(parents=True, exist_ok=True)
                seg = video.cut_segment(src, lo, hi, e.length, dst, reencode=conv.options.reencode,
                                        crf_or_qp=conv.options.reencode_crf, preset=conv.options.reencode_preset)
                path, method, frames, size = dst, seg.method, seg.frame_count, seg.size_bytes
                # a re-encoded segment's stats come from the source window (see _camera_frames)
                facts = video.inspect_window(dst, sample_frames=0 if method == "reencode" else samples)
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
        }
        endpoints[key] = facts.endpoints if facts.endpoint_error is None else facts.endpoint_error
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
            windows={k: (c["from_timestamp"], c["to_timestamp"]) for k, c in cams.items() if c["method"] == "window"} or None,
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
            result.bytes += sum(c["size_bytes"] for c in out.values())
    result.outcomes = merge_outcomes(all_outcomes)
    return result


# --- table stages ----------------------------------------------------------------
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
            if conv.staging.current(kind, ep, rev) is None:
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
    return [ep for ep in episodes if any(conv.staging.current(k, ep, conv.revision) is None for k in kinds)]


# --- statistics: the stages stage_episode_stats, aggregate_dataset_stats, ... are in
# lerobot_lance.conversion_stats (which imports this module).
