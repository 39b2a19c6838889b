"""``bench.py --celery-backfill N``: wall time of an N-episode backfill through
the Celery executor against the same runs in-process (issue 14, closing note).

    python benchmarks/bench.py --celery-backfill 300 --workers 2 --batch 50

The dataset is ``g1_v21`` repeated ``N / 6`` times (``bench.build_repeated_v21``).
Both modes execute the same runs, one after another, each run's orchestrator a
child process (``python -m tests.helpers_celery run ...``, i.e. Dagster's
``execute_job`` of the reconstructable job, what ``dagster job execute`` does):
``<name>__resolve_source``, then ``<name>__convert_episodes`` over episode
partition ranges of ``--batch`` (the runs of a ``multi_run(batch)`` backfill),
then ``<name>__publish``:

(a) in-process: a datasets YAML without an ``executor:`` section (the code
    location's default, every step of a run in the run's process);
(b) Celery: Debian ``redis-server`` and ``--workers`` dagster-celery workers on
    127.0.0.1 (``tests.helpers_celery.celery_cluster``, one pool process each),
    every step a Celery task.

Each wall is timed from the first launch to the end of the publish run. From
the runs' event logs (``STEP_SUCCESS`` durations, ``STEP_START`` pids) it
prints the per-episode step seconds (the per-episode assets ``episode_frames``,
``episode_videos``, ``episode_stats``: the total, and the median over the
episode runs of their step seconds per episode), the sum of all step seconds,
the distinct pids that ran steps, the orchestration overhead
(``wall - step_seconds / workers``) and the fit
``wall ≈ fixed + per_episode * N / workers`` with ``per_episode = per-episode
step seconds / N`` and ``fixed`` the rest of the measured wall. The two outputs
must have equal ``frames`` row counts (and equal to the source's frames).

Nothing is asserted about speed (figures, not tests). Within one
``convert_episodes`` run ``episode_frames`` and ``episode_videos`` are
independent and ``episode_stats`` needs both, so at most two steps of a run run
at once; runs are sequential here as in a backfill limited to one run at a time
(``--concurrent-runs K``: K orchestrators share the episode runs of (b)).
``--publish-in-process``: (b)'s publish run in-process, see :func:`celery_backfill`.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

EPISODE_ASSETS = ("episode_frames", "episode_videos", "episode_stats")


def _run_specs(name: str, n: int, batch: int) -> list[str]:
    ranges = [f"{name}__convert_episodes:{lo}-{min(lo + batch, n) - 1}" for lo in range(0, n, batch)]
    return [f"{name}__resolve_source", *ranges, f"{name}__publish"]


def _execute(env: dict[str, str], specs: list[str], log: Path, timeout_s: float, concurrent: int = 1) -> tuple[float, list[dict[str, Any]]]:
    """Run ``specs`` (resolve, episode runs, publish) in orchestrator children
    (``tests.helpers_celery run``): one child for all when ``concurrent`` is 1,
    else resolve, then the episode runs dealt round-robin to ``concurrent``
    children running at the same time, then publish; returns (wall s, RUN records)."""
    from tests.helpers_celery import parse_runs
    from tests.helpers_dagster import stop_process

    groups = [[specs]] if concurrent <= 1 else [[specs[:1]], [specs[1:-1][i::concurrent] for i in range(concurrent)], [specs[-1:]]]
    t0 = time.perf_counter()
    runs: list[dict[str, Any]] = []
    for g, group in enumerate(groups):
        procs = []
        for i, part in enumerate(p for p in group if p):
            plog = log if len(groups) == 1 else log.with_name(f"{log.stem}.{g}.{i}.log")
            procs.append((plog, subprocess.Popen([sys.executable, "-m", "tests.helpers_celery", "run", *part], cwd=REPO, env=env,
                                                 stdout=plog.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)))
        for plog, proc in procs:
            try:
                proc.wait(timeout=max(1.0, timeout_s - (time.perf_counter() - t0)))
            except subprocess.TimeoutExpired:
                for _, q in procs:
                    stop_process(q)
                raise TimeoutError(f"runs not done within {timeout_s:.0f} s; see {plog}") from None
            runs += parse_runs(plog)
    wall = time.perf_counter() - t0
    if len(runs) != len(specs) or not all(r["success"] for r in runs):
        raise RuntimeError(f"runs failed: {runs}; see {log.parent}")
    return wall, runs


def _step_figures(home: Path, runs: list[dict[str, Any]], name: str, n: int) -> dict[str, Any]:
    """Step seconds and pids of ``runs`` from the event log at ``home``."""
    from tests.helpers_celery import step_events

    per_episode_total, all_steps, per_episode_by_run, pids = 0.0, 0.0, [], set()
    steps: dict[str, float] = {}
    run_walls: list[tuple[str, float]] = []
    for r in runs:
        run_episode_s = 0.0
        events = step_events(home, r["run_id"])
        stamps = [e.timestamp for e in events]
        run_walls.append((r["job"], max(stamps) - min(stamps)))
        for e in events:
            ev = e.dagster_event
            if ev is None:
                continue
            if ev.event_type_value == "STEP_START":
                pids.add(ev.pid)
            elif ev.event_type_value == "STEP_SUCCESS":
                s = ev.event_specific_data.duration_ms / 1000.0
                all_steps += s
                asset = ev.step_key.removeprefix(f"{name}__")
                steps[asset] = steps.get(asset, 0.0) + s
                if asset in EPISODE_ASSETS:
                    per_episode_total += s
                    run_episode_s += s
        per_episode_by_run.append((r["job"], run_episode_s))
    return {"per_episode_total_s": per_episode_total, "all_steps_s": all_steps, "pids": sorted(pids), "steps_s": steps,
            "_by_run": per_episode_by_run, "run_walls": run_walls}


def _frames_rows(out: Path) -> int:
    import lance

    return lance.dataset(str(out / "frames.lance")).count_rows()


def _report(label: str, wall: float, workers: int, fig: dict[str, Any], n: int, batch: int) -> dict[str, Any]:
    ranges = [min(batch, n - lo) for lo in range(0, n, batch)]
    run_s = [s for job, s in fig["_by_run"] if job.endswith("__convert_episodes")]
    per_ep_median = statistics.median(s / k for s, k in zip(run_s, ranges)) if run_s else float("nan")
    per_episode = fig["per_episode_total_s"] / n
    fixed = wall - per_episode * n / workers
    overhead = wall - fig["all_steps_s"] / workers
    print(f"[{label}] wall {wall:.1f} s for {n} episodes ({len(ranges)} episode runs of <= {batch} + resolve + publish), {workers} worker(s)")
    print(f"[{label}] per-episode step seconds: total {fig['per_episode_total_s']:.1f} s, "
          f"median {per_ep_median:.3f} s/episode over the episode runs, mean {per_episode:.3f} s/episode")
    print(f"[{label}] all step seconds {fig['all_steps_s']:.1f} s: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(fig["steps_s"].items())))
    ep_walls = [w for job, w in fig["run_walls"] if job.endswith("__convert_episodes")]
    other = sum(w for job, w in fig["run_walls"] if not job.endswith("__convert_episodes"))
    print(f"[{label}] run walls (first to last event): episode runs median {statistics.median(ep_walls):.1f} s "
          f"(sum {sum(ep_walls):.1f} s), resolve + publish runs {other:.1f} s")
    print(f"[{label}] distinct pids that ran steps: {len(fig['pids'])} {fig['pids']}")
    print(f"[{label}] orchestration overhead (wall - step seconds / {workers}): {overhead:.1f} s")
    print(f"[{label}] fit: fixed {fixed:.1f} s + per_episode {per_episode:.3f} s * N / workers")
    return {"wall_s": wall, "workers": workers, "per_episode_s": per_episode, "per_episode_median_s": per_ep_median,
            "per_episode_total_s": fig["per_episode_total_s"], "all_steps_s": fig["all_steps_s"], "steps_s": fig["steps_s"],
            "pids": fig["pids"], "run_walls_s": fig["run_walls"], "overhead_s": overhead, "fixed_s": fixed}


def celery_backfill(n: int, workers: int, batch: int, work: Path, concurrent_runs: int = 1,
                    publish_in_process: bool = False, keep_outputs: bool = False) -> dict[str, Any]:
    """Build the ``n``-episode dataset, run (a) in-process and (b) through Celery; print and return the figures.

    ``publish_in_process``: in (b), the publish run executes in-process (the
    same instance, staging and output, a datasets YAML without ``executor:``)
    after the episode runs went through Celery. Through Celery the publish
    run's table steps (``episodes_table``, ``frames_table``, ``videos_table``)
    can run at the same time on two workers, and each takes the output's writer
    lock, so one of them fails with ``OutputLockedError`` (seen at N=300).
    ``keep_outputs``: keep both outputs (by default each is removed once its
    frames rows are counted; at N=300 each is ~2 GB).
    """
    import os

    import yaml

    from benchmarks.bench import build_repeated_v21
    from tests.helpers_celery import celery_cluster

    if n % 6:
        raise SystemExit(f"--celery-backfill N must be a multiple of 6 (g1_v21's episodes), got {n}")
    work.mkdir(parents=True, exist_ok=True)
    src = build_repeated_v21(work / f"g1_v21_x{n // 6}", n // 6)
    timeout_s = 120 + 20.0 * n
    opts = {"backfill_batch_size": batch}
    results: dict[str, Any] = {"episodes": n, "batch": batch}

    # (a) in-process: the code location without an executor section
    ip = work / "inprocess"
    home = ip / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump({"telemetry": {"enabled": False}}))
    yml = ip / "datasets.yaml"
    yml.write_text(yaml.safe_dump({"datasets": [{"name": "bip", "source": str(src), "output": str(ip / "out"), "options": opts}]},
                                  sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env.update(DAGSTER_HOME=str(home), LEROBOT_LANCE_DATASETS=str(yml), LEROBOT_LANCE_STAGING=str(ip / "staging"),
               DAGSTER_DISABLE_TELEMETRY="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    subprocess.run([sys.executable, "-c", "from dagster import DagsterInstance\nwith DagsterInstance.get() as i:\n"
                    "    i.run_storage, i.event_log_storage, i.schedule_storage"], env=env, check=True, capture_output=True, timeout=120)
    wall, runs = _execute(env, _run_specs("bip", n, batch), ip / "runs.log", timeout_s)
    results["in_process"] = _report("in-process", wall, 1, _step_figures(home, runs, "bip", n), n, batch)
    rows_ip = _frames_rows(ip / "out")
    if not keep_outputs:  # the 300-episode output is ~2 GB (video blobs): free it before (b) writes its own
        shutil.rmtree(ip / "out")

    # (b) Celery with `workers` workers
    cw = work / "celery"
    cw.mkdir(parents=True, exist_ok=True)
    datasets = [{"name": "bce", "source": str(src), "output": str(cw / "out"), "options": opts}]
    with celery_cluster(cw, datasets, n_workers=workers) as c:
        pool = {pid for w in c.workers for pid in c.pool_pids(w)}
        specs = _run_specs("bce", n, batch)
        if not publish_in_process:
            wall, runs = _execute(c.env, specs, cw / "runs.log", timeout_s, concurrent_runs)
        else:
            yml_ip = cw / "datasets_in_process.yaml"
            yml_ip.write_text(yaml.safe_dump({"datasets": datasets}, sort_keys=False))
            wall, runs = _execute(c.env, specs[:-1], cw / "runs.log", timeout_s, concurrent_runs)
            wall_p, runs_p = _execute({**c.env, "LEROBOT_LANCE_DATASETS": str(yml_ip)}, specs[-1:], cw / "publish.log", timeout_s)
            wall, runs = wall + wall_p, runs + runs_p
        fig = _step_figures(c.home, runs, "bce", n)
    res = _report(f"celery x{workers}" + (f", {concurrent_runs} runs at a time" if concurrent_runs > 1 else "")
                  + (", publish in-process" if publish_in_process else ""),
                  wall, workers, fig, n, batch)
    res["pids_on_worker_pools"] = sorted(set(fig["pids"]) & pool)
    print(f"[celery x{workers}] of those, pids of the workers' pool processes: {res['pids_on_worker_pools']}")
    results["celery"] = res

    rows_ce = _frames_rows(cw / "out")
    if not keep_outputs:
        shutil.rmtree(cw / "out")
    total_frames = json.loads((src / "meta" / "info.json").read_text())["total_frames"]
    print(f"frames rows: in-process {rows_ip}, celery {rows_ce}, source {total_frames}: "
          + ("equal" if rows_ip == rows_ce == total_frames else "DIFFERENT"))
    if not rows_ip == rows_ce == total_frames:
        raise SystemExit("frames row counts differ")
    a, b = results["in_process"], results["celery"]
    print(f"speed-up celery x{workers} over in-process: {a['wall_s'] / b['wall_s']:.2f}x")
    print(f"expected on M machines with W workers each ≈ {b['fixed_s']:.1f} s + {b['per_episode_s']:.3f} s * N / (M*W)"
          f"   (fixed and per-episode from the celery run; in-process alone: {a['fixed_s']:.1f} s + {a['per_episode_s']:.3f} s * N)")
    results["frames_rows"] = {"in_process": rows_ip, "celery": rows_ce, "source": total_frames}
    return results
