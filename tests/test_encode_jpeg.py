"""``--frames-format jpeg`` on the real samples: ``g1_image_v30`` (PNG image
camera, 736 frames) and ``g1_v30`` (AV1 video camera, six episodes, 2316
frames).

- every frame has its JPEG in the camera's ``frames`` column, and every one
  decodes, at the camera's size;
- on the same frames, q100 4:4:4 is strictly closer to the source than the
  default q95 4:2:0 (lower mean squared error, fewer pixels differing by more
  than 8/255), at more bytes per frame;
- ``meta/conversion.json`` (and so the ``--json`` summary) records per camera
  the figures, and its bytes per frame are the stored JPEGs' own.

The source frames of ``g1_v30`` episode 1 are decoded from ``g1_v21``'s
episode file, which the samples' README states is identical pixel for pixel
to the v3.0 window.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import lance
import numpy as np
import pytest
from PIL import Image

from lerobot_lance.encodings.image_video import decode_all
from tests.conftest import EPISODE_LENGTHS, sample
from tests.encode_outputs import converted, summary_of
from tests.test_encode_image_video import CAM, COL, source_images


def jpegs(out: Path, where: str | None = None) -> list[bytes]:
    ds = lance.dataset(str(out / "frames.lance"))
    t = ds.to_table(columns=[COL, "index"], filter=where)
    order = np.argsort(t["index"].to_numpy())
    col = t[COL].to_pylist()
    return [col[i] for i in order]


def decode_jpeg(b: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(b)) as im:
        assert im.format == "JPEG"
        return np.asarray(im.convert("RGB"))


def distance(source: list[np.ndarray], decoded: list[np.ndarray]) -> tuple[float, float]:
    """(mean squared error, share of pixels with a channel off by > 8) over all frames."""
    se = 0.0
    values = pixels = over = 0
    for a, b in zip(source, decoded, strict=True):
        d = np.abs(a.astype(np.int16) - b.astype(np.int16))
        se += float((d.astype(np.float64) ** 2).sum())
        values += d.size
        pixels += d.shape[0] * d.shape[1]
        over += int((d.max(-1) > 8).sum())
    return se / values, over / pixels


def psnr(mse: float) -> float:
    return 10 * math.log10(255**2 / mse)


def test_image_dataset_q100_444_closer_than_q95_420(tmp_path_factory: pytest.TempPathFactory) -> None:
    src = source_images()
    q95 = jpegs(converted("image_jpeg_q95", tmp_path_factory))
    q100 = jpegs(converted("image_lossless_q100", tmp_path_factory))
    assert len(q95) == len(q100) == len(src) == 736 and all(q95) and all(q100)
    d95 = [decode_jpeg(b) for b in q95]
    d100 = [decode_jpeg(b) for b in q100]
    assert all(x.shape == (120, 160, 3) for x in d95 + d100)
    mse95, share95 = distance(src, d95)
    mse100, share100 = distance(src, d100)
    assert mse100 < mse95 and share100 <= share95
    bpf95, bpf100 = sum(map(len, q95)) / 736, sum(map(len, q100)) / 736
    assert bpf100 > bpf95
    print(f"g1_image_v30 q95 4:2:0: PSNR {psnr(mse95):.2f} dB, {100 * share95:.3f}% > 8, {bpf95:.0f} B/frame; "
          f"q100 4:4:4: PSNR {psnr(mse100):.2f} dB, {100 * share100:.3f}% > 8, {bpf100:.0f} B/frame")
    conv = json.loads((converted("image_jpeg_q95", tmp_path_factory) / "meta/conversion.json").read_text())
    rec = conv["encodings"]["jpeg_frames"][CAM]
    assert rec["settings"] == {"quality": 95, "subsampling": "4:2:0"}
    assert rec["frames"] == 736 and rec["bytes"] == sum(map(len, q95)) and rec["episodes"] == 2
    assert rec["frames_compared"] == 16 and rec["diff_threshold"] == 8  # 8 sampled frames per episode
    assert abs(rec["psnr_db"] - psnr(mse95)) < 3.0  # the sample's PSNR is near the all-frames one


def test_video_dataset_every_frame_present_and_decodable(tmp_path_factory: pytest.TempPathFactory) -> None:
    out = converted("v30_jpeg_q95", tmp_path_factory)
    ds = lance.dataset(str(out / "frames.lance"))
    assert str(ds.schema.field(COL).type) == "binary"
    t = ds.to_table(columns=[COL, "episode_index"])
    assert t.num_rows == sum(EPISODE_LENGTHS) and t[COL].null_count == 0
    counts = {e: n for e, n in zip(*np.unique(t["episode_index"].to_numpy(), return_counts=True))}
    assert [counts[e] for e in range(6)] == list(EPISODE_LENGTHS)
    from lerobot_lance.encodings.jpeg_frames import decodes

    stored = t[COL].to_pylist()
    assert all(decodes(b) for b in stored)  # every JPEG's whole entropy-coded stream (1/8-scale decode)
    for i in np.cumsum([0, *EPISODE_LENGTHS[:-1]]):  # first frame of each episode at full size
        assert decode_jpeg(stored[int(i)]).shape == (480, 640, 3)
    conv = json.loads((out / "meta/conversion.json").read_text())
    rec = conv["encodings"]["jpeg_frames"][CAM]
    assert rec["frames"] == sum(EPISODE_LENGTHS) and rec["bytes"] == sum(len(b) for b in t[COL].to_pylist())
    # the video itself is still stored verbatim
    assert lance.dataset(str(out / "videos.lance")).count_rows() == 3


def test_video_dataset_q100_444_closer_than_q95_420(tmp_path_factory: pytest.TempPathFactory) -> None:
    src = list(decode_all(sample("g1_v21") / "videos/chunk-000" / CAM / "episode_000001.mp4"))
    assert len(src) == EPISODE_LENGTHS[1]
    q95 = jpegs(converted("v30_jpeg_q95", tmp_path_factory), "episode_index = 1")
    q100 = jpegs(converted("v30_ep1_jpeg_q100", tmp_path_factory), "episode_index = 1")
    assert len(q95) == len(q100) == len(src)
    mse95, share95 = distance(src, [decode_jpeg(b) for b in q95])
    mse100, share100 = distance(src, [decode_jpeg(b) for b in q100])
    assert mse100 < mse95 and share100 <= share95
    bpf95, bpf100 = sum(map(len, q95)) / len(src), sum(map(len, q100)) / len(src)
    print(f"g1_v30 episode 1 q95 4:2:0: PSNR {psnr(mse95):.2f} dB, {100 * share95:.3f}% > 8, {bpf95:.0f} B/frame; "
          f"q100 4:4:4: PSNR {psnr(mse100):.2f} dB, {100 * share100:.3f}% > 8, {bpf100:.0f} B/frame")


def test_summary_reports_each_camera(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The API summary (what ``--json`` prints) and the CLI's text lines carry the per-camera figures."""
    from lerobot_lance.encodings.output import summary_lines

    out = converted("v30_jpeg_q95", tmp_path_factory)
    summary = summary_of("v30_jpeg_q95", tmp_path_factory)
    conv = json.loads((out / "meta/conversion.json").read_text())
    assert summary.encodings == conv["encodings"]
    (line,) = summary_lines(summary.encodings)
    rec = summary.encodings["jpeg_frames"][CAM]
    assert line.startswith(f"jpeg {CAM} (q95 4:2:0): PSNR {rec['psnr_db']:.2f} dB")
    assert f"{rec['bytes_per_frame']:.0f} bytes/frame" in line and "differ by > 8/255" in line
    assert rec["psnr_db"] > 40.0  # measured 44.9 dB on the 48 sampled frames


