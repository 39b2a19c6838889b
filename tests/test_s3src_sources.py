"""Sources on object storage: a LeRobot dataset root at ``s3://bucket/prefix`` on moto's S3 server.

Copies of the shared samples are uploaded to the bucket of the moto fixture of
``tests/test_s3_outputs.py`` (one server per module), then:

- ``g1_v30`` is converted from ``s3://`` through the Python API with the
  conversion's ``storage_options``, ``g1_v21`` through the CLI with only the
  standard AWS variables (``AWS_ENDPOINT_URL``, ...); each output equals the
  session's conversion of the local sample: every table (rows, every non-blob
  value, the sha256 of every blob, so every video byte), every ``meta/`` file
  (``info.json`` included) and ``conversion.json`` but for its source, and
  only what the conversion reads is downloaded;
- the revision (datasets.yaml ``source:`` through the sensor's
  :func:`pipelines.automation.current_revision`) stays the same over an
  untouched prefix and changes when one object is re-uploaded with other
  bytes of the same size, and the episode fingerprints then name exactly the
  episode of that object;
- a deleted data file stops the conversion with a message naming the object
  URI and its episode, and nothing of the output is written; an object
  re-uploaded between the listing and its download is refused by its ETag.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lance
import pytest

from tests.conftest import sample
from tests.test_s3_outputs import BUCKET, KEY, REGION, SECRET, _table_digest, s3  # noqa: F401 - s3: the module-scoped moto fixture

TABLES = ("frames", "episodes", "videos")
#: conversion.json keys that name the source or the publish, not its content
VOLATILE = {"tag", "published_at", "versions", "source", "revision"}


def _upload(s3: dict[str, Any], name: str, prefix: str) -> list[str]:
    """Upload every file of the shared sample ``name`` under ``prefix``; the relative paths."""
    root = sample(name)
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    for rel in rels:
        s3["client"].upload_file(str(root / rel), BUCKET, f"{prefix}/{rel}")
    return rels


def _aws_env(s3: dict[str, Any]) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": s3["endpoint"], "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The source cache of this module (``LEROBOT_LANCE_SOURCE_CACHE``)."""
    from lerobot_lance.object_store_source import SOURCE_CACHE_ENV

    path = tmp_path_factory.mktemp("s3src_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(SOURCE_CACHE_ENV, str(path))
        yield path


@pytest.fixture(scope="module")
def from_s3(s3: dict[str, Any], cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``g1_v30`` (Python API, storage_options) and ``g1_v21`` (CLI, AWS variables) converted from s3://."""
    from lerobot_lance.cli import main
    from pipelines.runner import run_conversion

    tmp = tmp_path_factory.mktemp("s3src")
    out: dict[str, Any] = {}
    rels = _upload(s3, "g1_v30", "src/g1_v30")
    run_conversion(f"s3://{BUCKET}/src/g1_v30", str(tmp / "g1_v30"), options={"storage_options": s3["options"]})
    out["g1_v30"] = {"output": tmp / "g1_v30", "uploaded": rels}
    rels = _upload(s3, "g1_v21", "src/g1_v21")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in _aws_env(s3).items():
            mp.setenv(k, v)
        rc = main(["convert", f"s3://{BUCKET}/src/g1_v21", "--output", str(tmp / "g1_v21"), "--quiet"])
    out["g1_v21"] = {"output": tmp / "g1_v21", "uploaded": rels, "rc": rc}
    return out


def _mirrored(cache: Path) -> set[str]:
    """Relative paths of every file mirrored under any revision tree of the cache."""
    out = set()
    for tree in cache.glob("*/s3-*"):
        out |= {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    return out


@pytest.mark.parametrize("name", ["g1_v30", "g1_v21"])
def test_conversion_from_s3_equals_conversion_of_the_local_sample(
    name: str, from_s3: dict[str, Any], converted: Callable[[str], Path], cache: Path
) -> None:
    got = from_s3[name]
    assert got.get("rc", 0) == 0
    mine, local = got["output"], converted(name)
    conv = json.loads((mine / "meta" / "conversion.json").read_text())
    local_conv = json.loads((local / "meta" / "conversion.json").read_text())
    assert conv["source"] == f"s3://{BUCKET}/src/{name}"
    assert conv["revision"].startswith("s3-")
    assert {k: v for k, v in conv.items() if k not in VOLATILE} == {k: v for k, v in local_conv.items() if k not in VOLATILE}
    for t in TABLES:
        dr = _table_digest(lance.dataset(str(mine / f"{t}.lance"), version=conv["tag"]))
        dl = _table_digest(lance.dataset(str(local / f"{t}.lance"), version=local_conv["tag"]))
        assert dr["rows"] == dl["rows"] > 0, (t, dr["rows"], dl["rows"])
        assert dr["columns"] == dl["columns"], t  # every frame value, episode and video record
        assert dr["blobs"] == dl["blobs"], t  # sha256 of every video segment
    assert conv["rows"]["frames"] == 2316 and conv["rows"]["episodes"] == 6
    meta = sorted(p.relative_to(mine).as_posix() for p in (mine / "meta").rglob("*") if p.is_file())
    assert meta == sorted(p.relative_to(local).as_posix() for p in (local / "meta").rglob("*") if p.is_file())
    assert "meta/info.json" in meta
    for rel in meta:
        if rel != "meta/conversion.json":
            assert (mine / rel).read_bytes() == (local / rel).read_bytes(), rel
    # only what the conversion reads came down: meta/, data/, videos/ (not the LICENSE)
    mirrored = _mirrored(cache)
    uploaded = set(got["uploaded"])
    assert {r for r in uploaded if r.split("/")[0] in ("meta", "data", "videos")} <= mirrored
    assert "LICENSE" in uploaded and "LICENSE" not in mirrored


def _revision_cfg(s3: dict[str, Any], tmp_path: Path, prefix: str) -> Any:
    from pipelines.config import load_dataset_configs

    y = tmp_path / "datasets.yaml"
    opts = ", ".join(f"{k}: '{v}'" for k, v in s3["options"].items())
    y.write_text(f"datasets:\n  - name: g1s3\n    source: s3://{BUCKET}/{prefix}\n    output: {tmp_path / 'out'}\n"
                 f"    storage_options: {{{opts}}}\n")
    return load_dataset_configs(y)[0]


def test_revision_follows_the_listing(s3: dict[str, Any], cache: Path, tmp_path: Path) -> None:
    from lerobot_lance.conversion import episode_fingerprints
    from lerobot_lance.readers import read_dataset_meta
    from pipelines.automation import current_revision
    from resources import LeRobotSourceResource

    prefix = "rev/g1_v21"
    _upload(s3, "g1_v21", prefix)
    cfg = _revision_cfg(s3, tmp_path, prefix)
    assert cfg.source == f"s3://{BUCKET}/{prefix}"
    res = LeRobotSourceResource()
    rev0, src0 = current_revision(cfg, res)
    fp0 = episode_fingerprints(src0, read_dataset_meta(src0.meta_root()))
    assert rev0.startswith("s3-") and current_revision(cfg, res)[0] == rev0  # nothing changed: same revision
    # the same bytes uploaded again: the same ETag and size, so the same revision
    rel = "data/chunk-000/episode_000003.parquet"
    body = (sample("g1_v21") / rel).read_bytes()
    s3["client"].put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=body)
    assert current_revision(cfg, res)[0] == rev0
    # other bytes of the same size: only the ETag tells, and the revision changes
    s3["client"].put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=body[:-1] + bytes([body[-1] ^ 0xFF]))
    rev1, src1 = current_revision(cfg, res)
    assert rev1 != rev0 and rev1.startswith("s3-")
    fp1 = episode_fingerprints(src1, read_dataset_meta(src1.meta_root()))
    assert sorted(e for e in fp0 if fp0[e] != fp1[e]) == [3]  # only the episode of that object needs converting again
    assert current_revision(cfg, res)[0] == rev1
    # the dataset's <name>__source_change sensor: a backfill at the new revision, then "unchanged"
    from dagster import build_sensor_context, instance_for_test

    from pipelines.automation import SensorCursor, sensor_name
    from pipelines.definitions import build_definitions, default_resources

    defs = build_definitions([cfg])
    sensor = defs.get_repository_def().get_sensor_def(sensor_name(cfg))
    with instance_for_test() as instance:
        def tick(cursor: str | None) -> Any:
            with build_sensor_context(instance=instance, cursor=cursor, definitions=defs, resources=default_resources()) as context:
                return sensor.evaluate_tick(context)

        first = tick(SensorCursor(rev0, 6, (), "2026-01-01T00:00:00+00:00").to_json())
        assert len(first.run_requests) == 1 and SensorCursor.parse(first.cursor).revision == rev1
        again = tick(first.cursor)
        assert again.run_requests == [] and f"revision {rev1} unchanged" in again.skip_message
    # scan (the CLI's, credentials from the AWS variables alone) reads meta/ and nothing else
    from lerobot_lance.api import scan

    with pytest.MonkeyPatch.context() as mp:
        for k, v in _aws_env(s3).items():
            mp.setenv(k, v)
        report = scan(cfg.source)
    assert report["revision"] == rev1 and report["episodes"] == 6 and report["frames"] == 2316
    tree = next(cache.glob(f"*/{rev1}"))
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()) == [
        "meta/episodes.jsonl", "meta/episodes_stats.jsonl", "meta/info.json", "meta/tasks.jsonl"]


