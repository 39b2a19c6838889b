"""Data-quality rules, shared by the Dagster asset checks, ``lerobot-lance doctor`` and the API.

Each rule returns a :class:`CheckOutcome` named like the Dagster asset check
it backs; offenders name the file, the episode and what was expected.

* :mod:`.source_rules`: ``meta/`` and the source files (blocking).
* :mod:`.episode_rules`: each episode's rows (Great Expectations) and video segment (blocking).
* :mod:`.content_rules`: frozen actuators, clipped values, jumps, ... (WARN).
* :mod:`.output_rules`: the published tables (blocking).
* :mod:`.doctor`: every source-side rule without converting.
"""

from lerobot_lance.quality.result import CheckOutcome, Offender, merge_outcomes
from lerobot_lance.quality.source_rules import SOURCE_FILE_RULES, SOURCE_META_RULES, check_source_files, check_source_meta
from lerobot_lance.quality.episode_rules import EPISODE_FRAME_RULES, EPISODE_VIDEO_RULES, check_episode_frames, check_episode_video
from lerobot_lance.quality.output_rules import OUTPUT_RULES, check_output
from lerobot_lance.quality.content_rules import CONTENT_RULES, ContentThresholds, check_content
from lerobot_lance.quality.doctor import exit_code, format_report, run_doctor

__all__ = [
    "CONTENT_RULES",
    "EPISODE_FRAME_RULES",
    "EPISODE_VIDEO_RULES",
    "OUTPUT_RULES",
    "SOURCE_FILE_RULES",
    "SOURCE_META_RULES",
    "CheckOutcome",
    "ContentThresholds",
    "Offender",
    "check_content",
    "check_episode_frames",
    "check_episode_video",
    "check_output",
    "check_source_files",
    "check_source_meta",
    "exit_code",
    "format_report",
    "merge_outcomes",
    "run_doctor",
]
