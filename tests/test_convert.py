"""End to end through the Dagster graph (in-process): the shared samples convert
into correct Lance tables, reruns never duplicate, scan describes each sample."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from lerobot_lance.cli import main as cli
from tests.conftest import SAMPLES, sample
from tests.verify import verify_output

VERIFY_SAMPLES = ("g1_v20", "g1_v21", "g1_v30", "g1_v30_h264_gop30", "g1_image_v30", "g1_multicam_v30")


@pytest.mark.parametrize("name", VERIFY_SAMPLES)
def test_conversion_passes_the_verifier(converted: Callable[[str], Path], name: str) -> None:
    out = converted(name)
    # decoding every frame is slow: decode-compare the v3.0 cuts (v2.x segments are the
    # source files, compared by sha256 inside the verifier)
    counts = verify_output(out, sample(name), decode=name in ("g1_v30", "g1_v30_h264_gop30", "g1_multicam_v30"))
    info = json.loads((sample(name) / "meta" / "info.json").read_text())
    assert counts["frames"] == info["total_frames"] and counts["episodes"] == info["total_episodes"]
    meta_info = json.loads((out / "meta" / "info.json").read_text())
    assert meta_info["storage_format"] == "lance"
    tags = [lance.dataset(str(out / f"{t}.lance")).tags.list() for t in ("frames", "episodes", "videos")]
    shared_tags = set(tags[0]) & set(tags[1]) & set(tags[2])
    conv = json.loads((out / "meta" / "conversion.json").read_text())
    assert conv["tag"] in shared_tags and "latest" in shared_tags


def test_frames_tables_equal_across_versions(converted: Callable[[str], Path]) -> None:
    tables = [lance.dataset(str(converted(n) / "frames.lance")).to_table().sort_by("index") for n in ("g1_v20", "g1_v21", "g1_v30")]
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])


def _split_v30_data_over_two_chunks(root: Path) -> None:
    """Episodes 0-2 stay in data/chunk-000/file-000.parquet, 3-5 move to
    data/chunk-001/file-000.parquet; meta/episodes' data/chunk_index follows."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    data = root / "data/chunk-000/file-000.parquet"
    t = pq.read_table(data)
    data.unlink()  # a hard link to the shared sample: replace, never edit
    pq.write_table(t.filter(pc.less(t["episode_index"], 3)), data)
    (root / "data/chunk-001").mkdir()
    pq.write_table(t.filter(pc.greater_equal(t["episode_index"], 3)), root / "data/chunk-001/file-000.parquet")
    meta = next((root / "meta/episodes").glob("*/*.parquet"))
    m = pq.read_table(meta)
    i = m.schema.get_field_index("data/chunk_index")
    chunks = [0 if e < 3 else 1 for e in m["episode_index"].to_pylist()]
    meta.unlink()
    pq.write_table(m.set_column(i, m.schema.field(i), pa.array(chunks, m.schema.field(i).type)), meta)


def _v21_chunks_of_two(root: Path) -> None:
    """chunks_size 2: episodes 2k, 2k+1 live under chunk-00k/ (data and videos)."""
    info_path = root / "meta/info.json"
    info = json.loads(info_path.read_text())
    info.update(chunks_size=2, total_chunks=3)
    info_path.unlink()
    info_path.write_text(json.dumps(info, indent=2))
    for ep in range(2, 6):
        for sub in ("data", "videos"):
            for f in sorted((root / sub / "chunk-000").rglob(f"episode_{ep:06d}.*")):
                dst = root / sub / f"chunk-{ep // 2:03d}" / f.relative_to(root / sub / "chunk-000")
                dst.parent.mkdir(parents=True, exist_ok=True)
                f.rename(dst)


