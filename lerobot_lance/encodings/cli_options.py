"""The encoding flags of ``lerobot-lance convert`` (argparse only: the CLI
imports this at parse time, so it imports nothing heavy)."""

from __future__ import annotations

import argparse
from typing import Any

#: CLI flag (dest) -> ConvertOptions field, for the flags whose value passes through.
_FIELDS = ("encode_images", "video_preset", "video_codec", "video_crf", "video_qp", "video_gop", "video_pix_fmt",
           "frames_format", "jpeg_quality", "jpeg_subsampling", "reencode_crf", "reencode_preset", "min_psnr_db")


def _quality(text: str) -> int:
    try:
        q = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer 1..100") from None
    if not 1 <= q <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer 1..100")
    return q


def _non_negative(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 0") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 0")
    return v


def _positive(text: str) -> int:
    v = _non_negative(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= 1")
    return v


def add_encoding_arguments(p: argparse.ArgumentParser) -> None:
    """Add the camera-encoding flags to the ``convert`` parser (defaults ``None``:
    unset flags leave :class:`~lerobot_lance.conversion.ConvertOptions`' defaults)."""
    g = p.add_argument_group("camera encodings")
    g.add_argument("--encode-images", choices=["none", "video"], help="encode dtype:image cameras to one mp4 per episode (default none)")
    g.add_argument("--video-preset", choices=["lerobot", "lossless"],
                   help="lerobot: libsvtav1 yuv420p g=2 crf=30 (LeRobot's defaults, default); lossless: libx264rgb rgb24 qp=0 (pixel-exact)")
    g.add_argument("--video-codec", help="FFmpeg encoder overriding the preset's (e.g. libx264, libsvtav1)")
    g.add_argument("--video-crf", type=_non_negative, help="constant rate factor overriding the preset's")
    g.add_argument("--video-qp", type=_non_negative, help="constant quantizer overriding the preset's (0 with libx264rgb: lossless)")
    g.add_argument("--video-gop", type=_positive, help="frames between keyframes (default 2)")
    g.add_argument("--video-pix-fmt", help="pixel format given to the encoder (default: the preset's)")
    g.add_argument("--frames-format", choices=["source", "jpeg"],
                   help="source: frames keep what the source stores (default); jpeg: a JPEG per frame of every camera")
    g.add_argument("--jpeg-quality", type=_quality, help="JPEG quality 1..100 (default 95)")
    g.add_argument("--jpeg-subsampling", choices=["4:4:4", "4:2:2", "4:2:0"], help="JPEG chroma subsampling (default 4:2:0)")
    g.add_argument("--reencode-crf", type=_non_negative, help="libx264 crf of the v3.0 re-encode fallback (0, default: lossless qp 0)")
    g.add_argument("--reencode-preset", help="libx264 preset of the v3.0 re-encode fallback (default veryfast)")
    g.add_argument("--min-psnr-db", type=float, help="floor of decoded_pixels_match_source for lossy encodings, dB (default 30)")


def encoding_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ConvertOptions fields the user set on the command line."""
    return {k: getattr(args, k) for k in _FIELDS if getattr(args, k, None) is not None}
