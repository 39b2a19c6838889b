"""Issue 8, CLI behaviour of failures: ``--json`` prints one JSON object on
stdout for failures of ``scan``, ``doctor`` and ``convert`` (error type,
message, every offender), refusals name the option that gets the sound part
through, and an all-excluded conversion keeps every episode's reason.

The real CLI runs in a subprocess (``python -m lerobot_lance.cli``), so stdout,
stderr and the exit code are what a shell sees.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from tests.faults import REPO, SHARED, copy_sample, edit_parquet, make_fault, v2_data

N_ORPHANS = 12  # more than the 10 offenders reports used to stop at


def run_cli(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("DAGSTER_HOME", None)
    p = subprocess.run([sys.executable, "-m", "lerobot_lance.cli", *args], capture_output=True, text=True, env=env, timeout=600)
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def many_orphans(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """g1_v21 with 12 extra data parquets no episode references."""
    root = copy_sample("g1_v21", tmp_path_factory.mktemp("orphans") / "ds")
    for i in range(N_ORPHANS):
        os.link(root / v2_data(5), root / v2_data(100 + i))
    return root


def _orphan_files(offenders: list[dict[str, Any]]) -> list[str]:
    return sorted(o["file"] for o in offenders)


EXPECTED_ORPHANS = sorted(v2_data(100 + i) for i in range(N_ORPHANS))


def test_convert_json_failure_has_every_offender(many_orphans: Path, tmp_path: Path) -> None:
    rc, out, err = run_cli("convert", str(many_orphans), "-o", str(tmp_path / "out"), "-q", "--json")
    assert rc == 2
    obj = json.loads(out)
    assert obj["error"] == "ConversionFailed" and "no_orphan_files" in obj["message"]
    assert _orphan_files(obj["offenders"]) == EXPECTED_ORPHANS
    assert {(o["check"], o["asset"].rsplit("/", 1)[-1]) for o in obj["offenders"]} == {("no_orphan_files", "source_videos")}
    assert [f["check"] for f in obj["failures"]] == ["no_orphan_files"]
    assert "no_orphan_files" in err  # the text still goes to stderr


def test_doctor_json_failure_has_every_offender(many_orphans: Path) -> None:
    rc, out, _ = run_cli("doctor", str(many_orphans), "--json")
    assert rc == 1  # exit code = failed checks
    obj = json.loads(out)
    assert obj["error"] == "ChecksFailed" and obj["failed"] == 1 and "no_orphan_files" in obj["message"]
    assert _orphan_files(obj["offenders"]) == EXPECTED_ORPHANS
    check = next(c for c in obj["checks"] if c["name"] == "no_orphan_files")
    assert check["n_offenders"] == N_ORPHANS and _orphan_files(check["offenders"]) == EXPECTED_ORPHANS
    # the text report abbreviates
    rc, out, _ = run_cli("doctor", str(many_orphans))
    assert rc == 1 and f"(+{N_ORPHANS - 3} more)" in out


def test_scan_json_failure_and_problems(tmp_path: Path) -> None:
    (tmp_path / "v16" / "meta").mkdir(parents=True)
    (tmp_path / "v16" / "meta" / "info.json").write_text('{"codebase_version": "v1.6"}')
    rc, out, err = run_cli("scan", str(tmp_path / "v16"), "--json")
    assert rc == 2 and "v1.6" in err
    obj = json.loads(out)
    assert obj["error"] == "UnsupportedFormatError" and "v1.6" in obj["message"]
    assert obj["offenders"][0]["file"].endswith("meta/info.json") and "v1.6" in obj["offenders"][0]["found"]

    rc, out, _ = run_cli("scan", str(tmp_path / "missing"), "--json")
    assert rc == 2 and json.loads(out)["error"] == "SourceNotFoundError"

    root = copy_sample("g1_v21", tmp_path / "tpl")
    info = json.loads((root / "meta/info.json").read_text())
    info["data_path"] = "data/chunk-{chunk_index:03d}/episode_{episode_index:06d}.parquet"
    (root / "meta/info.json").unlink()
    (root / "meta/info.json").write_text(json.dumps(info))
    rc, out, _ = run_cli("scan", str(root), "--json")
    assert rc == 0
    report = json.loads(out)
    assert report["episodes"] == 6 and report["problems"] and "chunk_index" in report["problems"][0]["message"]
    rc, out, _ = run_cli("scan", str(root))
    assert rc == 0 and "problem" in out and "chunk_index" in out and "observation.images.cam_high" in out


def test_video_only_refusal_suggests_both_options(tmp_path: Path) -> None:
    make_fault("truncated_mp4", tmp_path / "ds")  # episode 2's mp4 unreadable
    rc, out, err = run_cli("convert", str(tmp_path / "ds"), "-o", str(tmp_path / "out"), "-q", "--json")
    assert rc == 2
    hint = json.loads(out)["hint"]
    assert "--exclude-failed-episodes publishes the 5 sound episodes" in hint and "episode 2" in hint
    assert "--skip-videos" in hint
    assert "hint: --exclude-failed-episodes" in err
    assert any(o.get("episode_index") == 2 for o in json.loads(out)["offenders"])


def test_frame_refusal_suggests_only_excluding(tmp_path: Path) -> None:
    make_fault("nan_in_action", tmp_path / "ds")
    rc, out, err = run_cli("convert", str(tmp_path / "ds"), "-o", str(tmp_path / "out"), "-q", "--json")
    assert rc == 2
    hint = json.loads(out)["hint"]
    assert "--exclude-failed-episodes" in hint and "--skip-videos" not in hint
    rc, out, _ = run_cli("doctor", str(tmp_path / "ds"))
    assert rc >= 1 and "hint: --exclude-failed-episodes publishes the 5 sound episodes" in out


def test_every_episode_excluded_keeps_every_reason(tmp_path: Path) -> None:
    root = copy_sample("g1_v21", tmp_path / "ds")

    def nan_first(t: pa.Table) -> pa.Table:
        rows = t["action"].to_pylist()
        rows[0] = [math.nan, *rows[0][1:]]
        i = t.column_names.index("action")
        return t.set_column(i, "action", pa.array(rows, type=t.schema.field("action").type))

    for ep in range(6):
        edit_parquet(root, v2_data(ep), nan_first)
    rc, out, err = run_cli("convert", str(root), "-o", str(tmp_path / "out"), "-q", "--json", "--exclude-failed-episodes")
    assert rc == 2
    obj = json.loads(out)
    assert "no episode staged" in obj["message"]
    for ep in range(6):
        assert f"episode {ep}: " in obj["message"] and v2_data(ep) in obj["message"]
    assert "no_nan_inf" in obj["message"]
    assert not any((tmp_path / "out" / f"{t}.lance").exists() for t in ("frames", "episodes", "videos"))


def test_skip_videos_converts_the_shared_sample(tmp_path: Path) -> None:
    rc, out, err = run_cli("convert", str(SHARED / "g1_v21"), "-o", str(tmp_path / "out"), "-q", "--json", "--skip-videos")
    assert rc == 0, err
    summary = json.loads(out)
    assert summary["rows"]["frames"] == 2316 and summary["rows"]["episodes"] == 6
