"""``--layout lerobot``: the output LeRobot's own Lance reader serves.

Two parts:

- checks in this venv: the layout's tables and columns (imported from
  :mod:`lerobot_lance.layouts.lerobot`), ``meta/`` in v3.0 form for a v2.x
  source, the renumbering of a subset, the blocking output checks (and that
  they catch a byte index that does not match the blob);
- ``lerobot_reader``: each output opened with ``lerobot_lancedb.LanceDBDataset``
  and compared item by item with LeRobot's ``LeRobotDataset`` over the v3.0
  source, in the peer venv (Python 3.12, lerobot 0.6.1, lerobot-lancedb
  0.3.1), run as a subprocess: ``$LEROBOT_LANCE_PEER_PYTHON`` or
  ``/work/peer-venv/bin/python``. Skipped, loudly, only when that interpreter
  is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import lance
import pyarrow.parquet as pq
import pytest

from lerobot_lance.layouts import lerobot as L
from lerobot_lance.layouts.lerobot_checks import OUTPUT_RULES, check_lerobot_output
from tests.conftest import EPISODE_LENGTHS, sample

REPO = Path(__file__).resolve().parents[1]
COMPARE = REPO / "tests" / "lerobot_reader_compare.py"
PEER_PYTHON = os.environ.get("LEROBOT_LANCE_PEER_PYTHON", "/work/peer-venv/bin/python")
CAM = "observation.images.cam_high"
DELTA = {CAM: [-0.1, 0.0], "observation.state": [-0.1, -1 / 30, 0.0]}
SUBSET = [1, 3, 4]
FAULT = "nan_in_action"  # tests/faults.py: episode 2 of g1_v21 fails no_nan_inf


@pytest.fixture(scope="module")
def lerobot_out(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``lerobot_out(name, source=None, **options)`` -> output root of a
    ``layout="lerobot"`` conversion, converted once per module."""
    from lerobot_lance.api import convert

    cache: dict[str, Path] = {}

    def get(name: str, source: Path | None = None, **options: object) -> Path:
        if name not in cache:
            out = tmp_path_factory.mktemp("lerobot") / name
            convert(str(source or sample(name)), str(out), layout="lerobot", **options)
            cache[name] = out
        return cache[name]

    return get


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.faults import make_fault

    dst = tmp_path_factory.mktemp("fault") / FAULT
    make_fault(FAULT, dst)
    return dst


def test_tables_and_columns_are_the_readers(lerobot_out: Callable[..., Path]) -> None:
    out = lerobot_out("g1_v30")
    for t in L.TABLE_NAMES:
        assert (out / f"{t}.lance").is_dir(), t
    assert not (out / "episodes.lance").exists()
    videos = lance.dataset(str(out / f"{L.VIDEOS_TABLE}.lance"))
    names = videos.schema.names
    for col in (*L.VIDEO_KEY_COLUMNS, *L.VIDEO_INDEX_COLUMNS, *L.PROVENANCE_COLUMNS, L.VIDEO_BLOB_COLUMN):
        assert col in names, col
    assert str(videos.schema.field("file_index").type) == "int64"
    rows = videos.to_table(columns=["video_key", "file_index", "file_size", "kf_indices", "relative_path"]).to_pylist()
    assert [(r["video_key"], r["file_index"]) for r in rows] == [(CAM, 0), (CAM, 1), (CAM, 2)]
    for r in rows:
        assert r["file_size"] == (sample("g1_v30") / r["relative_path"]).stat().st_size
        # the README: a keyframe every 2 frames
        assert r["kf_indices"][:3] == [0, 2, 4]
    frames = lance.dataset(str(out / "frames.lance"))
    assert frames.count_rows() == sum(EPISODE_LENGTHS)
    meta_paths = sorted(lance.dataset(str(out / "meta.lance")).to_table(columns=["path"])["path"].to_pylist())
    # every reader file of meta/; conversion.json (tag, version vector) is written after the commits
    assert meta_paths == ["episodes/chunk-000/file-000.parquet", "info.json", "stats.json", "tasks.parquet"]
    on_disk = sorted(p.relative_to(out / "meta").as_posix() for p in (out / "meta").rglob("*") if p.is_file())
    assert on_disk == sorted([*meta_paths, "conversion.json"])


