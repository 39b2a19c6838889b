"""``python benchmarks/bench.py --encodings``: frames/s of the camera
encodings on this machine, on the real samples (core functions, no Dagster):

- image cameras to video (:func:`lerobot_lance.encodings.image_video.encode_frames`)
  with the ``lerobot`` preset (libsvtav1 yuv420p g=2 crf=30) and the
  ``lossless`` preset (libx264rgb rgb24 qp=0), on ``g1_image_v30`` episode 0
  (393 frames, 120x160, from PNG) and on ``g1_v21`` episode 1 decoded
  (343 frames, 640x480); plus the full decode-and-compare the check runs;
- JPEG frames (:func:`lerobot_lance.encodings.jpeg_frames.encode_jpeg`) at
  q95 4:2:0 and q100 4:4:4 on the same frames, and the AV1 decode that feeds
  it for video cameras.
"""

from __future__ import annotations

import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import pyarrow.parquet as pq

from lerobot_lance.encodings.fidelity import Fidelity
from lerobot_lance.encodings.image_video import decode_all, decode_image, encode_frames
from lerobot_lance.encodings.jpeg_frames import encode_jpeg
from lerobot_lance.encodings.settings import VIDEO_PRESETS

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/datasets")
CAM = "observation.images.cam_high"


def _frames() -> dict[str, list[np.ndarray]]:
    t = pq.read_table(SHARED / "g1_image_v30/data/chunk-000/file-000.parquet", columns=[CAM, "episode_index"])
    pngs = [r["bytes"] for r, e in zip(t[CAM].to_pylist(), t["episode_index"].to_pylist()) if e == 0]
    t0 = time.perf_counter()
    small = [decode_image(b) for b in pngs]
    png_fps = len(small) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    big = list(decode_all(SHARED / "g1_v21/videos/chunk-000" / CAM / "episode_000001.mp4"))
    av1_fps = len(big) / (time.perf_counter() - t0)
    print(f"decode: PNG 120x160 {png_fps:.0f} frames/s; AV1 640x480 (dav1d) {av1_fps:.0f} frames/s")
    return {"120x160 (g1_image_v30 ep 0)": small, "640x480 (g1_v21 ep 1)": big}


def bench_encodings() -> list[dict[str, object]]:
    """Print and return one row per (frames, encoding): frames/s, bytes/frame, PSNR."""
    rows: list[dict[str, object]] = []
    with TemporaryDirectory(prefix="lerobot-lance-enc-") as tmp:
        for label, frames in _frames().items():
            n = len(frames)
            for preset in ("lerobot", "lossless"):
                s = VIDEO_PRESETS[preset]
                dst = Path(tmp) / f"{preset}.mp4"
                t0 = time.perf_counter()
                encode_frames(iter(frames), dst, 30, s)
                enc = time.perf_counter() - t0
                t0 = time.perf_counter()
                fid = Fidelity()
                for a, b in zip(frames, decode_all(dst)):
                    fid.add(a, b)
                ver = time.perf_counter() - t0
                rows.append({"frames": label, "encoding": f"video {preset} ({s.codec} {s.pix_fmt})", "frames_per_s": n / enc,
                             "check_frames_per_s": n / ver, "bytes_per_frame": dst.stat().st_size / n,
                             "psnr_db": fid.psnr_db, "exact": fid.exact})
            for q, sub in ((95, "4:2:0"), (100, "4:4:4")):
                t0 = time.perf_counter()
                out = [encode_jpeg(f, q, sub) for f in frames]
                enc = time.perf_counter() - t0
                fid = Fidelity()
                for a, b in zip(frames[::16], out[::16]):
                    fid.add(a, decode_image(b))
                rows.append({"frames": label, "encoding": f"jpeg q{q} {sub} (Pillow)", "frames_per_s": n / enc, "check_frames_per_s": None,
                             "bytes_per_frame": sum(map(len, out)) / n, "psnr_db": fid.psnr_db, "exact": fid.exact})
    print(f"{'frames':<28} {'encoding':<40} {'frames/s':>9} {'check f/s':>9} {'bytes/frame':>11} {'PSNR dB':>8}")
    for r in rows:
        check = f"{r['check_frames_per_s']:.0f}" if r["check_frames_per_s"] else "-"
        psnr = "exact" if r["exact"] else f"{r['psnr_db']:.2f}"
        print(f"{r['frames']:<28} {r['encoding']:<40} {r['frames_per_s']:>9.0f} {check:>9} {r['bytes_per_frame']:>11.0f} {psnr:>8}")
    return rows


if __name__ == "__main__":
    bench_encodings()
