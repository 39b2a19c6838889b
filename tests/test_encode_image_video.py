"""``--encode-images video`` on the real image sample ``g1_image_v30`` (two
episodes, 393 + 343 frames, 120x160 PNG inside the data parquet).

- lossless preset (libx264rgb, rgb24, qp 0), card layout: each episode's mp4
  in the episodes table decodes pixel-identical to the source PNGs, every
  frame; ``meta/info.json`` describes the camera as LeRobot does; the frames
  table has no image column; conversion.json records the figures;
- default preset (LeRobot's libsvtav1 yuv420p g=2 crf=30), ``--layout
  lerobot``: PSNR measured over every frame and asserted above
  ``DEFAULT_PSNR_FLOOR_DB``; the output served by
  ``lerobot_lancedb.LanceDBDataset`` (peer venv) gives frames within that
  fidelity of the source images;
- the ``decoded_pixels_match_source`` check fails, located, when a lossy
  decode is held to the lossless fidelity.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import warnings
from pathlib import Path

import lance
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from lerobot_lance.encodings.fidelity import Fidelity
from lerobot_lance.encodings.image_video import decode_all
from lerobot_lance.quality.descriptions import RULE_DESCRIPTIONS
from lerobot_lance.quality.encoding_rules import ENCODING_RULES, check_encoded
from tests.conftest import sample
from tests.encode_outputs import converted

CAM = "observation.images.cam_high"
COL = "observation_images_cam_high"
LENGTHS = (393, 343)
#: Measured 35.46 dB for both episodes together (AV1 crf 30 at 120x160); the floor leaves room for encoder versions.
DEFAULT_PSNR_FLOOR_DB = 33.0
REPO = Path(__file__).resolve().parents[1]
PEER_PYTHON = os.environ.get("LEROBOT_LANCE_PEER_PYTHON", "/work/peer-venv/bin/python")


def source_images() -> list[np.ndarray]:
    """Every source frame (row order = index order), RGB uint8."""
    col = pq.read_table(sample("g1_image_v30") / "data/chunk-000/file-000.parquet", columns=[CAM])[CAM].combine_chunks().field("bytes")
    return [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in col.to_pylist()]


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return source_images()


@pytest.fixture(scope="module")
def lossless(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Card layout, lossless preset, plus JPEG frames at q100 4:4:4 (also read by test_encode_jpeg)."""
    return converted("image_lossless_q100", tmp_path_factory)


@pytest.fixture(scope="module")
def lerobot_default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return converted("image_lerobot_default", tmp_path_factory)


def test_lossless_decodes_pixel_identical(lossless: Path, images: list[np.ndarray]) -> None:
    eps = lance.dataset(str(lossless / "episodes.lance"))
    rows = eps.to_table(columns=["episode_index", "length", "dataset_from_index"]).to_pylist()
    assert [r["length"] for r in rows] == list(LENGTHS)
    blobs = eps.take_blobs(f"{COL}_video_blob", indices=list(range(len(rows))))
    for r, blob in zip(rows, blobs):
        frames = list(decode_all(io.BytesIO(blob.read())))
        assert len(frames) == r["length"]
        start = r["dataset_from_index"]
        for i, got in enumerate(frames):
            assert np.array_equal(got, images[start + i]), f"episode {r['episode_index']} frame {i} differs"


def test_output_meta_describes_a_video_camera(lossless: Path) -> None:
    info = json.loads((lossless / "meta/info.json").read_text())
    feat = info["features"][CAM]
    assert feat["dtype"] == "video" and feat["shape"] == [120, 160, 3]
    assert feat["info"] == {"video.height": 120, "video.width": 160, "video.codec": "h264", "video.pix_fmt": "gbrp",
                            "video.is_depth_map": False, "video.fps": 30, "video.channels": 3, "has_audio": False}
    assert info["video_path"]
    frames = lance.dataset(str(lossless / "frames.lance"))
    # the image column now holds the JPEG frames (frames_format jpeg), not the PNGs
    assert frames.count_rows() == sum(LENGTHS)
    head = frames.to_table(columns=[COL], limit=1)[COL][0].as_py()
    assert head[:2] == b"\xff\xd8"
    conv = json.loads((lossless / "meta/conversion.json").read_text())
    v = conv["encodings"]["image_video"][CAM]
    assert v["settings"]["codec"] == "libx264rgb" and v["settings"]["qp"] == 0 and v["settings"]["lossless"]
    assert v["exact"] and v["max_abs_diff"] == 0 and v["frames_compared"] == sum(LENGTHS)
    print("lossless bytes/frame", v["bytes_per_frame"])


def test_default_preset_psnr_above_floor(lerobot_default: Path) -> None:
    conv = json.loads((lerobot_default / "meta/conversion.json").read_text())
    v = conv["encodings"]["image_video"][CAM]
    assert v["settings"] == {"preset": "lerobot", "codec": "libsvtav1", "pix_fmt": "yuv420p", "gop": 2, "crf": 30, "qp": None, "lossless": False}
    assert v["frames_compared"] == sum(LENGTHS)
    assert v["psnr_db"] >= DEFAULT_PSNR_FLOOR_DB, v
    info = json.loads((lerobot_default / "meta/info.json").read_text())
    assert info["features"][CAM]["dtype"] == "video" and info["features"][CAM]["info"]["video.codec"] == "av1"
    videos = lance.dataset(str(lerobot_default / "videos.lance")).to_table(columns=["video_key", "file_index"]).to_pylist()
    assert sorted((r["video_key"], r["file_index"]) for r in videos) == [(CAM, 0), (CAM, 1)]
    print(f"default preset: PSNR {v['psnr_db']:.2f} dB, {100 * v['share_differing']:.1f}% pixels > {v['diff_threshold']}, "
          f"{v['bytes_per_frame']:.0f} bytes/frame")