def test_v2_source_gets_v3_meta(lerobot_out: Callable[..., Path]) -> None:
    out = lerobot_out("g1_v21")
    info = json.loads((out / L.INFO_PATH).read_text())
    assert info["codebase_version"] == "v3.0" and info["storage_format"] == "lance"
    assert "total_chunks" not in info and info["data_path"] == L.V3_DATA_PATH and info["video_path"] == L.V3_VIDEO_PATH
    assert info["total_episodes"] == 6 and info["total_frames"] == sum(EPISODE_LENGTHS)
    eps = pq.read_table(out / L.EPISODES_META_PATH).to_pylist()
    starts = [0]
    for n in EPISODE_LENGTHS:
        starts.append(starts[-1] + n)
    for i, e in enumerate(eps):
        assert e["episode_index"] == i and e["length"] == EPISODE_LENGTHS[i]
        assert (e["dataset_from_index"], e["dataset_to_index"]) == (starts[i], starts[i + 1])
        # a v2.x episode's mp4 is its own file, window from 0
        assert e[f"videos/{CAM}/file_index"] == i and e[f"videos/{CAM}/from_timestamp"] == 0.0
        assert abs(e[f"videos/{CAM}/to_timestamp"] - EPISODE_LENGTHS[i] / 30) < 1e-6
        assert e["stats/action/count"] == [EPISODE_LENGTHS[i]]
    assert not list((out / "meta").glob("*.jsonl"))
    stats = json.loads((out / L.STATS_PATH).read_text())
    assert stats["index"]["max"] == [sum(EPISODE_LENGTHS) - 1] and stats["action"]["count"] == [sum(EPISODE_LENGTHS)]
    assert pq.read_table(out / L.TASKS_PATH).to_pandas().index.tolist() == ["Pick up the yellow bottle on the table."]


def test_subset_is_renumbered_like_delete_episodes(lerobot_out: Callable[..., Path]) -> None:
    out = lerobot_out("g1_v21_subset", sample("g1_v21"), episodes=SUBSET)
    t = lance.dataset(str(out / "frames.lance")).to_table(columns=["index", "episode_index", L.SOURCE_EPISODE_COLUMN])
    lengths = [EPISODE_LENGTHS[e] for e in SUBSET]
    assert t.num_rows == sum(lengths)
    assert t["index"].to_pylist() == list(range(sum(lengths)))
    want_new = [k for k, n in enumerate(lengths) for _ in range(n)]
    want_old = [e for e, n in zip(SUBSET, lengths) for _ in range(n)]
    assert t["episode_index"].to_pylist() == want_new
    assert t[L.SOURCE_EPISODE_COLUMN].to_pylist() == want_old
    conv = json.loads((out / L.CONVERSION_PATH).read_text())
    assert conv["episode_mapping"] == {"1": 0, "3": 1, "4": 2} and conv["layout"] == "lerobot"
    eps = pq.read_table(out / L.EPISODES_META_PATH).to_pylist()
    assert [e[L.SOURCE_EPISODE_COLUMN] for e in eps] == SUBSET
    # each kept episode still points at its own source mp4
    assert [e[f"videos/{CAM}/file_index"] for e in eps] == SUBSET


def test_output_checks_pass_and_catch_a_wrong_byte_index(lerobot_out: Callable[..., Path], tmp_path: Path) -> None:
    import shutil

    out = lerobot_out("g1_v30")
    outcomes = check_lerobot_output(out, sample("g1_v30"))
    assert [o.name for o in outcomes] == list(OUTPUT_RULES)
    assert all(o.passed for o in outcomes), [o.message for o in outcomes if not o.passed]
    # a copy whose videos row lists one keyframe offset 1 byte off
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    ds = lance.dataset(str(bad / "videos.lance"))
    row = ds.to_table(columns=["kf_positions"], filter="file_index = 1")["kf_positions"][0].as_py()
    wrong = ", ".join(f"CAST({p + (1 if i == 3 else 0)} AS BIGINT)" for i, p in enumerate(row))
    ds.update({"kf_positions": f"make_array({wrong})"}, where="file_index = 1")
    res = {o.name: o for o in check_lerobot_output(bad, sample("g1_v30"))}
    assert not res["reader_byte_index"].passed
    assert "file-001.mp4" in res["reader_byte_index"].message and "keyframe" in res["reader_byte_index"].message
    assert res["reader_frames_rows"].passed and res["reader_episodes_tile"].passed


def test_skip_videos_is_refused_clearly(tmp_path: Path) -> None:
    from lerobot_lance.api import convert
    from pipelines.runner import ConversionFailed

    with pytest.raises(ConversionFailed) as info:
        convert(str(sample("g1_v30")), str(tmp_path / "o"), layout="lerobot", skip_videos=True)
    assert "cannot skip videos" in str(info.value) and "Traceback" not in str(info.value)


