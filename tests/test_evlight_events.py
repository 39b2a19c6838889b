"""Issue 11: the CLI's throwaway Dagster instance (``pipelines.dagster_compat.ephemeral_instance``)
stores no asset materializations, check evaluations (planned or not) or step
outputs, and a conversion through it reports exactly what one through
Dagster's own ``DagsterInstance.ephemeral()`` (which stores every event)
reports: the ``--json`` summary, and with ``--exclude-failed-episodes`` the
failed episode, its reason, and the re-runs of the sound episodes around it
(which need the failed episodes of the batch's run, once read from the
stored check evaluations).

One in-process CLI conversion of the ``nan_in_action`` variant of ``g1_v21``
(episode 2 fails ``no_nan_inf``) per instance kind, shared by the module.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lance
import pytest

from tests.faults import EPISODE_LENGTHS, TOTAL_FRAMES, make_fault, v2_data

BAD = 2  # the nan_in_action variant's failing episode


def _convert(src: Path, out: Path, make_instance: Any | None) -> tuple[int, dict[str, Any], Counter[str]]:
    """Run ``lerobot-lance convert`` in-process (``--json``); return its exit code,
    summary and the event types the instance's event log stored (by count).
    ``make_instance`` replaces the runner's throwaway instance (None: keep it)."""
    from dagster import DagsterInstance

    from lerobot_lance import cli

    with DagsterInstance.ephemeral() as plain:  # Dagster's in-memory event log, the parent of ours
        log_cls = type(plain.event_log_storage)
    stored: Counter[str] = Counter()
    base_store = log_cls.store_event

    def counting_store(self: Any, event: Any) -> None:
        stored[event.dagster_event.event_type_value if event.dagster_event else "LOG"] += 1
        base_store(self, event)

    argv = ["convert", str(src), "--output", str(out), "--quiet", "--json", "--camera-stats-samples", "0", "--exclude-failed-episodes"]
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(buf):
        mp.setattr(log_cls, "store_event", counting_store)
        if make_instance is not None:
            mp.setattr("pipelines.runner.ephemeral_instance", make_instance)
        rc = cli.main(argv)
    return rc, json.loads(buf.getvalue()), stored


@pytest.fixture(scope="module")
def conversions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[int, dict[str, Any], Counter[str], Path]]]:
    from dagster import DagsterInstance

    assert not os.environ.get("DAGSTER_HOME")
    root = tmp_path_factory.mktemp("evlight")
    make_fault("nan_in_action", root / "src")
    out: dict[str, tuple[int, dict[str, Any], Counter[str], Path]] = {}
    for name, make in (("compat", None), ("dagster", DagsterInstance.ephemeral)):
        dst = root / name / "out"  # same last part: the same dataset name in both summaries
        out[name] = (*_convert(root / "src", dst, make), dst)
    yield out


def test_failed_episode_and_reason_reported_with_no_stored_check_evaluation(
    conversions: dict[str, tuple[int, dict[str, Any], Counter[str], Path]],
) -> None:
    from pipelines.dagster_compat import UNSTORED_EVENT_TYPES

    rc, summary, stored, out = conversions["compat"]
    assert rc == 0
    assert not set(stored) & {t.value for t in UNSTORED_EVENT_TYPES}, stored
    # run events are still stored: the batch's run failed (episode 2), the others succeeded
    assert stored["PIPELINE_START"] == len(summary["runs"]) and (stored["PIPELINE_FAILURE"], stored["PIPELINE_SUCCESS"]) == (1, 4)
    excluded = {w.split(": ", 2)[1]: w for w in summary["warnings"] if w.startswith("excluded: ")}
    assert sorted(excluded) == ["out/episode_frames / episodes_staged", "out/episode_frames / no_nan_inf"], summary["warnings"]
    for line in excluded.values():  # the episode, its file and what is wrong there
        assert f"(episode {BAD}): action[3] is not finite at row 100" in line and v2_data(BAD) in line, line
    assert f"episodes_staged: episode {BAD}: no_nan_inf: " in excluded["out/episode_frames / episodes_staged"]
    # source, the batch 0-5, the sound episodes' re-runs 0-1 and 3-5 (not 0-5:
    # that would mean the batch's failed episodes were lost), publish
    assert len(summary["runs"]) == 5, summary["runs"]
    assert summary["rows"]["frames"] == TOTAL_FRAMES - EPISODE_LENGTHS[BAD]
    assert summary["rows"]["episodes"] == 5
    conv = json.loads((out / "meta" / "conversion.json").read_text())
    assert list(conv["excluded_episodes"]) == [str(BAD)] and v2_data(BAD) in conv["excluded_episodes"][str(BAD)]
    eps = lance.dataset(str(out / "episodes.lance")).to_table(columns=["episode_index"])["episode_index"].to_pylist()
    assert sorted(eps) == [i for i in range(6) if i != BAD]


def test_summary_and_tables_same_as_on_dagsters_own_ephemeral_instance(
    conversions: dict[str, tuple[int, dict[str, Any], Counter[str], Path]],
) -> None:
    rc_c, ours, stored_c, out_c = conversions["compat"]
    rc_d, ref, stored_d, out_d = conversions["dagster"]
    assert rc_c == rc_d == 0
    # the reference instance did store what ours skips, so the comparison means something
    assert stored_d["ASSET_MATERIALIZATION"] > 0 and stored_d["ASSET_CHECK_EVALUATION"] > 0 and stored_d["STEP_OUTPUT"] > 0
    assert sum(stored_c.values()) < sum(stored_d.values()) / 4
    for key in ("rows", "warnings", "kept_episodes", "notes", "encodings"):
        assert ours[key] == ref[key], key
    assert len(ours["runs"]) == len(ref["runs"])
    assert sorted(ours["step_seconds"]) == sorted(ref["step_seconds"])
    for table, cols in (("frames", ["episode_index", "index", "frame_index"]), ("episodes", ["episode_index", "length"])):
        a = lance.dataset(str(out_c / f"{table}.lance")).to_table(columns=cols).sort_by("index" if "index" in cols else "episode_index")
        b = lance.dataset(str(out_d / f"{table}.lance")).to_table(columns=cols).sort_by("index" if "index" in cols else "episode_index")
        assert a.equals(b), table


def test_dagster_home_instance_stores_every_event(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``DAGSTER_HOME`` set the runner uses that instance, Dagster's own
    event log, which stores materializations and check evaluations (the UI's)."""
    from contextlib import ExitStack

    from dagster import AssetCheckResult, AssetCheckSpec, DagsterEventType, MaterializeResult, asset

    from pipelines import dagster_compat as dc
    from pipelines.runner import _instance

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))

    @asset(check_specs=[AssetCheckSpec("ok", asset="a")])
    def a():  # noqa: ANN202 (a string annotation cannot name a local import)
        return MaterializeResult(check_results=[AssetCheckResult(passed=True)])

    from dagster import materialize

    with ExitStack() as stack:
        instance = _instance(stack)
        try:
            assert not instance.is_ephemeral
            assert not isinstance(instance.event_log_storage, dc._ThrowawayEventLog)
            result = materialize([a], instance=instance)
            for kind in (DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION, DagsterEventType.STEP_OUTPUT):
                assert instance.get_records_for_run(result.run_id, of_type=kind).records, kind
        finally:
            instance.dispose()