@pytest.mark.lerobot_reader
def test_lerobot_reader_serves_encoded_images(lerobot_default: Path, tmp_path: Path) -> None:
    if not Path(PEER_PYTHON).is_file():
        msg = f"LEROBOT READER CHECK SKIPPED: no peer interpreter at {PEER_PYTHON} (set LEROBOT_LANCE_PEER_PYTHON)"
        warnings.warn(msg, stacklevel=1)
        pytest.skip(msg)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_LEROBOT_HOME": str(tmp_path / "hf")}
    proc = subprocess.run(
        [PEER_PYTHON, str(REPO / "tests/encode_reader_check.py"), str(lerobot_default),
         str(sample("g1_image_v30") / "data/chunk-000/file-000.parquet"), CAM, "12"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["len"] == sum(LENGTHS) and r["compared"] >= 10
    assert CAM in r["keys"] and r["shape"] == [3, 120, 160]
    assert r["psnr_db"] is not None and r["psnr_db"] >= DEFAULT_PSNR_FLOOR_DB, r


def test_fidelity_check_fails_located_when_lossy_is_held_to_lossless(lerobot_default: Path, images: list[np.ndarray]) -> None:
    videos = lance.dataset(str(lerobot_default / "videos.lance"))
    row = videos.to_table(columns=["file_index"], with_row_id=True).to_pylist()
    first = next(r["_rowid"] for r in row if r["file_index"] == 0)  # episode 0's mp4
    blob = videos.take_blobs("video_bytes", ids=[first])[0]
    fid = Fidelity()
    n = 0
    for n, got in enumerate(decode_all(io.BytesIO(blob.read())), 1):
        fid.add(images[n - 1], got)
    count, pixels = check_encoded(0, CAM, "videos.lance", "video", LENGTHS[0], n, fid, lossless=True)
    assert count.passed and count.name == "encoded_frame_count"
    assert not pixels.passed and pixels.name == "decoded_pixels_match_source"
    off = pixels.offenders[0]
    assert off.episode_index == 0 and off.file == "videos.lance" and "not pixel-identical" in off.detail
    assert set(ENCODING_RULES) <= set(RULE_DESCRIPTIONS)
    short, _ = check_encoded(0, CAM, "videos.lance", "video", LENGTHS[0] + 1, n, fid, lossless=False)
    assert not short.passed and f"{LENGTHS[0] + 1} frames" in str(short.offenders[0])


def test_an_image_that_does_not_decode_fails_its_episode_located(tmp_path: Path) -> None:
    """A copy of g1_image_v30 whose row 500 (episode 1, frame 107) holds bytes that are not an image."""
    import pyarrow as pa

    from lerobot_lance.conversion import Conversion, ConvertOptions, resolve_source
    from lerobot_lance.episode_stages import stage_episode_videos
    from tests.faults import copy_sample

    src = tmp_path / "src"
    copy_sample("g1_image_v30", src)
    rel = "data/chunk-000/file-000.parquet"
    t = pq.read_table(src / rel)
    col = t[CAM].combine_chunks()
    images = col.field("bytes").to_pylist()
    images[500] = b"not a png"
    fixed = pa.StructArray.from_arrays([pa.array(images, pa.binary()), col.field("path")], fields=list(col.type))
    (src / rel).unlink()  # a hard link to the shared sample: replaced, never written through
    pq.write_table(t.set_column(t.schema.get_field_index(CAM), CAM, fixed), src / rel)
    conv = Conversion.at(tmp_path / "out", tmp_path / "stg", ConvertOptions(encode_images="video", video_preset="lossless"))
    resolve_source(conv, str(src))
    result = stage_episode_videos(conv, [1])
    assert result.ok == [] and list(result.failed) == [1]
    msg = result.failed[1]
    assert msg.startswith("encoded_frame_count") and rel in msg and "episode 1" in msg and "row 107" in msg and CAM in msg
    assert "Traceback" not in msg
    bad = [o for o in result.outcomes if o.name == "encoded_frame_count" and not o.passed]
    assert bad and bad[0].offenders[0].episode_index == 1


def test_dagster_metadata_reports_each_encoded_camera(lossless: Path) -> None:
    """What the episode_videos / episode_frames / lance_dataset assets attach, from the staged records of the conversion."""
    from assets.dataset_assets import _encodings_metadata
    from lerobot_lance.conversion import Conversion, ConvertOptions
    from tests.encode_outputs import CONVERSIONS

    conv = Conversion.at(lossless, options=ConvertOptions(**CONVERSIONS["image_lossless_q100"][1]))
    md = _encodings_metadata(conv, [0, 1])
    figures = md["encodings"].data
    video, jpeg = figures["image_video"][CAM], figures["jpeg_frames"][CAM]
    assert video["exact"] and video["frames"] == sum(LENGTHS) and video["bytes_per_frame"] > 0
    assert not jpeg["exact"] and jpeg["psnr_db"] > 45 and jpeg["settings"] == {"quality": 100, "subsampling": "4:4:4"}
    text = md["encodings_summary"].md_str
    assert "exact (pixel-identical)" in text and "jpeg observation.images.cam_high (q100 4:4:4): PSNR" in text
