"""Blocking checks of the camera encodings (image cameras to video, the JPEG
frames format): the frames produced are all there and decode, and their
pixels match the source within the stated fidelity.

The fidelity stated (:mod:`lerobot_lance.encodings.settings`): a lossless
preset (``--video-preset lossless``: libx264rgb, rgb24, qp 0) must decode
equal to the source pixel for pixel; a lossy encoding (AV1 crf 30, any JPEG)
must reach a PSNR of at least ``LOSSY_MIN_PSNR_DB`` (30 dB) over the frames
compared (every frame for video, ``JPEG_SAMPLE_FRAMES`` per episode for JPEG).
"""

from __future__ import annotations

from lerobot_lance.encodings.fidelity import Fidelity
from lerobot_lance.encodings.settings import LOSSY_MIN_PSNR_DB
from lerobot_lance.quality.result import CheckOutcome, Offender

#: The checks, in the order they run.
ENCODING_RULES: tuple[str, ...] = ("encoded_frame_count", "decoded_pixels_match_source")

_DESCRIPTIONS = {
    "encoded_frame_count": "every video or JPEG frame the converter encodes (--encode-images video, --frames-format jpeg) "
    "decodes, and each episode's count of decoded frames equals its `length`",
    "decoded_pixels_match_source": "decoded pixels of what the converter encodes match the source frames within the "
    f"stated fidelity: equal for lossless presets, PSNR >= {LOSSY_MIN_PSNR_DB:g} dB (--min-psnr-db) for lossy ones",
}


def check_encoded(
    episode_index: int, camera: str, where: str, kind: str, length: int, decoded: int, fidelity: Fidelity, *, lossless: bool,
    min_psnr_db: float = LOSSY_MIN_PSNR_DB,
) -> list[CheckOutcome]:
    """The two checks for one camera of one episode.

    Args:
        episode_index: the episode.
        camera: the camera's feature key.
        where: the file (or table) to name in offenders.
        kind: ``"video"`` or ``"jpeg"`` (for messages).
        length: the episode's frames (metadata ``length``).
        decoded: frames that decoded from what was produced.
        fidelity: the comparison with the source frames.
        lossless: the encoding claims to be lossless (exact match required).
        min_psnr_db: the floor of a lossy encoding (``ConvertOptions.min_psnr_db``,
            ``--min-psnr-db``; default 30 dB).

    Returns:
        ``[encoded_frame_count, decoded_pixels_match_source]`` outcomes.
    """
    count = []
    if decoded != length:
        count.append(Offender(where, episode_index, f"{kind} of camera {camera!r}: decoded frames differ from the episode length",
                              expected=f"{length} frames", found=f"{decoded} frames"))
    pixels = []
    psnr = fidelity.psnr_db
    if fidelity.frames_compared == 0:
        pixels.append(Offender(where, episode_index, f"{kind} of camera {camera!r}: no frame compared", expected=">= 1", found=0))
    elif lossless and not fidelity.exact:
        pixels.append(Offender(where, episode_index, f"{kind} of camera {camera!r} is not pixel-identical to the source (lossless preset)",
                               expected="max abs diff 0", found=f"max abs diff {fidelity.max_abs_diff}, PSNR {psnr:.2f} dB"))
    elif not lossless and psnr is not None and psnr < min_psnr_db:
        pixels.append(Offender(where, episode_index, f"{kind} of camera {camera!r}: PSNR below the floor (lower it with --min-psnr-db)",
                               expected=f">= {min_psnr_db:g} dB", found=f"{psnr:.2f} dB"))
    md = {"psnr_db": psnr if psnr is not None else "exact", "share_differing": fidelity.share_differing}
    return [
        CheckOutcome.from_offenders("encoded_frame_count", count, description=_DESCRIPTIONS["encoded_frame_count"]),
        CheckOutcome.from_offenders("decoded_pixels_match_source", pixels, description=_DESCRIPTIONS["decoded_pixels_match_source"], metadata=md),
    ]
