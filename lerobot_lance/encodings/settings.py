"""Settings of the camera encodings: image cameras to video, the JPEG frames
format, and the v3.0 re-encode fallback.

Facts and their sources:

- LeRobot's image-to-video defaults: ``libsvtav1``, ``yuv420p``, ``g=2``,
  ``crf=30`` (lerobot ``datasets/dataset_tools.py``,
  ``convert_image_to_video_dataset``): the ``"lerobot"`` preset.
- Lossless: libx264 with ``qp=0`` is lossless only for what it is given. Fed
  RGB frames converted to ``yuv444p`` or ``yuv420p`` it is not pixel-exact
  (the RGB -> YUV conversion rounds; measured on ``g1_image_v30`` episode 1:
  yuv444p 52.3 dB, yuv420p 38.5 dB); ``libx264rgb`` with ``rgb24`` input at
  ``qp=0`` stores planar RGB (the stream reads back as ``gbrp``) and decodes
  pixel-identical (343 of 343 frames). So the ``"lossless"`` preset is
  libx264rgb, rgb24, qp 0.
- JPEG options as in the lerobot-lancedb converter docs: ``--jpeg-quality
  1..100`` (default 95), ``--jpeg-subsampling`` 4:4:4 / 4:2:2 / 4:2:0
  (default 4:2:0); q100 at 4:4:4 is its near-lossless preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lerobot_lance.errors import LeRobotLanceError

#: ``encode_images`` values: ``"none"`` keeps image cameras as images (bytes verbatim).
ENCODE_IMAGES_MODES: tuple[str, ...] = ("none", "video")
#: ``frames_format`` values: ``"source"`` stores what the source stores (image
#: bytes verbatim, nothing per frame for video cameras); ``"jpeg"`` a JPEG per
#: frame of every camera.
FRAMES_FORMATS: tuple[str, ...] = ("source", "jpeg")
#: ``jpeg_subsampling`` values -> Pillow's ``subsampling`` argument (0, 1, 2).
JPEG_SUBSAMPLING: dict[str, int] = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}
DEFAULT_JPEG_QUALITY = 95
DEFAULT_JPEG_SUBSAMPLING = "4:2:0"

#: A pixel "differs" when one of its channels differs by more than this (0..255).
DIFF_THRESHOLD = 8
#: Floor of the ``decoded_pixels_match_source`` check for lossy encodings (dB,
#: PSNR over the compared frames). Lossless presets must match exactly.
LOSSY_MIN_PSNR_DB = 30.0
#: Frames per episode and camera compared for the JPEG fidelity figures
#: (evenly spread, first and last included; all frames when fewer).
JPEG_SAMPLE_FRAMES = 8


@dataclass(frozen=True)
class VideoSettings:
    """How image cameras are encoded to video (PyAV / FFmpeg encoder names).

    Attributes:
        codec: FFmpeg encoder (``"libsvtav1"``, ``"libx264"``, ``"libx264rgb"``, ...).
        pix_fmt: pixel format the encoder is given (``"yuv420p"``, ``"rgb24"``, ...).
        gop: frames between keyframes (FFmpeg ``g``).
        crf: constant rate factor, or ``None``.
        qp: constant quantizer, or ``None`` (``qp=0`` with libx264rgb is lossless).
        lossless: the decode must equal the source pixel for pixel (checked).
        preset: the preset these came from (``"lerobot"``, ``"lossless"``), for reports.
    """

    codec: str
    pix_fmt: str
    gop: int
    crf: int | None = None
    qp: int | None = None
    lossless: bool = False
    preset: str = "custom"

    def encoder_options(self) -> dict[str, str]:
        """FFmpeg private options of the encoder (strings, as PyAV takes them)."""
        opts: dict[str, str] = {}
        if self.qp is not None:
            opts["qp"] = str(self.qp)
        elif self.crf is not None:
            opts["crf"] = str(self.crf)
        return opts

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "codec": self.codec, "pix_fmt": self.pix_fmt, "gop": self.gop,
                "crf": self.crf, "qp": self.qp, "lossless": self.lossless}


#: Named presets (``--video-preset``).
VIDEO_PRESETS: dict[str, VideoSettings] = {
    "lerobot": VideoSettings("libsvtav1", "yuv420p", 2, crf=30, preset="lerobot"),
    "lossless": VideoSettings("libx264rgb", "rgb24", 2, qp=0, lossless=True, preset="lossless"),
}
DEFAULT_VIDEO_PRESET = "lerobot"


def available_encoders() -> set[str]:
    """FFmpeg encoders PyAV's bundled FFmpeg has (``av.codecs_available``)."""
    import av

    return set(av.codecs_available)


