"""Helpers for the orchestration tests: datasets built from the real samples,
in-process execution of what sensors and backfills request, table comparison,
and real servers (dagster-webserver + dagster-daemon, PostgreSQL, headless
Chromium) bound to 127.0.0.1 with every wait bounded in time.

Also a small command line for the kill-safety test's child process::

    python -m tests.helpers_dagster convert DATASETS_YAML NAME
    python -m tests.helpers_dagster scheduled-reconversion DATASETS_YAML NAME
    python -m tests.helpers_dagster bench-backfill N_EPISODES [BATCH]
    python -m tests.helpers_dagster bench-ui-sample
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"


# --- datasets ------------------------------------------------------------------------
def make_v2_dataset(src: Path, dst: Path, n_episodes: int) -> Path:
    """Write (or grow in place) a LeRobot v2.x dataset of ``n_episodes`` episodes
    at ``dst`` built from the v2.x sample ``src``: episode ``i`` is the source's
    episode ``i % n_src``.

    Episodes the sample has are copied as they are (``copy2``: same bytes and
    mtime); repeated ones get their parquet rewritten with the new
    ``episode_index`` and a contiguous global ``index``, and their mp4
    hard-linked. ``meta/`` (``info.json`` totals, ``episodes.jsonl``,
    ``episodes_stats.jsonl`` with the index columns' stats recomputed) is
    rewritten whole. Files of episodes already present at ``dst`` are left
    untouched, so growing a copy from 4 to 6 episodes changes only what a
    real append changes.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    info = json.loads((src / "meta" / "info.json").read_text())
    if not info["codebase_version"].startswith("v2"):
        raise ValueError(f"{src}: make_v2_dataset needs a v2.x sample, found {info['codebase_version']}")
    src_eps = [json.loads(line) for line in (src / "meta" / "episodes.jsonl").read_text().splitlines() if line.strip()]
    stats_path = src / "meta" / "episodes_stats.jsonl"
    src_stats = (
        {d["episode_index"]: d for d in map(json.loads, stats_path.read_text().splitlines())} if stats_path.exists() else None
    )
    video_keys = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    chunks = info.get("chunks_size", 1000)
    (dst / "meta").mkdir(parents=True, exist_ok=True)
    for extra in ("LICENSE", "README.md"):
        if (src / extra).exists() and not (dst / extra).exists():
            shutil.copy2(src / extra, dst / extra)
    episodes, stats_lines, offset = [], [], 0
    for i in range(n_episodes):
        base = src_eps[i % len(src_eps)]
        j, length = base["episode_index"], base["length"]
        rel = info["data_path"].format(episode_chunk=i // chunks, episode_index=i)
        out = dst / rel
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            src_rel = info["data_path"].format(episode_chunk=j // chunks, episode_index=j)
            if i == j:
                shutil.copy2(src / src_rel, out)
            else:
                t = pq.read_table(src / src_rel)
                t = t.set_column(t.schema.get_field_index("episode_index"), "episode_index", pa.array([i] * t.num_rows, t.schema.field("episode_index").type))
                idx = pc.add(t["frame_index"], offset).cast(t.schema.field("index").type)
                t = t.set_column(t.schema.get_field_index("index"), "index", idx)
                pq.write_table(t, out)
            for key in video_keys:
                vrel = info["video_path"].format(episode_chunk=i // chunks, video_key=key, episode_index=i)
                vsrc = src / info["video_path"].format(episode_chunk=j // chunks, video_key=key, episode_index=j)
                (dst / vrel).parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(vsrc, dst / vrel)
                except OSError:
                    shutil.copy2(vsrc, dst / vrel)
        episodes.append({**base, "episode_index": i})
        if src_stats is not None:
            st = json.loads(json.dumps(src_stats[j]))
            st["episode_index"] = i
            rng = list(range(offset, offset + length))
            mean = sum(rng) / length
            std = (sum((x - mean) ** 2 for x in rng) / length) ** 0.5
            for name, (lo, hi, m, s) in {"episode_index": (i, i, float(i), 0.0), "index": (rng[0], rng[-1], mean, std)}.items():
                if name in st["stats"]:
                    st["stats"][name].update({"min": [lo], "max": [hi], "mean": [m], "std": [s], "count": [length]})
            stats_lines.append(json.dumps(st))
        offset += length
    for name in ("tasks.jsonl", "stats.json"):
        if (src / "meta" / name).exists():
            shutil.copy2(src / "meta" / name, dst / "meta" / name)
    if stats_lines:
        (dst / "meta" / "episodes_stats.jsonl").write_text("\n".join(stats_lines) + "\n")
    (dst / "meta" / "episodes.jsonl").write_text("".join(json.dumps(e) + "\n" for e in episodes))
    info.update(
        total_episodes=n_episodes,
        total_frames=offset,
        total_videos=n_episodes * len(video_keys),
        total_chunks=(n_episodes - 1) // chunks + 1,
        splits={"train": f"0:{n_episodes}"},
    )
    (dst / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    return dst


def write_datasets_yaml(path: Path, entries: Sequence[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"datasets": list(entries)}, sort_keys=False))
    return path


# --- running what Dagster would run ------------------------------------------------------
@dataclass
class RunLog:
    """Runs executed in-process: ``(job name, partition keys or None, success)``."""

    runs: list[tuple[str, list[str] | None, bool]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    on_start: Any = None  # called with the job name before each run

    def episode_runs(self) -> list[list[str]]:
        return [keys for job, keys, _ in self.runs if keys is not None]


def _execute(defs: Any, job: str, instance: Any, log: RunLog, keys: list[str] | None = None, **kw: Any) -> Any:
    from pipelines.dagster_compat import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    tags = dict(kw.pop("tags", {}) or {})
    if log.on_start is not None:
        log.on_start(job)
    if keys:
        tags.update({ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]})
    result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False, tags=tags, **kw)
    log.runs.append((job, keys, result.success))
    log.results.append(result)
    return result


def partition_batches(instance: Any, partitions_def_name: str, keys: Sequence[str], batch: int) -> list[list[str]]:
    """Split keys into ranges contiguous in the dynamic partitions' order, at most
    ``batch`` long: the runs ``BackfillPolicy.multi_run(batch)`` makes."""
    order = {k: i for i, k in enumerate(instance.get_dynamic_partitions(partitions_def_name))}
    out: list[list[str]] = []
    for k in sorted(keys, key=order.__getitem__):
        if out and order[k] == order[out[-1][-1]] + 1 and len(out[-1]) < batch:
            out[-1].append(k)
        else:
            out.append([k])
    return out


def run_conversion_jobs(defs: Any, cfg: Any, instance: Any, keys: Sequence[str] | None = None, *, resolve: bool = True,
                        publish: bool = True, log: RunLog | None = None) -> RunLog:
    """Run the dataset's jobs in-process like a backfill: resolve, the episode
    partitions ``keys`` (default all registered) in batches, then publish."""
    from pipelines.jobs import episodes_job_name, publish_job_name, source_job_name

    log = log or RunLog()
    name = f"{cfg.name}_episodes"
    if resolve:
        _execute(defs, source_job_name(cfg), instance, log)
    keys = list(instance.get_dynamic_partitions(name)) if keys is None else list(keys)
    for batch in partition_batches(instance, name, keys, cfg.backfill_batch_size) if keys else []:
        _execute(defs, episodes_job_name(cfg), instance, log, batch)
    if publish:
        _execute(defs, publish_job_name(cfg), instance, log)
    return log


def execute_backfill_request(defs: Any, cfg: Any, request: Any, instance: Any, dynamic_requests: Sequence[Any] = ()) -> RunLog:
    """Do in-process what the daemon does with a sensor's backfill request: apply
    its dynamic partition requests, then run ``source_meta``, the requested
    episode partitions in ``backfill_batch_size`` batches and the table assets,
    in that order (the asset graph's order)."""
    from dagster import AddDynamicPartitionsRequest

    for req in dynamic_requests:
        if isinstance(req, AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        else:
            for k in req.partition_keys:
                instance.delete_dynamic_partition(req.partitions_def_name, k)
    subset = request.asset_graph_subset
    by_asset: dict[str, set[str | None]] = {}
    for ap in subset.iterate_asset_partitions():
        by_asset.setdefault(ap.asset_key.path[-1], set()).add(ap.partition_key)
    keys = sorted(k for k in by_asset.get("episode_frames", set()) if k is not None)
    return run_conversion_jobs(defs, cfg, instance, keys, resolve="source_meta" in by_asset, publish="lance_dataset" in by_asset)


# --- comparing outputs ---------------------------------------------------------------------
def table_digest(out: Path | str, version: int | str | None = None) -> dict[str, Any]:
    """Content of the three tables (at ``version``, a number or tag; default the
    heads), order-independent: per table the sorted rows of every non-blob
    column and a sha256 per blob; asserts key uniqueness (no duplicated
    episodes or frames)."""
    import lance

    out = Path(out)
    digest: dict[str, Any] = {}
    for table, key in (("frames", "index"), ("episodes", "episode_index"), ("videos", "relative_path")):
        ds = lance.dataset(str(out / f"{table}.lance"), version=version)
        blobs = [f.name for f in ds.schema if (f.metadata or {}).get(b"lance-encoding:blob") == b"true"]
        plain = [n for n in ds.schema.names if n not in blobs]
        t = ds.to_table(columns=plain, with_row_id=True)
        rows = sorted(zip(t[key].to_pylist(), t["_rowid"].to_pylist()), key=lambda r: r[0])
        keys = [r[0] for r in rows]
        assert len(keys) == len(set(keys)), f"{table}: duplicated {key}"
        t = t.sort_by(key).drop_columns(["_rowid"])
        hashes = {}
        for b in blobs:
            files = ds.take_blobs(b, ids=[r[1] for r in rows])
            hashes[b] = []
            for f in files:
                with f as fh:
                    hashes[b].append(hashlib.sha256(fh.read()).hexdigest())
        digest[table] = {"rows": t.num_rows, "columns": t.to_pydict(), "blobs": hashes}
    return digest


def assert_same_tables(a: Path | str, b: Path | str) -> None:
    da, db = table_digest(a), table_digest(b)
    for table in da:
        assert da[table]["rows"] == db[table]["rows"], (table, da[table]["rows"], db[table]["rows"])
        assert sorted(da[table]["columns"]) == sorted(db[table]["columns"]), table
        for col, values in da[table]["columns"].items():
            assert values == db[table]["columns"][col], (table, col)
        assert da[table]["blobs"] == db[table]["blobs"], table


# --- servers ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Any, timeout_s: float, what: str, interval_s: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns a truthy value; raise after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - keep polling; report the last error
            last_error = e
        time.sleep(interval_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s" + (f" (last error: {last_error})" if last_error else ""))


def instance_yaml(*, postgres: bool) -> dict[str, Any]:
    """``deploy/dagster.yaml`` as a dict; without Postgres its ``storage``
    section is dropped (SQLite under DAGSTER_HOME) and everything else kept."""
    doc = yaml.safe_load(DEPLOY_YAML.read_text())
    if not postgres:
        doc.pop("storage", None)
    return doc


def _popen(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    """SIGTERM the process group this helper started, then SIGKILL after ``timeout_s``."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout_s)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@dataclass
class DagsterServers:
    """A running dagster-webserver and dagster-daemon on 127.0.0.1."""

    home: Path
    port: int
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def graphql(self, query: str, variables: dict[str, Any] | None = None, timeout_s: float = 60) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout_s) as r:
            doc = json.loads(r.read())
        if doc.get("errors"):
            raise RuntimeError(f"GraphQL errors: {doc['errors']}")
        return doc["data"]

    def log_tail(self, n: int = 4000) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-n:]}" for p in self.logs if p.exists())


@contextmanager
def dagster_servers(datasets_yaml: Path, workdir: Path, *, extra_env: dict[str, str] | None = None,
                    instance: dict[str, Any] | None = None, startup_timeout_s: float = 150) -> Iterator[DagsterServers]:
    """Start dagster-daemon and dagster-webserver on the project's ``workspace.yaml``
    with a fresh DAGSTER_HOME under ``workdir`` (instance config: ``instance``,
    default ``deploy/dagster.yaml`` on SQLite) and the datasets of ``datasets_yaml``.
    Both bind to 127.0.0.1 only; both are stopped on exit."""
    home = workdir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance if instance is not None else instance_yaml(postgres=False)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env.update(
        DAGSTER_HOME=str(home),
        LEROBOT_LANCE_DATASETS=str(datasets_yaml),
        DAGSTER_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
        **(extra_env or {}),
    )
    bindir = Path(sys.executable).parent
    # Create the instance's storages (SQLite: runs, event index, schedules) before
    # either server starts: both would create them at once, and SQLite then fails
    # one of them with "table alembic_version already exists" / "more than one head".
    subprocess.run(
        [sys.executable, "-c", "from dagster import DagsterInstance\nwith DagsterInstance.get() as i:\n"
         "    i.run_storage, i.event_log_storage, i.schedule_storage"],
        env=env, check=True, capture_output=True, timeout=startup_timeout_s,
    )
    port = free_port()
    logs = [workdir / "daemon.log", workdir / "webserver.log"]
    procs = [
        _popen([str(bindir / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")], env, logs[0]),
        _popen([str(bindir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")], env, logs[1]),
    ]
    servers = DagsterServers(home, port, env, procs, logs)
    try:
        def ready() -> bool:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a server exited with {p.returncode}:\n{servers.log_tail()}")
            data = servers.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                                   "locationOrLoadError { __typename ... on PythonError { message } } } } } }", timeout_s=10)
            entries = data["workspaceOrError"]["locationEntries"]
            for e in entries:
                if e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"] == "PythonError":
                    raise RuntimeError(f"code location failed to load: {e['locationOrLoadError']['message']}")
            return bool(entries) and all(e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries)

        wait_until(ready, startup_timeout_s, "dagster-webserver serving the code location", interval_s=1)
        yield servers
    finally:
        for p in reversed(procs):
            stop_process(p)


# --- GraphQL operations -------------------------------------------------------------------
REPO_QUERY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"

LAUNCH_RUN = """
mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
  __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message stack }
  ... on RunConfigValidationInvalid { errors { message } } ... on InvalidSubsetError { message } } }"""

LAUNCH_BACKFILL = """
mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
  ... on PartitionSetNotFoundError { message } ... on InvalidSubsetError { message } ... on UnauthorizedError { message } } }"""

BACKFILL_STATUS = """
query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { id status numPartitions error { message }
    runs(limit: 1000) { runId status tags { key value } } } ... on PythonError { message } } }"""

RUN_STATUS = "query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } ... on PythonError { message } } }"

PARTITIONS_QUERY = """
query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { __typename
  ... on AssetNode { partitionKeys partitionDefinition { name type } } } }"""

INSTIGATORS_QUERY = """
query($sel: RepositorySelector!) { repositoryOrError(repositorySelector: $sel) { __typename
  ... on Repository { sensors { name sensorState { status } } schedules { name cronSchedule scheduleState { status } } } } }"""


def repository_selector(servers: DagsterServers) -> dict[str, str]:
    nodes = servers.graphql(REPO_QUERY)["repositoriesOrError"]["nodes"]
    return {"repositoryName": nodes[0]["name"], "repositoryLocationName": nodes[0]["location"]["name"]}


def launch_job(servers: DagsterServers, job: str, run_config: dict[str, Any] | None = None,
               tags: dict[str, str] | None = None) -> str:
    sel = repository_selector(servers)
    params = {"selector": {**sel, "jobName": job}, "runConfigData": run_config or {}, "mode": "default"}
    if tags:
        params["executionMetadata"] = {"tags": [{"key": k, "value": v} for k, v in tags.items()]}
    res = servers.graphql(LAUNCH_RUN, {"p": params})["launchRun"]
    if res["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launchRun {job}: {res}")
    return str(res["run"]["runId"])


def wait_run(servers: DagsterServers, run_id: str, timeout_s: float) -> str:
    def done() -> str | None:
        st = servers.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        return st if st in ("SUCCESS", "FAILURE", "CANCELED") else None

    return str(wait_until(done, timeout_s, f"run {run_id}", interval_s=1))


def launch_asset_backfill(servers: DagsterServers, partitioned: Sequence[list[str]], unpartitioned: Sequence[list[str]],
                          start: str, end: str, title: str = "") -> str:
    """``launchPartitionBackfill`` of the partition range [start, end] of the
    ``partitioned`` assets plus the ``unpartitioned`` ones (asset key paths)."""
    by_assets = [{"assetKey": {"path": p}, "partitions": {"range": {"start": start, "end": end}}} for p in partitioned]
    by_assets += [{"assetKey": {"path": p}, "partitions": None} for p in unpartitioned]
    res = servers.graphql(LAUNCH_BACKFILL, {"p": {"partitionsByAssets": by_assets, "title": title}})["launchPartitionBackfill"]
    if res["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"launchPartitionBackfill: {res}")
    return str(res["backfillId"])


def wait_backfill(servers: DagsterServers, backfill_id: str, timeout_s: float) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        b = servers.graphql(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if b["__typename"] != "PartitionBackfill":
            raise RuntimeError(str(b))
        return b if b["status"] not in ("REQUESTED", "CANCELING") else None

    return dict(wait_until(done, timeout_s, f"backfill {backfill_id}", interval_s=2))


# --- headless Chromium ----------------------------------------------------------------------
def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(url: str, workdir: Path, *, screenshot: Path | None = None, dump_dom: bool = False,
             budget_ms: int = 15000, timeout_s: float = 90, window: tuple[int, int] = (1600, 1000)) -> str:
    """Load ``url`` in headless Chromium (no network but loopback in practice:
    background networking, sync and component updates are off); save a
    screenshot of a ``window`` (width, height in CSS pixels) and/or return the
    DOM after ``budget_ms`` of virtual time."""
    binary = chromium_binary()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install -y chromium)")
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=workdir))
    cmd = [
        binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={window[0]},{window[1]}",
        f"--virtual-time-budget={budget_ms}",
    ]
    if screenshot is not None:
        cmd.append(f"--screenshot={screenshot}")
    if dump_dom:
        cmd.append("--dump-dom")
    cmd.append(url)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise TimeoutError(f"chromium did not finish {url} within {timeout_s} s") from None
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}")
    return out.decode(errors="replace")


def chromium_until(url: str, workdir: Path, needles: Sequence[str], *, budgets_ms: Sequence[int] = (15000, 30000, 60000, 90000),
                   screenshot: Path | None = None, window: tuple[int, int] = (1600, 1000)) -> str:
    """The DOM of ``url`` once every string of ``needles`` is in it.

    Dagster's UI is a single-page app that fills the page from GraphQL
    queries; on a loaded 2-core machine one fixed virtual-time budget can dump
    the page before the queries return (CI saw exactly that). So load it with
    growing budgets until the page holds what the test looks for; then save
    ``screenshot`` from one more load with the budget that rendered it (one
    headless call either dumps the DOM or screenshots). Raises AssertionError naming
    the missing strings and the page's text when even the largest budget
    does not render them."""
    dom = ""
    for budget in budgets_ms:
        dom = chromium(url, workdir, dump_dom=True, budget_ms=budget, timeout_s=budget / 1000 + 90, window=window)
        missing = [n for n in needles if n not in dom]
        if not missing:
            if screenshot is not None:
                chromium(url, workdir, screenshot=screenshot, budget_ms=budget, timeout_s=budget / 1000 + 90, window=window)
            return dom
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S)))
    raise AssertionError(f"{url}: {missing} not rendered after {budgets_ms[-1]} ms of virtual time; page text: {text[:1500]!r}")


# --- PostgreSQL -----------------------------------------------------------------------------
def postgres_bindir() -> Path | None:
    """Debian's PostgreSQL server binaries (``initdb``, ``pg_ctl``), newest major version."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    db: str

    def env(self) -> dict[str, str]:
        return {
            "DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password, "DAGSTER_PG_DB": self.db,
        }


