"""The CLI's progress bars end full: every stage the runner announces (with its
total) is advanced exactly that many times by the assets (issue: ``source_meta
0/1`` was shown after a successful run)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tests.conftest import sample


def test_every_stage_advances_to_its_total(tmp_path: Path) -> None:
    from pipelines.runner import run_conversion

    totals: dict[str, int] = {}
    done: Counter[str] = Counter()
    summary = run_conversion(
        str(sample("g1_multicam_v30")), str(tmp_path / "out"),
        on_stage=lambda stage, n: totals.__setitem__(stage, n), progress=lambda stage, n: done.update({stage: n}),
    )
    assert summary.rows["frames"] == 736
    assert "source_meta" in totals and totals["episode_frames"] == 2
    assert dict(done) == totals
