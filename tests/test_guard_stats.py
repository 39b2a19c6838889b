"""``stats_match_source`` warns when the declared statistics are really off, not about float32 rounding.

LeRobot 0.4.4 computes ``std`` in float32 as ``sqrt(E[x^2] - E[x]^2)``; on the
G1 samples it wrote (``g1_image_v30``, ``g1_multicam_v30``) that is up to 2 %
(9e-5) off the float64 value. ``compare_stats`` allows that rounding
(``STD_ROUNDING_FACTOR``) and nothing more:

* every clean sample: no stats_match_source warning, per episode and for the
  dataset (real conversions of the two lerobot-0.4.4 samples, the conversion's
  own comparison path for the others);
* a copy whose declared stats are changed by a meaningful amount (std scaled
  by 1.01, a mean shifted by 0.01 std, ``stats.json`` std scaled by 1.01)
  warns, naming the episode, feature and stat.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lerobot_lance import stats as st
from lerobot_lance.frames import iter_episodes_rows
from lerobot_lance.readers import read_dataset_meta
from tests.conftest import sample
from tests.faults import copy_sample, write_json, write_parquet

EPISODES_PARQUET = "meta/episodes/chunk-000/file-000.parquet"


def _stats_warnings(summary: object) -> list[str]:
    return [w for w in summary.warnings if "stats_match_source" in w]  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["g1_v20", "g1_v21", "g1_v30", "g1_v30_h264_gop30", "g1_image_v30", "g1_multicam_v30"])
def test_clean_sample_stats_agree(name: str) -> None:
    """What stage_episode_stats and aggregate_dataset_stats compare, on the source rows."""
    root = sample(name)
    meta = read_dataset_meta(root)
    per_episode = []
    for e, rows in iter_episodes_rows(root, meta.episodes, whole_files=meta.one_file_per_episode):
        stats = st.compute_episode_stats(rows, meta)  # image cameras: from the PNGs in the rows
        per_episode.append(stats)
        cmp = st.compare_stats(stats, e.declared_stats, episode_index=e.episode_index)
        assert cmp.ok, [str(m) for m in cmp.mismatches]
    cmp = st.compare_stats(st.aggregate_stats(per_episode), meta.declared_stats)
    assert cmp.ok, [str(m) for m in cmp.mismatches]
    assert cmp.compared >= 5 if meta.declared_stats else cmp.compared == 0


@pytest.mark.parametrize("name", ["g1_image_v30", "g1_multicam_v30"])
def test_conversion_of_lerobot_044_samples_has_no_stats_warning(name: str, tmp_path: Path) -> None:
    from lerobot_lance import convert

    summary = convert(str(sample(name)), str(tmp_path / "out"))
    assert summary.rows["frames"] == 736
    assert _stats_warnings(summary) == []


def _tamper(root: Path) -> None:
    """Episode 0: action std x 1.01; episode 1: observation.state mean + 0.01 std (every dim);
    meta/stats.json: action std x 1.01."""
    path = root / EPISODES_PARQUET
    t = pq.read_table(path)
    rows = t.to_pylist()
    rows[0]["stats/action/std"] = [x * 1.01 for x in rows[0]["stats/action/std"]]
    rows[1]["stats/observation.state/mean"] = [
        m + 0.01 * s for m, s in zip(rows[1]["stats/observation.state/mean"], rows[1]["stats/observation.state/std"], strict=True)
    ]
    write_parquet(path, pa.Table.from_pylist(rows, schema=t.schema))
    import json

    stats = json.loads((root / "meta" / "stats.json").read_text())
    stats["action"]["std"] = [x * 1.01 for x in stats["action"]["std"]]
    write_json(root / "meta" / "stats.json", stats)


def test_meaningful_differences_still_warn(tmp_path: Path) -> None:
    from lerobot_lance import convert

    src = copy_sample("g1_image_v30", tmp_path / "src")
    _tamper(src)
    summary = convert(str(src), str(tmp_path / "out"))
    warnings = _stats_warnings(summary)
    text = "\n".join(warnings)
    assert len(warnings) == 2, text  # episode_stats (two episodes) and dataset_stats
    assert "episode 0 (episode 0): action/std differs" in text
    assert "episode 1 (episode 1): observation.state/mean differs" in text
    assert "meta/stats.json: action/std differs" in text
    assert "observation.state/std" not in text  # untouched: float32 rounding only
    assert "episode 0 (episode 0): observation.state" not in text


def test_rounding_bound_itself() -> None:
    """float32 cannot resolve a std of 1e-4 next to a mean of 10 (E[x^2] = 100):
    the bound lets it pass; a 1 % change of a std of 0.5 next to the same mean warns."""
    n = np.array([400])
    computed = {"x": {"mean": np.array([10.0, 10.0]), "std": np.array([1e-4, 0.5]), "count": n}}
    rounding = {"x": {"mean": [10.0, 10.0], "std": [3e-4, 0.5]}}  # var differs by 8e-8, < 4*20*eps*100
    assert st.compare_stats(computed, rounding).ok
    assert not st.compare_stats(computed, rounding, accumulation=None).ok
    off = {"x": {"mean": [10.0, 10.0], "std": [1e-4, 0.505]}}
    (m,) = st.compare_stats(computed, off).mismatches
    assert (m.feature, m.stat) == ("x", "std")
    assert st.STD_ROUNDING_FACTOR * np.sqrt(400) * np.finfo(np.float32).eps * (100 + 0.505**2) < 0.505**2 - 0.25