@contextmanager
def postgres_cluster(workdir: Path, timeout_s: float = 60) -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster listening on 127.0.0.1 at a random port,
    stopped and deleted on exit. As root it runs as the ``postgres`` user in a
    fresh directory under the system temp dir (pytest's are root-only)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries not found (Debian: apt-get install -y postgresql)")
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="lerobot-lance-pg-")) if as_root else workdir
    as_user = ["runuser", "-u", "postgres", "--"] if as_root else []
    data, sock, pwfile, log = base / "pgdata", base / "sock", base / "pgpass", base / "postgres.log"
    password = hashlib.sha256(os.urandom(16)).hexdigest()[:24]
    sock.mkdir(parents=True, exist_ok=True)
    pwfile.write_text(password + "\n")
    log.touch()
    if as_root:
        base.chmod(0o755)
        for p in (base, sock, pwfile, log):
            shutil.chown(p, "postgres", "postgres")

    def run(*cmd: str) -> None:
        proc = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stdout[-1500:]}{proc.stderr[-1500:]}")

    port = free_port()
    run(str(bindir / "initdb"), "-D", str(data), "-U", "dagster", f"--pwfile={pwfile}", "-A", "scram-sha-256", "--no-sync", "-E", "UTF8")
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {sock} -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", str(int(timeout_s)), "start")
    try:
        yield Postgres("127.0.0.1", port, "dagster", password, "postgres")
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                       capture_output=True, timeout=timeout_s)
        if as_root:
            shutil.rmtree(base, ignore_errors=True)


