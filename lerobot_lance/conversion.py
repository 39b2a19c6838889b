"""The conversion object and its inputs (no Dagster), and its first stage.

:class:`ConvertOptions` and :class:`Conversion` (one output root, its staging
area and the pinned source), the output's writer lock (:func:`writing`), the
``source_meta`` stage (:func:`resolve_source`) and change detection
(:func:`episode_fingerprints`, :func:`carry_forward_records`). It reads the
source's ``meta/`` and the identity of its files, and writes
``<staging>/source.json`` (re-stamping the staged records of unchanged
episodes with a new revision); it writes nothing into the output.

The Dagster assets, the CLI and the Python API call the stages in this
order; each stage's module imports this one, never the reverse::

    resolve_source          -> <staging>/source.json, the pinned source revision
                               (this module)
    stage_episode_frames    -> per episode: checked frames record (no copy of the rows)
    stage_episode_videos    -> per episode and camera: the standalone segment + record
                               (lerobot_lance.episode_stages, with the coverage of
                               the staged records)
    stage_episode_stats     -> per episode: statistics record
                               (lerobot_lance.conversion_stats)
    write_*_table           -> pending fragments of each table of the layout
                               (lerobot_lance.layouts.card_writer,
                               lerobot_lance.layouts.lerobot_writer)
    publish_dataset         -> one commit per table, shared tag, meta/ swapped in
                               (lerobot_lance.publish)

Per-episode stages take any batch of episodes (a Dagster partition range) and
never raise for one bad episode: its record says ``"status": "failed"`` with
the located error, the other episodes are staged, and the table stages report
which episodes are missing and why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from lerobot_lance import formats
from lerobot_lance.episode_selection import EpisodeRanges, select_episodes
from lerobot_lance.errors import LeRobotLanceError
from lerobot_lance.lance_io import journal_path, recover_interrupted_publish, table_uri
from lerobot_lance.model import DatasetMeta
from lerobot_lance.readers import read_dataset_meta
from lerobot_lance.source import DatasetSource, open_source
from lerobot_lance.source_base import source_file_ids
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

    def read_frames(self, episode_index: int) -> pa.Table:
        """The episode's normalized frames rows, read from the source after
        checking its data file is the one ``episode_frames`` checked
        (:func:`lerobot_lance.source_frames.read_frames`, which documents the
        errors raised)."""
        from lerobot_lance.source_frames import read_frames

        return read_frames(self, episode_index)

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
