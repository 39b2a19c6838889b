"""Dagster resources: source resolution, Lance storage, codec settings, progress.

Each resource is a thin configurable wrapper over the core package
(:mod:`lerobot_lance`); secrets come from ``EnvVar`` at launch.
"""


from collections.abc import Callable
from typing import Any

from dagster import ConfigurableResource

from lerobot_lance.conversion import Conversion, ConvertOptions
from lerobot_lance.source import DatasetSource, open_source
from pipelines.config import DatasetConfig


class LeRobotSourceResource(ConfigurableResource):
    """Opens dataset sources: local directories, Hub repos via huggingface_hub, ``s3://`` prefixes.

    Attributes:
        hf_token: Hub token; set it from ``EnvVar("HF_TOKEN")`` (hidden in the
            UI); ``None`` lets huggingface_hub find ``HF_TOKEN`` or a stored login.
        cache_dir: huggingface_hub cache; ``None`` uses ``HF_HUB_CACHE``.
    """

    hf_token: str | None = None
    cache_dir: str | None = None

    def open(self, source: str, revision: str | None = None, storage_options: dict[str, str] | None = None) -> DatasetSource:
        """The source (:func:`lerobot_lance.source.open_source`); ``storage_options``
        reach ``s3://`` sources (the dataset's object-store options)."""
        return open_source(source, revision, cache_dir=self.cache_dir, token=self.hf_token, storage_options=storage_options)


class LanceStorageResource(ConfigurableResource):
    """Where tables and staged per-episode output go.

    Attributes:
        staging_root: local folder holding every output's staging area
            (``<staging_root>/<output name>-<hash of the output URI>``);
            ``None``: ``$LEROBOT_LANCE_STAGING`` or
            ``${XDG_CACHE_HOME:-~/.cache}/lerobot-lance/staging``
            (:func:`lerobot_lance.staging.default_staging_dir`). For an
            object-store output this folder is the local working copy of a
            shared staging area (see ``shared_staging_root``). A dataset's
            ``options.staging_dir`` (datasets.yaml: a directory, or an
            object-store URI for a shared staging area) names its staging
            area itself and wins over both. Staging never lives in the output.
        shared_staging_root: object-store prefix holding the shared staging
            area of every object-store output (``<root>/<name>-<hash>``), so
            that partitions on several machines stage into one place
            (:mod:`lerobot_lance.shared_staging`); ``None``: next to each
            output, ``<parent>/.lerobot-lance-staging/<name>-<hash>``.
        storage_options: object-store options for Lance, ``meta/`` and the
            writer lock (:mod:`lerobot_lance.object_store`; credentials via
            ``EnvVar``, or the standard AWS variables). A dataset's own
            ``storage_options`` (datasets.yaml) win key by key.
        lock_wait_s: how long a step waits for the output's writer lock while
            another process holds it (seconds, default 600). The steps of one
            run take it in turn, and with the multiprocess or Celery executor
            they run in different processes (the publish run's three table
            steps at once); another conversion is kept out by the run queue's
            ``lerobot_lance/output_writer`` limit, and a shell ``convert``
            that holds the lock makes the step wait, then fail naming it.
    """

    staging_root: str | None = None
    shared_staging_root: str | None = None
    storage_options: dict[str, str] | None = None
    lock_wait_s: float = 600.0

    def conversion(self, cfg: DatasetConfig, codec: "VideoCodecResource | None" = None) -> Conversion:
        from lerobot_lance.object_store import is_object_store
        from lerobot_lance.shared_staging import default_shared_staging
        from lerobot_lance.staging import default_staging_dir

        staging = cfg.options.get("staging_dir")
        if staging is None and self.shared_staging_root and is_object_store(cfg.output):
            staging = default_shared_staging(cfg.output, self.shared_staging_root)
        cache = default_staging_dir(cfg.output, self.staging_root) if self.staging_root else None
        opts = {k: v for k, v in cfg.options.items() if k in ConvertOptions.__dataclass_fields__}
        if codec is not None:
            opts.setdefault("reencode", codec.reencode)
            opts.setdefault("workers", codec.workers)
            opts.setdefault("reencode_crf", codec.reencode_crf)
            opts.setdefault("reencode_preset", codec.reencode_preset)
        opts.setdefault("lock_wait_s", self.lock_wait_s)
        opts["storage_options"] = {**(self.storage_options or {}), **(cfg.options.get("storage_options") or {})} or None
        return Conversion.at(cfg.output, staging, ConvertOptions(**opts), cache_dir=cache)


class VideoCodecResource(ConfigurableResource):
    """Video handling defaults (a dataset's ``options`` override them).

    Attributes:
        reencode: ``"auto"`` (stream copy when a v3.0 window starts on a
            keyframe, else lossless libx264), ``"always"`` or ``"never"``.
        workers: episodes whose segments are cut concurrently in one run.
        reencode_crf: libx264 rate of the re-encode fallback: ``0`` (default)
            means ``qp=0``, lossless (pixel-identical to the decoded source,
            about 5x the bytes of a lossy original); ``N > 0`` means ``crf=N``
            (lossy, smaller; the segment then differs from the source pixels).
        reencode_preset: libx264 preset of the re-encode fallback (default
            ``veryfast``; see ``lerobot_lance.video.cut._DEFAULT_PRESET`` for the
            measured speed/size of each).

    Only ``episode_videos`` reads these (the one asset that cuts segments);
    a dataset's ``options`` (``reencode_crf``, ``reencode_preset``) win.
    The codec itself stays libx264 (H.264, what every LeRobot reader decodes).
    """

    reencode: str = "auto"
    workers: int = 2
    reencode_crf: int = 0
    reencode_preset: str = "veryfast"


class ProgressReporter:
    """Receives progress per stage; the CLI passes one that drives rich bars.

    Plain Python object used as a Dagster resource in-process; ``advance`` is
    called with the stage (asset) name and how many more episodes or tables it
    finished.
    """

    def __init__(self, callback: Callable[[str, int], Any] | None = None) -> None:
        self.callback = callback

    def advance(self, stage: str, n: int = 1) -> None:
        if self.callback is not None:
            self.callback(stage, n)

    def for_stage(self, stage: str) -> Callable[[int], None]:
        return lambda n: self.advance(stage, n)
