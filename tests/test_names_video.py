"""Issue 8 items 12 and 13: v3.0 windows whose to_timestamp is the last
frame's timestamp convert (length frames from from_timestamp, a WARN naming
both values); info.json codec / pix_fmt that differ from the stream warn."""

from __future__ import annotations

import io
from pathlib import Path

import av
import lance
import pytest

from lerobot_lance.readers import read_dataset_meta
from tests.conftest import EPISODE_LENGTHS, sample
from tests.faults import CAM, make_fault
from tests.faults_names import build_info_codec_mismatch, build_window_ends_on_last_frame
from tests.verify import decoded_md5s

BLOB = "observation_images_cam_high_video_blob"


def _segments(out: Path) -> dict[int, bytes]:
    ds = lance.dataset(str(out / "episodes.lance"))
    eps = ds.to_table(columns=["episode_index"])["episode_index"].to_pylist()
    out_ = {}
    for ep, blob in zip(eps, ds.take_blobs(BLOB, indices=list(range(len(eps))))):
        with blob as f:
            out_[ep] = f.read()
    return out_


def _packets(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


@pytest.mark.parametrize("base", ["g1_v30", "g1_v30_h264_gop30"])
def test_windows_ending_on_the_last_frame_convert(base: str, tmp_path: Path, converted) -> None:  # noqa: ANN001
    from lerobot_lance import convert, doctor

    src = build_window_ends_on_last_frame(base, tmp_path / "src")
    meta = read_dataset_meta(src)
    declared = {e.episode_index: e.videos[CAM].to_timestamp for e in meta.episodes}
    full = {e.episode_index: e.videos[CAM].from_timestamp + e.length / 30 for e in meta.episodes}
    assert all(abs(full[i] - declared[i] - 1 / 30) < 1e-9 for i in declared)  # one frame short, as a real dataset writes it

    o = {x.name: x for x in doctor(str(src))}
    assert all(x.passed for x in o.values() if x.severity == "ERROR"), [x.message for x in o.values() if not x.passed]
    warn = o["episode_windows_match_length"]
    assert not warn.passed and warn.severity == "WARN" and warn.n_offenders == 6
    first = warn.offenders[1]
    assert first.episode_index == 1 and first.file == "meta/episodes/chunk-000/file-000.parquet"
    assert (first.expected, first.found) == (f"{full[1]:.6f} s", f"{declared[1]:.6f} s") == ("24.533333 s", "24.500000 s")

    summary = convert(str(src), str(tmp_path / "out"))
    assert summary.rows["frames"] == 2316
    lines = [w for w in summary.warnings if "/ episode_windows_match_length:" in w]
    assert lines and "expected 24.533333 s, found 24.500000 s" in lines[0], summary.warnings
    got, want = _segments(tmp_path / "out"), _segments(converted(base))
    assert sorted(got) == list(range(6))
    for ep, seg in got.items():
        assert _packets(seg) == EPISODE_LENGTHS[ep]
        md5 = decoded_md5s(seg)
        assert len(md5) == EPISODE_LENGTHS[ep] and md5 == decoded_md5s(want[ep]), ep
    # the table records the window the segment was cut from
    win = lance.dataset(str(tmp_path / "out" / "episodes.lance")).to_table(
        columns=["episode_index", "observation_images_cam_high_to_timestamp"]).to_pylist()
    assert all(abs(r["observation_images_cam_high_to_timestamp"] - full[r["episode_index"]]) < 1e-9 for r in win)


def test_a_shard_short_of_the_frames_stays_blocking(tmp_path: Path) -> None:
    """A window whose frames from from_timestamp run past the shard's end is
    refused, as before (fault window_past_shard_end moves from_timestamp)."""
    from lerobot_lance import doctor

    make_fault("window_past_shard_end", tmp_path / "v")
    o = {x.name: x for x in doctor(str(tmp_path / "v"))}
    cover = o["video_frames_cover_episodes"]
    assert not cover.passed and cover.severity == "ERROR"
    assert (cover.offenders[0].episode_index, cover.offenders[0].expected, cover.offenders[0].found) == (5, ">= 915 frames", "855 frames")


def test_info_codec_and_pix_fmt_that_differ_from_the_stream_warn(tmp_path: Path, converted) -> None:  # noqa: ANN001
    from lerobot_lance import convert, doctor
    from lerobot_lance.cli import main

    src = build_info_codec_mismatch("g1_v30", tmp_path / "src", codec="h264", pix_fmt="yuv444p")
    o = {x.name: x for x in doctor(str(src))}
    assert all(x.passed for x in o.values() if x.severity == "ERROR"), [x.message for x in o.values() if not x.passed]
    assert o["video_stream_matches_info"].passed
    warn = o["video_codec_matches_info"]
    assert not warn.passed and warn.severity == "WARN" and warn.n_offenders == 6  # codec and pix_fmt of 3 shards
    pairs = {(x.file, x.expected, x.found) for x in warn.offenders}
    shard0 = f"videos/{CAM}/chunk-000/file-000.mp4"
    assert (shard0, "h264", "av1") in pairs and (shard0, "yuv444p", "yuv420p") in pairs
    assert main(["doctor", str(src)]) == 0  # WARN rules never count in the exit code

    summary = convert(str(src), str(tmp_path / "out"))
    assert summary.rows == {"frames": 2316, "episodes": 6, "videos": 3}
    assert any("/ video_codec_matches_info:" in w and "expected h264, found av1" in w for w in summary.warnings), summary.warnings
    got, want = _segments(tmp_path / "out"), _segments(converted("g1_v30"))
    assert got == want  # stream copies, byte for byte


def test_wrong_resolution_stays_blocking(tmp_path: Path) -> None:
    from lerobot_lance import doctor

    make_fault("wrong_resolution", tmp_path / "v")
    o = {x.name: x for x in doctor(str(tmp_path / "v"))}
    stream = o["video_stream_matches_info"]
    assert not stream.passed and stream.severity == "ERROR"
    assert (stream.offenders[0].expected, stream.offenders[0].found) == ("640x480", "320x240")
    assert o["video_codec_matches_info"].passed


def test_sample_windows_agree_with_their_lengths() -> None:
    from lerobot_lance.quality.source_rules import check_source_files

    meta = read_dataset_meta(sample("g1_v30"))
    o = {x.name: x for x in check_source_files(sample("g1_v30"), meta)}
    assert o["episode_windows_match_length"].passed and o["video_codec_matches_info"].passed


def test_a_stream_of_another_codec_than_info_json_warns(tmp_path: Path) -> None:
    """Episode 2's mp4 re-encoded to H.264 while info.json says av1 (once the
    fault wrong_codec): it decodes all the same, so a WARN with expected/found."""
    from lerobot_lance import doctor
    from tests.faults import copy_sample, reencode, v2_video

    src = copy_sample("g1_v21", tmp_path / "v")
    assert reencode(src / v2_video(2), "libx264", options={"preset": "ultrafast", "crf": "28"}) == 357
    o = {x.name: x for x in doctor(str(src))}
    assert all(x.passed for x in o.values() if x.severity == "ERROR"), [x.message for x in o.values() if not x.passed]
    warn = o["video_codec_matches_info"]
    assert not warn.passed and warn.severity == "WARN" and warn.n_offenders == 1
    off = warn.offenders[0]
    assert (off.file, off.episode_index, off.expected, off.found) == (v2_video(2), 2, "av1", "h264")
