"""Image cameras to video: each episode's images of each ``dtype: image``
camera encoded into one mp4 with PyAV, per episode (each Dagster episode
partition encodes its own), then decoded back in full to count the frames and
compare every pixel with the source image.

What LeRobot does (lerobot ``datasets/dataset_tools.py``,
``convert_image_to_video_dataset``): encode the images with ``libsvtav1``,
``yuv420p``, ``g=2``, ``crf=30`` and rewrite the feature as ``dtype: video``
with its ``info`` (``get_video_info``). Here the same defaults are the
``"lerobot"`` preset (:mod:`lerobot_lance.encodings.settings`), and the output
``meta/info.json`` describes the camera the same way
(:mod:`lerobot_lance.encodings.output`). Unlike LeRobot, one mp4 holds one
episode (the episodes table keeps one standalone segment per episode; the
``lerobot`` layout's ``videos`` table one row per episode and camera).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lerobot_lance.encodings.fidelity import Fidelity
from lerobot_lance.encodings.settings import VideoSettings, video_settings
from lerobot_lance.errors import SourceDataError

if TYPE_CHECKING:
    from lerobot_lance.model import EpisodeMeta

#: A :class:`lerobot_lance.conversion.Conversion` (not imported: the
#: conversion imports this module).
Conversion = Any

#: ``method`` of a staged camera record whose mp4 this module encoded.
METHOD = "encode"
#: Muxer options (as :mod:`lerobot_lance.video`): ``moov`` first.
_MP4_OPTIONS = {"movflags": "faststart"}

# SVT-AV1 prints its configuration to stderr for every encoder it opens;
# SVT_LOG=1 keeps errors only (read by the library when an encoder starts).
os.environ.setdefault("SVT_LOG", "1")


def decode_image(data: bytes, where: str = "", episode_index: int | None = None) -> np.ndarray:
    """One encoded image (PNG, JPEG, ... as LeRobot stores them) as RGB.

    Returns:
        ``uint8`` array ``(height, width, 3)``; grey or RGBA images are
        converted to RGB (Pillow ``convert("RGB")``), as a video stream holds 3 channels.

    Raises:
        SourceDataError: the bytes are not an image Pillow can decode.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SourceDataError(where, f"image does not decode ({exc})", episode_index=episode_index,
                              expected="PNG/JPEG bytes", found=f"{len(data or b'')} bytes") from None


def encode_frames(frames: Iterable[np.ndarray], dst: str | os.PathLike[str], fps: int, settings: VideoSettings) -> tuple[int, int]:
    """Encode RGB frames into an mp4 at ``dst`` (frame ``i`` at ``i / fps``
    seconds; written to a temporary name and renamed into place).

    Args:
        frames: ``uint8`` ``(height, width, 3)`` RGB arrays, all the same size.
        fps: frames per second (the stream's rate and time base ``1/fps``).
        settings: codec, pixel format, GOP, crf or qp.

    Returns:
        ``(frames written, size of the file in bytes)``.

    Raises:
        ValueError: no frames, or frames of different sizes.
        av.error.FFmpegError: the encoder refuses the settings or the size.
    """
    import av

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    n = 0
    try:
        with av.open(str(tmp), "w", format="mp4", options=_MP4_OPTIONS) as out:
            stream = None
            for rgb in frames:
                if stream is None:
                    stream = out.add_stream(settings.codec, rate=int(fps), options=settings.encoder_options())
                    stream.height, stream.width = int(rgb.shape[0]), int(rgb.shape[1])
                    stream.pix_fmt = settings.pix_fmt
                    stream.gop_size = settings.gop
                elif rgb.shape[:2] != (stream.height, stream.width):
                    raise ValueError(f"frame {n} is {rgb.shape[1]}x{rgb.shape[0]}, the first was {stream.width}x{stream.height}")
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[..., :3]), format="rgb24")
                frame.pts = n
                for pkt in stream.encode(frame):
                    out.mux(pkt)
                n += 1
            if stream is None:
                raise ValueError("no frames to encode")
            for pkt in stream.encode():
                out.mux(pkt)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n, dst.stat().st_size


