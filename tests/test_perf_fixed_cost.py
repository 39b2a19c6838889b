"""The conversion's fixed cost (issue 11, target 2): Great Expectations runs in
a helper process warmed up while the conversion starts, with the same
outcomes as in this process; the shell conversion of the bundled sample
imports neither GE nor matplotlib in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from lerobot_lance.frames import read_episodes_rows
from lerobot_lance.quality import gx_worker
from lerobot_lance.quality.episode_rules import check_episode_frames
from lerobot_lance.readers import read_dataset_meta
from tests.faults import make_fault

REPO = Path(__file__).resolve().parents[1]


def _outcomes(root: Path) -> list[tuple[str, bool, list[str]]]:
    meta = read_dataset_meta(root)
    rows = read_episodes_rows(root, meta.episodes)
    return [(o.name, o.passed, [str(x) for x in o.offenders]) for o in check_episode_frames(meta, rows)]


def test_helper_process_gives_the_same_outcomes(tmp_path: Path) -> None:
    """A faulty episode (two timestamps swapped) is named alike whether GE
    validates here or in the helper process."""
    root = tmp_path / "bad"
    make_fault("non_monotonic_timestamps", root)
    gx_worker.stop()
    here = _outcomes(root)
    gx_worker.start()
    try:
        assert gx_worker._helper is not None and gx_worker._helper.poll() is None
        there = _outcomes(root)
        assert gx_worker._helper is not None and gx_worker._helper.poll() is None  # it served, it did not fall back
    finally:
        gx_worker.stop()
    assert there == here
    failed = {name: offenders for name, passed, offenders in here if not passed}
    assert set(failed) == {"timestamps_monotonic", "timestamps_match_fps"}  # swapped rows are also off frame_index / fps
    assert "episode 2" in failed["timestamps_monotonic"][0] and "row 101" in failed["timestamps_monotonic"][0]


def test_a_dead_helper_falls_back_to_this_process() -> None:
    gx_worker.start()
    assert gx_worker._helper is not None
    gx_worker._helper.kill()
    gx_worker._helper.wait()
    cols = {"ok_timestamps_monotonic": np.array([True, False, True]), "_row": np.arange(3, dtype=np.int64)}
    assert gx_worker.validate(cols)["timestamps_monotonic"] == [1]
    assert gx_worker._helper is None


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