# --- child process for the kill-safety test -------------------------------------------------
def _main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "convert":
        from dagster import DagsterInstance

        from pipelines.config import load_dataset_configs
        from pipelines.definitions import build_definitions

        cfgs = [c for c in load_dataset_configs(argv[1]) if c.name == argv[2]]
        defs = build_definitions(cfgs)
        def mark(job: str) -> None:
            print(f"START {job.split('__')[-1]} {time.monotonic():.3f}", flush=True)

        with DagsterInstance.ephemeral() as instance:
            log = run_conversion_jobs(defs, cfgs[0], instance, log=RunLog(on_start=mark))
        print("DONE " + json.dumps(log.runs), flush=True)
        return 0 if all(ok for _, _, ok in log.runs) else 1
    if len(argv) == 3 and argv[0] == "scheduled-reconversion":
        return _scheduled_reconversion(argv[1], argv[2])
    if len(argv) == 1 and argv[0] == "bench-ui-sample":
        print(json.dumps(bench_ui_sample(), indent=1), flush=True)
        return 0
    if len(argv) in (2, 3) and argv[0] == "bench-backfill":
        print(json.dumps(bench_backfill(int(argv[1]), int(argv[2]) if len(argv) == 3 else 100), indent=1), flush=True)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


#: Run config selecting the multiprocess executor (two step processes at a time).
MULTIPROCESS = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}


