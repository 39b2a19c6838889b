"""lerobot-lance: convert LeRobot datasets (v2.0, v2.1, v3.0) into Lance tables.

The core package is Dagster-free: format readers (:mod:`.readers`), source
resolution (:mod:`.source`), per-episode staging and Lance writing
(:mod:`.convert`, :mod:`.lance_io`), video (:mod:`.video`), statistics
(:mod:`.stats`) and quality rules (:mod:`.quality`). The Dagster code location
lives in the top-level ``pipelines``/``assets``/``resources`` packages.

``convert``, ``doctor`` and ``scan`` (:mod:`.api`) are imported on first use
(PEP 562), so ``import lerobot_lance`` and ``lerobot-lance --help`` load no
pyarrow, PyAV or Dagster.
"""

import os
from typing import TYPE_CHECKING, Any

# Lance logs a WARN for every table it creates; keep the CLI readable unless asked.
os.environ.setdefault("LANCE_LOG", "error")

if TYPE_CHECKING:
    from lerobot_lance.api import convert, doctor, scan
    from lerobot_lance.tools import add_features, delete_episodes, merge_datasets, push_to_hub, remove_features, split_dataset

#: The dataset tools (:mod:`.tools`), also loaded on first use.
_TOOLS = ["add_features", "delete_episodes", "merge_datasets", "push_to_hub", "remove_features", "split_dataset"]
__all__ = ["convert", "doctor", "scan", *_TOOLS]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lerobot_lance import api

        return getattr(api, name)
    raise AttributeError(f"module 'lerobot_lance' has no attribute {name!r}")