@pytest.mark.parametrize(("base", "relayout"), [("g1_v30", _split_v30_data_over_two_chunks), ("g1_v21", _v21_chunks_of_two)])
def test_multi_chunk_layouts_convert_to_the_same_frames(
    base: str, relayout: Callable[[Path], None], sample_copy: Callable[[str], Path], converted: Callable[[str], Path], tmp_path: Path
) -> None:
    """Real datasets span several chunks and data files; the samples use one chunk."""
    src = sample_copy(base)
    relayout(src)
    assert len({p.parent for p in (src / "data").rglob("*.parquet")}) > 1  # the relayout took effect
    out = tmp_path / "out"
    assert cli(["doctor", str(src)]) == 0
    assert cli(["convert", str(src), "--output", str(out), "--quiet"]) == 0
    verify_output(out, src)
    got = lance.dataset(str(out / "frames.lance")).to_table().sort_by("index")
    assert got.equals(lance.dataset(str(converted(base) / "frames.lance")).to_table().sort_by("index"))


def test_segments_of_v2_equal_source_files(converted: Callable[[str], Path]) -> None:
    """v2.x episode blobs are the episode files, byte for byte (sha256 from the samples' README)."""
    import hashlib

    expected = {
        0: "11b52f7349c80f45d7ffedf65e4924a0fe43a272fb2df0c3d2f31fe798e1b1c1",
        5: "7b035061d01356bccad46c0f3708e6eec7ee7be4b6e2a32e81fb045d85c958d5",
    }
    ds = lance.dataset(str(converted("g1_v21") / "episodes.lance"))
    eps = ds.to_table(columns=["episode_index"])["episode_index"].to_pylist()
    for ep, sha in expected.items():
        with ds.take_blobs("observation_images_cam_high_video_blob", indices=[eps.index(ep)])[0] as f:
            assert hashlib.sha256(f.read()).hexdigest() == sha


def test_image_dataset_keeps_encoded_bytes(converted: Callable[[str], Path]) -> None:
    out = converted("g1_image_v30")
    frames = lance.dataset(str(out / "frames.lance"))
    assert frames.schema.field("observation_images_cam_high").type == pa.binary()
    assert lance.dataset(str(out / "videos.lance")).count_rows() == 0
    assert not any(n.endswith("_video_blob") for n in lance.dataset(str(out / "episodes.lance")).schema.names)


def test_partition_rerun_keeps_row_counts(tmp_path: Path) -> None:
    """Re-running a range of episode partitions and then the tables replaces the
    staged output: row counts stay the source's, no key duplicated."""
    from dagster import DagsterInstance
    from pipelines.dagster_compat import ASSET_PARTITION_RANGE_END_TAG as END
    from pipelines.dagster_compat import ASSET_PARTITION_RANGE_START_TAG as START

    from pipelines.config import DatasetConfig
    from pipelines.definitions import build_definitions

    out = tmp_path / "rerun"
    cfg = DatasetConfig(name="rerun", source=str(sample("g1_v30")), output=str(out))
    defs = build_definitions([cfg])
    with DagsterInstance.ephemeral() as instance:

        def run(job: str, **kw: object) -> None:
            assert defs.resolve_job_def(job).execute_in_process(instance=instance, **kw).success

        run("rerun__resolve_source")
        run("rerun__convert_episodes", tags={START: "000000", END: "000005"})
        run("rerun__publish")
        first = lance.dataset(str(out / "frames.lance"))
        run("rerun__convert_episodes", tags={START: "000001", END: "000002"})
        run("rerun__publish")
    frames = lance.dataset(str(out / "frames.lance"))
    assert frames.version > first.version
    assert frames.count_rows() == first.count_rows() == 2316
    keys = frames.to_table(columns=["episode_index", "frame_index"])
    assert len(set(zip(keys["episode_index"].to_pylist(), keys["frame_index"].to_pylist()))) == 2316
    assert frames.to_table().sort_by("index").equals(first.to_table().sort_by("index"))
    assert lance.dataset(str(out / "episodes.lance")).count_rows() == 6
    assert lance.dataset(str(out / "videos.lance")).count_rows() == 3


