"""Failure and kill safety: partition reruns after a failed backfill; SIGKILL of the
real CLI's process group at every named point of the publish and at seeded random
times; a kill followed by a failing ``--overwrite``; two conversions of one output.

What readers see is the snapshot a conversion published: the tag (and version
vector) named in ``<out>/meta/conversion.json`` (written last), which every table
carries. A run killed anywhere must leave that snapshot complete and readable and
``meta/`` present; the next command on the output first recovers the interrupted
publish (heads all old or all new, ``meta/`` matching), and then converts as if
nothing had happened.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lance
import lancedb
import pyarrow as pa
import pytest
from dagster import AssetKey, AssetPartitionStatus, instance_for_test

from lerobot_lance.lance_io import JOURNAL, LATEST_TAG, PENDING_TABLES_DIR, PREPARED_META_DIR, recover_interrupted_publish
from lerobot_lance.output_lock import output_lock
from lerobot_lance.staging import Staging, default_staging_dir
from lerobot_lance.testhook import ENV_FILE, ENV_POINT, ENV_SECONDS
from pipelines.config import DatasetConfig
from pipelines.definitions import build_definitions
from pipelines.runner import run_conversion
from tests.conftest import sample
from tests.faults import copy_sample, make_fault
from tests.test_publish_meta import assert_output_root_clean
from tests.helpers_dagster import REPO, assert_same_tables, make_v2_dataset, run_conversion_jobs
from tests.verify import verify_output

SAMPLE = "g1_v21"
TABLES = ("frames", "episodes", "videos")


def test_rerun_of_only_the_failed_partitions_after_fixing_a_corrupt_file(tmp_path: Path) -> None:
    src = make_v2_dataset(sample(SAMPLE), tmp_path / "src", 6)
    bad = src / "data" / "chunk-000" / "episode_000004.parquet"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 2])  # a truncated upload
    out = tmp_path / "out"
    cfg = DatasetConfig(name="g1", source=str(src), output=str(out), options={"backfill_batch_size": 3})
    defs = build_definitions([cfg])
    with instance_for_test() as instance:
        log = run_conversion_jobs(defs, cfg, instance)
        # resolve; episodes 0-2; episodes 3-5 (a blocking check fails on episode 4); publish refuses.
        assert [(job.split("__")[1], ok) for job, _, ok in log.runs] == [
            ("resolve_source", True), ("convert_episodes", True), ("convert_episodes", False), ("publish", False),
        ]
        assert not (out / "frames.lance").exists()
        failed_check = [
            e for e in log.results[2].get_asset_check_evaluations()
            if e.check_name == "episodes_staged" and e.asset_key.path[-1] == "episode_frames"
        ]
        assert len(failed_check) == 1 and not failed_check[0].passed
        assert list(failed_check[0].metadata["failed_episodes"].value) == ["4"]
        # Dagster's view: the run over 3-5 stopped at the blocking check, so
        # episode_stats of 3, 4 and 5 failed; 0-2 are materialized.
        parts = defs.get_repository_def().assets_defs_by_key[AssetKey(["g1", "episode_stats"])].partitions_def
        keys = instance.get_dynamic_partitions("g1_episodes")
        status = instance.get_status_by_partition(AssetKey(["g1", "episode_stats"]), keys, parts)
        failed = sorted(k for k, st in status.items() if st != AssetPartitionStatus.MATERIALIZED)
        assert failed == ["000003", "000004", "000005"]
        staging = Staging(default_staging_dir(str(out)))
        assert [ep for ep in range(6) if (staging.record("frames", ep) or {}).get("status") == "failed"] == [4]

        bad.write_bytes(good)  # fixed
        rerun = run_conversion_jobs(defs, cfg, instance, failed, resolve=False)
        assert [ok for *_, ok in rerun.runs] == [True, True] and rerun.episode_runs() == [failed]
        status = instance.get_status_by_partition(AssetKey(["g1", "episode_stats"]), keys, parts)
        assert set(status.values()) == {AssetPartitionStatus.MATERIALIZED}

    clean = tmp_path / "clean"
    run_conversion(str(src), str(clean))
    assert_same_tables(out, clean)  # no duplicated and no lost rows
    verify_output(out, src, decode=False)


# --- SIGKILL of the real CLI ---------------------------------------------------------------
SOURCE = "g1_multicam_v30"  # 2 episodes, two cameras: the fastest sample
FAST = ["--camera-stats-samples", "0", "-q"]
#: Named points of the publish (lerobot_lance.testhook), in the order it reaches
#: them, and which conversion recovery leaves published: before every table is
#: committed and verified it rolls back (old), after it rolls forward (new).
POINTS: list[tuple[str, str]] = [
    ("commit:frames", "old"),
    ("index:frames:task_index", "old"),
    ("commit:episodes", "old"),
    ("commit:videos", "old"),
    ("committed", "new"),
    ("tag:episodes:*", "new"),
    ("meta:info.json", "new"),
    ("meta:conversion.json", "new"),
]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DAGSTER_HOME", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lerobot_lance.cli", *args], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )


def _wait_for(marker: Path, proc: subprocess.Popen[str], timeout_s: float = 300) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if marker.exists():
            return marker.read_text()
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"child ended (rc {proc.returncode}) before pausing: {err[-2000:]}")
        time.sleep(0.05)
    raise TimeoutError(f"child did not reach {marker.name} within {timeout_s} s")


def _kill(proc: subprocess.Popen[str]) -> bool:
    """SIGKILL the child's process group; True if it was still running."""
    alive = proc.poll() is None
    if alive:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    return alive


