"""Error types. Each message names the file, the episode and what was expected."""

from __future__ import annotations

from collections.abc import Sequence


class LeRobotLanceError(Exception):
    """Base class of every error this package raises on purpose."""


class UnsupportedFormatError(LeRobotLanceError):
    """``meta/info.json`` is missing, empty, invalid, or of an unsupported version.

    Attributes:
        path: the ``info.json`` path (or URI) that was read.
        found: the ``codebase_version`` found, or a short description of what was
            found instead (``"missing file"``, ``"empty file"``, ``"invalid JSON"``).
        supported: the versions this converter reads.
    """

    def __init__(self, path: str, found: str, supported: Sequence[str], detail: str = "") -> None:
        self.path = str(path)
        self.found = found
        self.supported = tuple(supported)
        msg = (
            f"{self.path}: unsupported LeRobot dataset format: found {found}, "
            f"supported codebase_version: {', '.join(self.supported)}"
        )
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class SourceDataError(LeRobotLanceError):
    """A source file does not hold what its metadata promises.

    Attributes:
        path: the offending file, relative to the source root when possible.
        detail: what is wrong, without the location and the expected/found figures.
        episode_index: the episode concerned, or ``None`` for dataset-level faults.
        expected: what the metadata implies.
        found: what the file holds.
    """

    def __init__(
        self,
        path: str,
        message: str,
        *,
        episode_index: int | None = None,
        expected: object = None,
        found: object = None,
    ) -> None:
        self.path = str(path)
        self.detail = message
        self.episode_index = episode_index
        self.expected = expected
        self.found = found
        where = self.path if episode_index is None else f"{self.path} (episode {episode_index})"
        msg = f"{where}: {message}"
        if expected is not None or found is not None:
            msg += f"; expected {expected}, found {found}"
        super().__init__(msg)


class SourceNotFoundError(LeRobotLanceError):
    """The source directory, Hub repository, revision or a file in it does not exist."""


class OutputExistsError(LeRobotLanceError):
    """The output root already holds tables and ``overwrite`` was not asked for."""


class MetadataErrors(SourceDataError):
    """Several located faults found in the ``meta/`` files, collected and raised once.

    Raised by :func:`lerobot_lance.readers.read_dataset_meta`, which validates
    every row of every metadata file before raising, so one run names every
    malformed row instead of the first. The attributes of
    :class:`SourceDataError` are those of the first fault; the message lists
    the first three.

    Attributes:
        errors: every fault, each a located :class:`SourceDataError`, in file order.
    """

    def __init__(self, errors: Sequence[SourceDataError]) -> None:
        if not errors:
            raise ValueError("MetadataErrors needs at least one error")
        self.errors = list(errors)
        first = self.errors[0]
        super().__init__(first.path, first.detail, episode_index=first.episode_index, expected=first.expected, found=first.found)
        if len(self.errors) > 1:
            more = "; ".join(str(e) for e in self.errors[1:3])
            rest = f" (+{len(self.errors) - 3} more)" if len(self.errors) > 3 else ""
            self.args = (f"{first}; {more}{rest}",)

    def __str__(self) -> str:
        return str(self.args[0])