def _scheduled_reconversion(datasets_yaml: str, name: str) -> int:
    """Against the instance of ``$DAGSTER_HOME``: evaluate the dataset's
    reconversion schedule, then execute the run it requests with the
    multiprocess executor (each step in its own process). Prints the run id."""
    os.environ["LEROBOT_LANCE_DATASETS"] = datasets_yaml  # before the code location is imported
    from dagster import DagsterInstance, build_schedule_context, execute_job

    from pipelines.automation import reconvert_job_name, schedule_name
    from pipelines.config import load_dataset_configs
    from pipelines.dagster_compat import ReconstructableRepository
    from pipelines.definitions import default_resources, defs

    cfg = next(c for c in load_dataset_configs(datasets_yaml) if c.name == name)
    with DagsterInstance.get() as instance:
        repo = defs.get_repository_def()
        with build_schedule_context(instance=instance, repository_def=repo, resources=default_resources()) as context:
            request = repo.get_schedule_def(schedule_name(cfg)).evaluate_tick(context).run_requests[0]
        job = ReconstructableRepository.for_module("pipelines.definitions", "defs", str(REPO)).get_reconstructable_job(
            reconvert_job_name(cfg)
        )
        result = execute_job(job, instance, run_config=MULTIPROCESS, tags=request.tags)
        print(json.dumps({"run_id": result.run_id, "success": result.success}), flush=True)
        return 0 if result.success else 1



