"""lerobot-lance: convert LeRobot datasets (v2.0, v2.1, v3.0) into Lance tables.

The core package is Dagster-free: format readers (:mod:`.readers`), source
resolution (:mod:`.source`), per-episode staging and Lance writing
(:mod:`.convert`, :mod:`.lance_io`), video (:mod:`.video`), statistics
(:mod:`.stats`) and quality rules (:mod:`.quality`). The Dagster code location
lives in the top-level ``pipelines``/``assets``/``resources`` packages.
"""

import os

# Lance logs a WARN for every table it creates; keep the CLI readable unless asked.
os.environ.setdefault("LANCE_LOG", "error")

from lerobot_lance.api import convert, doctor, scan  # noqa: E402

__all__ = ["convert", "doctor", "scan"]
__version__ = "0.1.0"
