"""Staging shared on the object store: partitions on different machines, one publish.

"Machines" are conversions of one ``s3://`` output with different local
staging folders (the working copies), on moto's S3 server
(:func:`tests.test_s3_outputs.s3`): machine A stages episodes 0-2 (frames and
segments), machine C episodes 3-5 and the statistics of all six (reading A's
records and segments through the shared staging area, the frames from the
source: staging holds no copy of them), and machine B, with an
empty folder, writes the tables and publishes. The output read back with
``lancedb.connect("s3://...")`` must equal the local conversion of the same
sample (rows, every value, the sha256 of every blob, ``meta/``), the staging
area must live next to the output (never inside it), and an episode whose
record never reached the store (an upload interrupted before its last
``PutObject``) must count as not staged, be staged again, and only then be
published.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.conftest import sample
from tests.test_s3_outputs import BUCKET, _assert_equal_to_local, _keys, s3  # noqa: F401 - the module's moto fixture

SAMPLE = "g1_v30"


def _conv(uri: str, cache: Path, so: dict[str, str]) -> Any:
    """A fresh conversion of ``uri`` on the "machine" whose staging folder is ``cache``
    (every asset opens its own; so does every stage here)."""
    from lerobot_lance.conversion import Conversion, ConvertOptions

    return Conversion.at(uri, None, ConvertOptions(storage_options=so, stats_plot=False), cache_dir=cache)


def _resolve(uri: str, cache: Path, so: dict[str, str], episodes: list[int] | None = None) -> None:
    from lerobot_lance.conversion import resolve_source
    from lerobot_lance.output_root import claim_output_root

    claim_output_root(uri, str(sample(SAMPLE)), storage_options=so)
    resolve_source(_conv(uri, cache, so), str(sample(SAMPLE)), episodes=episodes)


def _publish(uri: str, cache: Path, so: dict[str, str], seconds: dict[str, float] | None = None) -> Any:
    from lerobot_lance import conversion_stats as CS
    from lerobot_lance.layouts import get_layout
    from lerobot_lance.publish import publish_dataset

    seconds = {} if seconds is None else seconds
    layout = get_layout("card")
    for t, writer in layout.writers.items():
        t0 = time.monotonic()
        writer(_conv(uri, cache, so))
        seconds[f"{t}_table"] = time.monotonic() - t0
    t0 = time.monotonic()
    CS.aggregate_dataset_stats(_conv(uri, cache, so))
    seconds["dataset_stats"] = time.monotonic() - t0
    t0 = time.monotonic()
    conv = _conv(uri, cache, so)
    result = publish_dataset(conv, layout, dataset_stats=CS.read_dataset_stats_json(conv))
    seconds["publish"] = time.monotonic() - t0
    return result


@pytest.fixture(scope="module")
def two_machines(s3: dict[str, Any], converted: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from lerobot_lance import episode_stages as C
    from lerobot_lance import conversion_stats as CS

    tmp = tmp_path_factory.mktemp("s3stage")
    so = s3["options"]
    prefix = "datasets/g1_v30_shared_staging"
    uri = f"s3://{BUCKET}/{prefix}"
    a, b, c = tmp / "machine_a", tmp / "machine_b", tmp / "machine_c"
    local = converted(SAMPLE)
    t0 = time.monotonic()
    _resolve(uri, a, so)
    for cache, eps in ((a, [0, 1, 2]), (c, [3, 4, 5])):
        assert C.stage_episode_frames(_conv(uri, cache, so), eps).ok == eps
        assert C.stage_episode_videos(_conv(uri, cache, so), eps).ok == eps
    stats_conv = _conv(uri, c, so)
    assert CS.stage_episode_stats(stats_conv, list(range(6))).ok == list(range(6))
    t_staged = time.monotonic()
    publish_conv = _conv(uri, b, so)
    steps: dict[str, float] = {}
    result = _publish(uri, b, so, steps)
    t_published = time.monotonic()
    return {"uri": uri, "prefix": prefix, "local": local, "so": so, "a": a, "b": b, "c": c, "result": result,
            "staging": publish_conv.staging.shared.uri, "stats_requests": dict(stats_conv.staging.shared.requests),
            "stats_bytes_down": stats_conv.staging.shared.bytes_down,
            "seconds": {"stage": t_staged - t0, "tables_and_publish": t_published - t_staged, **{k: round(v, 2) for k, v in steps.items()}}}


def test_partitions_staged_on_two_machines_publish_from_a_third_equal_to_local(s3: dict[str, Any], two_machines: dict[str, Any]) -> None:
    print(f"shared staging: staged in {two_machines['seconds']['stage']:.1f} s, tables and publish in "
          f"{two_machines['seconds']['tables_and_publish']:.1f} s ({two_machines['seconds']}); stats step requests {two_machines['stats_requests']}")
    conv = _assert_equal_to_local(s3, two_machines["prefix"], two_machines["local"], ("frames", "episodes", "videos"))
    assert conv["episodes"] == list(range(6)) and conv["tag"] == two_machines["result"].tag
    # machine C computed the stats of episodes 0-2 from A's records and segments, fetched from the store,
    # and their frames from the source (staging holds no copy of the rows)
    assert two_machines["stats_bytes_down"] > 0
    for ep in (0, 1, 2):
        assert (two_machines["c"] / "frames" / f"episode_{ep:06d}.json").is_file()
        assert (two_machines["c"] / "videos" / f"episode_{ep:06d}.json").is_file()
    # machine B published from an empty folder: every episode's records came from the store, no frames file
    assert sorted(p.name for p in (two_machines["b"] / "frames").iterdir()) == [f"episode_{ep:06d}.json" for ep in range(6)]


def test_staging_lives_next_to_the_output_never_inside_it(s3: dict[str, Any], two_machines: dict[str, Any]) -> None:
    staging = two_machines["staging"]
    assert staging.startswith(f"s3://{BUCKET}/datasets/.lerobot-lance-staging/g1_v30_shared_staging-")
    keys = _keys(s3, two_machines["prefix"])
    top = sorted({k.split("/", 1)[0] for k in keys} - {""})  # "": the prefix's own directory marker
    assert top == [".lerobot-lance.json", "README.md", "episodes.lance", "frames.lance", "meta", "videos.lance"], top
    # (pyarrow's S3FileSystem leaves "folder/" marker objects where it deleted the last file)
    staged = [k for k in _keys(s3, staging.split(f"s3://{BUCKET}/", 1)[1]) if not k.endswith("/")]
    records = sorted(k for k in staged if k.endswith(".json") and k.count("/") == 1)
    assert records == sorted(f"{kind}/episode_{ep:06d}.json" for kind in ("frames", "videos", "stats") for ep in range(6))
    # one content-named object per staged data file: 6 segment headers per video camera (the
    # video data stay in the source's shards), no copy of the frames rows
    info = json.loads((sample(SAMPLE) / "meta" / "info.json").read_text())
    cameras = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    assert [k for k in staged if k.startswith("frames/") and not k.endswith(".json")] == []
    headers = [k for k in staged if k.startswith("videos/") and ".mp4.header." in k]
    assert len(cameras) >= 1 and len(headers) == 6 * len(cameras), headers
    assert [k for k in staged if k.startswith("videos/") and ".mp4." in k and ".mp4.header." not in k] == []
    assert "source.json" in staged and "dataset_stats.json" in staged
    assert not [k for k in staged if k.startswith("pending/")], "a publish removes the pending records it committed"


def test_a_staged_object_that_differs_from_its_record_is_refused_by_name(
    s3: dict[str, Any], two_machines: dict[str, Any], tmp_path: Path
) -> None:
    from lerobot_lance.errors import LeRobotLanceError

    from lerobot_lance import video
    from lerobot_lance.staging import VIDEOS

    conv = _conv(two_machines["uri"], tmp_path / "machine_d", two_machines["so"])
    cam = conv.meta.video_keys[0]
    column = conv.meta.features[cam].column
    key = next(k for k in _keys(s3, conv.staging.shared.uri.split(f"s3://{BUCKET}/", 1)[1])
               if k.startswith(f"videos/{column}/episode_000002.mp4."))
    full = conv.staging.shared.uri.split(f"s3://{BUCKET}/", 1)[1] + "/" + key
    good = s3["client"].get_object(Bucket=BUCKET, Key=full)["Body"].read()
    s3["client"].put_object(Bucket=BUCKET, Key=full, Body=good[:-10])
    record = conv.staging.record(VIDEOS, 2)["cameras"][cam]
    header = record["header"]  # the staged file of a segment kept in its shard
    try:
        with pytest.raises(LeRobotLanceError) as err:
            conv.staging.local_file(header, (VIDEOS, 2))
        msg = str(err.value)
        assert key in msg and f"does not match its record videos/{column}/episode_000002.mp4.header" in msg
        assert f"expected {len(good)} bytes" in msg and f"found {len(good) - 10} bytes" in msg
        assert not (tmp_path / "machine_d" / "videos" / column / "episode_000002.mp4.header").exists()  # nothing half-fetched kept
    finally:
        s3["client"].put_object(Bucket=BUCKET, Key=full, Body=good)
    from lerobot_lance.episode_stages import segment_buffer

    (tmp_path / "segment.mp4").write_bytes(segment_buffer(conv, 2, record).to_pybytes())  # header fetched, data from the shard
    assert video.probe_video(tmp_path / "segment.mp4").frame_count == conv.meta.episode(2).length
    assert conv.read_frames(2).num_rows == conv.meta.episode(2).length  # the rows come from the source


def test_interrupted_upload_makes_the_episode_restage_not_publish(
    s3: dict[str, Any], two_machines: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lerobot_lance import episode_stages as C
    from lerobot_lance import conversion_stats as CS
    from lerobot_lance.errors import SourceDataError
    from lerobot_lance.layouts import card_writer
    from lerobot_lance.shared_staging import SharedStaging

    so = s3["options"]
    uri = f"s3://{BUCKET}/datasets/g1_v30_interrupted"
    a, b = tmp_path / "machine_a", tmp_path / "machine_b"
    _resolve(uri, a, so, episodes=[0, 1])
    push = SharedStaging.push_json

    def dies_before_the_record(self: SharedStaging, rel: str, obj: Any) -> None:
        if rel == "frames/episode_000001.json":
            raise OSError("connection reset (simulated: the partition died before its record's PutObject)")
        push(self, rel, obj)

    monkeypatch.setattr(SharedStaging, "push_json", dies_before_the_record)
    with pytest.raises(OSError, match="simulated"):
        C.stage_episode_frames(_conv(uri, a, so), [0, 1])
    monkeypatch.setattr(SharedStaging, "push_json", push)
    assert (a / "frames" / "episode_000001.json").is_file()  # machine A's local record, never uploaded
    staged = _keys(s3, _conv(uri, a, so).staging.shared.uri.split(f"s3://{BUCKET}/", 1)[1])
    assert not [k for k in staged if k.startswith("frames/episode_000001")], staged  # a frames record has no data file
    assert "frames/episode_000001.json" not in staged
    assert C.stage_episode_videos(_conv(uri, a, so), [0, 1]).ok == [0, 1]
    stats = CS.stage_episode_stats(_conv(uri, a, so), [0, 1])
    assert stats.ok == [0] and "frames not staged" in stats.failed[1]
    assert not (a / "frames" / "episode_000001.json").exists()  # the shared copy is the truth, also on A
    # another machine sees episode 1 as not staged, and will not publish it
    assert C.episodes_to_convert(_conv(uri, b, so), [0, 1]) == [1]
    with pytest.raises(SourceDataError) as refused:
        card_writer.write_frames_table(_conv(uri, b, so))
    assert "episode 1: frames: not staged" in str(refused.value)
    # staged again (on B), then published: episode 1's rows equal the local conversion's
    assert C.stage_episode_frames(_conv(uri, b, so), [1]).ok == [1]
    assert CS.stage_episode_stats(_conv(uri, b, so), [1]).ok == [1]
    assert C.episodes_to_convert(_conv(uri, a, so), [0, 1]) == []
    result = _publish(uri, b, so)
    import lance

    frames = lance.dataset(f"{uri}/frames.lance", version=result.tag, storage_options=so).to_table()
    local = lance.dataset(str(two_machines["local"] / "frames.lance")).to_table()
    mine = local.filter(pa.compute.is_in(local["episode_index"], pa.array([0, 1], local["episode_index"].type)))
    assert frames.sort_by("index").equals(mine.sort_by("index"))


def test_default_shared_staging_is_next_to_the_output_and_a_directory_opts_out(tmp_path: Path) -> None:
    from lerobot_lance.conversion import Conversion
    from lerobot_lance.shared_staging import default_shared_staging
    from lerobot_lance.staging import staging_name

    assert default_shared_staging("s3://bkt/a/b/ds") == f"s3://bkt/a/b/.lerobot-lance-staging/{staging_name('s3://bkt/a/b/ds')}"
    assert default_shared_staging("s3://bkt") == f"s3://bkt/.lerobot-lance-staging/{staging_name('s3://bkt')}"  # bucket root
    assert default_shared_staging("gs://bkt/ds", "gs://other/areas") == f"gs://other/areas/{staging_name('gs://bkt/ds')}"
    assert staging_name("s3://bkt/a/ds") != staging_name("s3://bkt/b/ds")  # two outputs never share one
    conv = Conversion.at("s3://bkt/a/ds", f"file://{tmp_path}/st")
    assert conv.staging.shared is None and conv.staging.root == tmp_path / "st"