def video_settings(options: Any) -> VideoSettings:
    """The image-to-video settings of a :class:`~lerobot_lance.conversion.ConvertOptions`:
    its ``video_preset`` with ``video_codec``, ``video_pix_fmt``, ``video_gop``,
    ``video_crf``, ``video_qp`` overriding the preset's values (a ``video_crf``
    clears the preset's ``qp`` and vice versa). Lossless only when the result
    is the lossless preset's codec, pixel format and ``qp=0``.

    Raises:
        LeRobotLanceError: unknown preset, encoder not in this PyAV build, a
            GOP < 1, a negative crf/qp.
    """
    name = getattr(options, "video_preset", DEFAULT_VIDEO_PRESET) or DEFAULT_VIDEO_PRESET
    if name not in VIDEO_PRESETS:
        raise LeRobotLanceError(f"unknown video preset {name!r}: expected one of {', '.join(VIDEO_PRESETS)}")
    base = VIDEO_PRESETS[name]
    codec = getattr(options, "video_codec", None) or base.codec
    pix_fmt = getattr(options, "video_pix_fmt", None) or base.pix_fmt
    gop = getattr(options, "video_gop", None) or base.gop
    crf, qp = base.crf, base.qp
    if getattr(options, "video_crf", None) is not None:
        crf, qp = int(options.video_crf), None
    if getattr(options, "video_qp", None) is not None:
        crf, qp = None, int(options.video_qp)
    if int(gop) < 1:
        raise LeRobotLanceError(f"video GOP must be >= 1, found {gop}")
    for label, v in (("crf", crf), ("qp", qp)):
        if v is not None and v < 0:
            raise LeRobotLanceError(f"video {label} must be >= 0, found {v}")
    if codec not in available_encoders():
        raise LeRobotLanceError(
            f"video codec {codec!r} is not in this PyAV build's FFmpeg (av.codecs_available); "
            "libsvtav1, libx264 and libx264rgb are in PyAV 18's wheels"
        )
    lossless = codec == "libx264rgb" and qp == 0 and pix_fmt in ("rgb24", "bgr24")
    custom = (codec, pix_fmt, int(gop), crf, qp) != (base.codec, base.pix_fmt, base.gop, base.crf, base.qp)
    return VideoSettings(codec, pix_fmt, int(gop), crf, qp, lossless, f"{name}+custom" if custom else name)


def validate_options(options: Any) -> None:
    """Refuse encoding options that cannot work, before anything runs.

    Raises:
        LeRobotLanceError: ``encode_images`` / ``frames_format`` /
            ``jpeg_subsampling`` not a known value, ``jpeg_quality`` outside
            1..100, ``reencode_crf`` < 0, or bad video settings
            (:func:`video_settings`).
    """
    if options.encode_images not in ENCODE_IMAGES_MODES:
        raise LeRobotLanceError(f"unknown encode_images {options.encode_images!r}: expected one of {', '.join(ENCODE_IMAGES_MODES)}")
    if options.frames_format not in FRAMES_FORMATS:
        raise LeRobotLanceError(f"unknown frames_format {options.frames_format!r}: expected one of {', '.join(FRAMES_FORMATS)}")
    if options.jpeg_subsampling not in JPEG_SUBSAMPLING:
        raise LeRobotLanceError(f"unknown jpeg_subsampling {options.jpeg_subsampling!r}: expected one of {', '.join(JPEG_SUBSAMPLING)}")
    if not (isinstance(options.jpeg_quality, int) and 1 <= options.jpeg_quality <= 100):
        raise LeRobotLanceError(f"jpeg_quality must be an integer in 1..100, found {options.jpeg_quality!r}")
    if not options.min_psnr_db >= 0:
        raise LeRobotLanceError(f"min_psnr_db must be a number >= 0, found {options.min_psnr_db!r}")
    if options.reencode_crf < 0:
        raise LeRobotLanceError(f"reencode_crf must be >= 0 (0: lossless qp 0), found {options.reencode_crf}")
    if options.encode_images == "video":
        video_settings(options)
