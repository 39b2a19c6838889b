"""Paired before/after runs of one conversion: this checkout against another
checkout of the project (a ``git worktree`` or ``git archive`` of the commit
before a change), A B A B, each a whole fresh process.

    python benchmarks/bench.py --ab /tmp/base --pairs 3                 # 300-episode v3.0, card layout
    python benchmarks/bench.py --ab /tmp/base --pairs 3 --extra --layout lerobot

A is the other checkout, B this one (``PYTHONPATH`` set to each in turn, so
both run in this venv). Per run it prints wall, CPU (user + sys of the
conversion and its children), peak RSS
and the 1-minute load average before the run; then the medians and the B/A
ratios pair by pair. On a shared machine the load changes between runs: read
the pairs, not one run. Nothing is asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.bench import PEER_PYTHON, REPO, _median, build_repeated_v21, build_v30_with_lerobot


def _run(code: Path, source: Path, out: Path, extra: list[str]) -> dict[str, float]:
    """:func:`benchmarks.bench.measure` in a fresh Python whose ``PYTHONPATH`` is ``code``."""
    script = (
        "import json,sys; sys.path.insert(0, %r); from benchmarks.bench import measure; "
        "from pathlib import Path; print(json.dumps(measure(Path(%r), Path(%r), %r)))"
    ) % (str(REPO), str(source), str(out), extra)
    env = {**os.environ, "PYTHONPATH": str(code)}
    # cwd=code: measure() starts the CLI with ``python -m``, which puts the
    # working directory first on sys.path, ahead of PYTHONPATH (run from this
    # checkout's root, both A and B would run this checkout's code)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=str(code))
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ab_pairs(work: Path, other: Path, repeat: int, pairs: int, extra: list[str]) -> None:
    """``--ab OTHER``: ``pairs`` rounds of (A = ``other``, B = this checkout) on
    the ``6 * repeat``-episode dataset (v3.0 by LeRobot's converter when the
    peer venv is there, else the v2.1 scale-up)."""
    other = other.resolve()
    if not (other / "lerobot_lance" / "__init__.py").is_file():
        raise SystemExit(f"--ab {other}: not a checkout of this project (no lerobot_lance/__init__.py)")
    big = build_repeated_v21(work / f"g1_v21_x{repeat}", repeat)
    src = build_v30_with_lerobot(big, work / f"g1_x{repeat}_v30") if PEER_PYTHON.is_file() else big
    flags = ["--overwrite", "--staging-dir", str(work / "staging"), *extra]
    print(f"source: {src}; A = {other}, B = {REPO}; flags: {' '.join(flags)}")
    runs: dict[str, list[dict]] = {"A": [], "B": []}
    for i in range(pairs):
        for side, code in (("A", other), ("B", REPO)):
            load = os.getloadavg()[0]
            r = _run(code, src, work / "out" / "ab", flags)
            r["load"] = load
            runs[side].append(r)
            print(f"pair {i + 1} {side}  wall {r['wall_s']:7.1f} s  CPU {r['cpu_s']:7.1f} s  RSS {r['peak_rss_mb']:6.0f} MB  "
                  f"load before {load:5.2f}", flush=True)
    shutil.rmtree(work / "out" / "ab", ignore_errors=True)
    shutil.rmtree(work / "staging", ignore_errors=True)
    print()
    for side in ("A", "B"):
        rs = runs[side]
        print(f"{side}: median wall {_median([r['wall_s'] for r in rs]):.1f} s, CPU {_median([r['cpu_s'] for r in rs]):.1f} s, "
              f"peak RSS {_median([r['peak_rss_mb'] for r in rs]):.0f} MB")
    cpu = [b["cpu_s"] / a["cpu_s"] for a, b in zip(runs["A"], runs["B"])]
    wall = [b["wall_s"] / a["wall_s"] for a, b in zip(runs["A"], runs["B"])]
    print(f"B/A pair by pair: CPU {', '.join(f'{x:.3f}' for x in cpu)}; wall {', '.join(f'{x:.3f}' for x in wall)}")