def test_deleted_data_file_is_located_and_nothing_is_written(s3: dict[str, Any], cache: Path, tmp_path: Path) -> None:
    from lerobot_lance.errors import LeRobotLanceError
    from pipelines.runner import run_conversion

    prefix = "deleted/g1_v21"
    _upload(s3, "g1_v21", prefix)
    rel = "data/chunk-000/episode_000002.parquet"
    s3["client"].delete_object(Bucket=BUCKET, Key=f"{prefix}/{rel}")
    # episodes 0 and 1 do not read that file: they convert, and only their files come down
    summary = run_conversion(f"s3://{BUCKET}/{prefix}", str(tmp_path / "out01"), episodes=[0, 1],
                             options={"storage_options": s3["options"]})
    assert summary.rows["frames"] == 393 + 343 and summary.rows["episodes"] == 2
    rev = json.loads((tmp_path / "out01" / "meta" / "conversion.json").read_text())["revision"]
    tree = next(cache.glob(f"*/{rev}"))
    fetched = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    assert [f for f in fetched if not f.startswith("meta/")] == [
        "data/chunk-000/episode_000000.parquet", "data/chunk-000/episode_000001.parquet",
        "videos/chunk-000/observation.images.cam_high/episode_000000.mp4",
        "videos/chunk-000/observation.images.cam_high/episode_000001.mp4",
    ]
    # every episode: episode 2's step fails, naming the object and the episode; no table, no meta/
    out = tmp_path / "out"
    with pytest.raises(LeRobotLanceError) as err:
        run_conversion(f"s3://{BUCKET}/{prefix}", str(out), options={"storage_options": s3["options"]})
    msg = str(err.value)
    assert f"s3://{BUCKET}/{prefix}/{rel} (episode 2): the object does not exist" in msg, msg
    assert "max_retries" not in msg, msg  # bad data for the pinned listing: failed at once, not retried
    assert "Traceback" not in msg
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []
    assert not any(w.endswith(".lance") or w.startswith("meta") for w in written), written


