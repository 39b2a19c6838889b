"""The shell conversion's fixed cost (issue 11, item 2), what stays out of it:

* run as the command (``python -m lerobot_lance.cli``, the console script),
  the CLI ends its process with ``os._exit`` once done
  (:func:`lerobot_lance.cli._exit_now`), after the ``atexit`` handlers and
  the flush of stdout/stderr, so its output is whole and its exit code kept;
  with a non-daemon thread still running it leaves the exit to Python;
* a conversion imports neither the code location (``pipelines.definitions``,
  which builds the Definitions of ``datasets.yaml``) nor the tools' jobs, nor
  Dagster's ``fs_io_manager`` dependencies (upath, fsspec): the runner builds
  its own Definitions without the tools and with ``mem_io_manager`` (the
  assets return ``MaterializeResult``: nothing goes through an IO manager).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV)


def test_exit_now_runs_atexit_and_flushes_then_keeps_the_code() -> None:
    code = (
        "import atexit, sys\nfrom lerobot_lance import cli\n"
        "atexit.register(lambda: print('atexit handler ran'))\n"
        "sys.stdout.write('buffered, no newline')\nsys.stderr.write('to stderr')\n"
        "cli._exit_now(3)\nprint('not reached')"
    )
    proc = _python("-c", code)
    assert proc.returncode == 3
    assert proc.stdout == "buffered, no newlineatexit handler ran\n"
    assert proc.stderr == "to stderr"


def test_exit_now_leaves_a_running_thread_to_python() -> None:
    code = (
        "import threading, time\nfrom lerobot_lance import cli\n"
        "t = threading.Thread(target=lambda: (time.sleep(0.5), print('thread finished')))\nt.start()\n"
        "cli._exit_now(3)\nprint('returned')"
    )
    proc = _python("-c", code)
    assert proc.returncode == 0  # the normal end of the script: _exit_now returned
    assert proc.stdout.splitlines() == ["returned", "thread finished"]


def test_main_returns_to_a_python_caller() -> None:
    """``main(argv)`` from Python (tests, scripts) returns its code; only the
    command itself exits early."""
    code = "from lerobot_lance.cli import main\nimport contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()):\n    rc = main(['scan', 'examples/g1_multicam_v30', '--json'])\nprint('returned', rc)"
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "returned 0"


def test_shell_conversion_output_is_whole_and_skips_what_it_does_not_use(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _python("-X", "importtime", "-m", "lerobot_lance.cli", "convert", "examples/g1_multicam_v30", "--output", str(out), "--quiet", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # the whole JSON document reached the pipe before the early exit
    assert summary["rows"] == {"frames": 736, "episodes": 2, "videos": 2}
    assert len(summary["runs"]) == 3 and summary["tag"].startswith("conversion-")
    assert (out / "frames.lance").is_dir()
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "pipelines.runner" in imported and "lance" in imported  # the probe saw the conversion's imports
    assert sorted(imported & {"pipelines.definitions", "pipelines.tools_jobs", "lerobot_lance.tools", "upath", "fsspec"}) == []


def test_console_script_exits_early_too() -> None:
    """The installed ``lerobot-lance`` script (``sys.exit(main())`` in its
    ``__main__``) gets the early exit: the code after it never runs."""
    import pytest

    script = Path(sys.executable).parent / "lerobot-lance"
    if not script.exists():
        pytest.skip(f"{script}: the package's console script is not installed next to this Python")
    code = (
        "import runpy, sys\nsys.argv = ['lerobot-lance', 'scan', 'examples/g1_multicam_v30', '--json']\n"
        f"try:\n    runpy.run_path({str(script)!r}, run_name='__main__')\nexcept SystemExit as e:\n    print('normal exit', e.code)\n"
        "print('after the script')"
    )
    proc = _python("-c", code)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["episodes"] == 2  # stdout is the scan's JSON and nothing else
