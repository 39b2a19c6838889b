"""Output rules and per-episode video rules on real conversions, and the
doctor's report and exit code (the fault suite in test_faults.py covers the
source-side rules defect by defect)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lance
import pytest

from lerobot_lance.quality import (
    OUTPUT_RULES,
    check_episode_video,
    check_output,
    exit_code,
    format_report,
    run_doctor,
)
from lerobot_lance.readers import read_dataset_meta
from tests.conftest import EPISODE_LENGTHS, sample


def _by_name(outcomes):
    return {o.name: o for o in outcomes}


def test_output_rules_pass_on_a_published_conversion(converted) -> None:
    out = converted("g1_v30")
    meta = read_dataset_meta(sample("g1_v30"))
    tag = json.loads((out / "meta" / "conversion.json").read_text())["tag"]
    outcomes = check_output(out, meta, sample("g1_v30"), tag=tag)
    assert [o.name for o in outcomes] == list(OUTPUT_RULES)
    assert all(o.passed for o in outcomes), [o.message for o in outcomes]
    assert outcomes[0].metadata["frames_rows"] == sum(EPISODE_LENGTHS)
    assert outcomes[1].metadata["files"] == 3


def test_output_rules_catch_tampered_tables(converted, tmp_path: Path) -> None:
    out = tmp_path / "out"
    shutil.copytree(converted("g1_v21"), out)
    meta = read_dataset_meta(sample("g1_v21"))
    tag = json.loads((out / "meta" / "conversion.json").read_text())["tag"]
    frames = lance.dataset(str(out / "frames.lance"))
    # duplicate episode 1's first frame: a row too many and a repeated key,
    # on a new version the shared tag no longer points at
    dup = frames.to_table(filter="episode_index = 1 AND frame_index = 0")
    lance.write_dataset(dup, str(out / "frames.lance"), mode="append")
    # a videos row whose sha256 column no longer matches its bytes
    videos = lance.dataset(str(out / "videos.lance"))
    videos.update({"sha256": "'0000'"}, where="filename = 'episode_000003.mp4'")
    got = _by_name(check_output(out, meta, sample("g1_v21"), tag=tag))
    rc = got["table_row_counts"]
    assert not rc.passed and rc.offenders[0].file == "frames.lance"
    assert (rc.offenders[0].expected, rc.offenders[0].found) == (sum(EPISODE_LENGTHS), sum(EPISODE_LENGTHS) + 1)
    keys = got["frames_keys_unique"]
    assert not keys.passed and keys.offenders[0].episode_index == 1 and keys.n_offenders == 1
    sha = got["videos_sha256"]
    assert not sha.passed and sha.n_offenders == 1 and "episode_000003.mp4" in sha.offenders[0].file
    tags = got["tables_share_tag"]
    assert not tags.passed and {o.file for o in tags.offenders} == {"frames.lance", "videos.lance"}


def test_video_rule_counts_packets_and_decodes_endpoints(tmp_path: Path) -> None:
    meta = read_dataset_meta(sample("g1_v30"))
    e = meta.episode(3)
    ref = e.videos["observation.images.cam_high"]
    src = sample("g1_v30") / ref.relative_path
    ok = check_episode_video(e, {"cam": src}, meta.fps, windows={"cam": (ref.from_timestamp, ref.to_timestamp)})
    assert all(o.passed for o in ok), [o.message for o in ok]
    # the same window with a length the metadata does not hold
    longer = type(e)(**{**e.__dict__, "length": e.length + 5})
    bad = _by_name(check_episode_video(longer, {"cam": src}, meta.fps, windows={"cam": (ref.from_timestamp, ref.to_timestamp)}))
    assert not bad["segment_frame_count"].passed
    assert (bad["segment_frame_count"].offenders[0].expected, bad["segment_frame_count"].offenders[0].found) == (e.length + 5, e.length)
    assert not bad["segment_endpoints_decode"].passed  # last frame is 5 frames early


def test_video_rule_deep_mode_decodes_every_frame() -> None:
    meta = read_dataset_meta(sample("g1_v21"))
    e = meta.episode(1)
    path = sample("g1_v21") / e.videos["observation.images.cam_high"].relative_path
    got = _by_name(check_episode_video(e, {"cam": path}, meta.fps, deep=True))
    assert got["segment_frame_count"].passed and got["segment_frame_count"].metadata["deep"] is True


@pytest.mark.parametrize("name", ["g1_v21", "g1_image_v30"])
def test_doctor_report_and_exit_code_on_clean_samples(name: str) -> None:
    outcomes = run_doctor(str(sample(name)))
    assert exit_code(outcomes) == 0
    report = format_report(outcomes)
    assert report.splitlines()[-1] == "all blocking checks passed"
    parsed = json.loads(format_report(outcomes, as_json=True))
    assert parsed["failed"] == 0 and len(parsed["checks"]) == len(outcomes)
    if name == "g1_image_v30":  # no video features: the video rules say why they did not run
        assert all(o.skipped for o in outcomes if o.name.startswith("segment_"))


def test_doctor_cli_exit_code_counts_failed_checks(sample_copy, capsys) -> None:
    from lerobot_lance.cli import main

    root = sample_copy("g1_v21")
    (root / "videos/chunk-000/observation.images.cam_high/episode_000004.mp4").unlink()
    info = json.loads((root / "meta/info.json").read_text())
    info["total_frames"] += 1
    (root / "meta/info.json").write_text(json.dumps(info))
    code = main(["doctor", str(root)])
    text = capsys.readouterr().out
    failed = [line for line in text.splitlines() if line.startswith("FAIL")]
    assert code == len(failed) == 2, text
    assert any("source_files/files_exist" in line and "episode_000004.mp4 (episode 4)" in line for line in failed)
    assert any("source_meta/totals_agree" in line and "total_frames" in line for line in failed)


def test_float64_data_for_a_float32_feature_converts_when_lossless(sample_copy, tmp_path: Path) -> None:
    """values_fit_dtype refuses only what the cast would change (see the
    action_float64_lossy fault): float32 values stored as float64 convert,
    and the frames table holds them bit for bit."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lerobot_lance import convert

    root = sample_copy("g1_v21")
    path = root / "data/chunk-000/episode_000002.parquet"
    t = pq.read_table(path)
    i = t.schema.get_field_index("action")
    wide = t.set_column(i, "action", t["action"].cast(pa.list_(pa.float64(), 26)))
    path.unlink()
    pq.write_table(wide, path)

    outcomes = _by_name(run_doctor(str(root)))
    assert outcomes["values_fit_dtype"].passed and exit_code(list(outcomes.values())) == 0
    out = tmp_path / "out"
    convert(str(root), str(out))
    frames = lance.dataset(str(out / "frames.lance")).to_table(filter="episode_index = 2").sort_by("frame_index")
    assert frames.schema.field("action").type == pa.list_(pa.float32(), 26)
    got = np.array(frames["action"].to_pylist(), dtype=np.float64)
    assert np.array_equal(got, np.array(wide["action"].to_pylist())) and len(got) == EPISODE_LENGTHS[2]
