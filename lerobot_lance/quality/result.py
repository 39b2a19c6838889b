"""The outcome of one quality rule, shared by the Dagster asset checks, the
``doctor`` command and the Python API."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["ERROR", "WARN"]

#: How many offenders a text view (the one-line ``message``, Dagster's
#: ``first_offenders`` metadata) shows; a :class:`CheckOutcome` keeps them all,
#: so ``--json`` and :meth:`CheckOutcome.to_dict` give every one.
MAX_OFFENDERS = 10


@dataclass
class Offender:
    """One located violation.

    Attributes:
        file: the file concerned, relative to the source root (or a table name).
        episode_index: the episode concerned, if any.
        detail: what is wrong, in a few words.
        expected: what the metadata or the rule implies.
        found: what the data holds.
    """

    file: str | None = None
    episode_index: int | None = None
    detail: str = ""
    expected: Any = None
    found: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The offender as JSON-safe values (``expected`` / ``found`` that are
        not JSON types, e.g. numpy scalars or tuples, become their ``str``), with
        ``message``: the one-line text of :meth:`__str__`."""
        d = json.loads(json.dumps(asdict(self), default=str))
        d["message"] = str(self)
        return d

    def __str__(self) -> str:
        where = self.file or ""
        if self.episode_index is not None:
            where = f"{where} (episode {self.episode_index})" if where else f"episode {self.episode_index}"
        text = f"{where}: {self.detail}" if where else self.detail
        if self.expected is not None or self.found is not None:
            text += f" (expected {self.expected}, found {self.found})"
        return text


@dataclass
class CheckOutcome:
    """Result of one named rule.

    Attributes:
        name: the rule's name, also the Dagster asset check name.
        passed: False when at least one offender was found.
        severity: ``"ERROR"`` for blocking gates, ``"WARN"`` for content checks.
        description: what the rule asserts (one sentence).
        offenders: every violation found (text views abbreviate them).
        n_offenders: how many violations in all (``len(offenders)`` unless an
            outcome was built with a count only).
        metadata: counts and figures a person can act on (JSON-serializable).
        note: optional remark (e.g. "source declares no stats").
        skipped: the rule did not run (an earlier rule it depends on failed,
            or what it needs is unavailable); ``passed`` is then True and
            ``note`` says why.
    """

    name: str
    passed: bool
    severity: Severity = "ERROR"
    description: str = ""
    offenders: list[Offender] = field(default_factory=list)
    n_offenders: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    note: str | None = None
    skipped: bool = False

    @classmethod
    def skip(cls, name: str, reason: str, *, description: str = "", severity: Severity = "ERROR") -> CheckOutcome:
        """An outcome for a rule that did not run, saying why."""
        return cls(name=name, passed=True, severity=severity, description=description, note=f"not run: {reason}", skipped=True)

    @classmethod
    def from_offenders(
        cls,
        name: str,
        offenders: list[Offender],
        *,
        description: str = "",
        severity: Severity = "ERROR",
        metadata: dict[str, Any] | None = None,
        note: str | None = None,
    ) -> CheckOutcome:
        """Build an outcome that passes iff ``offenders`` is empty."""
        return cls(
            name=name,
            passed=not offenders,
            severity=severity,
            description=description,
            offenders=list(offenders),
            n_offenders=len(offenders),
            metadata=dict(metadata or {}),
            note=note,
        )

    @property
    def message(self) -> str:
        """One line: status, count, the note (a failed rule's summary, when it
        has one) and the first three offenders."""
        if self.skipped:
            return self.note or "not run"
        if self.passed:
            return f"ok{' — ' + self.note if self.note else ''}"
        first = "; ".join(str(o) for o in self.offenders[:3])
        more = f" (+{self.n_offenders - 3} more)" if self.n_offenders > 3 else ""
        summary = f" {self.note}." if self.note else ""
        return f"{self.n_offenders} problem(s):{summary} {first}{more}"

    @property
    def first_offenders(self) -> list[Offender]:
        """The first :data:`MAX_OFFENDERS` offenders, for views that abbreviate."""
        return self.offenders[:MAX_OFFENDERS]

    @property
    def episodes(self) -> list[int]:
        """Episode indices named by the kept offenders, sorted, without repeats."""
        return sorted({o.episode_index for o in self.offenders if o.episode_index is not None})

    def to_dict(self) -> dict[str, Any]:
        """Every field (all offenders, as :meth:`Offender.to_dict`) and ``message``."""
        d = asdict(self)
        d["offenders"] = [o.to_dict() for o in self.offenders]
        d["message"] = self.message
        return d


def merge_outcomes(outcomes: Iterable[CheckOutcome]) -> list[CheckOutcome]:
    """One outcome per rule name, in first-seen order, from outcomes of the same
    rules over several episodes or batches: passed only if all passed, offender
    counts summed, every offender kept. An outcome
    that ran replaces a skipped one of the same name."""
    merged: dict[str, CheckOutcome] = {}
    for o in outcomes:
        m = merged.get(o.name)
        if m is None:
            merged[o.name] = CheckOutcome(
                o.name, o.passed, o.severity, o.description, list(o.offenders), o.n_offenders, dict(o.metadata), o.note, o.skipped
            )
            continue
        if m.skipped and not o.skipped:
            m.skipped, m.note, m.metadata = False, o.note, dict(o.metadata)
        m.passed = m.passed and o.passed
        m.n_offenders += o.n_offenders
        m.offenders = m.offenders + o.offenders
    return list(merged.values())
