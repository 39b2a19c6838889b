"""The conversion's statistics stages (no Dagster), moved out of
:mod:`lerobot_lance.conversion` unchanged; every name stays importable from
there.

    stage_episode_stats      -> per episode: statistics record
    aggregate_dataset_stats  -> <staging>/dataset_stats.json
    content_outcomes         -> the non-blocking content checks of a batch
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from lerobot_lance.conversion import Conversion
from lerobot_lance.episode_stages import (
    BatchResult,
    ProgressCallback,
    _record_failure,
    _stats_samples,
    camera_file,
    coverage,
    segment_in_source,
)
from lerobot_lance.errors import LeRobotLanceError, SourceDataError
from lerobot_lance.staging import FRAMES, STATS, VIDEOS, read_json


# --- statistics -------------------------------------------------------------------
def _staged_videos(conv: Conversion, ep: int) -> tuple[dict[str, Any], int | None] | None:
    """The episode's current videos record and the camera-stats sample size,
    or ``None`` when this conversion computes no camera statistics or the
    episode's videos are not staged."""
    if conv.options.camera_stats_samples == 0 or conv.options.skip_videos or not conv.meta.video_keys:
        return None
    rec = conv.staging.current(VIDEOS, ep, conv.revision)
    if rec is None:
        return None
    return rec, _stats_samples(conv, conv.meta.episode(ep).length)


def _staged_camera_stats(conv: Conversion, ep: int) -> dict[str, Any]:
    """Camera key -> :func:`~lerobot_lance.stats.image_stats` of one episode as
    the videos stage computed them in its pass over the window, for the
    cameras it computed them for with the sample size this conversion asks."""
    from lerobot_lance.stats import stats_from_json

    staged = _staged_videos(conv, ep)
    if staged is None:
        return {}
    rec, samples = staged
    return {
        key: stats_from_json({key: cam["camera_stats"]})[key]
        for key, cam in rec["cameras"].items()
        if cam.get("camera_stats") and cam.get("camera_stats_samples") == samples
    }


def _camera_frames(conv: Conversion, ep: int, skip: Sequence[str] = ()) -> dict[str, Any]:
    """A deterministic sample of decoded frames (uint8 ``(n, H, W, 3)``) per video
    camera of one episode (but those in ``skip``), from its staged segment, or
    for a re-encoded segment from the same window of the source file (see
    :func:`video.sample_frames_rgb`)."""
    from lerobot_lance import video

    staged = _staged_videos(conv, ep)
    if staged is None:
        return {}
    rec, samples = staged
    out = {}
    for key, cam in rec["cameras"].items():
        if key in skip:
            continue
        if cam.get("method") == "reencode" or segment_in_source(cam):
            # A re-encoded segment has few keyframes (each sample would decode
            # from far back); its frames equal the source window's pixel for
            # pixel (lossless), whose keyframes are where the source put them.
            # A window, or a segment kept in its shard, is that window.
            root = conv.source.fetch([cam["source_path"]])
            frames = video.sample_frames_rgb(root / cam["source_path"], samples, cam["from_timestamp"], cam["to_timestamp"])
        else:
            frames = video.sample_frames_rgb(camera_file(conv, cam), samples)
        if len(frames):
            out[key] = frames
    return out


#: Episodes whose numeric statistics are computed together
#: (:func:`~lerobot_lance.stats.compute_episodes_stats`): their rows are held
#: at once (a few MB for a humanoid's state/action columns).
STATS_BATCH_EPISODES = 64