def _digest(out: Path, versions: str | dict[str, int] | None) -> dict[str, Any]:
    """Content of the three tables at a tag, a version vector, or the heads: sorted
    non-blob columns and a sha256 per blob; asserts unique keys."""
    import hashlib

    digest: dict[str, Any] = {}
    for table, key in (("frames", "index"), ("episodes", "episode_index"), ("videos", "relative_path")):
        v = versions.get(table) if isinstance(versions, dict) else versions
        ds = lance.dataset(str(out / f"{table}.lance"), version=v)
        blobs = [f.name for f in ds.schema if (f.metadata or {}).get(b"lance-encoding:blob") == b"true"]
        t = ds.to_table(columns=[n for n in ds.schema.names if n not in blobs], with_row_id=True).sort_by(key)
        keys = t[key].to_pylist()
        assert len(keys) == len(set(keys)), f"{table}: duplicated {key}"
        hashes = {}
        for b in blobs:
            hashes[b] = []
            for f in ds.take_blobs(b, ids=t["_rowid"].to_pylist()):
                with f as fh:
                    hashes[b].append(hashlib.sha256(fh.read()).hexdigest())
        digest[table] = {"columns": t.drop_columns(["_rowid"]).to_pydict(), "blobs": hashes}
    return digest


def _pinned(out: Path, refs: dict[str, Any]) -> str:
    """What a reader pinning ``meta/conversion.json`` sees: ``meta/`` exists, the tag
    and the version vector both give one complete conversion (``old`` or ``new``)."""
    conv = json.loads((out / "meta" / "conversion.json").read_text())
    which = {1: "old", 2: "new"}[len(conv["episodes"])]
    assert _digest(out, conv["tag"]) == refs[which], f"tag {conv['tag']} is not one whole {which} conversion"
    assert _digest(out, conv["versions"]) == refs[which], "the version vector is not one whole conversion"
    return which


