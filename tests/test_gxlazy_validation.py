"""Great Expectations runs only when it has something to report (issue 11):
a batch whose ``ok_<rule>`` columns are all True passes without importing GE;
a batch where some rule fails is validated by GE, in this process, with the
same check names and offender rows as before.

Each conversion runs ``lerobot_lance.cli.main`` in a fresh subprocess that
reports, at exit, whether ``great_expectations`` is in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.faults import SHARED, make_fault, v2_data

REPO = Path(__file__).resolve().parents[1]

#: Runs the CLI with argv[1:], then prints one JSON line: exit code, the CLI's
#: --json output and whether GE was imported by the end of the process.
_WRAPPER = (
    "import contextlib, io, json, sys\n"
    "from lerobot_lance.cli import main\n"
    "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
    "    rc = main(sys.argv[1:])\n"
    "print(json.dumps({'rc': rc, 'out': json.loads(out.getvalue()), 'ge': 'great_expectations' in sys.modules}))\n"
)


def _convert(source: Path, output: Path, *args: str) -> dict[str, Any]:
    argv = ["convert", str(source), "--output", str(output), "--quiet", "--json", *args]
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *argv], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """g1_v21 with episode 2's timestamps of rows 100 and 101 swapped."""
    root = tmp_path_factory.mktemp("gxlazy") / "non_monotonic"
    make_fault("non_monotonic_timestamps", root)
    return root


def test_a_passing_conversion_imports_no_great_expectations(tmp_path: Path) -> None:
    got = _convert(SHARED / "g1_v21", tmp_path / "out", "--episodes", "1")
    assert got["rc"] == 0, got
    assert got["out"]["rows"]["frames"] == 343  # episode 1 of g1_v21, every row validated
    assert got["ge"] is False


def test_a_failing_episode_is_named_by_great_expectations(faulty: Path, tmp_path: Path) -> None:
    got = _convert(faulty, tmp_path / "out", "--episodes", "2")
    assert got["rc"] == 2, got
    assert got["ge"] is True  # the failing rows came from GE's validation
    rows = {o["check"]: o for o in got["out"]["offenders"] if o["check"] != "episodes_staged"}
    assert set(rows) == {"timestamps_monotonic", "timestamps_match_fps"}  # swapped rows are also off frame_index / fps
    for o in rows.values():
        assert (o["file"], o["episode_index"]) == (v2_data(2), 2)
    assert rows["timestamps_monotonic"]["detail"] == "timestamp does not increase at frame 101 (1 row(s), first at row 101)"
    assert (rows["timestamps_monotonic"]["expected"], rows["timestamps_monotonic"]["found"]) == ("> 3.366667 s", "3.333333 s")
    assert rows["timestamps_match_fps"]["detail"] == "timestamp off frame_index/fps by more than 0.0001 s at frame 100 (2 row(s), first at row 100)"
    assert (rows["timestamps_match_fps"]["expected"], rows["timestamps_match_fps"]["found"]) == ("3.333333 s", "3.366667 s")
    assert not (tmp_path / "out" / "frames.lance").exists()  # nothing published


_UNIT = """
import json, sys
import numpy as np
from lerobot_lance.quality import gx_worker

n = 1000
row = np.arange(5000, 5000 + n, dtype=np.int64)
ok = {"ok_timestamps_monotonic": np.ones(n, bool), "ok_no_nan_inf": np.ones(n, bool), "_row": row}
out = {"all_true": gx_worker.validate(ok), "ge_after_all_true": "great_expectations" in sys.modules}
bad = dict(ok, ok_no_nan_inf=np.isin(np.arange(n), [3, 500, 999], invert=True))
out["with_false"] = gx_worker.validate(bad)
out["ge_after_false"] = "great_expectations" in sys.modules
import pandas as pd
out["ge_itself"] = gx_worker.validate_frame(pd.DataFrame(bad))
print(json.dumps(out))
"""


def test_validate_imports_great_expectations_only_for_a_failing_batch() -> None:
    proc = subprocess.run([sys.executable, "-c", _UNIT], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["all_true"] == {} and got["ge_after_all_true"] is False
    assert got["with_false"] == {"no_nan_inf": [5003, 5500, 5999]} and got["ge_after_false"] is True
    assert got["with_false"] == got["ge_itself"]  # the rows are GE's, the all-True rule absent