def test_episode_selection_publishes_only_those(tmp_path: Path) -> None:
    out = tmp_path / "sel"
    assert cli(["convert", str(sample("g1_v21")), "--output", str(out), "--episodes", "0,2-3", "--quiet"]) == 0
    eps = lance.dataset(str(out / "episodes.lance")).to_table(columns=["episode_index"])["episode_index"].to_pylist()
    assert sorted(eps) == [0, 2, 3]
    assert lance.dataset(str(out / "frames.lance")).count_rows() == 393 + 357 + 368
    assert lance.dataset(str(out / "videos.lance")).count_rows() == 3


def test_unusable_requests_fail_with_the_reason_not_a_retry_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    assert cli(["convert", str(sample("g1_v21")), "--output", str(blocker / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "Not a directory" in err and str(blocker) in err and "max_retries" not in err, err

    assert cli(["convert", str(sample("g1_v21")), "--output", str(tmp_path / "o"), "--episodes", "4-9", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "episode_index 0..5" in err and "[6, 7, 8, 9]" in err, err
    assert not (tmp_path / "o" / "frames.lance").exists()

    for argv in (["doctor", str(sample("g1_v21")), "--tolerance-s", "-1"],
                 ["convert", str(sample("g1_v21")), "-o", str(tmp_path / "o"), "--batch-size", "0"]):
        with pytest.raises(SystemExit) as exit_:
            cli(argv)
        assert exit_.value.code == 2
        assert "expected" in capsys.readouterr().err


def test_existing_output_needs_overwrite(converted: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = converted("g1_multicam_v30")
    assert cli(["convert", str(sample("g1_multicam_v30")), "--output", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("name", SAMPLES)
def test_scan_json(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["scan", str(sample(name)), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    info = json.loads((sample(name) / "meta" / "info.json").read_text())
    assert report["codebase_version"] == info["codebase_version"]
    assert report["episodes"] == info["total_episodes"] and report["frames"] == info["total_frames"]
    assert report["fps"] == 30
    assert set(report["cameras"]) == {k for k, f in info["features"].items() if f["dtype"] in ("video", "image")}
    for key, cam in report["cameras"].items():
        f = info["features"][key]
        assert (cam["height"], cam["width"]) == (f["shape"][0], f["shape"][1])
        if f["dtype"] == "video":
            assert cam["codec"] == f["info"]["video.codec"] and cam["probed"]
    assert report["features"]["observation.state"] == {"dtype": "float32", "shape": [26]}
    assert report["tasks"] == {"0": "Pick up the yellow bottle on the table."}


def test_scan_text_and_refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["scan", str(sample("g1_v30"))]) == 0
    text = capsys.readouterr().out
    assert "v3.0" in text and "observation.images.cam_high" in text and "640x480" in text
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text('{"codebase_version": "v1.6"}')
    assert cli(["scan", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "v1.6" in err and "info.json" in err


def test_camera_stats_of_a_reencoded_episode_sample_its_source_frames(converted) -> None:
    """g1_v30_h264_gop30's episode 1 does not start on a keyframe, so its segment
    is re-encoded (few keyframes); camera statistics then sample the source
    window instead, whose frames the lossless segment holds pixel for pixel."""
    import hashlib

    from lerobot_lance import video
    from lerobot_lance.conversion import Conversion
    from lerobot_lance.conversion_stats import _camera_frames
    from lerobot_lance.staging import VIDEOS

    conv = Conversion.at(converted("g1_v30_h264_gop30"))
    cam = conv.staging.current(VIDEOS, 1, conv.revision)["cameras"]["observation.images.cam_high"]
    assert cam["method"] == "reencode"
    sampled = _camera_frames(conv, 1)["observation.images.cam_high"]
    # 10 positions snapped to the source's keyframes (one every 30 frames); two may share one
    assert sampled.shape[1:] == (480, 640, 3) and 8 <= sampled.shape[0] <= 10
    segment = {hashlib.sha256(f.tobytes()).hexdigest() for f in video.iter_frames_rgb(cam["path"])}
    assert len(segment) > 300
    assert all(hashlib.sha256(f.tobytes()).hexdigest() in segment for f in sampled)