RUN_EVENTS = """
query($id: ID!, $after: String) { logsForRun(runId: $id, afterCursor: $after, limit: 1000) { __typename
  ... on EventConnection { cursor hasMore events { __typename
    ... on MessageEvent { timestamp stepKey eventType message } } } } }"""

#: Run-level events of a run's timeline (RUN_* and the engine events that mark
#: the run worker's start), in the order Dagster writes them.
_RUN_MARKS = ("RUN_ENQUEUED", "RUN_STARTING", "RUN_START", "RUN_SUCCESS", "RUN_FAILURE")


def run_timeline(servers: DagsterServers, run_id: str, t_launch: float) -> dict[str, Any]:
    """Where a run's seconds went, from its event log (GraphQL ``logsForRun``):
    each run-level event (enqueued, dequeued, starting, start, success) and
    each step's start and end, in seconds after ``t_launch`` (the GraphQL
    launch, ``time.time()``), plus the phases between them:

    * ``create_run``: launch -> ``RUN_ENQUEUED`` (the webserver asks the code
      server for the execution plan, stores the run and its snapshots, enqueues it);
    * ``queue``: enqueued -> ``RUN_STARTING`` (the run queue daemon's dequeue loop
      and the run launcher's call to the code server);
    * ``worker_spawn``: starting -> the engine event "Started process for run"
      (the code server spawns a fresh run worker process, which imports Dagster
      and the code location and loads the job);
    * ``worker_setup``: that event -> ``RUN_START`` (the run worker builds the
      execution plan and initializes the run);
    * ``steps``: ``RUN_START`` -> the last step's end, and per step its seconds;
    * ``finish``: the last step's end -> ``RUN_SUCCESS``.
    """
    events: list[dict[str, Any]] = []
    after = None
    while True:
        conn = servers.graphql(RUN_EVENTS, {"id": run_id, "after": after})["logsForRun"]
        events += conn["events"]
        after = conn["cursor"]
        if not conn["hasMore"]:
            break
    marks: dict[str, float] = {}
    steps: dict[str, dict[str, float]] = {}
    for e in events:
        if not e.get("timestamp"):
            continue
        t = round(int(e["timestamp"]) / 1000 - t_launch, 2)
        kind = e.get("eventType") or ""
        if kind in _RUN_MARKS:
            marks.setdefault(kind, t)
        elif kind == "ENGINE_EVENT" and "Started process for run" in (e.get("message") or ""):
            marks.setdefault("worker_process_started", t)
        if e.get("stepKey") and kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
            st = steps.setdefault(e["stepKey"], {})
            st["start" if kind == "STEP_START" else "end"] = t
    last_step_end = max((s.get("end", 0.0) for s in steps.values()), default=marks.get("RUN_START", 0.0))
    done = marks.get("RUN_SUCCESS", marks.get("RUN_FAILURE", last_step_end))

    def gap(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(b - a, 2)

    return {
        "marks_s": marks,
        "phases_s": {
            "create_run": gap(0.0, marks.get("RUN_ENQUEUED")),
            "queue": gap(marks.get("RUN_ENQUEUED"), marks.get("RUN_STARTING")),
            "worker_spawn": gap(marks.get("RUN_STARTING"), marks.get("worker_process_started")),
            "worker_setup": gap(marks.get("worker_process_started"), marks.get("RUN_START")),
            "steps": gap(marks.get("RUN_START"), last_step_end),
            "finish": gap(last_step_end, done),
        },
        "steps_s": {k: gap(v.get("start"), v.get("end")) for k, v in sorted(steps.items(), key=lambda kv: kv[1].get("start", 0))},
        "events": len(events),
    }


def bench_ui_sample(repeat: int = 2, backfill: bool = True, postgres: bool = False) -> dict[str, Any]:
    """The bundled sample's full materialization from the UI (issue 11, target 3):
    webserver + daemon on the default workspace and the repo's datasets.yaml
    (output redirected to a temporary folder), launched over GraphQL, in the
    two ways the UI offers: one run of ``<name>__reconvert`` over every episode
    partition (Launchpad / the job page), and "Materialize all" on the asset
    graph (an asset backfill: a source run, an episode run and a table run,
    spaced by the backfill daemon's 30 s loop; ``backfill=False`` skips it).
    Seconds from launch to the last run's end, ``repeat`` times each, the
    output removed between, with each reconvert run's timeline
    (:func:`run_timeline`) and the medians. The instance is
    ``deploy/dagster.yaml`` on SQLite, or with ``postgres`` as it is (its
    PostgreSQL storage) against a throwaway cluster on 127.0.0.1."""
    from pipelines.automation import reconvert_job_name
    from pipelines.config import DEFAULT_CONFIG, load_dataset_configs
    from pipelines.jobs import EPISODE_ASSETS, TABLE_ASSETS
    from pipelines.dagster_compat import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    cfg = load_dataset_configs(DEFAULT_CONFIG)[0]
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    out = work / "out"
    yml = write_datasets_yaml(work / "datasets.yaml", [{"name": cfg.name, "source": cfg.source, "output": str(out),
                                                        "options": cfg.options}])
    report: dict[str, Any] = {"dataset": cfg.name, "source": cfg.source, "load_before": os.getloadavg()[0],
                              "reconvert_run_s": [], "asset_backfill_s": []}
    report["storage"] = "postgres" if postgres else "sqlite"
    t0 = time.monotonic()
    with ExitStack() as stack:
        env = {"LEROBOT_LANCE_STAGING": str(work / "staging")}
        if postgres:
            env.update(stack.enter_context(postgres_cluster(work)).env())
        servers = stack.enter_context(dagster_servers(yml, work, extra_env=env, instance=instance_yaml(postgres=postgres)))
        report["servers_start_s"] = round(time.monotonic() - t0, 1)
        keys = wait_until(lambda: servers.graphql(PARTITIONS_QUERY, {"key": {"path": [cfg.name, "episode_frames"]}})
                          ["assetNodeOrError"]["partitionKeys"], 120, "episode partitions registered by the sensor")
        for _ in range(repeat):
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(work / "staging", ignore_errors=True)
            load = os.getloadavg()[0]
            t = time.time()
            run_id = launch_job(servers, reconvert_job_name(cfg),
                                tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]})
            assert wait_run(servers, run_id, 600) == "SUCCESS", servers.log_tail()
            end = servers.graphql("query($id: ID!) { runOrError(runId: $id) { ... on Run { startTime endTime } } }",
                                  {"id": run_id})["runOrError"]
            report["reconvert_run_s"].append({"launch_to_end": round(end["endTime"] - t, 1),
                                              "launch_to_start": round(end["startTime"] - t, 1), "load": round(load, 1),
                                              **run_timeline(servers, run_id, t)})
        for _ in range(repeat if backfill else 0):
            shutil.rmtree(out, ignore_errors=True)
            shutil.rmtree(work / "staging", ignore_errors=True)
            t = time.time()
            bid = launch_asset_backfill(servers, [[cfg.name, a] for a in EPISODE_ASSETS],
                                        [[cfg.name, a] for a in ("source_meta", *TABLE_ASSETS)], keys[0], keys[-1])
            b = wait_backfill(servers, bid, 900)
            runs = servers.graphql(
                "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { "
                "endTimestamp runs(limit: 100) { status creationTime startTime endTime } } } }", {"id": bid})["partitionBackfillOrError"]
            report["asset_backfill_s"].append({
                "status": b["status"], "runs": len(runs["runs"]),
                "launch_to_last_run_end": round(max(r["endTime"] or t for r in runs["runs"]) - t, 1),
                "launch_to_backfill_complete": round((runs["endTimestamp"] or t) - t, 1),
                # each run: created, started, ended, seconds after the launch (the gaps between
                # one run's end and the next one's creation are the backfill daemon's loop)
                "runs_created_started_ended": sorted([round(r["creationTime"] - t, 1), round((r["startTime"] or t) - t, 1),
                                                      round((r["endTime"] or t) - t, 1)] for r in runs["runs"]),
            })
    report["load_after"] = os.getloadavg()[0]
    rs = report["reconvert_run_s"]
    if rs:
        report["reconvert_median_s"] = {
            "launch_to_end": _median([r["launch_to_end"] for r in rs]),
            **{k: _median([r["phases_s"][k] for r in rs if r["phases_s"][k] is not None]) for k in rs[0]["phases_s"]},
        }
    if report["asset_backfill_s"]:
        report["asset_backfill_median_s"] = _median([r["launch_to_last_run_end"] for r in report["asset_backfill_s"]])
    shutil.rmtree(work, ignore_errors=True)
    return report


