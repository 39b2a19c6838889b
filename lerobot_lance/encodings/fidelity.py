"""Pixel fidelity of an encoding: decoded frames compared with the source's.

Figures per camera (what the conversion summary, the Dagster metadata and the
``decoded_pixels_match_source`` check report):

- ``psnr_db``: peak signal-to-noise ratio over every RGB value compared,
  ``10 * log10(255**2 / MSE)``; ``None`` when every value is equal
  (``exact``: true);
- ``share_differing``: share of pixels one of whose channels differs by more
  than :data:`~lerobot_lance.encodings.settings.DIFF_THRESHOLD` (8 of 255);
- ``max_abs_diff``: the largest difference of one channel value;
- ``frames_compared``, ``pixels_compared``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from lerobot_lance.encodings.settings import DIFF_THRESHOLD


@dataclass
class Fidelity:
    """Running totals of one camera's comparison (add frames, merge episodes)."""

    frames_compared: int = 0
    pixels_compared: int = 0
    squared_error: float = 0.0
    values_compared: int = 0
    pixels_differing: int = 0
    max_abs_diff: int = 0

    def add(self, source: np.ndarray, decoded: np.ndarray) -> None:
        """Compare one frame.

        Args:
            source, decoded: ``uint8`` arrays ``(height, width, 3)``, RGB.

        Raises:
            ValueError: the shapes differ (a decoded frame of another size).
        """
        if source.shape != decoded.shape:
            raise ValueError(f"decoded frame shape {decoded.shape} differs from the source's {source.shape}")
        d = np.abs(source.astype(np.int16) - decoded.astype(np.int16))
        self.frames_compared += 1
        self.pixels_compared += d.shape[0] * d.shape[1]
        self.values_compared += d.size
        self.squared_error += float(np.square(d, dtype=np.int32).sum(dtype=np.int64))
        self.pixels_differing += int((d.max(axis=-1) > DIFF_THRESHOLD).sum())
        self.max_abs_diff = max(self.max_abs_diff, int(d.max(initial=0)))

    def merge(self, other: Fidelity) -> Fidelity:
        return Fidelity(
            self.frames_compared + other.frames_compared, self.pixels_compared + other.pixels_compared,
            self.squared_error + other.squared_error, self.values_compared + other.values_compared,
            self.pixels_differing + other.pixels_differing, max(self.max_abs_diff, other.max_abs_diff),
        )

    @property
    def exact(self) -> bool:
        return self.frames_compared > 0 and self.max_abs_diff == 0

    @property
    def psnr_db(self) -> float | None:
        """PSNR in dB, ``None`` when exact or nothing was compared."""
        if not self.values_compared or self.squared_error == 0:
            return None
        return 10.0 * math.log10(255.0**2 / (self.squared_error / self.values_compared))

    @property
    def share_differing(self) -> float:
        return self.pixels_differing / self.pixels_compared if self.pixels_compared else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe figures (the totals too, so records can be merged again)."""
        psnr = self.psnr_db
        return {
            "psnr_db": None if psnr is None else round(psnr, 3),
            "exact": self.exact,
            "share_differing": self.share_differing,
            "diff_threshold": DIFF_THRESHOLD,
            "max_abs_diff": self.max_abs_diff,
            "frames_compared": self.frames_compared,
            "pixels_compared": self.pixels_compared,
            "_totals": [self.frames_compared, self.pixels_compared, self.squared_error, self.values_compared,
                        self.pixels_differing, self.max_abs_diff],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fidelity:
        f, p, se, v, pd, m = d["_totals"]
        return cls(int(f), int(p), float(se), int(v), int(pd), int(m))


def sample_positions(n: int, k: int) -> list[int]:
    """``k`` frame positions of ``0..n-1`` spread evenly, first and last
    included (every position when ``n <= k``); deterministic."""
    if n <= 0 or k <= 0:
        return []
    if n <= k:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def summarize(per_episode: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge the per-episode figures of one camera (``Fidelity.to_dict``
    records plus ``bytes`` and ``frames``) into dataset figures, with
    ``bytes_per_frame``."""
    total = Fidelity()
    nbytes = frames = 0
    for d in per_episode:
        total = total.merge(Fidelity.from_dict(d))
        nbytes += int(d.get("bytes", 0))
        frames += int(d.get("frames", 0))
    out = {k: v for k, v in total.to_dict().items() if not k.startswith("_")}
    out.update(bytes=nbytes, frames=frames, bytes_per_frame=round(nbytes / frames, 1) if frames else None, episodes=len(per_episode))
    return out
