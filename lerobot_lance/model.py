"""One normalized model of a LeRobot dataset's metadata, whatever its version.

Readers in :mod:`lerobot_lance.readers` turn v2.0, v2.1 and v3.0 ``meta/``
folders into these frozen dataclasses; everything downstream (conversion,
statistics, quality rules, the CLI and the Dagster assets) reads only this.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lerobot_lance.formats import CAMERA_DTYPES, INDEX_COLUMNS, column_name


@dataclass(frozen=True)
class Feature:
    """One entry of ``info.json["features"]``.

    Attributes:
        key: LeRobot feature key, e.g. ``"observation.state"``.
        dtype: LeRobot dtype string: ``"float32"``, ``"int64"``, ``"bool"``,
            ``"string"``, ``"video"`` or ``"image"``.
        shape: the per-frame shape, e.g. ``(26,)`` for a vector or
            ``(480, 640, 3)`` (height, width, channels) for a camera.
        names: the feature's ``names`` entry, verbatim.
        info: the camera's ``info`` dict (``video.codec``, ``video.fps``, ...) or ``{}``.
    """

    key: str
    dtype: str
    shape: tuple[int, ...]
    names: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def column(self) -> str:
        """Output column name (dots replaced by underscores)."""
        return column_name(self.key)

    @property
    def is_camera(self) -> bool:
        return self.dtype in CAMERA_DTYPES

    @property
    def is_video(self) -> bool:
        return self.dtype == "video"

    @property
    def is_image(self) -> bool:
        return self.dtype == "image"

    @property
    def is_numeric(self) -> bool:
        """True for int/float/bool features (the ones statistics are computed for)."""
        return self.dtype.startswith(("float", "int", "uint")) or self.dtype == "bool"

    @property
    def width(self) -> int:
        """Number of scalars per frame (product of ``shape``); 1 for scalars."""
        n = 1
        for d in self.shape:
            n *= int(d)
        return n


@dataclass(frozen=True)
class VideoRef:
    """Where one camera's frames of one episode live.

    Attributes:
        video_key: camera feature key, e.g. ``"observation.images.cam_high"``.
        relative_path: mp4 path relative to the source root.
        chunk_index: chunk of that file (v2.x: ``episode_chunk``).
        file_index: file index within the chunk (v2.x: the episode index).
        from_timestamp: start of the episode's window in the file, seconds.
        to_timestamp: end of the window as the metadata declares it, seconds
            (exclusive; ``from + length / fps`` in LeRobot's own files; some
            real datasets write the last frame's timestamp instead). The
            converter reads the window :meth:`window` gives, not this.
        whole_file: True when the file holds exactly this episode (v2.x), so
            the episode's segment is the file itself, copied verbatim.
    """

    video_key: str
    relative_path: str
    chunk_index: int
    file_index: int
    from_timestamp: float
    to_timestamp: float
    whole_file: bool

    def window(self, length: int, fps: float) -> tuple[float, float]:
        """The episode's frames in the file: ``(from_timestamp, from_timestamp + length / fps)``, seconds.

        LeRobot reads frame ``i`` of an episode at ``from_timestamp +
        timestamp_i`` (lerobot 0.4.4, ``LeRobotDataset._query_videos``), so an
        episode is its ``length`` frames from ``from_timestamp``; the declared
        ``to_timestamp`` plays no part (the ``episode_windows_match_length``
        rule warns when it disagrees).
        """
        return self.from_timestamp, self.from_timestamp + length / float(fps)


@dataclass(frozen=True)
class EpisodeMeta:
    """One episode as the metadata describes it.

    Attributes:
        episode_index: the episode's id.
        length: number of frames.
        tasks: task strings, in the order the metadata lists them.
        dataset_from_index: global ``index`` of the first frame.
        dataset_to_index: global ``index`` one past the last frame
            (``dataset_from_index + length`` in a well-formed dataset).
        data_path: parquet holding the episode's rows, relative to the source root.
        videos: per video camera key, where its frames are.
        declared_stats: per-episode stats the source declares (v2.1
            ``episodes_stats.jsonl``, v3.0 ``stats/<feature>/<stat>`` columns),
            as ``{feature: {stat: list}}``, or ``None``.
    """

    episode_index: int
    length: int
    tasks: tuple[str, ...]
    dataset_from_index: int
    dataset_to_index: int
    data_path: str
    videos: dict[str, VideoRef] = field(default_factory=dict)
    declared_stats: dict[str, dict[str, Any]] | None = None


@dataclass(frozen=True)
class DatasetMeta:
    """The whole dataset's metadata, normalized across versions.

    Attributes:
        codebase_version: ``"v2.0"``, ``"v2.1"`` or ``"v3.0"``.
        fps: frames per second (``info.json["fps"]``).
        features: feature key -> :class:`Feature`, in ``info.json`` order.
        tasks: task_index -> task string.
        episodes: every episode, sorted by ``episode_index``.
        info: ``info.json`` verbatim.
        declared_stats: ``meta/stats.json`` as ``{feature: {stat: list}}``, or ``None``.
    """

    codebase_version: str
    fps: int
    features: dict[str, Feature]
    tasks: dict[int, str]
    episodes: tuple[EpisodeMeta, ...]
    info: dict[str, Any]
    declared_stats: dict[str, dict[str, Any]] | None = None

    @property
    def one_file_per_episode(self) -> bool:
        """True for v2.x, whose ``data_path`` template names one parquet per
        episode (``episode_{episode_index:06d}.parquet``); v3.0 shards hold many."""
        return self.codebase_version.startswith("v2")

    @property
    def total_frames(self) -> int:
        """Sum of episode lengths (what the episodes metadata implies)."""
        return sum(e.length for e in self.episodes)

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.is_camera]

    @property
    def video_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.is_video]

    @property
    def image_keys(self) -> list[str]:
        return [k for k, f in self.features.items() if f.is_image]

    @property
    def numeric_keys(self) -> list[str]:
        """Non-camera numeric features (state, action, index columns, ...)."""
        return [k for k, f in self.features.items() if f.is_numeric and not f.is_camera]

    @property
    def episode_indices(self) -> list[int]:
        return [e.episode_index for e in self.episodes]

    def episode(self, episode_index: int) -> EpisodeMeta:
        """The episode with that index.

        Raises:
            KeyError: no such episode in the metadata.
        """
        for e in self.episodes:
            if e.episode_index == episode_index:
                return e
        raise KeyError(f"episode {episode_index} is not in the dataset's episodes metadata")

    def data_files(self) -> list[str]:
        """Distinct data parquet paths, in episode order."""
        return list(dict.fromkeys(e.data_path for e in self.episodes))

    def video_files(self) -> list[VideoRef]:
        """One :class:`VideoRef` per distinct source mp4 (the first episode's window), in
        camera then chunk/file order."""
        seen: dict[tuple[str, str], VideoRef] = {}
        for e in self.episodes:
            for key, ref in e.videos.items():
                seen.setdefault((key, ref.relative_path), ref)
        order = {k: i for i, k in enumerate(self.video_keys)}
        return sorted(seen.values(), key=lambda r: (order.get(r.video_key, 0), r.chunk_index, r.file_index))

    def frame_columns(self) -> list[str]:
        """Source parquet columns that go to the frames table (every non-video feature)."""
        return [k for k, f in self.features.items() if not f.is_video]

    def is_index_column(self, key: str) -> bool:
        return key in INDEX_COLUMNS