# --- LeRobot's own reader, in the peer venv -----------------------------------------
def _peer_python() -> str:
    if not Path(PEER_PYTHON).is_file():
        msg = (f"LEROBOT READER COMPARISON SKIPPED: no peer interpreter at {PEER_PYTHON} "
               "(set LEROBOT_LANCE_PEER_PYTHON; .ci/run builds .peer-venv with lerobot-lancedb 0.3.1)")
        warnings.warn(msg, stacklevel=2)
        pytest.skip(msg)
    return PEER_PYTHON


@pytest.mark.lerobot_reader
def test_lerobot_reader_items_equal_lerobot_dataset(lerobot_out: Callable[..., Path], faulty: Path, tmp_path: Path) -> None:
    python = _peer_python()
    v30 = str(sample("g1_v30"))
    cases = [
        {"name": "g1_v20", "output": str(lerobot_out("g1_v20")), "source": v30, "episodes": None},
        {"name": "g1_v21", "output": str(lerobot_out("g1_v21")), "source": v30, "episodes": None},
        {"name": "g1_v30", "output": str(lerobot_out("g1_v30")), "source": v30, "episodes": None},
        {"name": "g1_multicam_v30", "output": str(lerobot_out("g1_multicam_v30")), "source": str(sample("g1_multicam_v30")),
         "episodes": None, "delta": {"observation.images.cam_high_crop": [-0.1, 0.0]}},
        {"name": "g1_v30_h264_gop30", "output": str(lerobot_out("g1_v30_h264_gop30")), "source": str(sample("g1_v30_h264_gop30")), "episodes": None},
        {"name": "episodes 1,3-4", "output": str(lerobot_out("g1_v21_subset", sample("g1_v21"), episodes=SUBSET)), "source": v30, "episodes": SUBSET},
        {"name": f"excluded ({FAULT})", "output": str(lerobot_out("faulty", faulty, exclude_failed_episodes=True)), "source": v30,
         "episodes": [0, 1, 3, 4, 5]},
    ]
    for i, c in enumerate(cases):
        c.update(samples=12, seed=100 + i, delta_timestamps={**DELTA, **c.pop("delta", {})})
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps(cases))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_LEROBOT_HOME": str(tmp_path / "hf_lerobot")}
    proc = subprocess.run([python, str(COMPARE), str(spec)], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps({k: {"compared": v["compared"], "len": v.get("len"), "mismatches": len(v["mismatches"])} for k, v in results.items()}, indent=1))
    for c in cases:
        r = results[c["name"]]
        assert r["mismatches"] == [], (c["name"], r["mismatches"], r.get("traceback"))
        assert r["compared"] >= 12, (c["name"], r)
        for key in ("action", "observation.state", "observation.state_is_pad", CAM, f"{CAM}_is_pad", "index", "episode_index", "task"):
            assert key in r["keys"], (c["name"], key)
    assert results["g1_multicam_v30"]["keys"].count("observation.images.cam_high_crop") == 1
    assert results["episodes 1,3-4"]["len"] == [sum(EPISODE_LENGTHS[e] for e in SUBSET)] * 2


def test_datasets_yaml_layout_option_selects_the_layouts_checks(tmp_path: Path) -> None:
    from lerobot_lance.layouts import output_check_names
    from lerobot_lance.quality.output_rules import OUTPUT_RULES as CARD_RULES
    from pipelines.config import load_dataset_configs
    from pipelines.definitions import build_definitions, default_resources

    yaml_file = tmp_path / "datasets.yaml"
    yaml_file.write_text(
        f"datasets:\n"
        f"  - {{name: g1_lr, source: {sample('g1_v30')}, output: {tmp_path / 'lr'}, options: {{layout: lerobot}}}}\n"
        f"  - {{name: g1_card, source: {sample('g1_v30')}, output: {tmp_path / 'card'}}}\n"
    )
    cfgs = load_dataset_configs(yaml_file)
    assert cfgs[0].options["layout"] == "lerobot"
    repo = build_definitions(cfgs, default_resources()).get_repository_def()
    checks = {
        name: {spec.name for a in repo.assets_defs_by_key.values() for spec in a.check_specs if spec.asset_key.path == [name, "lance_dataset"]}
        for name in ("g1_lr", "g1_card")
    }
    assert checks["g1_lr"] == set(output_check_names("lerobot")) == set(OUTPUT_RULES)
    assert checks["g1_card"] == set(CARD_RULES)


def test_unknown_layout_is_refused() -> None:
    from lerobot_lance.conversion import ConvertOptions
    from lerobot_lance.errors import LeRobotLanceError

    with pytest.raises(LeRobotLanceError, match="unknown layout 'parquet': expected one of card, lerobot"):
        ConvertOptions(layout="parquet")
