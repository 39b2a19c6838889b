"""Compare items of ``lerobot_lancedb.LanceDBDataset`` over a ``--layout lerobot``
output with LeRobot's own ``LeRobotDataset`` over a v3.0 source.

Runs in the peer venv (Python 3.12, lerobot 0.6.1, lerobot-lancedb 0.3.1,
torchcodec 0.10), not in the project's: ``tests/test_layout_lerobot.py``
starts it as a subprocess. Usage::

    python tests/lerobot_reader_compare.py CASES.json

``CASES.json`` is a list of ``{"name", "output", "source", "episodes" (list or
null), "samples", "seed", "delta_timestamps"}`` (and ``"storage_options"`` for
an ``s3://`` output). For each case, item i of the
output is compared with item i of ``LeRobotDataset(root=source,
episodes=episodes)`` on ``samples`` seeded random indices plus the first and
last: every key present in both, tabular values exactly, decoded frames pixel
for pixel (float32 equality of the same uint8 / 255). When ``episodes`` is a
subset, the output renumbers it: item i must have ``index`` i and the
``episode_index`` of its episode's position in the subset.

Prints one JSON object: ``{name: {"compared": n, "keys": [...], "mismatches": [...]}}``.
"""

from __future__ import annotations

import json
import os
import random
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _equal(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and bool(torch.equal(a, b))
    return type(a) is type(b) and a == b


def compare(case: dict) -> dict:
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot_lancedb import LanceDBDataset

    delta = case.get("delta_timestamps") or None
    episodes = case.get("episodes")
    so = case.get("storage_options")  # an object-store output (s3://...)
    ours = LanceDBDataset(root=case["output"], delta_timestamps=delta, **({"storage_options": so} if so else {}))
    ref = LeRobotDataset(repo_id="local/" + os.path.basename(case["source"].rstrip("/")), root=case["source"],
                         episodes=episodes, delta_timestamps=delta)
    mismatches: list[str] = []
    if len(ours) != len(ref):
        mismatches.append(f"len: output {len(ours)}, LeRobotDataset {len(ref)}")
    n = min(len(ours), len(ref))
    rng = random.Random(case.get("seed", 0))
    indices = sorted({0, n - 1, *rng.sample(range(n), min(case.get("samples", 16), n))})
    position = {ep: k for k, ep in enumerate(sorted(episodes))} if episodes is not None else None
    keys: set[str] = set()
    for i in indices:
        a, b = ours[i], ref[i]
        keys |= set(a)
        if set(a) != set(b):
            mismatches.append(f"item {i}: keys differ: only output {sorted(set(a) - set(b))}, only LeRobot {sorted(set(b) - set(a))}")
        for key in sorted(set(a) & set(b)):
            va, vb = a[key], b[key]
            if position is not None and key == "index":
                vb = torch.tensor(i, dtype=vb.dtype)
            elif position is not None and key == "episode_index":
                vb = torch.tensor(position[int(vb)], dtype=vb.dtype)
            if not _equal(va, vb):
                if isinstance(va, torch.Tensor) and isinstance(vb, torch.Tensor) and va.shape == vb.shape:
                    diff = (va.double() - vb.double()).abs()
                    detail = f"{int((diff > 0).sum())} of {va.numel()} values differ, max {float(diff.max()):.3g}"
                else:
                    detail = f"output {getattr(va, 'shape', va)!r} {getattr(va, 'dtype', type(va))}, LeRobot {getattr(vb, 'shape', vb)!r} {getattr(vb, 'dtype', type(vb))}"
                mismatches.append(f"item {i} key {key}: {detail}")
    return {"compared": len(indices), "keys": sorted(keys), "mismatches": mismatches[:50], "len": [len(ours), len(ref)]}


def main() -> int:
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    results = {}
    for case in cases:
        try:
            results[case["name"]] = compare(case)
        except Exception as exc:  # noqa: BLE001 - reported to the pytest side, which fails with it
            import traceback

            results[case["name"]] = {"compared": 0, "keys": [], "mismatches": [f"{type(exc).__name__}: {exc}"],
                                     "traceback": traceback.format_exc()[-3000:]}
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
