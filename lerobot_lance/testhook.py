"""Named pause points of the publish, for the kill-safety tests (off by default).

With ``LEROBOT_LANCE_TEST_PAUSE_AT=<point>`` set, the process that reaches the
named point writes the point's name to the file ``LEROBOT_LANCE_TEST_PAUSE_FILE``
(default ``<cwd>/.lerobot-lance-paused``) and sleeps
``LEROBOT_LANCE_TEST_PAUSE_S`` seconds (default 600), so a test can SIGKILL it
exactly there. Without the variable :func:`pause_point` returns at once.

Points (see :func:`lerobot_lance.lance_io.publish`): ``commit:<table>``,
``index:<table>:<column>``, ``committed``, ``tag:<table>:<tag>``,
``drop:<table>``, ``meta:<relative path>``, ``meta:conversion.json``.
A trailing ``*`` matches every point with that prefix (the first one reached).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV_POINT = "LEROBOT_LANCE_TEST_PAUSE_AT"
ENV_FILE = "LEROBOT_LANCE_TEST_PAUSE_FILE"
ENV_SECONDS = "LEROBOT_LANCE_TEST_PAUSE_S"


def pause_point(name: str) -> None:
    """Pause here if the test hook names this point (see module docstring)."""
    want = os.environ.get(ENV_POINT)
    if not want:
        return
    if not (name == want or (want.endswith("*") and name.startswith(want[:-1]))):
        return
    marker = Path(os.environ.get(ENV_FILE) or ".lerobot-lance-paused")
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(name, encoding="utf-8")
    os.replace(tmp, marker)
    time.sleep(float(os.environ.get(ENV_SECONDS, "600")))
