"""Read-side benchmark: items per second of ``lerobot_lancedb.LanceDBDataset``
over Lance-layout outputs, the way training reads them.

Runs in the peer venv (Python 3.12, lerobot-lancedb 0.3.1); ``bench.py``
starts it. Usage::

    python benchmarks/lerobot_read_bench.py --roots OUT_A OUT_B [--items 256] [--workers 0 2]

Per root and per ``num_workers``: ``--items`` seeded random indices (the same
for every root), a delta-timestamps window on the first camera
(``[-0.1, 0]`` s) and on the state, through a ``torch.utils.data.DataLoader``
(batch size 16, the reader's ``lance_mp_context()`` for workers). The clock
covers iterating the loader (worker start-up included), not opening the
dataset. Prints one JSON object ``{root: {workers: items_per_s}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def items_per_second(root: str, workers: int, items: int, seed: int, batch_size: int = 16) -> float:
    import torch
    from lerobot_lancedb import LanceDBDataset, lance_mp_context

    probe = LanceDBDataset(root=root)
    camera = probe.meta.video_keys[0]
    delta = {camera: [-0.1, 0.0], "observation.state": [-0.1, -1 / probe.fps, 0.0]}
    ds = LanceDBDataset(root=root, delta_timestamps=delta)
    indices = random.Random(seed).sample(range(len(ds)), min(items, len(ds)))
    kw = {"multiprocessing_context": lance_mp_context()} if workers else {}
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, sampler=indices, num_workers=workers, **kw)
    t0 = time.perf_counter()
    n = 0
    for batch in loader:
        n += int(batch[camera].shape[0])
    seconds = time.perf_counter() - t0
    if n != len(indices):
        raise RuntimeError(f"{root}: loader yielded {n} items, expected {len(indices)}")
    return n / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--roots", nargs="+", required=True)
    ap.add_argument("--items", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for root in args.roots:  # warm-up, untimed: imports, decoder libraries, page cache
        items_per_second(root, 0, 16, args.seed + 1)
    out: dict[str, dict[str, float]] = {}
    for workers in args.workers:  # alternate roots per setting: shared-machine noise hits both alike
        for root in args.roots:
            out.setdefault(root, {})[str(workers)] = items_per_second(root, workers, args.items, args.seed)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
