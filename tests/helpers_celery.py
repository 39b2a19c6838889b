"""A real Celery cluster on 127.0.0.1 for the distributed-executor tests: Debian's
``redis-server`` as broker and result backend, and dagster-celery workers
started the documented way (``dagster-celery worker start -A dagster_celery.app -y
celery.yaml``), each with its own pool process; runs launched with
``dagster job execute`` in a child process (the run's orchestrator). Every wait
is bounded in time; every process started here is stopped by its own pid group.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.helpers_dagster import REPO, free_port, stop_process, wait_until

#: Celery settings of the tests and of deploy/celery.yaml: a task is acknowledged
#: only when it finished, and requeued when its worker process dies, so a killed
#: worker's step runs again on a live worker; one task per worker process at a time.
CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
}


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


def executor_settings(redis_port: int) -> dict[str, Any]:
    """The ``executor:`` section of datasets.yaml for this cluster."""
    return {
        "celery": {
            "broker": f"redis://127.0.0.1:{redis_port}/0",
            "backend": f"redis://127.0.0.1:{redis_port}/1",
            "config_source": dict(CELERY_SETTINGS),
            "retries": {"enabled": {}},
        }
    }


@dataclass
class CeleryCluster:
    """Redis and the workers of one test module, and the environment every
    process of it shares (DAGSTER_HOME, datasets YAML, staging root)."""

    workdir: Path
    home: Path
    env: dict[str, str]
    redis_port: int
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def start_worker(self, name: str, timeout_s: float = 120, wait: bool = True) -> subprocess.Popen[bytes]:
        """One worker (one pool process, ``-c 1``); returns once it is ready (``wait``)."""
        cmd = [str(Path(sys.executable).parent / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
               "-y", str(self.workdir / "celery.yaml"), "-n", name, "--loglevel", "INFO", "--", "-c", "1",
               "--without-gossip", "--without-mingle"]
        log = self.log(name)
        proc = subprocess.Popen(cmd, cwd=REPO, env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.workers.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
            return " ready." in log.read_text(errors="replace")

        if wait:
            wait_until(ready, timeout_s, f"celery worker {name} ready")
        return proc

    def wait_ready(self, timeout_s: float = 120) -> None:
        for i, proc in enumerate(self.workers):
            log = self.log(f"w{i}")
            wait_until(lambda: proc.poll() is None and " ready." in log.read_text(errors="replace"), timeout_s, f"celery worker w{i} ready")

    def pool_pids(self, worker: subprocess.Popen[bytes]) -> set[int]:
        """Pids of the processes under a worker (the ``celery worker`` process and its pool processes)."""
        import psutil  # installed with dask.distributed and celery's extras; read-only here

        return {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}

    def dagster(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the ``dagster`` CLI with the cluster's environment."""
        return subprocess.run([str(Path(sys.executable).parent / "dagster"), *args], cwd=REPO, env=self.env,
                              capture_output=True, text=True, timeout=timeout_s)

    def execute_job(self, job: str, tags: dict[str, str] | None = None, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        """``dagster job execute`` of one job of the code location (its orchestrator in a child process)."""
        args = ["job", "execute", "-m", "pipelines.definitions", "-a", "defs", "-j", job]
        if tags:
            args += ["--tags", json.dumps(tags)]
        return self.dagster(*args, timeout_s=timeout_s)

    def start_runs(self, *runs: str, log: str = "orchestrator") -> subprocess.Popen[bytes]:
        """Start one child process that executes ``runs`` one after the other
        (see :func:`_main`: ``JOB`` or ``JOB:FIRST-LAST`` over episode partitions)."""
        proc = subprocess.Popen([sys.executable, "-m", "tests.helpers_celery", "run", *runs], cwd=REPO, env=self.env,
                                stdout=self.log(log).open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def runs(self, *runs: str, timeout_s: float = 300, log: str = "orchestrator") -> list[dict[str, Any]]:
        """Execute ``runs`` (see :meth:`start_runs`); returns ``[{job, run_id, success}]``."""
        proc = self.start_runs(*runs, log=log)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_process(proc)
            raise TimeoutError(f"runs {runs} not done within {timeout_s} s:\n{self.log(log).read_text(errors='replace')[-3000:]}") from None
        return parse_runs(self.log(log))


def parse_runs(log: Path) -> list[dict[str, Any]]:
    """The ``RUN {json}`` lines the orchestrator child printed."""
    return [json.loads(line[4:]) for line in log.read_text(errors="replace").splitlines() if line.startswith("RUN {")]


@contextmanager
def celery_cluster(workdir: Path, datasets: Sequence[dict[str, Any]], n_workers: int = 2) -> Iterator[CeleryCluster]:
    """Redis on a free port of 127.0.0.1, a fresh DAGSTER_HOME (SQLite, shared
    by the orchestrators and the workers of this machine), a datasets YAML of
    ``datasets`` with the Celery executor, and ``n_workers`` workers."""
    binary = redis_server_binary()
    if binary is None:
        raise FileNotFoundError("redis-server is not installed (Debian: apt-get install -y redis-server)")
    port = free_port()
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}}))
    settings = executor_settings(port)
    (workdir / "celery.yaml").write_text(yaml.safe_dump({"execution": {"config": settings["celery"]}}))
    yml = workdir / "datasets.yaml"
    yml.write_text(yaml.safe_dump({"executor": settings, "datasets": list(datasets)}, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env.update(
        DAGSTER_HOME=str(home), LEROBOT_LANCE_DATASETS=str(yml), LEROBOT_LANCE_STAGING=str(workdir / "staging"),
        DAGSTER_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    )
    redis_log = workdir / "redis.log"
    redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=redis_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    cluster = CeleryCluster(workdir, home, env, port)
    try:
        wait_until(lambda: "Ready to accept connections" in redis_log.read_text(errors="replace"), 30, "redis-server ready")
        # create the instance's SQLite storages once, before several processes open them
        subprocess.run([sys.executable, "-c", "from dagster import DagsterInstance\nwith DagsterInstance.get() as i:\n"
                        "    i.run_storage, i.event_log_storage, i.schedule_storage"], env=env, check=True, capture_output=True, timeout=120)
        for i in range(n_workers):
            cluster.start_worker(f"w{i}", wait=False)
        cluster.wait_ready()
        yield cluster
    finally:
        for p in [*cluster.procs, *reversed(cluster.workers)]:
            stop_process(p)
        stop_process(redis)


def step_events(home: Path, run_id: str | None = None) -> list[Any]:
    """Event log records of the instance at ``home`` (all runs, or one)."""
    from dagster import DagsterInstance

    from pipelines.dagster_compat import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        runs = [run_id] if run_id else [r.run_id for r in instance.get_runs()]
        return [e for rid in runs for e in instance.all_logs(rid)]


def runs_of(home: Path) -> list[Any]:
    from dagster import DagsterInstance

    from pipelines.dagster_compat import InstanceRef

    with DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        return list(instance.get_runs())


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    return wait_until(predicate, timeout_s, what, interval_s=0.3)


def now() -> float:
    return time.monotonic()


def _main(argv: list[str]) -> int:
    """``python -m tests.helpers_celery run JOB[:FIRST-LAST] ...``: against
    ``$DAGSTER_HOME``, execute each job of the code location in turn through
    its configured executor (what a run worker does: ``execute_job`` of the
    reconstructable job), over the episode partition range FIRST-LAST when
    given; print ``RUN {"job", "run_id", "success"}`` per run."""
    if not argv or argv[0] != "run":
        print(_main.__doc__, file=sys.stderr)
        return 2
    from dagster import DagsterInstance, execute_job

    from lerobot_lance.staging import partition_key
    from pipelines.dagster_compat import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
        ReconstructableRepository,
    )

    repo = ReconstructableRepository.for_module("pipelines.definitions", "defs", str(REPO))
    ok = True
    with DagsterInstance.get() as instance:
        for spec in argv[1:]:
            job, _, rng = spec.partition(":")
            tags = {}
            if rng:
                lo, hi = (int(x) for x in rng.split("-"))
                tags = {ASSET_PARTITION_RANGE_START_TAG: partition_key(lo), ASSET_PARTITION_RANGE_END_TAG: partition_key(hi)}
            result = execute_job(repo.get_reconstructable_job(job), instance, tags=tags)
            print("RUN " + json.dumps({"job": job, "run_id": result.run_id, "success": result.success}), flush=True)
            ok = ok and result.success
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
