"""Failure and kill safety: partition reruns after a failed backfill, and SIGKILL at random points.

What readers see is the snapshot a conversion published: the tag named in
``<out>/meta/conversion.json`` (written last, by an atomic rename), which every
table carries, and the tables' heads once no publish is in flight. A run killed
anywhere must leave that snapshot complete and readable, and the next run must
finish the job and remove what the dead run left behind.
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
import pytest
from dagster import AssetKey, AssetPartitionStatus, instance_for_test

from lerobot_lance.lance_io import JOURNAL, LATEST_TAG
from lerobot_lance.staging import Staging
from pipelines.config import DatasetConfig
from pipelines.definitions import build_definitions
from pipelines.runner import run_conversion
from tests.conftest import sample
from tests.helpers_dagster import (
    REPO,
    RunLog,
    assert_same_tables,
    make_v2_dataset,
    run_conversion_jobs,
    table_digest,
    write_datasets_yaml,
)
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
        staging = Staging(out / "_staging")
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


# --- SIGKILL ---------------------------------------------------------------------------------
def _child(datasets_yaml: Path, pause_after_commit: float | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("DAGSTER_HOME", None)
    if pause_after_commit is not None:
        env["HELPERS_PAUSE_AFTER_COMMIT_S"] = str(pause_after_commit)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.helpers_dagster", "convert", str(datasets_yaml), "g1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )


def _read_until(proc: subprocess.Popen[str], prefix: str, timeout_s: float, count: int = 1) -> str | None:
    """Read the child's stdout until the ``count``-th line starting with ``prefix``;
    ``None`` if the child ended first. Raises after ``timeout_s``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            return None
        if line.startswith(prefix):
            seen += 1
            if seen == count:
                return line
    raise TimeoutError(f"child did not print {prefix!r} within {timeout_s} s")


def _kill(proc: subprocess.Popen[str]) -> bool:
    """SIGKILL the child's process group; True if it was still running."""
    alive = proc.poll() is None
    if alive:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stdout:
        proc.stdout.close()
    return alive


def _digest_at(out: Path, version: Any) -> dict[str, Any]:
    return table_digest(out, version=version)


def unreferenced_data_files(uri: Path) -> set[str]:
    """Data files in the table directory that no version's manifest references."""
    ds = lance.dataset(str(uri))
    referenced = set()
    for v in ds.versions():
        for frag in lance.dataset(str(uri), version=v["version"]).get_fragments():
            referenced |= {f.path for f in frag.metadata.files}
    return {p.name for p in (uri / "data").glob("*.lance")} - referenced


def _published(out: Path, refs: dict[int, dict[str, Any]]) -> int:
    """Check what readers see; return how many episodes the published snapshot holds.

    The snapshot named by meta/conversion.json is complete on every table and
    equals a clean conversion. When no publish is in flight (no journal), the
    tables' heads and their ``latest`` tags agree with one clean conversion too.
    """
    conv = json.loads((out / "meta" / "conversion.json").read_text())
    n = len(conv["episodes"])
    at_tag = _digest_at(out, conv["tag"])
    assert at_tag == refs[n], f"published snapshot {conv['tag']} is not a complete {n}-episode conversion"
    if not (out / "_staging" / JOURNAL).exists():
        heads = _digest_at(out, None)
        assert heads in (refs[4], refs[6]), "table heads are a mix of two conversions"
        for t in TABLES:
            ds = lance.dataset(str(out / f"{t}.lance"))
            assert ds.tags.list()[LATEST_TAG]["version"] == ds.version
    return n


@pytest.mark.timeout(420)
def test_sigkill_at_random_points_never_exposes_partial_tables(tmp_path: Path) -> None:
    refs = {}
    for n in (4, 6):  # what a clean conversion of each source version publishes
        ref_src = make_v2_dataset(sample(SAMPLE), tmp_path / f"ref_src{n}", n)
        run_conversion(str(ref_src), str(tmp_path / f"ref{n}"))
        refs[n] = table_digest(tmp_path / f"ref{n}")

    src, out = tmp_path / "src", tmp_path / "out"
    yml = write_datasets_yaml(
        tmp_path / "datasets.yaml",
        [{"name": "g1", "source": str(src), "output": str(out), "options": {"backfill_batch_size": 3}}],
    )

    def use_source(n: int) -> None:
        shutil.rmtree(src, ignore_errors=True)  # a re-upload: every file is new
        make_v2_dataset(sample(SAMPLE), src, n)

    # A first, uninterrupted conversion (in-process); it also times the phases.
    use_source(4)
    marks: dict[str, float] = {}
    cfg = DatasetConfig(name="g1", source=str(src), output=str(out), options={"backfill_batch_size": 3})
    with instance_for_test() as instance:
        log = run_conversion_jobs(build_definitions([cfg]), cfg, instance,
                                  log=RunLog(on_start=lambda job: marks.setdefault(job.split("__")[-1], time.monotonic())))
    done = time.monotonic()
    assert all(ok for *_, ok in log.runs)
    phase_s = {
        "resolve_source": marks["convert_episodes"] - marks["resolve_source"],
        "convert_episodes": marks["publish"] - marks["convert_episodes"],
        "publish": max(0.5, done - marks["publish"]),
    }
    assert _published(out, refs) == 4

    rng = random.Random(int(os.environ.get("LEROBOT_LANCE_KILL_SEED", "20261122")))
    trials: list[tuple[str, Any]] = [
        ("resolve_source", rng.uniform(0, phase_s["resolve_source"])),
        ("convert_episodes", rng.uniform(0, phase_s["convert_episodes"])),
        ("publish", rng.uniform(0, phase_s["publish"])),
        ("commit", 1),  # between the first and the second table's commit
    ]
    current, leftovers_seen = 4, False
    for what, where in trials:
        use_source(6 if current == 4 else 4)
        if what == "commit":
            child = _child(yml, pause_after_commit=30)
            line = _read_until(child, "COMMITTED", 180, count=int(where))
        else:
            child = _child(yml)
            line = _read_until(child, f"START {what}", 180)
            time.sleep(where)
        killed = _kill(child)
        assert line is not None or not killed
        current = _published(out, refs)  # readable, complete, never partial
        if what == "commit":
            assert killed and (out / "_staging" / JOURNAL).exists()
            pending = [uri for uri in (out / f"{t}.lance" for t in TABLES) if unreferenced_data_files(uri)]
            leftovers_seen |= bool(pending)

    assert leftovers_seen, "the commit-window kills should have left uncommitted fragments behind"
    # The next run completes, publishes the current source and removes what the dead runs left.
    child = _child(yml)
    out_lines, _ = child.communicate(timeout=180)
    assert child.returncode == 0, out_lines
    final = json.loads((src / "meta" / "info.json").read_text())["total_episodes"]
    assert _published(out, refs) == final
    assert table_digest(out) == refs[final]
    staging = out / "_staging"
    assert not (staging / JOURNAL).exists() and not list((staging / "pending").glob("*.json"))
    assert not [p for p in staging.rglob(".*") if ".tmp" in p.name]
    for t in TABLES:
        assert unreferenced_data_files(out / f"{t}.lance") == set(), t
    verify_output(out, src, decode=False)
