"""``convert`` on malformed metadata (issue 8, items 14, 15, 17).

* Every variant of ``tests/faults_malformed.py`` is refused at ``source_meta``
  by its named check, with the located message, within seconds (no retry:
  no "max_retries"), and nothing is written to the output; over a published
  output (the FIFO and stats.json cases used to fail *after* the commit) the
  published tables stay as they were.
* The retry policy: a permanent error is final; only network-like errors are retried.
* ``--episodes 0-200000000`` is refused with the located message, exit code 2,
  no traceback, within seconds.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lerobot_lance.cli import main as cli
from tests.faults import FAULTS, SHARED, make_fault

MALFORMED = [f for f in FAULTS if f.kind in Path(__file__).with_name("faults_malformed.py").read_text()]
#: Generous for a machine shared by several test runs (a warm refusal takes 1-4 s); a retried
#: step alone would add 15 s (RETRY's delays of 5 and 10 s).
QUICK_S = 12.0


@pytest.fixture(scope="module", autouse=True)
def _warm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Import Dagster and build one code location before anything is timed (cold imports take seconds)."""
    cli(["convert", str(SHARED / "g1_v21"), "--output", str(tmp_path_factory.mktemp("warm") / "o"), "--quiet", "--episodes", "9"])


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    root = tmp_path_factory.mktemp("malformed_convert")
    done: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in done:
            make_fault(kind, root / kind)
            done[kind] = root / kind
        return done[kind]

    return get


def _convert(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    rc = cli(["convert", *argv, "--quiet"])
    out, err = capsys.readouterr()
    return rc, out + err, time.perf_counter() - t0


@pytest.mark.parametrize("kind", [f.kind for f in MALFORMED])
def test_convert_refuses_malformed_meta_at_source_meta(
    kind: str, variant: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fault = next(f for f in MALFORMED if f.kind == kind)
    out = tmp_path / "out"
    rc, text, seconds = _convert([str(variant(kind)), "--output", str(out)], capsys)
    assert rc == 2, text
    assert f"source_meta / {fault.check}:" in text and fault.file in text, text
    if fault.episode_index is not None:
        assert f"(episode {fault.episode_index})" in text, text
    assert "Traceback" not in text and "max_retries" not in text, text
    assert seconds < QUICK_S, f"{seconds:.1f} s: {text}"
    assert not out.exists() or not any(out.glob("*.lance")) and not (out / "meta").exists()


@pytest.mark.parametrize("kind", ["meta_fifo", "stats_json_list"])
def test_convert_over_published_output_leaves_it_unchanged(
    kind: str, variant: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import lance

    from tests.test_faults import _published

    fault = next(f for f in MALFORMED if f.kind == kind)
    clean = tmp_path_factory.getbasetemp() / f"clean_{fault.base}"
    if not clean.exists():
        assert cli(["convert", str(SHARED / fault.base), "--output", str(clean), "--quiet", "--episodes", "0-1"]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    shutil.copytree(clean, out)
    before = _published(out)
    meta_before = sorted(p.name for p in (out / "meta").iterdir())
    rc, text, _ = _convert([str(variant(kind)), "--output", str(out), "--overwrite"], capsys)
    assert rc == 2 and f"source_meta / {fault.check}:" in text and fault.file in text, text
    assert _published(out) == before
    assert sorted(p.name for p in (out / "meta").iterdir()) == meta_before
    assert lance.dataset(str(out / "frames.lance")).count_rows() == 393 + 343


def test_permanent_errors_are_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An unexpected exception (here ``KeyError: 'task_index'``, what a malformed
    tasks row raised before) fails the step once, not after two retries (~20 s)."""
    import assets.dataset_assets as dataset_assets

    def broken(root: Any) -> Any:
        raise KeyError("task_index")

    monkeypatch.setattr(dataset_assets, "check_source_meta", broken)
    rc, text, seconds = _convert([str(SHARED / "g1_v21"), "--output", str(tmp_path / "out")], capsys)
    assert rc == 2 and "KeyError: 'task_index'" in text, text
    assert "max_retries" not in text and seconds < QUICK_S, (seconds, text)


def test_retry_policy_classification() -> None:
    from dagster import Failure

    from assets.dataset_assets import _final_on_bad_data
    from lerobot_lance.errors import MetadataErrors, SourceDataError, SourceNotFoundError

    def raising(exc: BaseException) -> Callable[[], None]:
        @_final_on_bad_data
        def step() -> None:
            raise exc

        return step

    for final in (KeyError("task_index"), TypeError("x"), ValueError("empty window"), RecursionError(),
                  SourceDataError("meta/tasks.jsonl", "bad"), MetadataErrors([SourceDataError("a", "b")]), PermissionError("p")):
        with pytest.raises(Failure) as err:
            raising(final)()
        assert err.value.allow_retries is False, final
    for transient in (SourceNotFoundError("hub down"), ConnectionResetError("reset"), TimeoutError("slow"), OSError("s3 503")):
        with pytest.raises(type(transient)):
            raising(transient)()


def test_episode_range_beyond_the_dataset_is_refused_without_expanding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, text, seconds = _convert([str(SHARED / "g1_v21"), "--output", str(tmp_path / "out"), "--episodes", "0-200000000"], capsys)
    assert rc == 2, text
    assert "meta/: requested episodes not in the dataset; expected 6 episodes, episode_index 0..5" in text, text
    assert "found [6, 7, 8, 9, 10, 11, 12, 13, 14, 15] ... (199999995 in all)" in text, text
    assert "Traceback" not in text and "MemoryError" not in text and "max_retries" not in text
    assert seconds < QUICK_S
    assert not any((tmp_path / "out").glob("*.lance"))


def test_episode_ranges_resolve() -> None:
    from lerobot_lance.episode_selection import EpisodeRanges, select_episodes
    from lerobot_lance.errors import SourceDataError

    r = EpisodeRanges.parse("3, 0-1,2,9-12")
    assert r.ranges == ((0, 3), (9, 12)) and str(r) == "0-3,9-12" and r.count() == 8
    assert r.within(range(11)) == [0, 1, 2, 3, 9, 10]
    assert select_episodes(None, [0, 1]) is None
    assert select_episodes([2, 0], range(6)) == [0, 2]
    t0 = time.perf_counter()
    with pytest.raises(SourceDataError) as err:
        EpisodeRanges.parse("0-200000000").resolve(range(6))
    assert time.perf_counter() - t0 < 1.0
    assert err.value.found == "[6, 7, 8, 9, 10, 11, 12, 13, 14, 15] ... (199999995 in all)"
    for bad in ("5-3", "x", "-1", ""):
        with pytest.raises(ValueError):
            EpisodeRanges.parse(bad)
