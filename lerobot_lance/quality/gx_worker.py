"""Great Expectations for the episode rules: the suite, the validation, and a
helper process that imports GE while the conversion starts.

The row-level rules of :mod:`.episode_rules` reach GE as a check frame: one
boolean column ``ok_<rule>`` per rule and the row positions ``_row``;
:func:`validate_frame` runs one ``ExpectColumnValuesToBeInSet([True])`` per
rule column in an ephemeral context (nothing written to disk).

Importing ``great_expectations`` takes 2.6-4.1 s on a 2-core machine, for
well under a second of validation per conversion. There is no narrower
import: any ``great_expectations.<submodule>`` first runs the package's
``__init__``, which imports the data context, every expectation and metric
(and with them scipy.stats, altair, sqlalchemy) and registers them all.
So the cost is moved off the critical path instead:

* :func:`start` (called by ``lerobot-lance convert`` and
  :func:`lerobot_lance.convert` before they import Dagster) starts one
  ``python -m lerobot_lance.quality.gx_worker`` process that imports GE and
  builds the ephemeral context at once, on the other core, while this
  process imports Dagster and resolves the source;
* :func:`validate` sends the batch's check columns (numpy arrays, pickled
  over the helper's stdin) and reads the failed rows back from its stdout:
  the same suite, the same validation, in another process.

Without :func:`start` (Dagster UI runs, ``doctor``, tests) or once the helper
is gone, :func:`validate` runs GE in this process (imported at first use).
The helper is killed by :func:`stop`, at this process's exit at the latest
(it also ends by itself when its stdin closes).
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import sys
import threading
from functools import lru_cache
from typing import Any

import numpy as np

from lerobot_lance.errors import LeRobotLanceError

_lock = threading.Lock()
_helper: subprocess.Popen[bytes] | None = None


def start() -> None:
    """Start the helper process (once per process; returns at once)."""
    global _helper
    with _lock:
        if _helper is not None and _helper.poll() is None:
            return
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "GX_ANALYTICS_ENABLED": "false"}
        _helper = subprocess.Popen(
            [sys.executable, "-m", "lerobot_lance.quality.gx_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
        )


def stop() -> None:
    """End the helper process, if any (validation then runs in this process)."""
    global _helper
    with _lock:
        proc, _helper = _helper, None
    if proc is None:
        return
    # The helper holds no state (GE's ephemeral context writes nothing), so it
    # is killed rather than asked to finish: a command that fails early must
    # not wait for an import it no longer needs.
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()  # type: ignore[union-attr]
        except OSError:
            pass


atexit.register(stop)


def validate(columns: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Validate one batch's check columns with Great Expectations.

    Args:
        columns: ``ok_<rule>`` -> bool array and ``_row`` -> int64 row
            positions, all of one length (see
            :func:`lerobot_lance.quality.episode_rules.check_episode_frames`).

    Returns:
        rule -> the ``_row`` values of the rows that failed it (rules that
        passed are absent).

    Raises:
        LeRobotLanceError: GE could not evaluate an expectation.
    """
    with _lock:
        proc = _helper
        if proc is not None and proc.poll() is None:
            try:
                pickle.dump(columns, proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[arg-type]
                proc.stdin.flush()  # type: ignore[union-attr]
                status, value = pickle.load(proc.stdout)  # type: ignore[arg-type]
            except (EOFError, OSError, pickle.UnpicklingError):
                pass  # the helper died: validate here
            else:
                if status == "error":
                    raise LeRobotLanceError(value)
                return value
    stop()
    return _validate_here(columns)


def _validate_here(columns: dict[str, np.ndarray]) -> dict[str, list[int]]:
    import pandas as pd

    return validate_frame(pd.DataFrame(columns))


@lru_cache(maxsize=1)
def batch_definition() -> Any:
    """An ephemeral Great Expectations context (nothing written to disk, no
    progress bars) with one pandas dataframe asset; its whole-dataframe batch
    definition. Created once per process; GE's import costs ~3 s."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    try:
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    asset = ctx.data_sources.add_pandas("lerobot_lance").add_dataframe_asset("episode_frames")
    return asset.add_batch_definition_whole_dataframe("batch")


@lru_cache(maxsize=8)
def suite(rules: tuple[str, ...]) -> Any:
    """The suite ``episode_frames``: per rule, every value of column
    ``ok_<rule>`` is ``True`` (``ExpectColumnValuesToBeInSet``, the rule in
    the expectation's ``meta``)."""
    import great_expectations as gx

    s = gx.ExpectationSuite(name="episode_frames")
    for rule in rules:
        s.add_expectation(gx.expectations.ExpectColumnValuesToBeInSet(column=f"ok_{rule}", value_set=[True], meta={"rule": rule}))
    return s


def validate_frame(frame: Any) -> dict[str, list[int]]:
    """Validate a check frame in this process: one expectation per ``ok_<rule>``
    column; rule -> the ``_row`` values that failed.

    One validation of the whole frame with ``BOOLEAN_ONLY`` results (the
    verdicts, about half the cost of the rows); only when some expectation
    failed, a second one of those expectations with ``COMPLETE`` results and
    ``_row`` as the unexpected index column, for the failed rows.

    Raises:
        LeRobotLanceError: GE could not evaluate an expectation.
    """
    rules = tuple(c.removeprefix("ok_") for c in frame.columns if c.startswith("ok_"))
    batch = batch_definition().get_batch(batch_parameters={"dataframe": frame})
    verdicts = batch.validate(suite(rules), result_format="BOOLEAN_ONLY")
    failing = tuple(rule for rule, ok in _verdicts(verdicts.results) if not ok)
    if not failing:
        return {}
    res = batch.validate(suite(failing), result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["_row"]})
    return {rule: [int(d["_row"]) for d in r.result.get("unexpected_index_list") or []]
            for (rule, ok), r in zip(_verdicts(res.results), res.results) if not ok}


def _verdicts(results: Any) -> list[tuple[str, bool]]:
    """(rule, success) per expectation result, in order.

    Raises:
        LeRobotLanceError: GE could not evaluate an expectation.
    """
    out = []
    for r in results:
        rule = (r.expectation_config.meta or {}).get("rule")
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise LeRobotLanceError(f"Great Expectations could not evaluate {rule}: {r.exception_info.get('exception_message')}")
        out.append((rule, bool(r.success)))
    return out


def _serve() -> None:
    """The helper's loop: warm GE up, then validate what arrives until stdin closes."""
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything GE prints goes to stderr, never into the replies
    batch_definition()
    while True:
        try:
            columns = pickle.load(requests)
        except (EOFError, OSError):
            return
        try:
            reply: tuple[str, Any] = ("ok", _validate_here(columns))
        except LeRobotLanceError as e:
            reply = ("error", str(e))
        except Exception as e:  # noqa: BLE001 - reported to the caller, which raises it
            reply = ("error", f"Great Expectations validation failed: {type(e).__name__}: {e}")
        pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
        replies.flush()


if __name__ == "__main__":
    _serve()