def test_truncated_download_is_located_and_not_mirrored(s3: dict[str, Any], cache: Path) -> None:
    from lerobot_lance.errors import SourceNotFoundError
    from lerobot_lance.object_store_source import S3Source, SourceTransferError

    prefix = "short/g1_v30"
    _upload(s3, "g1_v30", prefix)
    src = S3Source(f"s3://{BUCKET}/{prefix}", storage_options=s3["options"])
    src.meta_root()
    rel = "videos/observation.images.cam_high/chunk-000/file-001.mp4"
    size = (sample("g1_v30") / rel).stat().st_size

    class ShortBodies:  # the real client, but every body ends after half its bytes (a connection that closed early)
        def __init__(self, client: Any) -> None:
            self.client = client

        def get_object(self, **kw: Any) -> dict[str, Any]:
            import io

            data = self.client.get_object(**kw)["Body"].read()
            return {"Body": io.BytesIO(data[: len(data) // 2])}

    src._client_obj = ShortBodies(src._s3())
    with pytest.raises(SourceTransferError) as err:
        src.fetch([rel])
    e = err.value
    assert isinstance(e, SourceNotFoundError)  # transient: the steps' retry policy downloads it again
    assert e.path == f"s3://{BUCKET}/{prefix}/{rel}" and e.episode_index == 2, str(e)
    assert e.expected == f"{size} bytes (its listed size)" and e.found == f"{size // 2} bytes", str(e)
    assert "read by episodes 2, 3" in str(e)
    assert not (src.mirror_root() / rel).exists()
    assert not list((src.cache / "objects").glob(".*part"))  # no partial download left behind
    src._client_obj = None
    assert (src.fetch([rel]) / rel).read_bytes() == (sample("g1_v30") / rel).read_bytes()


def test_object_reuploaded_after_the_listing_is_refused_by_its_etag(s3: dict[str, Any], cache: Path) -> None:
    from lerobot_lance.errors import SourceNotFoundError
    from lerobot_lance.object_store_source import S3Source, SourceObjectError

    prefix = "changed/g1_v21"
    _upload(s3, "g1_v21", prefix)
    src = S3Source(f"s3://{BUCKET}/{prefix}", storage_options=s3["options"])
    rev = src.revision()
    src.meta_root()
    rel = "videos/chunk-000/observation.images.cam_high/episode_000004.mp4"
    s3["client"].put_object(Bucket=BUCKET, Key=f"{prefix}/{rel}", Body=b"not the listed video")
    with pytest.raises(SourceObjectError) as err:
        src.fetch([rel])
    e = err.value
    assert e.path == f"s3://{BUCKET}/{prefix}/{rel}" and e.episode_index == 4, str(e)
    assert "re-uploaded" in str(e) and rev in str(e)
    assert not (src.mirror_root() / rel).exists()
    # a step reopening the source at the pinned revision reads the cached listing and is refused the same way;
    # one that lists again is told the prefix changed since that revision
    with pytest.raises(SourceObjectError, match="re-uploaded"):
        S3Source(src.uri, rev, storage_options=s3["options"]).fetch([rel])
    other_cache = S3Source(src.uri, rev, storage_options=s3["options"], cache_dir=str(cache / "elsewhere"))
    with pytest.raises(SourceNotFoundError, match=f"changed since revision {rev} was pinned"):
        other_cache.revision()
    # a key the listing does not hold, asked for by a step: located too
    with pytest.raises(SourceObjectError, match="does not exist") as missing:
        src.fetch(["data/chunk-000/episode_000009.parquet"])
    assert missing.value.path.endswith("episode_000009.parquet")
    assert src.fetch(["data/chunk-000/episode_000009.parquet"], missing_ok=True) == src.mirror_root()
