"""Camera encodings (issue 12): image cameras to video
(:mod:`.image_video`), the JPEG frames format (:mod:`.jpeg_frames`), their
settings and presets (:mod:`.settings`), fidelity figures (:mod:`.fidelity`)
and what the output describes once cameras are encoded (:mod:`.output`).

The conversion's stages call these through small hooks: ``episode_videos``
encodes image cameras, ``episode_frames`` writes the JPEG columns, the table
and ``meta/`` writers read :func:`.output.output_meta`; the checks are
:mod:`lerobot_lance.quality.encoding_rules`.
"""
