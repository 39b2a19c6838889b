"""One line per data-quality check: what it checks and what fails it.

The rule sentences live next to their rules (``_DESCRIPTIONS`` of
:mod:`.source_rules`, :mod:`.episode_rules`, :mod:`.output_rules`;
``DESCRIPTIONS`` of :mod:`.content_rules`), the same text every
:class:`~lerobot_lance.quality.result.CheckOutcome` carries. This module
gathers them under the check names the Dagster asset checks use, adds the
checks that are not a rule of one of those modules (``episodes_staged``,
``row_count``, ``stats_match_source``), and words each as the one-line
description an asset check shows in the UI (:func:`check_description`).

No Dagster import: ``assets/`` passes the text as ``AssetCheckSpec(description=...)``.
"""

from __future__ import annotations

from lerobot_lance.layouts import lerobot_checks
from lerobot_lance.quality import content_rules, encoding_rules, episode_rules, output_rules, source_rules

#: Checks that are not one rule of a rules module: the per-episode stages'
#: batch outcome, the staged tables' row counts, and the statistics comparison
#: (:func:`lerobot_lance.conversion_stats.stage_episode_stats`, ``aggregate_dataset_stats``).
STAGE_CHECK_DESCRIPTIONS: dict[str, str] = {
    "episodes_staged": "every episode partition of the run was read, checked and staged by this stage "
    "(an episode whose file is unreadable or that breaks a rule fails it, with the file, the episode and the reason)",
    "row_count": "the staged table holds exactly the rows its published episodes imply "
    "(frames: the sum of their lengths; episodes: one per episode; videos: one per source mp4)",
    "stats_match_source": "statistics recomputed from the data (min, max, mean, std, count per feature) agree with "
    "the ones the source declares (meta/stats.json, episodes_stats.jsonl or the v3.0 per-episode stats columns)",
}

#: Check name -> the sentence its rule asserts (lower-case start, no final period).
RULE_DESCRIPTIONS: dict[str, str] = {
    **source_rules._DESCRIPTIONS,
    **episode_rules._DESCRIPTIONS,
    **lerobot_checks._DESCRIPTIONS,  # the lerobot layout's output checks
    **output_rules._DESCRIPTIONS,
    **content_rules.DESCRIPTIONS,
    **encoding_rules._DESCRIPTIONS,  # camera encodings (lerobot_lance.encodings)
    **STAGE_CHECK_DESCRIPTIONS,
}


#: Column names that may start a rule sentence: never capitalized.
_COLUMN_WORDS = frozenset({"index", "timestamp"})


def _sentence(text: str) -> str:
    """First letter upper-cased unless the text starts with a name (``info.json``,
    ``frame_index``, ``index``, ``(episode_index, ...)``); one final period."""
    text = text.strip().rstrip(".")
    first = text.split(" ", 1)[0]
    if first.isalpha() and first.islower() and first not in _COLUMN_WORDS:
        text = text[0].upper() + text[1:]
    return text + "."


def check_description(name: str, *, blocking: bool) -> str:
    """The one-line description of check ``name``: the rule, then what a
    violation does.

    Args:
        name: a key of :data:`RULE_DESCRIPTIONS` (the asset check's name).
        blocking: whether a failure stops the assets downstream (ERROR rules)
            or only warns (WARN rules such as the content rules).

    Raises:
        KeyError: ``name`` has no description (a new rule without one).
    """
    if name not in RULE_DESCRIPTIONS:
        raise KeyError(f"check {name!r} has no description: add one next to its rule (RULE_DESCRIPTIONS gathers them)")
    rule = _sentence(RULE_DESCRIPTIONS[name])
    if blocking:
        return f"{rule} Any violation fails the check and stops what depends on it."
    return f"{rule} A violation is a warning; nothing is stopped."