def _settled(out: Path, refs: dict[str, Any]) -> str:
    """After recovery: no publish in flight; heads, ``latest``, the pinned tag and
    every meta file describe the same conversion; every listed table opens."""
    assert not (out / JOURNAL).exists() and not (out / PENDING_TABLES_DIR).exists() and not (out / PREPARED_META_DIR).exists()
    which = _pinned(out, refs)
    assert _digest(out, None) == refs[which], "table heads are a mix of two conversions"
    conv = json.loads((out / "meta" / "conversion.json").read_text())
    db = lancedb.connect(str(out))
    assert sorted(db.table_names()) == ["episodes", "frames", "videos"]
    for t in ("frames", "episodes", "videos"):
        ds = lance.dataset(str(out / f"{t}.lance"))
        tags = ds.tags.list()
        assert _digest_one(out, t, tags[LATEST_TAG]["version"]) == _digest_one(out, t, None)
        db.open_table(t).count_rows()
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["total_episodes"] == len(conv["episodes"]) == lance.dataset(str(out / "episodes.lance")).count_rows()
    assert info["total_frames"] == lance.dataset(str(out / "frames.lance")).count_rows()
    return which


def _digest_one(out: Path, table: str, version: Any) -> pa.Table:
    ds = lance.dataset(str(out / f"{table}.lance"), version=version)
    cols = [f.name for f in ds.schema if (f.metadata or {}).get(b"lance-encoding:blob") != b"true"]
    return ds.to_table(columns=cols)


def _recover(out: Path) -> None:
    """What the next command does first (lerobot_lance.conversion.writing)."""
    with output_lock(str(out)):
        recover_interrupted_publish(out / JOURNAL)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The source, a pristine output holding the old conversion (episode 0 only),
    and the content of a clean old and a clean new (both episodes) conversion."""
    base = tmp_path_factory.mktemp("kill")
    src = copy_sample(SOURCE, base / "src")
    old, new = base / "old", base / "new"
    env = _env()
    for out, extra in ((old, ["--episodes", "0"]), (new, [])):
        proc = _cli(["convert", str(src), "--output", str(out), *FAST, *extra], env)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    return {"src": src, "old": old, "refs": {"old": _digest(old, None), "new": _digest(new, None)}, "publish_s": []}


def _kill_at(world: dict[str, Any], tmp: Path, point: str) -> Path:
    """Copy the old output, start a full conversion over it, SIGKILL its process
    group at ``point``; check pinned readers while it is paused and after the kill."""
    out = tmp / "out"
    shutil.copytree(world["old"], out)
    marker = tmp / "paused"
    env = _env(**{ENV_POINT: point, ENV_FILE: str(marker), ENV_SECONDS: "600"})
    t0 = time.monotonic()
    proc = _cli(["convert", str(world["src"]), "--output", str(out), "--overwrite", "--staging-dir", str(tmp / "staging"), *FAST], env)
    reached = _wait_for(marker, proc)
    world["publish_s"].append(time.monotonic() - t0)
    assert reached.startswith(point.rstrip("*"))
    _pinned(out, world["refs"])  # a reader during the publish
    assert _kill(proc)
    _pinned(out, world["refs"])  # and after the kill, before any recovery
    return out


@pytest.mark.slow_e2e
@pytest.mark.parametrize("point,after", POINTS, ids=[p for p, _ in POINTS])
def test_sigkill_at_each_publish_point_leaves_one_snapshot(world: dict[str, Any], tmp_path: Path, point: str, after: str) -> None:
    out = _kill_at(world, tmp_path, point)
    _recover(out)
    assert _settled(out, world["refs"]) == after


@pytest.mark.slow_e2e
def test_sigkill_at_random_times_then_the_next_command_converts_cleanly(world: dict[str, Any], tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("LEROBOT_LANCE_KILL_SEED", "20261201")))
    span = max(world["publish_s"] or [20.0])
    seen = []
    for trial in range(3):
        tmp = tmp_path / f"t{trial}"
        out = tmp / "out"
        shutil.copytree(world["old"], out)
        proc = _cli(["convert", str(world["src"]), "--output", str(out), "--overwrite", "--staging-dir", str(tmp / "staging"), *FAST], _env())
        time.sleep(rng.uniform(0.7 * span, 1.15 * span))  # around the publish
        killed = _kill(proc)
        _pinned(out, world["refs"])
        _recover(out)
        seen.append((killed, _settled(out, world["refs"])))
    # The next command after the last kill: recovers, then publishes the new conversion.
    proc = _cli(["convert", str(world["src"]), "--output", str(out), "--overwrite", "--staging-dir", str(tmp / "staging"), *FAST], _env())
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert _settled(out, world["refs"]) == "new"
    assert_output_root_clean(out, ["frames", "episodes", "videos"])
    for t in ("frames", "episodes", "videos"):
        assert unreferenced_data_files(out / f"{t}.lance") == set(), t
    print("random kills (killed, state after recovery):", seen)


@pytest.mark.slow_e2e
def test_kill_then_failing_overwrite_leaves_consistent_heads(world: dict[str, Any], tmp_path: Path) -> None:
    out = _kill_at(world, tmp_path, "commit:episodes")  # frames new, episodes and videos old
    assert (out / JOURNAL).exists()
    bad = tmp_path / "bad"
    make_fault("info_missing_fps", bad)
    proc = _cli(["convert", str(bad), "--output", str(out), "--overwrite", "--staging-dir", str(tmp_path / "staging"), *FAST], _env())
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 2 and "required_info_keys" in err and "Traceback" not in err, err[-2000:]
    assert _settled(out, world["refs"]) == "old"


def unreferenced_data_files(uri: Path) -> set[str]:
    """Data files in the table directory that no version's manifest references."""
    ds = lance.dataset(str(uri))
    referenced = set()
    for v in ds.versions():
        for frag in lance.dataset(str(uri), version=v["version"]).get_fragments():
            referenced |= {f.path for f in frag.metadata.files}
    return {p.name for p in (uri / "data").glob("*.lance")} - referenced


