"""Python API: the CLI's verbs as functions.

>>> from lerobot_lance import scan, convert, doctor
>>> report = scan("../shared/datasets/g1_v30")          # metadata only
>>> summary = convert("../shared/datasets/g1_v30", "out/g1")  # runs the Dagster graph in-process
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lerobot_lance import formats
from lerobot_lance.camera_shape import camera_dims
from lerobot_lance.model import DatasetMeta, Feature
from lerobot_lance.readers import read_dataset_meta
from lerobot_lance.source import open_source


def scan(source: str, revision: str | None = None, *, probe_videos: bool = True) -> dict[str, Any]:
    """Describe a dataset from its metadata, downloading nothing but ``meta/``.

    A dataset whose metadata breaks a rule (a path template with a field
    LeRobot does not define, totals that disagree, ...) is still described as
    far as ``meta/`` can be read: ``info.json``'s fps, features and cameras,
    and the episodes, frames and tasks counted from the episodes and tasks
    files (``info.json``'s totals when those cannot be read); every broken
    rule is listed in ``problems``.

    Args:
        source: local directory or Hub dataset id.
        revision: Hub branch, tag or commit.
        probe_videos: for local sources, read the codec and resolution of the
            first video file per camera from its container header (demux only);
            for Hub sources they come from ``info.json`` alone.

    Returns:
        ``{"source", "revision", "codebase_version", "fps", "episodes", "frames",
        "robot_type", "cameras": {key: {"dtype", "codec", "width", "height", "channels", "pix_fmt", "fps"}},
        "features": {key: {"dtype", "shape"}}, "tasks": {index: text},
        "problems": [{"check", "message", "offenders": [...]}, ...]}``
        (``problems`` empty for sound metadata; camera width/height follow
        :func:`lerobot_lance.camera_shape.camera_dims`).

    Raises:
        UnsupportedFormatError: ``meta/info.json`` is missing, unreadable or
            of an unsupported version (nothing can be described).
        SourceNotFoundError: the source does not exist or cannot be reached.
    """
    from lerobot_lance.errors import SourceDataError, UnsupportedFormatError
    from lerobot_lance.quality.source_rules import check_source_meta

    src = open_source(source, revision)
    root = src.meta_root()
    outcomes = check_source_meta(root)
    problems = [
        {"check": o.name, "message": o.message, "offenders": [x.to_dict() for x in o.offenders]}
        for o in outcomes if not o.passed and o.severity == "ERROR"
    ]
    try:
        meta: DatasetMeta | None = read_dataset_meta(root)
    except UnsupportedFormatError:
        raise
    except SourceDataError as e:
        meta = None
        if not problems:
            problems.append({"check": None, "message": str(e), "offenders": []})
    if meta is None:
        report = _partial_scan(root)
    else:
        report = {
            "codebase_version": meta.codebase_version,
            "robot_type": meta.info.get("robot_type"),
            "fps": meta.fps,
            "episodes": len(meta.episodes),
            "frames": meta.total_frames,
            "cameras": {k: _camera_info(meta.features[k], meta.fps) for k in meta.camera_keys},
            "features": {k: {"dtype": f.dtype, "shape": list(f.shape)} for k, f in meta.features.items()},
            "tasks": {str(i): t for i, t in sorted(meta.tasks.items())},
        }
    cameras = report["cameras"]
    if meta is not None and probe_videos and src.__class__.__name__ == "LocalSource":
        from lerobot_lance import video

        for ref in meta.video_files():
            cam = cameras[ref.video_key]
            if cam.get("probed"):
                continue
            path = root / ref.relative_path
            if path.is_file():
                try:
                    p = video.probe_video(path)
                    cam.update(codec=p.codec, width=p.width, height=p.height, pix_fmt=p.pix_fmt, probed=True)
                except Exception:  # noqa: BLE001 - scan reports metadata; doctor diagnoses files
                    pass
    return {"source": src.description, "revision": src.revision(), **report, "problems": problems}


def _camera_info(f: Feature, fps: float | None) -> dict[str, Any]:
    info = f.info
    dims = camera_dims(f.shape, f.names)
    return {
        "dtype": f.dtype,
        "codec": info.get("video.codec") if f.is_video else "image",
        "width": info.get("video.width", dims.width),
        "height": info.get("video.height", dims.height),
        "channels": info.get("video.channels", dims.channels),
        "pix_fmt": info.get("video.pix_fmt"),
        "fps": info.get("video.fps", fps),
        "probed": False,
    }


def _partial_scan(root: Path) -> dict[str, Any]:
    """What :func:`scan` can read of a ``meta/`` that :func:`read_dataset_meta`
    refuses: ``info.json`` (its version was checked already), then the episode
    and task counts, each read on its own so one broken file does not hide the others."""
    info = json.loads((root / formats.INFO_PATH).read_text(encoding="utf-8"))
    fps = info.get("fps") if isinstance(info.get("fps"), (int, float)) else None
    features: dict[str, Feature] = {}
    for key, spec in (info.get("features") or {}).items() if isinstance(info.get("features"), dict) else []:
        if isinstance(spec, dict) and isinstance(spec.get("dtype"), str):
            shape = spec.get("shape") if isinstance(spec.get("shape"), list) else []
            shape = tuple(d for d in shape if isinstance(d, int) and not isinstance(d, bool))
            features[key] = Feature(key, spec["dtype"], shape, spec.get("names"), spec.get("info") if isinstance(spec.get("info"), dict) else {})
    episodes, frames = _count_episodes(root, info)
    return {
        "codebase_version": info.get("codebase_version"),
        "robot_type": info.get("robot_type"),
        "fps": fps,
        "episodes": episodes,
        "frames": frames,
        "cameras": {k: _camera_info(f, fps) for k, f in features.items() if f.is_camera},
        "features": {k: {"dtype": f.dtype, "shape": list(f.shape)} for k, f in features.items()},
        "tasks": _read_tasks_loosely(root, info),
    }


def _count_episodes(root: Path, info: dict[str, Any]) -> tuple[int | None, int | None]:
    """(episodes, frames) from the episodes metadata, else ``info.json``'s totals."""
    try:
        if info.get("codebase_version") == "v3.0":
            import pyarrow.parquet as pq

            lengths = [n for f in sorted(root.glob(formats.EPISODES_PARQUET_GLOB)) for n in pq.ParquetFile(f).read(columns=["length"])["length"].to_pylist()]
        else:
            lines = (root / formats.EPISODES_JSONL_PATH).read_text(encoding="utf-8").splitlines()
            lengths = [json.loads(line)["length"] for line in lines if line.strip()]
        if lengths and all(isinstance(n, int) for n in lengths):
            return len(lengths), sum(lengths)
    except Exception:  # noqa: BLE001 - fall back to info.json; the problems list says what is wrong
        pass
    tot_e, tot_f = info.get("total_episodes"), info.get("total_frames")
    return (tot_e if isinstance(tot_e, int) else None), (tot_f if isinstance(tot_f, int) else None)


def _read_tasks_loosely(root: Path, info: dict[str, Any]) -> dict[str, str]:
    try:
        if info.get("codebase_version") == "v3.0":
            import pyarrow.parquet as pq

            # lerobot 0.4 keeps the task strings as the pandas index (``__index_level_0__``)
            t = pq.ParquetFile(root / formats.TASKS_PARQUET_PATH).read().to_pydict()
            text = t.get("task") or next(v for k, v in t.items() if k != "task_index")
            tasks = {int(i): str(x) for i, x in zip(t["task_index"], text)}
        else:
            rows = [json.loads(line) for line in (root / formats.TASKS_JSONL_PATH).read_text(encoding="utf-8").splitlines() if line.strip()]
            tasks = {int(r["task_index"]): str(r["task"]) for r in rows}
        return {str(i): t for i, t in sorted(tasks.items())}
    except Exception:  # noqa: BLE001 - the problems list says what is wrong
        return {}


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
    reader serves; the camera encodings ``encode_images="video"``,
    ``video_preset`` (``"lerobot"``: libsvtav1 yuv420p g=2 crf=30, or
    ``"lossless"``), ``video_codec``/``video_crf``/``video_qp``/``video_gop``/``video_pix_fmt``,
    ``frames_format="jpeg"``, ``jpeg_quality``, ``jpeg_subsampling``,
    ``reencode_crf``, ``reencode_preset``: see :mod:`lerobot_lance.encodings`)
    and ``backfill_batch_size``; ``staging_dir``: the staging area, a
    directory or an object-store URI shared by every machine (default for an
    object-store output: next to it on the store, see
    :meth:`~lerobot_lance.conversion.Conversion.at`). The returned summary's ``encodings`` gives
    per camera the PSNR, share of differing pixels and bytes per frame.
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


# Dataset tools on outputs (lerobot_lance/tools): LeRobot's curation verbs on the Lance tables.
from lerobot_lance.tools import (  # noqa: E402 - re-exported API, after the conversion verbs
    ToolError,
    ToolResult,
    add_features,
    delete_episodes,
    merge_datasets,
    push_to_hub,
    remove_features,
    split_dataset,
)