def decode_all(path: str | os.PathLike[str] | io.BufferedIOBase | io.BytesIO) -> Iterator[np.ndarray]:
    """Every frame of the first video stream of a file (a path, or a file
    object such as ``io.BytesIO`` of a stored blob) as RGB (``uint8``
    ``(h, w, 3)``), in presentation order; streamed (one frame at a time)."""
    import av

    with av.open(path if hasattr(path, "read") else str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for f in c.decode(stream):
            yield f.to_ndarray(format="rgb24")


def stream_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``codec`` (decoder-side name, as ``ffprobe``'s ``codec_name``: ``av1``,
    ``h264``), ``pix_fmt``, ``width``, ``height`` of the file's video stream."""
    import av

    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return {"codec": cc.codec.name if cc.codec.name not in ("libdav1d", "libaom-av1") else "av1",
                "pix_fmt": cc.pix_fmt, "width": cc.width, "height": cc.height}


def _decode_row(data: bytes | None, row: int, where: str, episode_index: int) -> np.ndarray:
    """Image ``row`` of an episode (a null image is an error naming the row)."""
    if data is None:
        raise SourceDataError(where, f"row {row}: no image (null)", episode_index=episode_index, expected="image bytes", found="null")
    try:
        return decode_image(data, where, episode_index)
    except SourceDataError as err:
        raise SourceDataError(where, f"row {row}: {err.detail}", episode_index=episode_index, expected=err.expected, found=err.found) from None


def verify_encoded(path: str | os.PathLike[str], images: Sequence[bytes], where: str, episode_index: int) -> tuple[int, Fidelity]:
    """Decode the whole produced mp4 and compare frame ``i`` with source image
    ``i`` (decoded again from its bytes: memory stays at one frame of each).

    Returns:
        ``(frames decoded, Fidelity over min(decoded, len(images)) frames)``.
    """
    fid = Fidelity()
    n = 0
    for n, decoded in enumerate(decode_all(path), 1):
        if n <= len(images):
            fid.add(decode_image(images[n - 1], where, episode_index), decoded)
    return n, fid


def episode_images(conv: Conversion, e: EpisodeMeta, keys: Sequence[str]) -> dict[str, list[bytes]]:
    """The encoded image bytes of each camera in ``keys`` for episode ``e``, in
    row order, read from the source data parquet (only those columns and
    ``episode_index``; v3.0 shards filtered to the episode).

    Raises:
        SourceDataError: the data file is unreadable or lacks a camera column.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = conv.source.fetch([e.data_path])
    path = root / e.data_path
    try:
        table = pq.read_table(path, columns=[*keys, "episode_index"])
    except (pa.ArrowInvalid, OSError, KeyError) as exc:
        raise SourceDataError(e.data_path, f"cannot read the image columns ({exc})", episode_index=e.episode_index,
                              expected=f"columns {list(keys)}", found="unreadable") from None
    if not conv.meta.one_file_per_episode:
        table = table.filter(pc.equal(table["episode_index"], e.episode_index))
    out = {}
    for key in keys:
        col = table[key].combine_chunks()
        if pa.types.is_struct(col.type):
            col = col.field("bytes")
        out[key] = col.to_pylist()
    return out


def stage_episode(conv: Conversion, e: EpisodeMeta) -> tuple[dict[str, Any], list[Any]]:
    """Encode episode ``e``'s image cameras (``encode_images="video"``) into
    ``<staging>/videos/<camera>/episode_NNNNNN.mp4`` and verify them.

    Returns:
        ``(cameras, outcomes)``: per camera the staged record (``path``,
        ``method`` ``"encode"``, ``frame_count`` = frames decoded back,
        ``size_bytes``, window ``0 .. length / fps``, ``encoding`` settings,
        ``stream`` (codec, pix_fmt, size of the written stream), ``fidelity``
        against the source images) and the outcomes of the
        ``encoded_frame_count`` and ``decoded_pixels_match_source`` checks.
        ``({}, [])`` when the option is off or the dataset has no image camera.

        A source image that does not decode, or an encoder that refuses
        the frames, fails ``encoded_frame_count`` for that camera (file,
        episode, camera, row), and the camera has no record.

    Raises:
        SourceDataError: the data file's image columns cannot be read.
    """
    from lerobot_lance.encodings.output import encoded_image_keys
    from lerobot_lance.quality.encoding_rules import check_encoded
    from lerobot_lance.quality.result import CheckOutcome, Offender

    keys = encoded_image_keys(conv.meta, conv.options)
    if not keys:
        return {}, []
    settings = video_settings(conv.options)
    fps = conv.meta.fps
    images = episode_images(conv, e, keys)
    cams: dict[str, Any] = {}
    outcomes: list[Any] = []
    for key in keys:
        data = images[key]
        where = f"{e.data_path} [{key}]"
        dst = conv.staging.segment_path(conv.meta.features[key].column, e.episode_index)
        try:
            written, size = encode_frames((_decode_row(b, i, where, e.episode_index) for i, b in enumerate(data)), dst, fps, settings)
            decoded, fid = verify_encoded(dst, data, where, e.episode_index)
        except SourceDataError as err:  # an image that does not decode: this camera fails encoded_frame_count, located
            outcomes.append(CheckOutcome.from_offenders("encoded_frame_count", [
                Offender(err.path, e.episode_index, f"camera {key!r}: {err.detail}", err.expected, err.found)]))
            continue
        except Exception as exc:  # noqa: BLE001 - an encoder refusal (size, pixel format) is this episode's located error
            outcomes.append(CheckOutcome.from_offenders("encoded_frame_count", [
                Offender(where, e.episode_index, f"camera {key!r}: encoding to {settings.codec} failed ({exc})",
                         f"{len(data)} frames encoded", type(exc).__name__)]))
            continue
        cams[key] = {
            "path": str(dst),
            "source_path": e.data_path,
            "from_timestamp": 0.0,
            "to_timestamp": len(data) / float(fps),
            "declared_to_timestamp": len(data) / float(fps),
            "method": METHOD,
            "frame_count": decoded,
            "frames_written": written,
            "size_bytes": size,
            "encoding": settings.to_dict(),
            "stream": stream_info(dst),
            "fidelity": {**fid.to_dict(), "bytes": size, "frames": decoded},
        }
        outcomes += check_encoded(e.episode_index, key, where, "video", e.length, decoded, fid, lossless=settings.lossless,
                                  min_psnr_db=conv.options.min_psnr_db)
    return cams, outcomes
