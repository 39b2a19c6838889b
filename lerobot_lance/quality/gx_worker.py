"""Great Expectations for the episode rules: the suite and the validation.

The row-level rules of :mod:`.episode_rules` reach GE as a check frame: one
boolean column ``ok_<rule>`` per rule and the row positions ``_row``, which
:func:`lerobot_lance.quality.episode_rules.check_episode_frames` computes
with numpy and pyarrow. :func:`suite` states the expectations: one
``ExpectColumnValuesToBeInSet([True])`` per rule column.

GE validates a batch where some rule fails; a batch where every rule column
is all True passes without importing GE. :func:`validate` looks at the rule
columns first: when each is a boolean array holding only ``True`` (no null
can occur in a numpy bool array), every expectation of :func:`suite` holds by
definition, so the verdict is success with no failed rows and GE is not
imported. Otherwise :func:`validate_frame` runs the suite in an ephemeral GE
context (nothing written to disk) in this process, importing GE at the
first such batch, and GE's result gives the failing rows.

Why: importing ``great_expectations`` costs about 6 s of CPU on a 2-core
machine (its package ``__init__`` imports the data context, every
expectation and metric, and with them scipy.stats, altair and sqlalchemy;
there is no narrower import), half the CPU of a conversion of the bundled
sample, for a validation whose verdict on passing data is already known.
Failing data pays the import once per process.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

import numpy as np

from lerobot_lance.errors import LeRobotLanceError

#: GE's context is built once and shared: one validation at a time.
_lock = threading.Lock()


def validate(columns: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Validate one batch's check columns against :func:`suite`.

    Args:
        columns: ``ok_<rule>`` -> bool array and ``_row`` -> int64 row
            positions, all of one length (see
            :func:`lerobot_lance.quality.episode_rules.check_episode_frames`).

    Returns:
        rule -> the ``_row`` values of the rows that failed it (rules that
        passed are absent). ``{}`` without importing GE when every ``ok_``
        column is a bool array of ``True`` only; otherwise GE's result
        (:func:`validate_frame`).

    Raises:
        LeRobotLanceError: GE could not evaluate an expectation.
    """
    if all(_all_true(v) for k, v in columns.items() if k.startswith("ok_")):
        return {}
    import pandas as pd

    with _lock:
        return validate_frame(pd.DataFrame(columns))


def _all_true(values: Any) -> bool:
    """Whether ``values`` is a numpy bool array holding only True (any other
    dtype, e.g. an object array that could hold None, is left to GE)."""
    return isinstance(values, np.ndarray) and values.dtype == np.bool_ and bool(values.all())


@lru_cache(maxsize=1)
def batch_definition() -> Any:
    """An ephemeral Great Expectations context (nothing written to disk, no
    progress bars) with one pandas dataframe asset; its whole-dataframe batch
    definition. Created once per process, at the first batch with a failing
    rule; GE's import costs about 6 s of CPU."""
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
    """Validate a check frame with GE in this process: one expectation per
    ``ok_<rule>`` column; rule -> the ``_row`` values that failed.

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
