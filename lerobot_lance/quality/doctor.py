"""``lerobot-lance doctor``: every source-side rule, without converting.

Runs, in order, the source metadata rules, the source file rules, the
per-episode tabular rules over every episode's rows, the per-episode video
rules over every episode's window in its source mp4 (packet count; first and
last frames decoded), and the non-blocking content rules. A rule whose input
is unusable (``info.json`` unreadable, a file missing) is reported by the rule
that found that; the rules after it are skipped or run on what is left.

The exit code is the number of failed ERROR rules, so ``doctor`` drops into CI.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from lerobot_lance.formats import DEFAULT_TOLERANCE_S
from lerobot_lance.lfs import is_lfs_pointer
from lerobot_lance.quality.content_rules import check_content
from lerobot_lance.quality.episode_rules import EPISODE_FRAME_RULES, EPISODE_VIDEO_RULES, check_episode_frames, check_episode_video
from lerobot_lance.quality.result import CheckOutcome, merge_outcomes
from lerobot_lance.quality.source_rules import SOURCE_FILE_RULES, SOURCE_META_RULES, check_source_files, check_source_meta, source_listing

#: Episodes validated per batch (one validation of the row-level rules each; by Great Expectations when one fails).
BATCH_EPISODES = 100

#: Source metadata rules after whose failure no file can be located safely.
_PARSE_RULES = ("files_inside_root", "supported_version", "required_info_keys", "features_well_formed", "path_templates_safe", "meta_files_readable")

#: Stage of each rule, for the report.
STAGES: dict[str, str] = {
    **{n: "source_meta" for n in SOURCE_META_RULES},
    **{n: "source_files" for n in SOURCE_FILE_RULES if n not in SOURCE_META_RULES},
    **{n: "episode_frames" for n in EPISODE_FRAME_RULES},
    **{n: "episode_videos" for n in EPISODE_VIDEO_RULES},
}


def run_doctor(
    source: str,
    revision: str | None = None,
    *,
    deep: bool = False,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    content: bool = True,
) -> list[CheckOutcome]:
    """Diagnose a dataset without converting it.

    Args:
        source: local directory or Hub dataset id (the Hub path downloads the
            data and video files into the huggingface_hub cache).
        revision: Hub branch, tag or commit.
        deep: also decode every frame of every episode window (slow).
        tolerance_s: timestamp tolerance, seconds.
        content: also run the non-blocking content rules (severity WARN).

    Returns:
        One :class:`CheckOutcome` per rule name (a rule checked at two stages,
        like ``task_indices_exist``, is merged into one), in stage order.

    Raises:
        SourceNotFoundError: the source does not exist or cannot be reached.
    """
    from lerobot_lance.frames import iter_episodes_rows
    from lerobot_lance.readers import read_dataset_meta
    from lerobot_lance.source import open_source

    src = open_source(source, revision)
    outcomes = check_source_meta(src.meta_root())
    later = [*SOURCE_FILE_RULES, *EPISODE_FRAME_RULES, *EPISODE_VIDEO_RULES]
    # Diagnose as far as the metadata allows: stop only when it cannot be
    # parsed or its templates could reach outside the source root.
    if any(not o.passed for o in outcomes if o.name in _PARSE_RULES):
        later = [n for n in later if n not in SOURCE_META_RULES]
        return merge_outcomes([*outcomes, *(CheckOutcome.skip(n, "source metadata failed") for n in later)])
    meta = read_dataset_meta(src.meta_root())
    # every episode's files, not only the first window of each mp4
    videos = list(dict.fromkeys(r.relative_path for e in meta.episodes for r in e.videos.values()))
    root = src.fetch([*meta.data_files(), *videos], missing_ok=True)
    listing, orphans = source_listing(src)
    files = check_source_files(root, meta, listing=listing, orphans=orphans)
    outcomes += files

    def usable(rel: str) -> bool:  # missing, empty and Git LFS pointer videos are reported by the file rules
        p = root / rel
        return p.is_file() and p.stat().st_size > 0 and not is_lfs_pointer(p)

    # per-episode tabular rules, a batch of episodes at a time
    frame_outcomes: list[CheckOutcome] = []
    content_outcomes: list[CheckOutcome] = []
    eps = meta.episodes
    for i in range(0, len(eps), BATCH_EPISODES):
        # an unreadable file is reported by the file rules; its episodes are skipped here
        rows = {
            e.episode_index: t
            for e, t in iter_episodes_rows(
                root, eps[i : i + BATCH_EPISODES], whole_files=meta.one_file_per_episode, on_error=lambda *_: None
            )
        }
        if not rows:
            continue
        frame_outcomes += check_episode_frames(meta, rows, tolerance_s)
        if content:
            content_outcomes += check_content(meta, rows)
    outcomes += frame_outcomes or [CheckOutcome.skip(n, "no readable data file") for n in EPISODE_FRAME_RULES]

    # per-episode video rules on the source windows
    video_outcomes: list[CheckOutcome] = []
    for e in meta.episodes:
        segs = {k: root / r.relative_path for k, r in e.videos.items() if usable(r.relative_path)}
        if not segs:
            continue
        windows = {k: (r.from_timestamp, r.to_timestamp) for k, r in e.videos.items() if not r.whole_file and k in segs}
        video_outcomes += check_episode_video(
            e, segs, meta.fps, windows=windows or None, deep=deep, files={k: r.relative_path for k, r in e.videos.items()}
        )
    if meta.video_keys:
        outcomes += video_outcomes or [CheckOutcome.skip(n, "no usable video file") for n in EPISODE_VIDEO_RULES]
    else:
        outcomes += [CheckOutcome.skip(n, "the dataset has no video features") for n in EPISODE_VIDEO_RULES]
    outcomes += content_outcomes
    return merge_outcomes(outcomes)


def exit_code(outcomes: Sequence[CheckOutcome]) -> int:
    """Number of failed ERROR rules (0 when the dataset is sound; WARN rules never count)."""
    return sum(1 for o in outcomes if not o.passed and o.severity == "ERROR")


def format_report(outcomes: Sequence[CheckOutcome], *, as_json: bool = False) -> str:
    """One line per rule: status, stage/rule, and the first offenders (text),
    then which ``convert`` option would get the sound part through, if any.

    ``as_json`` gives ``{"failed": n, "checks": [CheckOutcome.to_dict(), ...]}``
    with every offender of every rule; when a blocking rule failed it also has
    ``"error": "ChecksFailed"``, ``"message"`` (the failed rules),
    ``"offenders"`` (every failed rule's offenders, each with its ``check``)
    and ``"hint"`` (:func:`~lerobot_lance.refusal.doctor_hint`).
    """
    from lerobot_lance.refusal import doctor_hint

    n = exit_code(outcomes)
    total = next((o.metadata.get("episodes") for o in outcomes if o.name == "meta_files_readable" and "episodes" in o.metadata), None)
    hint = doctor_hint(outcomes, total) if n else None
    if as_json:
        report: dict[str, object] = {"failed": n, "checks": [{"stage": STAGES.get(o.name, "content"), **o.to_dict()} for o in outcomes]}
        if n:
            bad = [o for o in outcomes if not o.passed and o.severity == "ERROR"]
            report.update(
                error="ChecksFailed",
                message=f"{n} check(s) failed: {', '.join(o.name for o in bad)}",
                offenders=[{"check": o.name, **x.to_dict()} for o in bad for x in o.offenders],
                hint=hint,
            )
        return json.dumps(report, indent=2, default=str)
    lines = []
    for o in outcomes:
        status = "SKIP" if o.skipped else "ok  " if o.passed else ("FAIL" if o.severity == "ERROR" else "WARN")
        lines.append(f"{status} {STAGES.get(o.name, 'content')}/{o.name}: {o.message}")
    lines.append(f"{n} check(s) failed" if n else "all blocking checks passed")
    if hint:
        lines.append(f"hint: {hint}")
    return "\n".join(lines)

