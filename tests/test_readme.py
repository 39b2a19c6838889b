"""README.md runs as written.

Every ``bash`` and ``python`` block of README.md runs, unchanged and in
order, in a fresh copy of the repository (its tracked and new files, as a
clone would have them, in a temporary directory), after the quick start.

* The quick-start block creates a venv and pip-installs the project before
  its ``lerobot-lance convert ...``; here only that convert command runs, with
  the environment this test runs in (its interpreter's ``bin/`` first on
  ``PATH``, the copy on ``PYTHONPATH``): installing again would test pip,
  not README.
* Blocks that need the network or a server, or that run the whole suite, are
  marked in README with ``<!-- readme-test: skip (reason) -->`` right before
  them; they are listed, and kept few.
* A ``python`` line ending in ``# -> TEXT`` must print exactly ``TEXT`` (the
  printed lines must contain every such TEXT, in order).
* What the quick start prints as its "open with" snippet is the README's
  snippet, verbatim.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP = re.compile(r"<!-- readme-test: skip \((?P<why>[^)]+)\) -->\s*$")
FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
#: Most blocks README may skip (the test suite, the UI server, the Hub, the
#: benchmark, Hugging Face datasets, which is not a dependency, and training
#: with LeRobot's reader, which needs the Python 3.12 venv; tests/test_layout_lerobot.py
#: runs that comparison).
MAX_SKIPS = 6


@dataclass
class Block:
    lang: str
    body: str
    line: int  # 1-based line of the opening fence
    skip: str | None  # the reason, when marked


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text`` with its language and skip marker (the last non-blank line before it)."""
    blocks = []
    for m in FENCE.finditer(text):
        before = [ln for ln in text[: m.start()].splitlines() if ln.strip()]
        mark = SKIP.search(before[-1]) if before else None
        blocks.append(Block(m["lang"], m["body"], text[: m.start()].count("\n") + 1, mark["why"] if mark else None))
    return blocks


def _fresh_copy(dst: Path) -> Path:
    """The repository's files as a clone has them (tracked and new, not ignored) under ``dst``."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


def _env(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(copy)
    env["COLUMNS"] = "80"
    return env


def _run(block: Block, copy: Path) -> subprocess.CompletedProcess[str]:
    cmd = ["bash", "-e", "-o", "pipefail", "-c", block.body] if block.lang == "bash" else [sys.executable, "-c", block.body]
    return subprocess.run(cmd, cwd=copy, env=_env(copy), capture_output=True, text=True, timeout=900)


def _expected_prints(body: str) -> list[str]:
    return [ln.split("# -> ", 1)[1].rstrip() for ln in body.splitlines() if "# -> " in ln]


def test_readme_blocks_are_parsed() -> None:
    blocks = readme_blocks((REPO / "README.md").read_text())
    runnable = [b for b in blocks if b.lang in ("bash", "python")]
    skipped = [b for b in runnable if b.skip]
    assert len(runnable) >= 7 and "lerobot-lance convert" in runnable[0].body
    assert 1 <= len(skipped) <= MAX_SKIPS, [(b.line, b.skip) for b in skipped]
    assert not runnable[0].skip


def test_readme_runs_as_written(tmp_path: Path) -> None:
    copy = _fresh_copy(tmp_path / "clone")
    blocks = [b for b in readme_blocks((REPO / "README.md").read_text()) if b.lang in ("bash", "python")]
    quick, rest = blocks[0], blocks[1:]

    # the quick start, with the environment already installed
    convert = quick.body.strip().split("&&")[-1].strip()
    assert convert.startswith("lerobot-lance convert ") and convert in quick.body
    proc = _run(Block("bash", convert, quick.line, None), copy)
    assert proc.returncode == 0, proc.stderr[-3000:]
    printed = proc.stdout.split("open with:\n", 1)[1].rstrip("\n")
    assert rest[0].lang == "python" and rest[0].body.rstrip("\n") == printed, (
        "README's snippet differs from what the quick start prints:\n" + printed
    )

    ran = []
    for block in rest:
        if block.skip:
            continue
        proc = _run(block, copy)
        assert proc.returncode == 0, f"README.md line {block.line} ({block.lang}) failed:\n{block.body}\n{proc.stderr[-3000:]}"
        out = [ln.rstrip() for ln in proc.stdout.splitlines()]
        it = iter(out)
        for want in _expected_prints(block.body):
            assert any(line == want for line in it), f"README.md line {block.line}: expected a printed line {want!r}; printed:\n{proc.stdout[-3000:]}"
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
        ran.append(block.line)
    assert len(ran) >= 4
    # nothing outside the copy was written: the repository's own out/ is not the copy's
    assert (copy / "out" / "g1_multicam" / ".lerobot-lance.json").is_file()


@pytest.mark.parametrize("text,expected", [("print(1)  # -> 1\nx = 2\nprint(x)  # -> 2\n", ["1", "2"]), ("print(3)\n", [])])
def test_expected_prints(text: str, expected: list[str]) -> None:
    assert _expected_prints(text) == expected
