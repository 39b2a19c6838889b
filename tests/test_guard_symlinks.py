"""``files_inside_root``: source files that are symlinks out of the dataset root are refused.

* The three fault kinds of tests/faults_guard.py (a parquet, an mp4 and
  ``meta/tasks.jsonl`` symlinked to copies outside the root): ``doctor``
  fails exactly that check, naming the file, the episode and where the link
  points; ``convert`` over a published output refuses at ``source_meta`` and
  the published tables and ``meta/`` stay as they were.
* The Hugging Face cache layout (snapshot files are relative symlinks into
  the repository's ``blobs/``) passes, through the real huggingface_hub in
  offline mode; a snapshot file linked out of the cache is refused.
* The file rule alone never reads an escaping file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import lance
import pytest

from lerobot_lance.formats import TABLE_NAMES
from lerobot_lance.quality.doctor import exit_code, run_doctor
from tests.conftest import sample
from tests.faults import FAULTS_BY_KIND, TOTAL_FRAMES, copy_sample, make_fault, v2_data, v2_video
from tests.faults_guard import outside_dir

KINDS = ("parquet_symlink_outside", "mp4_symlink_outside", "meta_symlink_outside")
SHA = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("guard_faults")
    return {k: (make_fault(k, root / k), root / k)[1] for k in KINDS}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lerobot_lance import convert

    out = tmp_path_factory.mktemp("guard_clean") / "g1_v21"
    assert convert(str(sample("g1_v21")), str(out)).rows["frames"] == TOTAL_FRAMES
    return out


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def _state(out: Path) -> dict[str, object]:
    tables = {t: (ds.version, ds.count_rows(), sorted(ds.tags.list())) for t in TABLE_NAMES for ds in [lance.dataset(str(out / f"{t}.lance"))]}
    return {"tables": tables, "meta": _digests(out / "meta")}


@pytest.mark.parametrize("kind", KINDS)
def test_doctor_names_the_check_the_file_and_the_target(kind: str, variants: dict[str, Path]) -> None:
    fault = FAULTS_BY_KIND[kind]
    root = variants[kind]
    assert (root / fault.file).is_symlink()
    outcomes = run_doctor(str(root))
    failed = [o for o in outcomes if not o.passed and o.severity == "ERROR"]
    assert [o.name for o in failed] == ["files_inside_root"] and exit_code(outcomes) == 1
    (off,) = failed[0].offenders
    target = outside_dir(root) / Path(fault.file).name
    assert off.file == fault.file and off.episode_index == fault.episode_index
    assert off.found == str(target) and str(root) in off.expected
    assert f"{fault.file}" in failed[0].message and "resolves outside the dataset root" in failed[0].message
    # nothing after the gate read the file: every later rule is reported not run
    assert all(o.skipped for o in outcomes if o.name in ("data_rows_match_episodes", "no_nan_inf", "segment_frame_count"))


@pytest.mark.parametrize("kind", KINDS)
def test_convert_refuses_and_publishes_nothing(kind: str, variants: dict[str, Path], published: Path, tmp_path: Path) -> None:
    from lerobot_lance import convert
    from pipelines.runner import ConversionFailed

    fault = FAULTS_BY_KIND[kind]
    out = tmp_path / "out"
    shutil.copytree(published, out, symlinks=True)
    before = _state(out)
    with pytest.raises(ConversionFailed) as err:
        convert(str(variants[kind]), str(out), overwrite=True)
    text = "\n".join(err.value.failures)
    assert "source_meta / files_inside_root:" in text and fault.file in text, text
    assert str(outside_dir(variants[kind])) in text, text
    assert _state(out) == before
    assert not list((out / "_staging").glob("frames/episode_*"))  # no episode was read and staged


def test_file_rule_does_not_read_an_escaping_file(variants: dict[str, Path]) -> None:
    from lerobot_lance.quality.source_rules import check_source_files
    from lerobot_lance.readers import read_dataset_meta

    root = variants["parquet_symlink_outside"]
    outside = outside_dir(root) / Path(v2_data(2)).name
    outside.write_bytes(b"not a parquet")  # were it read, data_rows_match_episodes would fail on it
    try:
        outcomes = {o.name: o for o in check_source_files(root, read_dataset_meta(root))}
    finally:
        shutil.copyfile(sample("g1_v21") / v2_data(2), outside)
    assert not outcomes["files_inside_root"].passed
    assert outcomes["files_inside_root"].offenders[0].file == v2_data(2)
    assert outcomes["data_rows_match_episodes"].passed


def test_symlinks_that_stay_inside_the_root_are_allowed(tmp_path: Path) -> None:
    root = copy_sample("g1_v21", tmp_path / "ds")
    # the mp4 moved to another folder of the root, reached through a relative link
    (root / "store").mkdir()
    os.replace(root / v2_video(1), root / "store" / "ep1.mp4")
    os.symlink(os.path.relpath(root / "store" / "ep1.mp4", (root / v2_video(1)).parent), root / v2_video(1))
    outcomes = run_doctor(str(root), content=False)
    assert {o.name: o.passed for o in outcomes}["files_inside_root"]
    assert exit_code(outcomes) == 0


def test_symlinked_folder_out_of_the_root_is_refused(tmp_path: Path) -> None:
    root = copy_sample("g1_v21", tmp_path / "ds")
    shutil.move(str(root / "data" / "chunk-000"), str(tmp_path / "elsewhere"))
    os.symlink(tmp_path / "elsewhere", root / "data" / "chunk-000")
    (o,) = [o for o in run_doctor(str(root)) if o.name == "files_inside_root"]
    assert not o.passed and o.n_offenders == 1
    assert o.offenders[0].file == "data/chunk-000" and o.offenders[0].found == str(tmp_path / "elsewhere")


def _hub_cache(cache: Path, name: str, repo: str = "acme/g1") -> Path:
    """huggingface_hub's cache layout: ``blobs/<sha256>`` holds the bytes, every
    snapshot file is a relative symlink to its blob, ``refs/main`` names the commit."""
    folder = cache / f"datasets--{repo.replace('/', '--')}"
    snap, blobs = folder / "snapshots" / SHA, folder / "blobs"
    blobs.mkdir(parents=True)
    for p in sorted(sample(name).rglob("*")):
        if not p.is_file():
            continue
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        blob = blobs / digest
        if not blob.exists():
            os.link(p, blob)
        link = snap / p.relative_to(sample(name))
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(SHA)
    return snap


@pytest.fixture()
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hub_cache_blob_links_are_allowed(offline_cache: Path) -> None:
    snap = _hub_cache(offline_cache, "g1_v21")
    assert (snap / v2_data(0)).is_symlink() and "blobs" in os.readlink(snap / v2_data(0))
    outcomes = run_doctor("acme/g1", content=False)
    by_name = {o.name: o for o in outcomes}
    assert by_name["files_inside_root"].passed and not by_name["files_inside_root"].skipped
    assert exit_code(outcomes) == 0, [o.message for o in outcomes if not o.passed]
    # and a snapshot file linked out of the cache is refused
    outside = offline_cache.parent / "elsewhere.parquet"  # outside the cached repository folder
    shutil.copyfile(snap / v2_data(3), outside)
    (snap / v2_data(3)).unlink()
    os.symlink(outside, snap / v2_data(3))
    (o,) = [o for o in run_doctor("acme/g1", content=False) if o.name == "files_inside_root"]
    assert not o.passed and o.offenders[0].file == v2_data(3) and o.offenders[0].episode_index == 3
    assert str(offline_cache / "datasets--acme--g1") in o.offenders[0].expected


def test_hub_cache_converts(offline_cache: Path, tmp_path: Path) -> None:
    from lerobot_lance import convert

    _hub_cache(offline_cache, "g1_image_v30")
    summary = convert("acme/g1", str(tmp_path / "out"))
    assert summary.rows["frames"] == 736
    assert json.loads((tmp_path / "out" / "meta" / "conversion.json").read_text())["revision"] == SHA


def test_clean_samples_pass(tmp_path: Path) -> None:
    from lerobot_lance.quality.source_rules import check_source_meta

    for name in ("g1_v20", "g1_v21", "g1_v30", "g1_multicam_v30", "g1_image_v30"):
        (o,) = [o for o in check_source_meta(sample(name)) if o.name == "files_inside_root"]
        assert o.passed and o.metadata["entries_checked"] == sum(1 for d in ("meta", "data", "videos") for p in (sample(name) / d).rglob("*") if p.is_file()), name