def _median(xs: Sequence[float]) -> float | None:
    ys = sorted(xs)
    if not ys:
        return None
    n = len(ys)
    return round(ys[n // 2] if n % 2 else (ys[n // 2 - 1] + ys[n // 2]) / 2, 2)


def bench_backfill(n_episodes: int, batch: int = 100, policy: str = "multi_run") -> dict[str, Any]:
    """Backfill an ``n_episodes`` dataset (the g1_v21 sample's episodes repeated)
    through GraphQL against a real webserver + daemon, and the same conversion
    as plain function calls without Dagster; report runs, wall times and the
    orchestration overhead per episode and per run."""
    from tests.conftest import sample

    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    src = make_v2_dataset(sample("g1_v21"), work / "src", n_episodes)
    name = "bench"
    yml = write_datasets_yaml(work / "datasets.yaml", [{"name": name, "source": str(src), "output": str(work / "out"),
                                                        "options": {"backfill_batch_size": batch, "backfill_policy": policy}}])
    report: dict[str, Any] = {"episodes": n_episodes, "batch": batch, "policy": policy, "frames": json.loads((src / "meta" / "info.json").read_text())["total_frames"]}
    t0 = time.monotonic()
    with dagster_servers(yml, work) as servers:
        report["servers_start_s"] = round(time.monotonic() - t0, 1)
        t = time.monotonic()
        run_id = launch_job(servers, f"{name}__resolve_source")
        assert wait_run(servers, run_id, 600) == "SUCCESS"
        report["resolve_run_s"] = round(time.monotonic() - t, 1)
        keys = servers.graphql(PARTITIONS_QUERY, {"key": {"path": [name, "episode_frames"]}})["assetNodeOrError"]["partitionKeys"]
        t = time.monotonic()
        t_launch = time.time()
        bid = launch_asset_backfill(
            servers, [[name, a] for a in ("episode_frames", "episode_videos", "episode_stats")],
            [[name, a] for a in ("source_videos", "frames_table", "episodes_table", "videos_table", "dataset_stats", "lance_dataset")],
            keys[0], keys[-1],
        )
        b = wait_backfill(servers, bid, 7200)
        report["backfill_s"] = round(time.monotonic() - t, 1)
        report["backfill_status"] = b["status"]
        detail = servers.graphql(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { "
            "endTimestamp runs(limit: 1000) { runId status creationTime startTime endTime tags { key value } } } } }", {"id": bid}
        )["partitionBackfillOrError"]
        report["backfill_completed_at_s"] = round((detail["endTimestamp"] or t_launch) - t_launch, 1)
        # each run: created / started / ended, seconds after the backfill's launch
        report["runs"] = [
            {"status": r["status"], "seconds": round((r["endTime"] or 0) - (r["startTime"] or 0), 1),
             "created_s": round(r["creationTime"] - t_launch, 1), "started_s": round((r["startTime"] or t_launch) - t_launch, 1),
             "ended_s": round((r["endTime"] or t_launch) - t_launch, 1),
             "range": [tg["value"] for tg in r["tags"] if tg["key"].startswith("dagster/asset_partition_range")]}
            for r in sorted(detail["runs"], key=lambda r: r["creationTime"])
        ]
        report["last_run_ended_s"] = max(r["ended_s"] for r in report["runs"])
    # The same work as plain calls of the core package (no Dagster, no processes).
    import lerobot_lance.conversion as convert
    import lerobot_lance.conversion_stats as convert_stats
    import lerobot_lance.episode_stages as stages
    from lerobot_lance.layouts import card_writer

    conv = convert.Conversion.at(work / "out_plain")
    t = time.monotonic()
    meta = convert.resolve_source(conv, str(src))
    eps = meta.episode_indices
    phases: dict[str, float] = {}
    for stage in (stages.stage_episode_frames, stages.stage_episode_videos, convert_stats.stage_episode_stats):
        ts = time.monotonic()
        for i in range(0, len(eps), batch):
            stage(conv, eps[i:i + batch])
        phases[stage.__name__] = round(time.monotonic() - ts, 1)
    ts = time.monotonic()
    card_writer.write_frames_table(conv)
    card_writer.write_episodes_table(conv)
    card_writer.write_videos_table(conv)
    convert_stats.aggregate_dataset_stats(conv)
    from lerobot_lance.layouts import get_layout
    from lerobot_lance.publish import publish_dataset

    publish_dataset(conv, get_layout(conv.options.layout), dataset_stats=convert_stats.read_dataset_stats_json(conv))
    phases["tables_and_publish"] = round(time.monotonic() - ts, 1)
    report["plain_calls_s"] = round(time.monotonic() - t, 1)
    report["plain_phases_s"] = phases
    dagster_total = report["resolve_run_s"] + report["backfill_s"]
    n_runs = len(report["runs"]) + 1
    report["dagster_total_s"] = round(dagster_total, 1)
    # where the backfill's wall went besides the runs' own work: the backfill
    # daemon's loop (Dagster 1.13: a fixed 30 s between iterations) before the
    # first runs and before the table run, the queue + run-worker start of each
    # run, and the iteration that marks the backfill complete
    runs = report["runs"]
    episode_runs = [r for r in runs if r["range"]]
    table_runs = [r for r in runs if not r["range"]]
    last_episode_end = max(r["ended_s"] for r in episode_runs)
    report["breakdown_s"] = {
        "daemon_wait_before_first_runs": runs[0]["created_s"],
        "daemon_wait_before_table_run": round(max(r["created_s"] for r in table_runs) - last_episode_end, 1) if table_runs else 0.0,
        "queue_and_run_start_per_run": [round(r["started_s"] - r["created_s"], 1) for r in runs],
        "daemon_wait_to_mark_complete": round(report["backfill_completed_at_s"] - report["last_run_ended_s"], 1),
    }
    daemon_waits = sum(v for k, v in report["breakdown_s"].items() if k.startswith("daemon_wait"))
    report["overhead_per_episode_without_daemon_loop_s"] = round((dagster_total - daemon_waits - report["plain_calls_s"]) / n_episodes, 3)
    report["overhead_per_episode_s"] = round((dagster_total - report["plain_calls_s"]) / n_episodes, 3)
    report["overhead_per_run_s"] = round((dagster_total - report["plain_calls_s"]) / n_runs, 1)
    shutil.rmtree(work, ignore_errors=True)
    return report


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
