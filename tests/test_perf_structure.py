"""Structure and start-up cost (issue 11, targets 2 and 8):

* the one module that touches Dagster's private ``dagster._core`` is
  :mod:`pipelines.dagster_compat`, and what it re-exports still works the way
  the code uses it (so a Dagster upgrade that moves a name fails here);
* the project's modules import each other without a cycle (the old
  ``runner -> definitions -> automation -> runner`` one included), and the
  conversion is split by stage (:data:`STAGE_MODULES`, each under 500
  lines, the layouts' writers beside each other);
* ``lerobot-lance --help`` and ``scan`` load none of the heavy libraries they
  do not use, and ``--help`` run as a shell command imports none of them
  either (``python -X importtime``, every module the process imported);
* the code location (``pipelines.definitions``, imported by the webserver,
  the daemon, every code server and every run worker) loads without Lance,
  Great Expectations, matplotlib or PyAV: the steps that use them import them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, RunRequest

from tests.conftest import sample

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("lerobot_lance", "pipelines", "assets", "resources")
HEAVY = ("dagster", "great_expectations", "lance", "lancedb", "matplotlib", "torch", "pandas", "scipy")


def _project_files() -> list[Path]:
    files = [p for pkg in (*PACKAGES, "tests", "benchmarks") for p in (REPO / pkg).rglob("*.py")]
    return [p for p in files if ".venv" not in p.parts]


def _imported_modules(path: Path) -> set[str]:
    """Every module named by an ``import``/``from`` anywhere in the file (function bodies included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_private_dagster_imports_only_in_the_compat_module() -> None:
    offenders = [
        f"{p.relative_to(REPO)}: {m}"
        for p in _project_files()
        if p.name != "dagster_compat.py"
        for m in sorted(_imported_modules(p))
        if m.startswith("dagster._")
    ]
    assert offenders == []


def test_compat_names_work_as_the_code_uses_them() -> None:
    """The tags are the ones Dagster's backfills put on a range run, and a
    sensor's backfill request can be built from an AssetGraphSubset."""
    from dagster import Definitions, asset, define_asset_job

    from pipelines import dagster_compat as dc

    assert (dc.ASSET_PARTITION_RANGE_START_TAG, dc.ASSET_PARTITION_RANGE_END_TAG) == (
        "dagster/asset_partition_range_start",
        "dagster/asset_partition_range_end",
    )

    @asset
    def a() -> int:
        return 1

    job = define_asset_job("j", selection=[a])
    assert isinstance(job, dc.UnresolvedAssetJobDefinition)
    defs = Definitions(assets=[a], jobs=[job])
    graph = defs.get_repository_def().asset_graph
    subset = dc.AssetGraphSubset.from_asset_partition_set({dc.AssetKeyPartitionKey(AssetKey("a"), None)}, graph)
    request = RunRequest.for_asset_graph_subset(subset, tags={"t": "1"})
    assert request.asset_graph_subset is not None
    assert [k.asset_key for k in request.asset_graph_subset.iterate_asset_partitions()] == [AssetKey("a")]
    assert hasattr(dc.ReconstructableRepository, "for_module")


def test_ephemeral_instance_plans_a_partition_range_in_one_event() -> None:
    """The CLI's instance (``dagster_compat.ephemeral_instance``) generates one
    materialization-planned event holding the run's partition range, where
    ``DagsterInstance.ephemeral()`` generates one per partition, and stores
    none of the events of ``UNSTORED_EVENT_TYPES`` (asset and check events,
    step outputs), which ``DagsterInstance.ephemeral()`` stores; the run's
    result still reports every partition materialized and every check
    evaluated, and the run and step events are stored. Its short-cut reads of
    the (empty) asset tables answer what Dagster's queries answer."""
    from dagster import (
        AssetCheckResult,
        AssetCheckSpec,
        AssetKey,
        DagsterEventType,
        DagsterInstance,
        Definitions,
        MaterializeResult,
        StaticPartitionsDefinition,
        asset,
        define_asset_job,
    )

    from pipelines import dagster_compat as dc

    parts = StaticPartitionsDefinition([f"p{i}" for i in range(5)])

    @asset(partitions_def=parts, check_specs=[AssetCheckSpec("ok", asset="a", blocking=True)])
    def a(context):  # noqa: ANN001, ANN202 (a string annotation cannot name a local import)
        assert len(context.partition_keys) == 3
        return MaterializeResult(check_results=[AssetCheckResult(check_name="ok", passed=True)])

    @asset(partitions_def=parts, deps=[a])
    def b() -> None:
        pass

    defs = Definitions(assets=[a, b], jobs=[define_asset_job("j", selection=[a, b], partitions_def=parts)])
    tags = {dc.ASSET_PARTITION_RANGE_START_TAG: "p1", dc.ASSET_PARTITION_RANGE_END_TAG: "p3"}
    planned, stored = {}, {}
    for name, make in (("compat", dc.ephemeral_instance), ("dagster", DagsterInstance.ephemeral)):
        with make() as instance:
            assert instance.is_ephemeral
            log = instance.event_log_storage
            seen: list = []  # every event the instance handed to its event log
            store = type(log).store_event
            log.store_event = lambda e, seen=seen, store=store, log=log: (seen.append(e), store(log, e))  # type: ignore[method-assign]
            reads: list[str] = []  # the asset-table reads the run's steps make (provenance, check targets)
            for read in ("get_asset_records", "fetch_observations", "fetch_materializations"):
                method = getattr(log, read)
                setattr(log, read, lambda *a, read=read, method=method, **kw: (reads.append(read), method(*a, **kw))[1])
            result = defs.resolve_job_def("j").execute_in_process(instance=instance, tags=tags)
            assert result.success
            reported = [(e.asset_key.to_user_string(), e.partition) for e in result.get_asset_materialization_events()]
            assert sorted(reported) == [(k, p) for k in ("a", "b") for p in ("p1", "p2", "p3")]
            assert [(c.check_name, c.passed) for c in result.get_asset_check_evaluations()] == [("ok", True)]
            records = instance.get_records_for_run(result.run_id).records
            stored[name] = {r.event_log_entry.dagster_event.event_type for r in records if r.event_log_entry.dagster_event}
            planned[name] = [
                e.dagster_event.event_specific_data
                for e in seen
                if e.dagster_event and e.dagster_event.event_type == DagsterEventType.ASSET_MATERIALIZATION_PLANNED
            ]
            assert instance.get_run_by_id(result.run_id).is_success
            if name == "compat":  # the short-cut reads answer what Dagster's queries on the same tables answer
                assert {"get_asset_records", "fetch_observations"} <= set(reads), reads  # the names a step still reads through
                parent = type(log).__mro__[1]
                keys = [AssetKey("a"), AssetKey("b")]
                assert parent.get_asset_records(log, keys) == log.get_asset_records(keys) == []
                assert parent.get_asset_records(log) == log.get_asset_records() == []
                for fetch in ("fetch_materializations", "fetch_observations"):
                    for key in keys:
                        for cursor in (None, parent.fetch_materializations(log, key, 1).cursor):  # no cursor, then a valid one
                            ours, theirs = getattr(log, fetch)(key, 1, cursor), getattr(parent, fetch)(log, key, 1, cursor)
                            assert ours.records == theirs.records == [] and (ours.cursor, ours.has_more) == (theirs.cursor, theirs.has_more)
    assert len(planned["dagster"]) == 6
    assert len(planned["compat"]) == 2
    assert all(sorted(p.partitions_subset.get_partition_keys()) == ["p1", "p2", "p3"] for p in planned["compat"])
    assert dc.UNSTORED_EVENT_TYPES & stored["dagster"] >= {  # Dagster stores them ...
        DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_MATERIALIZATION_PLANNED, DagsterEventType.STEP_OUTPUT,
        DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
    }
    assert not stored["compat"] & dc.UNSTORED_EVENT_TYPES  # ... the CLI's instance does not
    assert stored["compat"] == stored["dagster"] - dc.UNSTORED_EVENT_TYPES  # and keeps every other kind
    assert {DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS, DagsterEventType.STEP_SUCCESS} <= stored["compat"]


def test_throwaway_event_log_overrides_names_dagster_still_calls() -> None:
    """``ephemeral_instance``'s event log filters by overriding Dagster 1.13's
    ``store_event`` / ``store_event_batch``, plans ranges through
    ``supports_partition_subset_in_asset_materialization_planned_events``, and
    short-cuts ``get_asset_records`` / ``fetch_materializations`` /
    ``fetch_observations``: a Dagster that renames one would leave the
    override dead silently, so each must still be a member of the parent
    class with the same parameters, ``handle_new_event`` must still store
    through them (a batch included: ``DAGSTER_EVENT_BATCH_SIZE``). (That a
    run's provenance reads still go through the short-cut names:
    ``test_ephemeral_instance_plans_a_partition_range_in_one_event``.)"""
    import inspect

    from dagster import DagsterEventType, DagsterInstance

    from pipelines import dagster_compat as dc

    with dc.ephemeral_instance() as instance:
        log_cls = type(instance.event_log_storage)
    parent = log_cls.__mro__[1]
    for name in ("store_event", "store_event_batch", "get_asset_records", "fetch_materializations", "fetch_observations"):
        assert name in log_cls.__dict__ and hasattr(parent, name), name
        assert list(inspect.signature(getattr(log_cls, name)).parameters) == list(inspect.signature(getattr(parent, name)).parameters), name
    name = "supports_partition_subset_in_asset_materialization_planned_events"
    assert name in log_cls.__dict__ and isinstance(inspect.getattr_static(parent, name), property)
    source = inspect.getsource(DagsterInstance.handle_new_event)
    assert ".store_event(" in source and ".store_event_batch(" in source
    assert {e.value for e in dc.UNSTORED_EVENT_TYPES} <= {e.value for e in DagsterEventType}


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _edges(path: Path, modules: set[str]) -> set[str]:
    """Project modules this file imports, anywhere in it (function bodies and
    ``TYPE_CHECKING`` blocks included); ``from pkg import sub`` is an edge to
    ``pkg.sub`` when that is a module, else to ``pkg``."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in modules:
                    out.add(sub)
                elif node.module in modules:
                    out.add(node.module)
    return out


def test_no_import_cycle_between_project_modules() -> None:
    """The graph of imports between the four packages' modules has no cycle
    (the runner builds the Definitions; the sensors inside them must not
    import the runner back)."""
    files = {_module_of(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    # A package's own __init__ exposing its submodules (lerobot_lance's lazy
    # convert/doctor/scan) is not a dependency of a module that imports the
    # package for a constant such as __version__.
    edges = {
        m: {t for t in _edges(p, set(files)) - {m} if not (p.name == "__init__.py" and t.startswith(m + "."))}
        for m, p in files.items()
    }
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(m: str, stack: list[str]) -> None:
        for t in sorted(edges[m]):
            if t in stack:
                cycles.append([*stack[stack.index(t):], t])
            elif t not in done:
                visit(t, [*stack, t])
        done.add(m)

    for m in sorted(files):
        if m not in done:
            visit(m, [m])
    assert cycles == []
    assert "pipelines.runner" not in edges["pipelines.automation"]


#: The conversion's stage modules, in stage order (issue 11 target 8: split by
#: stage so that each reads in one sitting), and the layouts' table writers.
STAGE_MODULES = (
    "lerobot_lance.conversion",
    "lerobot_lance.episode_stages",
    "lerobot_lance.conversion_stats",
    "lerobot_lance.publish",
)
LAYOUT_WRITERS = ("lerobot_lance.layouts.card_writer", "lerobot_lance.layouts.lerobot_writer")


def test_stage_modules_are_split_by_stage() -> None:
    """Each stage module and layout writer stays under 500 lines; the
    conversion module imports no later stage; the shared stages import no
    layout's writer and neither writer imports the other (issue 10 item 5:
    each layout's writer sits beside the other, not branched through it).
    Imports in function bodies count."""
    files = {_module_of(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    lines = {m: len(files[m].read_text(encoding="utf-8").splitlines()) for m in (*STAGE_MODULES, *LAYOUT_WRITERS)}
    assert {m: n for m, n in lines.items() if n > 500} == {}
    edges = {m: _edges(files[m], set(files)) for m in (*STAGE_MODULES, *LAYOUT_WRITERS)}
    assert edges["lerobot_lance.conversion"] & {*STAGE_MODULES, *LAYOUT_WRITERS} == set()
    assert {m: sorted(edges[m] & set(LAYOUT_WRITERS)) for m in STAGE_MODULES if edges[m] & set(LAYOUT_WRITERS)} == {}
    card, lerobot = LAYOUT_WRITERS
    assert lerobot not in edges[card] and card not in edges[lerobot]
    # every later stage builds on the conversion object
    assert all("lerobot_lance.conversion" in edges[m] for m in (*STAGE_MODULES[1:], *LAYOUT_WRITERS))


def _loaded_after(code: str) -> dict[str, bool]:
    probe = code + f"\nimport json, sys\nprint(json.dumps({{m: m in sys.modules for m in {list(HEAVY) + ['pyarrow', 'av']!r}}}))"
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import contextlib, io\nfrom lerobot_lance.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "assert 'convert' in out.getvalue()"
    )
    loaded = _loaded_after(code)
    assert [m for m, on in loaded.items() if on] == []  # not even pyarrow or PyAV


def _importtime_packages(args: list[str], env_extra: dict[str, str] | None = None) -> tuple[set[str], str]:
    """Top-level packages a fresh ``python -X importtime <args>`` imported
    (from its ``import time:`` lines on stderr), and its stdout."""
    import os

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **(env_extra or {})}
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "lerobot_lance" in {n.split(".")[0] for n in names}  # the probe did import the project
    return {n.split(".")[0] for n in names}, proc.stdout


def test_help_shell_command_imports_nothing_heavy() -> None:
    """``lerobot-lance --help`` as a user types it (the module as ``__main__``)."""
    loaded, out = _importtime_packages(["-m", "lerobot_lance.cli", "--help"])
    assert "convert" in out and "scan" in out
    assert sorted(loaded & {*HEAVY, "av", "pyarrow", "numpy"}) == []


def test_code_location_imports_no_step_library() -> None:
    """Importing the code location builds every definition without the
    libraries only steps use (Lance, GE, matplotlib, PyAV, pandas via Lance)."""
    loaded, _ = _importtime_packages(["-c", "import pipelines.definitions as d; print(len(d.defs.jobs or []))"])
    assert "dagster" in loaded
    assert sorted(loaded & {"lance", "lancedb", "great_expectations", "matplotlib", "av", "pandas", "scipy", "torch"}) == []


def test_scan_imports_only_what_it_uses(tmp_path: Path) -> None:
    code = (
        "import contextlib, io\nfrom lerobot_lance.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    assert main(['scan', {str(sample('g1_multicam_v30'))!r}, '--json']) == 0\n"
        "assert json.loads(out.getvalue())['episodes'] == 2\nimport json"
    ).replace("import contextlib, io", "import contextlib, io, json")
    loaded = _loaded_after(code)
    assert [m for m in HEAVY if loaded[m]] == []
    assert loaded["pyarrow"] and loaded["av"]  # it does read meta/ parquet and probe the mp4s