def stage_episode_stats(conv: Conversion, episodes: Sequence[int], on_progress: ProgressCallback | None = None) -> BatchResult:
    """Per-episode statistics (LeRobot's layout, v3.0 quantiles included) of
    every numeric feature, and per camera of a deterministic sample of decoded
    frames; compared with the stats the source declares for that episode.

    Reads the checked frames from the source (:meth:`Conversion.read_frames`:
    an episode whose data file changed since ``episode_frames`` fails, named)
    and the staged segments (``stage_episode_videos``); an episode missing
    either is recorded as failed. Episodes are read (and sampled camera
    frames decoded) on a thread pool of ``options.workers`` threads, then the
    numeric statistics of up to :data:`STATS_BATCH_EPISODES` episodes computed
    together while the pool reads the next batch; a batch that fails is
    computed again episode by episode, so only the bad episodes fail, each
    with its own message. Each episode's comparison with its declared stats
    and its record are done on the pool too; outcomes keep episode order.
    """
    from lerobot_lance import stats as st

    meta, result = conv.meta, BatchResult()

    def load(ep: int) -> tuple[int, Any]:
        """The episode's rows and camera stats, or why it fails."""
        if conv.staging.current(FRAMES, ep, conv.revision) is None:
            return ep, "frames not staged (episode_frames failed or did not run)"
        try:
            frames = conv.read_frames(ep)
            camera_stats = _staged_camera_stats(conv, ep)
            for key, sampled in _camera_frames(conv, ep, skip=list(camera_stats)).items():
                try:  # computed here, so a batch holds no decoded frames
                    camera_stats[key] = st.image_stats(sampled)
                except ValueError as exc:
                    raise ValueError(f"camera_frames[{key!r}]: {exc}") from exc
        except (ValueError, LeRobotLanceError) as err:
            return ep, f"episode {ep}: statistics failed: {err}"
        return ep, (frames, camera_stats)

    def compute(loaded: list[tuple[int, Any]]) -> dict[int, Any]:
        """Episode -> its stats, or why they failed (a failing batch: episode by episode)."""
        try:
            stats = st.compute_episodes_stats(
                [frames for _, (frames, _) in loaded], meta, image_sample_size=conv.options.camera_stats_samples,
                camera_stats=[camera_stats for _, (_, camera_stats) in loaded],
            )
        except (ValueError, LeRobotLanceError) as err:
            if len(loaded) == 1:
                return {loaded[0][0]: f"episode {loaded[0][0]}: statistics failed: {err}"}
            return {ep: compute([(ep, x)])[ep] for ep, x in loaded}
        return dict(zip([ep for ep, _ in loaded], stats, strict=True))

    def finish(ep: int, stats: dict[str, Any]) -> Any:
        """Compare the episode's stats with the declared ones and write its record; the outcome."""
        cmp = st.compare_stats(stats, meta.episode(ep).declared_stats, episode_index=ep)
        conv.staging.write_record(
            STATS, ep,
            {"episode_index": ep, "status": "ok", "revision": revision, "stats": st.stats_to_json(stats),
             "struct": st.episode_stats_to_struct(stats)},
        )
        return _stats_outcome(cmp, f"episode {ep}", ep)

    revision = conv.revision
    outcomes = []
    batches = [list(episodes[first:first + STATS_BATCH_EPISODES]) for first in range(0, len(episodes), STATS_BATCH_EPISODES)]
    # Decoding sampled camera frames, reading parquet and writing records release
    # the GIL: the pool reads the next batch while this thread computes the
    # current one, then compares and writes its records.
    with ThreadPoolExecutor(max_workers=max(1, conv.options.workers)) as pool:
        reading = [pool.submit(load, ep) for ep in batches[0]] if batches else []
        for k in range(len(batches)):
            loaded = [f.result() for f in reading]
            reading = [pool.submit(load, ep) for ep in batches[k + 1]] if k + 1 < len(batches) else []
            good = [(ep, x) for ep, x in loaded if not isinstance(x, str)]
            computed = compute(good) if good else {}
            finishing = []
            for ep, x in loaded:
                stats = x if isinstance(x, str) else computed[ep]
                if isinstance(stats, str):
                    _record_failure(conv, STATS, ep, stats, result)
                    continue
                finishing.append((ep, pool.submit(finish, ep, stats)))
            for ep, done in finishing:
                outcomes.append(done.result())
                result.ok.append(ep)
                if on_progress:
                    on_progress(1)
    result.outcomes = outcomes
    return result


def _stats_outcome(cmp: Any, where: str, ep: int | None) -> Any:
    from lerobot_lance.quality.result import CheckOutcome, Offender

    offenders = [
        Offender(file=where, episode_index=ep, detail=f"{m.feature}/{m.stat} differs (max abs diff {m.max_abs_diff:.3g})",
                 expected=_short_list(m.declared), found=_short_list(m.computed))
        for m in cmp.mismatches
    ]
    return CheckOutcome.from_offenders(
        "stats_match_source", offenders, severity="WARN",
        description="recomputed statistics agree with the ones the source declares",
        metadata={"compared": cmp.compared}, note=cmp.note,
    )


