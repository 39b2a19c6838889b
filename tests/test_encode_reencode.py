"""The v3.0 re-encode fallback's settings and its fidelity gate, on
``g1_v30_h264_gop30`` episode 1 (its window starts at frame 393 of shard 0,
not on a keyframe, so it must be re-encoded).

- ``reencode_crf=0`` (default: libx264 qp 0): the sampled frames of the
  segment equal the source window's, and ``decoded_pixels_match_source``
  passes as lossless;
- ``reencode_crf=30``: a smaller, lossy segment; the same check held to the
  lossless claim fails, located; held to the lossy floor it passes;
- the CLI and the Dagster resource expose the settings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lerobot_lance import video
from lerobot_lance.conversion import ConvertOptions
from lerobot_lance.encodings.fidelity import Fidelity, sample_positions
from lerobot_lance.errors import LeRobotLanceError
from lerobot_lance.quality.encoding_rules import check_encoded
from lerobot_lance.readers import read_dataset_meta
from tests.conftest import sample

CAM = "observation.images.cam_high"


def _cut(dst: Path, crf: int) -> tuple[Path, tuple[float, float], Path, int]:
    root = sample("g1_v30_h264_gop30")
    e = read_dataset_meta(root).episode(1)
    ref = e.videos[CAM]
    lo, hi = ref.window(e.length, 30)
    seg = video.cut_segment(root / ref.relative_path, lo, hi, e.length, dst, crf_or_qp=crf, preset="ultrafast")
    assert seg.method == "reencode" and seg.frame_count == e.length
    return root / ref.relative_path, (lo, hi), dst, e.length


def _fidelity(src: Path, window: tuple[float, float], seg: Path, n: int) -> Fidelity:
    pos = sample_positions(n, 8)
    fid = Fidelity()
    for a, b in zip(video.iter_frames_rgb(src, *window, indices=pos), video.iter_frames_rgb(seg, indices=pos), strict=True):
        fid.add(a, b)
    return fid


def test_lossless_reencode_matches_and_lossy_is_caught(tmp_path: Path) -> None:
    src, window, seg0, n = _cut(tmp_path / "qp0.mp4", 0)
    fid0 = _fidelity(src, window, seg0, n)
    assert fid0.exact and fid0.frames_compared == 8
    assert check_encoded(1, CAM, "shard", "re-encoded segment", n, n, fid0, lossless=True)[1].passed
    _, _, seg30, _ = _cut(tmp_path / "crf30.mp4", 30)
    assert seg30.stat().st_size < seg0.stat().st_size
    fid30 = _fidelity(src, window, seg30, n)
    assert not fid30.exact and fid30.psnr_db is not None
    bad = check_encoded(1, CAM, "videos/x/file-000.mp4", "re-encoded segment", n, n, fid30, lossless=True)[1]
    assert not bad.passed and bad.offenders[0].episode_index == 1 and "not pixel-identical" in bad.offenders[0].detail
    ok = check_encoded(1, CAM, "videos/x/file-000.mp4", "re-encoded segment", n, n, fid30, lossless=False)[1]
    assert ok.passed == (fid30.psnr_db >= 30.0)
    print(f"re-encode crf 30: PSNR {fid30.psnr_db:.2f} dB, {seg30.stat().st_size} vs {seg0.stat().st_size} bytes lossless")


def test_settings_are_options_of_the_cli_and_the_resource() -> None:
    from lerobot_lance.cli import build_parser
    from resources import VideoCodecResource

    args = build_parser().parse_args(["convert", "src", "-o", "out", "--reencode-crf", "18", "--reencode-preset", "medium"])
    from lerobot_lance.encodings.cli_options import encoding_options

    assert encoding_options(args) == {"reencode_crf": 18, "reencode_preset": "medium"}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["convert", "src", "-o", "out", "--reencode-crf", "-1"])
    res = VideoCodecResource(reencode_crf=18, reencode_preset="medium")
    assert (res.reencode_crf, res.reencode_preset) == (18, "medium")
    with pytest.raises(LeRobotLanceError, match="reencode_crf"):
        ConvertOptions(reencode_crf=-1)
    with pytest.raises(LeRobotLanceError, match="jpeg_quality"):
        ConvertOptions(jpeg_quality=0)
    with pytest.raises(LeRobotLanceError, match="not in this PyAV build"):
        ConvertOptions(encode_images="video", video_codec="no_such_encoder")


def test_datasets_yaml_options_reach_the_conversion(tmp_path: Path) -> None:
    from pipelines.config import load_dataset_configs
    from resources import LanceStorageResource, VideoCodecResource

    cfg_file = tmp_path / "datasets.yaml"
    cfg_file.write_text(
        f"datasets:\n  - name: img\n    source: {sample('g1_image_v30')}\n    output: {tmp_path / 'out'}\n"
        "    options: {encode_images: video, video_preset: lossless, frames_format: jpeg, jpeg_quality: 100, jpeg_subsampling: '4:4:4'}\n"
    )
    (cfg,) = load_dataset_configs(cfg_file)
    opts = LanceStorageResource(staging_root=str(tmp_path / "stg")).conversion(cfg, VideoCodecResource(reencode_crf=20)).options
    assert (opts.encode_images, opts.video_preset, opts.frames_format, opts.jpeg_quality, opts.jpeg_subsampling) == (
        "video", "lossless", "jpeg", 100, "4:4:4")
    assert opts.reencode_crf == 20  # the resource's default, as the dataset sets none
    cfg_file.write_text(cfg_file.read_text().replace("jpeg_quality: 100", "jpeg_quality: 101"))
    (bad,) = load_dataset_configs(cfg_file)
    with pytest.raises(LeRobotLanceError, match="jpeg_quality must be an integer in 1..100, found 101"):
        LanceStorageResource().conversion(bad)


def test_encoding_checks_are_dagster_asset_checks_with_descriptions(tmp_path: Path) -> None:
    from assets.dataset_assets import build_dataset_assets
    from pipelines.config import DatasetConfig

    cfg = DatasetConfig(name="img", source=str(sample("g1_image_v30")), output=str(tmp_path / "out"), options={"encode_images": "video"})
    specs = {}
    for a in build_dataset_assets(cfg):
        for spec in a.check_specs:
            specs[(spec.asset_key.path[-1], spec.name)] = spec
    for asset in ("episode_videos", "episode_frames"):
        for name in ("encoded_frame_count", "decoded_pixels_match_source"):
            spec = specs[(asset, name)]
            assert spec.blocking and spec.description and "stops what depends on it" in spec.description
    assert "PSNR >= 30 dB" in specs[("episode_videos", "decoded_pixels_match_source")].description


def test_records_staged_with_other_encodings_are_not_reused(tmp_path: Path) -> None:
    from lerobot_lance.conversion import Conversion, resolve_source
    from lerobot_lance.episode_stages import episodes_to_convert, stage_episode_frames

    src = str(sample("g1_image_v30"))
    plain = Conversion.at(tmp_path / "out", tmp_path / "stg", ConvertOptions())
    resolve_source(plain, src)
    assert stage_episode_frames(plain, [1]).ok == [1]
    assert plain.staging.current("frames", 1, plain.revision) is not None
    again = Conversion.at(tmp_path / "out", tmp_path / "stg", ConvertOptions())
    resolve_source(again, src)  # same options: the staged frames stay
    assert again.staging.current("frames", 1, again.revision) is not None
    jpeg = Conversion.at(tmp_path / "out", tmp_path / "stg", ConvertOptions(frames_format="jpeg"))
    resolve_source(jpeg, src)  # JPEG frames now: the plain frames must be staged again
    assert jpeg.staging.current("frames", 1, jpeg.revision) is None
    assert 1 in episodes_to_convert(jpeg, [1])
    from lerobot_lance.encodings.staging_keys import DEFAULT_KEY, encoding_key

    assert encoding_key(ConvertOptions()) == DEFAULT_KEY
