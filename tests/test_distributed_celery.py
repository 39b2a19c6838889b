"""The distributed executor end to end (issue 14, item 2): dagster-celery with a
Redis broker, two workers on 127.0.0.1, the code location's executor chosen by
the ``executor:`` section of datasets.yaml.

A backfill of the ``g1_v21`` sample (6 episodes) in runs of 3 episode
partitions (``backfill_batch_size: 3``, the runs ``BackfillPolicy.multi_run(3)``
makes), each run's steps sent to the workers as Celery tasks, then the publish
run: the per-episode steps ran on both worker processes (their pids, recorded
by the per-episode assets as ``worker_pid``, are the workers' pool processes),
and the output equals an in-process conversion (frames rows and values, blob
sha256). Then one worker process is SIGKILLed in the middle of a step: Celery
requeues the task (``task_acks_late`` + ``task_reject_on_worker_lost``), a live
worker process runs the step again, the run succeeds and the output again
equals the clean conversion.
"""

from __future__ import annotations

import importlib.util
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sample
from tests.helpers_celery import CeleryCluster, celery_cluster, parse_runs, redis_server_binary, step_events, wait_for
from tests.helpers_dagster import assert_same_tables

pytestmark = [
    pytest.mark.slow_e2e,
    pytest.mark.skipif(redis_server_binary() is None, reason="redis-server not installed (Debian: redis-server)"),
    pytest.mark.skipif(importlib.util.find_spec("dagster_celery") is None, reason="dagster-celery not installed (the distributed extra)"),
]

EPISODE_ASSETS = ("episode_frames", "episode_videos", "episode_stats")


def _dataset(name: str, out: Path) -> dict[str, Any]:
    return {"name": name, "source": str(sample("g1_v21")), "output": str(out), "options": {"backfill_batch_size": 3}}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("celery")


@pytest.fixture(scope="module")
def reference(work: Path) -> Path:
    """The same sample converted in-process (the CLI's path)."""
    from pipelines.runner import run_conversion

    out = work / "reference"
    run_conversion(str(sample("g1_v21")), str(out), name="g1_ref", staging_dir=str(work / "ref_staging"))
    return out


@pytest.fixture(scope="module")
def cluster(work: Path) -> Any:
    datasets = [_dataset("g1d", work / "out_distributed"), _dataset("g1k", work / "out_killed")]
    # Every episode_frames step pauses 3 s on entry (lerobot_lance.testhook), so the
    # kill test's SIGKILL lands inside the step, not after a step that already finished.
    from lerobot_lance.testhook import ENV_FILE, ENV_POINT, ENV_SECONDS

    pause = {ENV_POINT: "stage:episode_frames", ENV_FILE: str(work / "paused"), ENV_SECONDS: "3"}
    saved = {k: os.environ.get(k) for k in pause}

    def restore() -> None:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    os.environ.update(pause)  # celery_cluster copies the environment for its workers
    try:
        with celery_cluster(work, datasets, n_workers=2) as c:
            restore()
            c.initial_pool_pids = {pid for w in c.workers for pid in c.pool_pids(w)}  # type: ignore[attr-defined]
            yield c
    finally:
        restore()


def _materializations(c: CeleryCluster, dataset: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """(asset, partition, metadata) of every materialization of the dataset's assets."""
    out = []
    for e in step_events(c.home):
        ev = e.dagster_event
        if ev is not None and ev.event_type_value == "ASSET_MATERIALIZATION":
            mat = ev.event_specific_data.materialization
            if mat.asset_key.path[0] == dataset:
                out.append((mat.asset_key.path[-1], mat.partition, {k: v.value for k, v in mat.metadata.items()}))
    return out


def _step_starts(c: CeleryCluster, step_key: str) -> list[int]:
    return [e.dagster_event.pid for e in step_events(c.home)
            if e.dagster_event is not None and e.dagster_event.event_type_value == "STEP_START" and e.dagster_event.step_key == step_key]


def test_backfill_runs_its_steps_on_two_workers_and_equals_in_process(cluster: CeleryCluster, reference: Path, work: Path) -> None:
    runs = cluster.runs("g1d__resolve_source", "g1d__convert_episodes:0-2", "g1d__convert_episodes:3-5", "g1d__publish", log="g1d")
    assert [r["success"] for r in runs] == [True] * 4, (runs, cluster.log("g1d").read_text(errors="replace")[-3000:])

    mats = _materializations(cluster, "g1d")
    per_episode = [(a, part, md) for a, part, md in mats if a in EPISODE_ASSETS]
    # every partition of the three per-episode assets, each recording the worker process it ran on
    assert sorted((a, part) for a, part, _ in per_episode) == sorted((a, f"{e:06d}") for a in EPISODE_ASSETS for e in range(6))
    pids = {md["worker_pid"] for _, _, md in per_episode}
    assert len(pids) >= 2, per_episode
    assert pids <= cluster.initial_pool_pids, (pids, cluster.initial_pool_pids)  # the workers' pool processes
    assert os.getpid() not in pids
    assert_same_tables(work / "out_distributed", reference)


def test_a_worker_killed_mid_step_is_requeued_and_the_output_equals_a_clean_conversion(
    cluster: CeleryCluster, reference: Path, work: Path
) -> None:
    ours = {pid for w in cluster.workers for pid in cluster.pool_pids(w)}
    proc = cluster.start_runs("g1k__resolve_source", "g1k__convert_episodes:0-5", "g1k__publish", log="g1k")
    # the first per-episode step to start, on one of our workers' pool processes
    started = wait_for(lambda: _step_starts(cluster, "g1k__episode_frames"), 180, "g1k episode_frames started")
    victim = started[0]
    assert victim in ours, (victim, ours)  # only ever kill a process this test started
    os.kill(victim, signal.SIGKILL)  # inside the step: it stages 6 episodes, seconds of work
    proc.wait(timeout=300)
    runs = parse_runs(cluster.log("g1k"))
    assert [r["success"] for r in runs] == [True] * 3, (runs, cluster.log("g1k").read_text(errors="replace")[-3000:])

    starts = _step_starts(cluster, "g1k__episode_frames")
    assert len(starts) == 2 and starts[0] == victim and starts[1] != victim, starts  # run again, by another process
    worker_logs = "".join(cluster.log(f"w{i}").read_text(errors="replace") for i in range(2))
    assert f"pid:{victim} exited with 'signal 9 (SIGKILL)'" in worker_logs
    # the re-executed step materialized every partition (the killed one may have reported some before it died)
    frames = [(part, md) for a, part, md in _materializations(cluster, "g1k") if a == "episode_frames" and md["worker_pid"] != victim]
    assert sorted(part for part, _ in frames) == [f"{e:06d}" for e in range(6)] and all(md["staged"] == 6 for _, md in frames), frames
    assert_same_tables(work / "out_killed", reference)
