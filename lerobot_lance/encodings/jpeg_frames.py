"""The JPEG frames format (``frames_format="jpeg"``): every frame of every
camera as JPEG bytes in a ``binary`` column of ``frames`` named after the
camera (the column an image camera already has; a video camera gets one).

Options as in the lerobot-lancedb converter docs: ``jpeg_quality`` 1..100
(default 95) and ``jpeg_subsampling`` ``4:4:4`` / ``4:2:2`` / ``4:2:0``
(default); q100 at 4:4:4 is the near-lossless setting.

Encoder: Pillow (13.0 here, built on libjpeg-turbo 3.x, the SIMD JPEG codec
most decoders, NVJPEG included, are tested against). Its ``quality`` and
``subsampling`` arguments are exactly the two options above; PyAV's ``mjpeg``
encoder would take a ``qscale`` (2..31) instead of a quality and a ``yuvj``
pixel format instead of a subsampling, and is meant for streams, not single
images.

Per episode: video cameras are decoded once, streamed, from the episode's
window of the source file (:func:`lerobot_lance.video.iter_frames_rgb`); image
cameras from their stored bytes. Memory is one episode's JPEG bytes plus one
decoded frame. Every JPEG is decoded again at 1/8 scale (libjpeg's DCT
scaling: the whole entropy-coded stream is read) to prove it decodes, and a
deterministic sample of :data:`~lerobot_lance.encodings.settings.JPEG_SAMPLE_FRAMES`
frames at full size to measure the fidelity.

The JPEG columns are the only frames data staged (one Arrow IPC file per
episode, ``frames/episode_NNNNNN.jpeg.arrow``); the other columns are read
from the source again and the two joined (:func:`attach_columns`, called by
:func:`lerobot_lance.source_frames.read_frames`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from lerobot_lance.encodings.fidelity import Fidelity, sample_positions
from lerobot_lance.encodings.image_video import decode_image
from lerobot_lance.encodings.settings import JPEG_SAMPLE_FRAMES, JPEG_SUBSAMPLING
from lerobot_lance.errors import LeRobotLanceError, SourceDataError

if TYPE_CHECKING:
    from lerobot_lance.model import EpisodeMeta

#: A :class:`lerobot_lance.conversion.Conversion` (not imported: the
#: conversion imports this module).
Conversion = Any


def encode_jpeg(rgb: np.ndarray, quality: int, subsampling: str) -> bytes:
    """One RGB frame (``uint8`` ``(h, w, 3)``) as JPEG bytes (Pillow /
    libjpeg-turbo, baseline, ``quality`` 1..100, ``subsampling`` a key of
    :data:`~lerobot_lance.encodings.settings.JPEG_SUBSAMPLING`)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="JPEG", quality=int(quality), subsampling=JPEG_SUBSAMPLING[subsampling])
    return buf.getvalue()


def decodes(data: bytes) -> bool:
    """Whether the JPEG decodes (at 1/8 scale: libjpeg still reads every coefficient)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG":
                return False
            im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
        return True
    except (OSError, ValueError):
        return False


def _source_frames(conv: Conversion, e: EpisodeMeta, key: str, table: pa.Table) -> tuple[str, Iterator[np.ndarray]]:
    """(file to name, iterator of the camera's source frames as RGB) of one episode."""
    from lerobot_lance import video

    f = conv.meta.features[key]
    if f.is_image:
        where = f"{e.data_path} [{key}]"
        col = table[f.column]
        return where, (decode_image(col[i].as_py(), where, e.episode_index) for i in range(table.num_rows))
    ref = e.videos[key]
    root = conv.source.fetch([ref.relative_path])
    lo, hi = (None, None) if ref.whole_file else ref.window(e.length, conv.meta.fps)
    return ref.relative_path, video.iter_frames_rgb(root / ref.relative_path, lo, hi)


def encode_episode(conv: Conversion, e: EpisodeMeta, table: pa.Table) -> tuple[pa.Table | None, dict[str, Any], list[Any]]:
    """Each camera's JPEG column of one episode, from its normalized frames rows.

    The columns are derived data: staging keeps only them
    (:meth:`lerobot_lance.staging.Staging.write_frames_columns`), and
    :func:`attach_columns` joins them to the rows read from the source again.

    Returns:
        ``(columns, figures, outcomes)``: a table of one ``binary`` JPEG
        column per camera (``table.num_rows`` rows, named like the camera's
        frames column; a camera whose encoded frame count is wrong is left
        out, and ``encoded_frame_count`` fails the episode); per camera the
        fidelity figures of the sampled frames plus ``bytes`` and ``frames``;
        the ``encoded_frame_count`` and ``decoded_pixels_match_source``
        outcomes. ``(None, {}, [])`` when the frames format is not JPEG.

    Raises:
        SourceDataError: a source frame does not decode.
    """
    from lerobot_lance.encodings.output import jpeg_keys
    from lerobot_lance.quality.encoding_rules import check_encoded

    keys = jpeg_keys(conv.meta, conv.options)
    if not keys:
        return None, {}, []
    q, sub = conv.options.jpeg_quality, conv.options.jpeg_subsampling
    sample = set(sample_positions(table.num_rows, JPEG_SAMPLE_FRAMES))
    figures: dict[str, Any] = {}
    outcomes: list[Any] = []
    columns: dict[str, pa.Array] = {}
    for key in keys:
        where, frames = _source_frames(conv, e, key, table)
        out: list[bytes] = []
        fid = Fidelity()
        bad = 0
        try:
            for i, rgb in enumerate(frames):
                data = encode_jpeg(rgb, q, sub)
                out.append(data)
                if not decodes(data):
                    bad += 1
                elif i in sample:
                    fid.add(rgb, decode_image(data, where, e.episode_index))
        except LeRobotLanceError:
            raise
        except Exception as exc:  # noqa: BLE001 - a frame that fails to decode or encode is this episode's located error
            raise SourceDataError(where, f"camera {key!r}: frame {len(out)} could not be turned into JPEG ({exc})",
                                  episode_index=e.episode_index) from None
        decoded = len(out) - bad
        outcomes += check_encoded(e.episode_index, key, where, "jpeg", e.length, decoded, fid, lossless=False,
                                  min_psnr_db=conv.options.min_psnr_db)
        figures[key] = {**fid.to_dict(), "bytes": sum(len(b) for b in out), "frames": len(out)}
        if len(out) != table.num_rows:
            continue  # encoded_frame_count fails this episode; its rows are not staged
        columns[conv.meta.features[key].column] = pa.array(out, pa.binary())
    return pa.table(columns), figures, outcomes


def attach_columns(table: pa.Table, columns: pa.Table) -> pa.Table:
    """One episode's frames rows with its JPEG columns (:func:`encode_episode`)
    joined: an image camera's column replaced in place, a video camera's
    appended, in camera order (the frames schema of
    :func:`lerobot_lance.encodings.output.frames_output_schema`).

    Raises:
        LeRobotLanceError: the two do not have the same number of rows.
    """
    if columns.num_rows != table.num_rows:
        raise LeRobotLanceError(
            f"staged JPEG columns ({', '.join(columns.column_names)}) hold {columns.num_rows} rows, "
            f"the episode's frames {table.num_rows}; rerun episode_frames"
        )
    for name in columns.column_names:
        arr = columns[name]
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, arr)
        else:
            table = table.append_column(pa.field(name, pa.binary()), arr)
    return table
