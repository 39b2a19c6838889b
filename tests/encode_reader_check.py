"""Serve a ``--layout lerobot --encode-images video`` output with
``lerobot_lancedb.LanceDBDataset`` and compare its camera frames with the
source's images.

Runs in the peer venv (Python 3.12, lerobot-lancedb 0.3.1, torch), started by
``tests/test_encode_image_video.py``. Usage::

    python tests/encode_reader_check.py OUTPUT SOURCE_PARQUET CAMERA SAMPLES

Item i of the output is frame ``index`` i; its camera tensor (float32
``(3, H, W)`` in 0..1) is compared, as uint8 (``round(x * 255)``), with the
source image of row i of the data parquet (PNG bytes). Prints one JSON object:
``{"len", "compared", "keys", "max_abs_diff", "psnr_db", "shape"}``.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(output: str, parquet: str, camera: str, samples: int) -> dict:
    import numpy as np
    import pyarrow.parquet as pq
    from lerobot_lancedb import LanceDBDataset
    from PIL import Image

    ds = LanceDBDataset(root=output)
    col = pq.read_table(parquet, columns=[camera])[camera].combine_chunks().field("bytes")
    n = len(ds)
    idx = sorted({0, n - 1, *random.Random(0).sample(range(n), min(samples, n))})
    se = 0.0
    values = 0
    max_diff = 0
    keys: list[str] = []
    shape = None
    for i in idx:
        item = ds[i]
        keys = sorted(item)
        t = item[camera]
        shape = list(t.shape)
        got = np.clip(np.rint(t.numpy().transpose(1, 2, 0) * 255.0), 0, 255).astype(np.int16)
        want = np.asarray(Image.open(io.BytesIO(col[i].as_py())).convert("RGB")).astype(np.int16)
        d = np.abs(got - want)
        max_diff = max(max_diff, int(d.max()))
        se += float((d.astype(np.float64) ** 2).sum())
        values += d.size
    psnr = None if se == 0 else 10 * math.log10(255**2 / (se / values))
    return {"len": n, "compared": len(idx), "keys": keys, "max_abs_diff": max_diff, "psnr_db": psnr, "shape": shape}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))))
