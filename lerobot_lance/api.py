"""Python API: the CLI's verbs as functions.

>>> from lerobot_lance import scan, convert, doctor
>>> report = scan("../shared/datasets/g1_v30")          # metadata only
>>> summary = convert("../shared/datasets/g1_v30", "out/g1")  # runs the Dagster graph in-process
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lerobot_lance.model import DatasetMeta
from lerobot_lance.readers import read_dataset_meta
from lerobot_lance.source import open_source


def scan(source: str, revision: str | None = None, *, probe_videos: bool = True) -> dict[str, Any]:
    """Describe a dataset from its metadata, downloading nothing but ``meta/``.

    Args:
        source: local directory or Hub dataset id.
        revision: Hub branch, tag or commit.
        probe_videos: for local sources, read the codec and resolution of the
            first video file per camera from its container header (demux only);
            for Hub sources they come from ``info.json`` alone.

    Returns:
        ``{"source", "revision", "codebase_version", "fps", "episodes", "frames",
        "robot_type", "cameras": {key: {"dtype", "codec", "width", "height", "pix_fmt", "fps"}},
        "features": {key: {"dtype", "shape"}}, "tasks": {index: text}}``.

    Raises:
        UnsupportedFormatError, SourceDataError, SourceNotFoundError.
    """
    src = open_source(source, revision)
    meta = read_dataset_meta(src.meta_root())
    cameras = {k: _camera_info(meta, k) for k in meta.camera_keys}
    if probe_videos and src.__class__.__name__ == "LocalSource":
        from lerobot_lance import video

        for ref in meta.video_files():
            cam = cameras[ref.video_key]
            if cam.get("probed"):
                continue
            path = src.meta_root() / ref.relative_path
            if path.is_file():
                try:
                    p = video.probe_video(path)
                    cam.update(codec=p.codec, width=p.width, height=p.height, pix_fmt=p.pix_fmt, probed=True)
                except Exception:  # noqa: BLE001 - scan reports metadata; doctor diagnoses files
                    pass
    return {
        "source": src.description,
        "revision": src.revision(),
        "codebase_version": meta.codebase_version,
        "robot_type": meta.info.get("robot_type"),
        "fps": meta.fps,
        "episodes": len(meta.episodes),
        "frames": meta.total_frames,
        "cameras": cameras,
        "features": {k: {"dtype": f.dtype, "shape": list(f.shape)} for k, f in meta.features.items()},
        "tasks": {str(i): t for i, t in sorted(meta.tasks.items())},
    }


def _camera_info(meta: DatasetMeta, key: str) -> dict[str, Any]:
    f = meta.features[key]
    info = f.info
    h, w = (f.shape[0], f.shape[1]) if len(f.shape) >= 2 else (None, None)
    if f.names and isinstance(f.names, list) and f.names[:1] == ["channels"] and len(f.shape) == 3:
        h, w = f.shape[1], f.shape[2]
    return {
        "dtype": f.dtype,
        "codec": info.get("video.codec") if f.is_video else "image",
        "width": info.get("video.width", w),
        "height": info.get("video.height", h),
        "pix_fmt": info.get("video.pix_fmt"),
        "fps": info.get("video.fps", meta.fps),
        "probed": False,
    }


def convert(
    source: str,
    output: str,
    *,
    revision: str | None = None,
    episodes: Sequence[int] | None = None,
    overwrite: bool = False,
    progress: Callable[[str, int], Any] | None = None,
    **options: Any,
) -> Any:
    """Convert a LeRobot dataset to the three Lance tables by running its
    Dagster graph in-process (see :func:`pipelines.runner.run_conversion`,
    which documents the arguments, return value and errors).

    ``options`` are :class:`~lerobot_lance.conversion.ConvertOptions` fields
    (``reencode``, ``skip_videos``, ``exclude_failed_episodes``, ``tolerance_s``,
    ``camera_stats_samples``, ``deep_video_check``, ``workers``, ``layout``:
    ``"card"`` (default) or ``"lerobot"``, the layout LeRobot's own Lance
    reader serves) and ``backfill_batch_size``.
    """
    from pipelines.runner import run_conversion  # the Dagster layer, imported only here

    return run_conversion(
        source, output, revision=revision, episodes=episodes, overwrite=overwrite, options=options, progress=progress
    )


def doctor(source: str, revision: str | None = None, *, deep: bool = False, **kwargs: Any) -> list[Any]:
    """Run the source-side quality checks without converting
    (:func:`lerobot_lance.quality.doctor.run_doctor`).

    Returns:
        A list of :class:`~lerobot_lance.quality.result.CheckOutcome`, one per
        rule; :func:`lerobot_lance.quality.doctor.exit_code` counts the failed ones.
    """
    from lerobot_lance.quality.doctor import run_doctor

    return run_doctor(source, revision, deep=deep, **kwargs)