def test_low_quality_below_the_floor_fails_located_and_the_floor_is_an_option(tmp_path: Path) -> None:
    """q5 on g1_image_v30 episode 0 falls below 30 dB: each episode fails decoded_pixels_match_source with its
    PSNR; with --min-psnr-db lowered, it stages."""
    from lerobot_lance.conversion import Conversion, ConvertOptions, resolve_source
    from lerobot_lance.episode_stages import stage_episode_frames

    conv = Conversion.at(tmp_path / "out", tmp_path / "stg", ConvertOptions(frames_format="jpeg", jpeg_quality=5))
    resolve_source(conv, str(sample("g1_image_v30")))
    r = stage_episode_frames(conv, [0])
    assert r.ok == [] and list(r.failed) == [0]
    msg = r.failed[0]
    assert "decoded_pixels_match_source" in msg and "PSNR below the floor" in msg and "expected >= 30 dB" in msg
    assert "data/chunk-000/file-000.parquet" in msg and "episode 0" in msg
    low = Conversion.at(tmp_path / "out", tmp_path / "stg", ConvertOptions(frames_format="jpeg", jpeg_quality=5, min_psnr_db=15))
    resolve_source(low, str(sample("g1_image_v30")))
    assert stage_episode_frames(low, [0]).ok == [0]
