"""Wall time and bytes written of the dataset tools on one output (issue 13's figures).

    python benchmarks/tools_bench.py OUT [--scratch DIR] [--json]

Runs, in this order, on OUT (an output of lerobot-lance, either layout; it is
changed in place by the last three steps, so pass a copy you can spare):
delete-episodes 1,3 --output, split 0.8/0.2, merge of the two splits,
add-features --output, remove-features action --output, then add-features
--in-place, delete-episodes 1,3 --in-place, remove-features action --in-place.
Prints one line per step: seconds, bytes written (the sizes of the files the
step created or changed) and the output's size after it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def main() -> int:
    from lerobot_lance.tools import add_features, delete_episodes, merge_datasets, read_output, remove_features, split_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--scratch", default="/tmp/lerobot-lance-tools-bench")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out, scratch = Path(a.output), Path(a.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    n = int(read_output(out).info["total_frames"])
    table = scratch / "reward.parquet"
    pq.write_table(pa.table({"index": pa.array(np.arange(n), pa.int64()), "reward": pa.array(np.random.default_rng(0).random(n).astype(np.float32))}), table)
    rows = []

    def step(name: str, fn, *args, keep: bool = False, **kw):  # noqa: ANN001, ANN202
        t0 = time.monotonic()
        res = fn(*args, **kw)
        dt = time.monotonic() - t0
        results = res if isinstance(res, dict) else {"": res}
        written = sum(r.bytes_written for r in results.values())
        size = max(r.output_bytes for r in results.values())
        ok = all(all(r.checks.values()) for r in results.values())
        rows.append({"step": name, "seconds": round(dt, 2), "bytes_written": written, "output_bytes": size, "checks_passed": ok})
        print(f"{name:<34} {dt:7.1f} s  written {written:>13,} B  output {size:>13,} B  ({100 * written / size:6.2f} %)  checks {'ok' if ok else 'FAILED'}", flush=True)
        for r in results.values():
            if not r.in_place and not keep:  # new outputs go at once (disk): each is about the output's size
                shutil.rmtree(r.output, ignore_errors=True)

    step("delete-episodes 1,3 --output", delete_episodes, out, [1, 3], new_output=scratch / "del")
    step("split 0.8/0.2", split_dataset, out, {"train": 0.8, "val": 0.2}, scratch / "split", keep=True)
    step("merge train + val", merge_datasets, [scratch / "split" / "train", scratch / "split" / "val"], scratch / "merged")
    shutil.rmtree(scratch / "split", ignore_errors=True)
    step("add-features reward --output", add_features, out, table, new_output=scratch / "add")
    step("remove-features action --output", remove_features, out, ["action"], new_output=scratch / "rm")
    step("add-features reward --in-place", add_features, out, table, in_place=True)
    step("delete-episodes 1,3 --in-place", delete_episodes, out, [1, 3], in_place=True)
    step("remove-features action --in-place", remove_features, out, ["action"], in_place=True)
    if a.json:
        print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
