"""The conversion summary the CLI prints: warnings whole, never wrapped or cut; the snippet runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lerobot_lance.cli import _print_summary
from lerobot_lance.snippets import OPEN_SNIPPET, frames_columns, open_snippet, snippet_columns
from pipelines.runner import ConversionSummary

REPO = Path(__file__).resolve().parents[1]


def test_long_warnings_are_printed_whole_on_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    long = "ds/episode_frames / clipped_values: " + "; ".join(f"offender {i} [bold]x[/bold] " + "y" * 50 for i in range(30))
    summary = ConversionSummary(output="/tmp/x", tag="conversion-1", rows={"frames": 3}, warnings=[long, "short one"])
    _print_summary(summary)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"warning {long}" and len(lines[0]) > 1500  # whole, markup-looking text kept literally
    assert lines[1] == "warning short one"
    assert lines[2] == "published /tmp/x tag conversion-1: frames 3 rows"
    assert "\n".join(lines[4:]) == open_snippet("/tmp/x", "latest", [])


def test_snippet_columns_follow_the_table() -> None:
    assert snippet_columns([]) == ["episode_index", "frame_index", "timestamp"]
    g1 = ["observation_state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index"]
    assert snippet_columns(g1) == ["episode_index", "frame_index", "timestamp", "action", "observation_state"]
    assert snippet_columns(["state", "actions", "timestamp", "episode_index", "frame_index"])[3:] == ["state", "actions"]
    assert OPEN_SNIPPET.count("{") == 3


def test_printed_snippet_runs_on_a_real_output(tmp_path: Path) -> None:
    """Through the console script in a subprocess with a pipe as stdout (no terminal: width 80)."""
    out = tmp_path / "out"
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO)}
    env.pop("DAGSTER_HOME", None)
    proc = subprocess.run(
        [sys.executable, "-m", "lerobot_lance.cli", "convert", str(REPO / "examples" / "g1_multicam_v30"), "--output", str(out), "--quiet"],
        capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert " ..." not in text and "…" not in text
    snippet = text.split("open with:\n", 1)[1].rstrip("\n")
    from lerobot_lance.readers import read_dataset_meta

    assert snippet == open_snippet(str(out), "latest", frames_columns(read_dataset_meta(REPO / "examples" / "g1_multicam_v30")))
    run = subprocess.run([sys.executable, "-c", snippet], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "'frame_index': 9" in run.stdout and "'frame_index': 10" not in run.stdout
