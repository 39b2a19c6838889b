"""The conversion's fixed cost (issue 11, target 2): the shell conversion of
the bundled sample, whose episodes pass every rule, imports neither Great
Expectations (GE validates only a batch where some rule fails, see
``tests/test_gxlazy_validation.py``) nor matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]


def test_shell_conversion_keeps_ge_and_matplotlib_out_of_its_process(tmp_path: Path) -> None:
    code = (
        "import contextlib, io, json, sys\nfrom lerobot_lance.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        f"    rc = main(['convert', 'examples/g1_multicam_v30', '--output', {str(tmp_path / 'out')!r}, '--quiet', '--json'])\n"
        "print(json.dumps({'rc': rc, 'rows': json.loads(out.getvalue())['rows'],"
        " 'loaded': [m for m in ('great_expectations', 'matplotlib') if m in sys.modules]}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"rc": 0, "rows": {"frames": 736, "episodes": 2, "videos": 2}, "loaded": []}
    assert not (tmp_path / "out" / "_staging" / "dataset_stats.png").exists()  # throwaway instance: no plot
