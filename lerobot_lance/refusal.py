"""What a refused conversion or a failed diagnosis tells the user: the failed
checks as structured records, which option would get the sound part through,
and the JSON object ``--json`` prints for a failure.

The options (``lerobot-lance convert``):

* ``--exclude-failed-episodes``: publish the sound episodes when some (not
  all) episodes failed a per-episode gate; the excluded ones and why are
  recorded in ``meta/conversion.json``.
* ``--skip-videos``: convert the tables without videos when every failed check
  is about video files (their segments, containers or streams).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lerobot_lance.quality.episode_rules import EPISODE_FRAME_RULES, EPISODE_VIDEO_RULES
from lerobot_lance.quality.file_locations import episode_list

#: Checks about video files only: a ``--skip-videos`` conversion does not run them.
VIDEO_CHECKS = frozenset({*EPISODE_VIDEO_RULES, "video_frames_cover_episodes", "video_stream_matches_info"})
#: File checks whose offenders say by their suffix whether they are about videos.
_FILE_CHECKS = frozenset({"files_exist", "files_non_empty", "no_orphan_files"})
#: Per-episode gates: ``--exclude-failed-episodes`` publishes around them.
PER_EPISODE_CHECKS = frozenset({*EPISODE_FRAME_RULES, *EPISODE_VIDEO_RULES, "episodes_staged"})

EXCLUDE_OPTION = "--exclude-failed-episodes"
SKIP_VIDEOS_OPTION = "--skip-videos"


@dataclass
class FailedCheck:
    """One failed blocking check or failed step.

    Attributes:
        asset: the asset (``"<dataset>/source_videos"``) or step key concerned.
        check: the check's name, or ``None`` for a failed step.
        message: the one-line message (abbreviated offender list).
        offenders: every offender, as :meth:`~lerobot_lance.quality.result.Offender.to_dict`
            dicts (``file``, ``episode_index``, ``detail``, ``expected``, ``found``, ``message``).
    """

    asset: str
    check: str | None
    message: str
    offenders: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"asset": self.asset, "check": self.check, "message": self.message, "offenders": self.offenders}


def is_video_failure(f: FailedCheck) -> bool:
    """True when ``f`` is about video files only (it would not run with ``--skip-videos``)."""
    if f.check in VIDEO_CHECKS or f.asset.rsplit("/", 1)[-1] == "episode_videos":
        return True
    if f.check in _FILE_CHECKS and f.offenders:
        return all(str(o.get("file") or "").endswith(".mp4") for o in f.offenders)
    return False


def refusal_hint(
    failures: Sequence[FailedCheck],
    *,
    failed_episodes: Iterable[int] = (),
    selected_episodes: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> str | None:
    """Which option would get the sound part of the data through, or ``None``.

    Args:
        failures: the failed checks and steps.
        failed_episodes: episodes a per-episode gate refused.
        selected_episodes: how many episodes the conversion selected.
        options: the conversion's options (``exclude_failed_episodes``,
            ``skip_videos``); an option already set is not suggested again.

    Returns:
        One sentence per applicable option, joined by ``"; or "``.
    """
    opts = dict(options or {})
    failed = sorted(set(failed_episodes))
    hints = []
    if failed and not opts.get("exclude_failed_episodes") and (selected_episodes is None or len(failed) < selected_episodes):
        sound = f"the {selected_episodes - len(failed)} sound episodes" if selected_episodes is not None else "the sound episodes"
        hints.append(f"{EXCLUDE_OPTION} publishes {sound} and records why {episode_list(failed)} were left out (meta/conversion.json)")
    if failures and not opts.get("skip_videos") and all(is_video_failure(f) for f in failures):
        hints.append(f"{SKIP_VIDEOS_OPTION} converts the tables without videos (every failed check is about the video files)")
    return "; or ".join(hints) or None


def doctor_hint(outcomes: Sequence[Any], total_episodes: int | None = None) -> str | None:
    """:func:`refusal_hint` for ``doctor``'s outcomes (failed ERROR rules):
    per-episode rules that name some episodes suggest ``--exclude-failed-episodes``,
    video-only failures ``--skip-videos``."""
    failed = [o for o in outcomes if not o.passed and o.severity == "ERROR"]
    if not failed:
        return None
    records = [FailedCheck(o.name, o.name, o.message, [x.to_dict() for x in o.offenders]) for o in failed]
    eps: set[int] = set()
    if all(o.name in PER_EPISODE_CHECKS for o in failed):
        eps = {x.episode_index for o in failed for x in o.offenders if x.episode_index is not None}
    return refusal_hint(records, failed_episodes=eps, selected_episodes=total_episodes)


def error_object(err: BaseException) -> dict[str, Any]:
    """The JSON object ``--json`` prints on stdout for a failure.

    ``{"error": <exception type>, "message": str(err), "offenders": [...],
    "hint": <option sentence or null>}``; a
    :class:`~pipelines.runner.ConversionFailed` adds ``"failures"`` (one
    :class:`FailedCheck` dict per failed check or step) and its offenders are
    every failed check's offenders, each with its ``asset`` and ``check``. A
    :class:`~lerobot_lance.errors.SourceDataError` gives one offender (its
    ``path`` as ``file``, ``episode_index``, ``detail``, ``expected``, ``found``).
    """
    import json

    out: dict[str, Any] = {"error": type(err).__name__, "message": str(err), "offenders": [], "hint": getattr(err, "hint", None)}
    records = getattr(err, "records", None)
    if records:
        out["failures"] = [r.to_dict() for r in records]
        out["offenders"] = [{"asset": r.asset, "check": r.check, **o} for r in records for o in r.offenders]
    elif hasattr(err, "path") and hasattr(err, "detail"):
        out["offenders"] = [{
            "file": err.path, "episode_index": getattr(err, "episode_index", None), "detail": err.detail,
            "expected": getattr(err, "expected", None), "found": getattr(err, "found", None),
        }]
    elif hasattr(err, "path") and hasattr(err, "supported"):  # UnsupportedFormatError
        out["offenders"] = [{"file": err.path, "episode_index": None, "detail": "unsupported or unreadable info.json",
                             "expected": list(err.supported), "found": getattr(err, "found", None)}]
    return json.loads(json.dumps(out, default=str))