@pytest.mark.slow_e2e
def test_two_conversions_of_one_output(world: dict[str, Any], tmp_path: Path) -> None:
    src = str(world["src"])
    # Started together: one converts, the other exits at once naming the holder.
    out = tmp_path / "together"
    procs = [_cli(["convert", src, "--output", str(out), "--staging-dir", str(tmp_path / f"s{i}"), *FAST], _env()) for i in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    loser = next(err for p, (_, err) in zip(procs, results) if p.returncode != 0) if codes == [0, 2] else ""
    # The loser either met the lock, or (started after the winner's publish) found the tables there.
    assert codes == [0, 2], [r[1][-1500:] for r in results]
    assert ("another conversion is writing this output: pid" in loser and "since" in loser) or "already holds Lance tables" in loser, loser
    assert "Traceback" not in loser
    assert _settled(out, world["refs"]) == "new"

    # One started during the other's publish (paused between two commits) exits at once.
    out = tmp_path / "during"
    shutil.copytree(world["old"], out)
    marker = tmp_path / "paused"
    first = _cli(["convert", src, "--output", str(out), "--overwrite", "--staging-dir", str(tmp_path / "s_first"), *FAST],
                 _env(**{ENV_POINT: "commit:episodes", ENV_FILE: str(marker), ENV_SECONDS: "20"}))
    _wait_for(marker, first)
    t0 = time.monotonic()
    second = _cli(["convert", src, "--output", str(out), "--overwrite", "--staging-dir", str(tmp_path / "s_second"), *FAST], _env())
    _, err = second.communicate(timeout=300)
    assert second.returncode == 2, err[-2000:]
    holder = f"pid {first.pid}"
    assert f"another conversion is writing this output: {holder}" in err and "lerobot-lance convert" in err and "since" in err, err
    assert time.monotonic() - t0 < 60  # at once (interpreter start included), not after the first finished
    assert first.poll() is None, "the first conversion should still be paused"
    _pinned(out, world["refs"])
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert _settled(out, world["refs"]) == "new"
