"""Dataset tools on outputs of lerobot-lance (both layouts), Dagster-free.

LeRobot's curation verbs (lerobot 0.4.4 ``lerobot/datasets/dataset_tools.py``:
``delete_episodes``, ``split_dataset``, ``merge_datasets``, ``add_features``,
``remove_feature``) on the Lance tables, plus :func:`push_to_hub`. Each result
is a complete output (tables, ``meta/`` that agrees with them, one shared tag,
every blocking output check of its layout passed), written as a new output
root or, where Lance can do it without rewriting what does not change, as a
new tagged version of the same one (``in_place=True``).
"""

from lerobot_lance.tools._output import REQUIRED_FEATURES, ToolError, ToolResult, read_output
from lerobot_lance.tools.delete import delete_episodes
from lerobot_lance.tools.features import add_features, remove_features
from lerobot_lance.tools.merge import merge_datasets
from lerobot_lance.tools.push import push_to_hub
from lerobot_lance.tools.split import split_dataset

__all__ = [
    "REQUIRED_FEATURES", "ToolError", "ToolResult", "add_features", "delete_episodes", "merge_datasets",
    "push_to_hub", "read_output", "remove_features", "split_dataset",
]