def _short_list(values: Any, limit: int = 4) -> str:
    import numpy as np

    flat = np.asarray(values, dtype=np.float64).ravel()
    return "[" + ", ".join(f"{x:.6g}" for x in flat[:limit]) + (", ...]" if flat.size > limit else "]")


@dataclass
class DatasetStatsSummary:
    """What :func:`aggregate_dataset_stats` computed and wrote."""

    stats: dict[str, Any]
    episodes: int
    outcomes: list[Any]
    ranges_markdown: str = ""
    plot_path: str | None = None
    plot_markdown: str = ""


def aggregate_dataset_stats(conv: Conversion) -> DatasetStatsSummary:
    """Aggregate the staged per-episode stats of the published episodes like
    LeRobot's ``aggregate_stats`` (count-weighted mean, pooled variance, global
    min/max, summed counts, count-weighted quantiles), compare with the
    source's ``meta/stats.json``, and stage the result as
    ``<staging>/dataset_stats.json`` (LeRobot's stats.json layout), plus a
    mean ± std plot of state and action."""
    import base64

    from lerobot_lance import stats as st

    cov = coverage(conv)
    per_episode = [st.stats_from_json(conv.staging.current(STATS, ep, conv.revision)["stats"]) for ep in cov.included]
    if not per_episode:
        raise SourceDataError(str(conv.staging.root), "no episode statistics staged", expected=">= 1 episode", found=0)
    agg = st.aggregate_stats(per_episode)
    as_json = st.stats_to_json(agg)
    conv.staging.write_json("dataset_stats.json", {"revision": conv.revision, "episodes": cov.included, "stats": as_json})
    cmp = st.compare_stats(agg, declared_stats_of(conv, cov.included))
    summary = DatasetStatsSummary(as_json, len(per_episode), [_stats_outcome(cmp, "meta/stats.json", None)], st.ranges_markdown(agg))
    keys = [k for k in ("observation.state", "action") if k in agg]
    if keys and conv.options.stats_plot:
        png = conv.staging.root / "dataset_stats.png"
        st.plot_mean_std_png(agg, keys, png)
        summary.plot_path = str(png)
        summary.plot_markdown = f"![mean ± std](data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()})"
    return summary


def declared_stats_of(conv: Conversion, episodes: Sequence[int]) -> dict[str, Any] | None:
    """What the source declares for the statistics of these episodes together.

    Every episode: the source's ``meta/stats.json``. A subset: LeRobot's
    aggregate of the source's per-episode stats of those episodes (v2.1
    ``episodes_stats.jsonl``, v3.0 ``stats/*`` columns) when it declares them
    for each, else ``None`` (nothing to compare with: the full-dataset
    ``stats.json`` does not describe a subset).
    """
    from lerobot_lance import stats as st

    meta = conv.meta
    if set(episodes) >= set(meta.episode_indices):
        return meta.declared_stats
    declared = [meta.episode(e).declared_stats for e in episodes]
    if not declared or any(not d for d in declared):
        return None
    try:
        return st.stats_to_json(st.aggregate_stats([st.stats_from_json(d) for d in declared]))
    except (ValueError, KeyError, TypeError):
        return None


def read_dataset_stats_json(conv: Conversion) -> dict[str, Any] | None:
    """The staged dataset stats (LeRobot stats.json layout) if they are of the pinned revision."""
    d = read_json(conv.staging.json_file("dataset_stats.json"))
    return d["stats"] if d and d.get("revision") == conv.revision else None


def content_outcomes(conv: Conversion, episodes: Sequence[int]) -> list[Any]:
    """Non-blocking content checks (severity WARN) over these staged episodes:
    frozen actuators, clipped values, action jumps, ... (see
    :mod:`lerobot_lance.quality.content_rules`)."""
    from lerobot_lance.quality.content_rules import ContentThresholds, check_content

    if not episodes:
        return []
    thresholds = ContentThresholds(policy_window_frames=conv.options.policy_window_frames)
    return check_content(conv.meta, _source_named(conv, episodes), thresholds)


def _source_named(conv: Conversion, episodes: Sequence[int]) -> dict[int, pa.Table]:
    """Checked frames of these episodes (read from the source) with their LeRobot (dotted) column names."""
    names = {conv.meta.features[k].column: k for k in conv.meta.frame_columns()}
    out = {}
    for ep in episodes:
        t = conv.read_frames(ep)
        out[ep] = t.rename_columns([names.get(n, n) for n in t.column_names])
    return out
