"""The output root guard (lerobot_lance/output_root.py), through the real CLI and the asset graph.

* A directory holding a user's files is refused, with or without
  ``--overwrite``, and nothing in it changes (sha256 of every file).
* An output equal to the source, inside its ``meta/`` or ``videos/``,
  containing it, or reaching it through a symlink is refused with nothing
  written; the source stays byte-identical.
* An output of ours (the marker ``.lerobot-lance.json``) is reusable with
  ``--overwrite``; the marker is written once and kept.
* A UI run (the ``source_meta`` asset, no CLI in front) refuses the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from lerobot_lance.cli import main
from lerobot_lance.output_root import MARKER_NAME, OutputRootError, check_output_root, read_marker, source_root_of
from lerobot_lance.source import HubSource
from tests.faults import copy_sample


def _tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (directories as ``"dir"``) -> sha256 of its bytes."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _convert(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(["convert", *args, "--quiet"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


@pytest.fixture()
def source(tmp_path: Path) -> Path:
    return copy_sample("g1_multicam_v30", tmp_path / "src")


def test_foreign_directory_is_refused_and_untouched(tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "thesis"
    (out / "meta").mkdir(parents=True)
    (out / "meta" / "thesis.tex").write_text("\\documentclass{article}\n")
    (out / "notes.txt").write_text("my notes\n")
    (out / "_staging").mkdir()
    (out / "_staging" / "keep.bin").write_bytes(b"\x00\x01")
    before = _tree(out)
    for extra in ([], ["--overwrite"]):
        rc, err = _convert(capsys, str(source), "--output", str(out), *extra)
        assert rc == 2
        assert f"{out}: is a non-empty directory that is not a lerobot-lance output (no {MARKER_NAME})" in err
        assert "nothing was written" in err and "_staging, meta, notes.txt" in err
        assert ("--overwrite replaces only outputs of lerobot-lance" in err) == bool(extra)
        assert _tree(out) == before


def test_output_overlapping_the_source_is_refused(tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree(source)
    link = tmp_path / "link_to_meta"
    link.symlink_to(source / "meta")
    cases = {
        str(source): "the output is the source dataset",
        str(source / "meta"): "the output lies inside the source dataset",
        str(source / "videos" / "out"): "the output lies inside the source dataset",
        str(source / "meta" / "new" / "deeper"): "the output lies inside the source dataset",
        str(link / "out"): f"resolves to {source / 'meta' / 'out'}",
        str(tmp_path): "the output contains the source dataset",
    }
    for output, message in cases.items():
        for extra in ([], ["--overwrite"]):
            rc, err = _convert(capsys, str(source), "--output", output, *extra)
            assert rc == 2, output
            assert message in err and str(source) in err, (output, err)
            assert _tree(source) == before, output
    assert not (source / MARKER_NAME).exists() and not (source / "meta" / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link_to_meta", "src"]


def test_source_reached_through_a_symlinked_dataset_root(tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The source given through a symlink and the output given by the real path: same directory."""
    link = tmp_path / "ds"
    link.symlink_to(source)
    rc, err = _convert(capsys, str(link), "--output", str(source / "meta"))
    assert rc == 2 and "lies inside the source dataset" in err


def test_hub_source_compares_with_its_cache_folder(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    snap = cache / "datasets--acme--g1" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    root = source_root_of(HubSource("acme/g1", cache_dir=str(cache)))
    assert root == cache / "datasets--acme--g1"
    assert source_root_of("acme/g1", cache_dir=str(cache)) == root
    for output in (snap, snap / "meta", cache / "datasets--acme--g1" / "blobs", cache):
        with pytest.raises(OutputRootError, match="source dataset"):
            check_output_root(str(output), root)
    check_output_root(str(tmp_path / "elsewhere"), root)  # a new directory beside the cache is fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub"]


# Object-store outputs are checked too (one listing, the marker object):
# tests/test_s3_outputs.py::test_non_empty_prefix_without_marker_is_refused.


def test_a_file_as_output_is_refused(tmp_path: Path, source: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "out.txt"
    f.write_text("mine")
    rc, err = _convert(capsys, str(source), "--output", str(f))
    assert rc == 2 and "exists and is not a directory" in err and f.read_text() == "mine"


def test_output_of_ours_is_reusable_with_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = copy_sample("g1_image_v30", tmp_path / "src")  # no videos: four quick conversions
    out = tmp_path / "out"
    src_before = _tree(source)
    rc, _ = _convert(capsys, str(source), "--output", str(out))
    assert rc == 0
    marker = read_marker(out)
    assert marker is not None and marker["tool"] == "lerobot-lance" and marker["source"] == str(source)
    assert set(marker) == {"tool", "version", "created_at", "source"}
    first_tag = json.loads((out / "meta" / "conversion.json").read_text())["tag"]

    rc, err = _convert(capsys, str(source), "--output", str(out))
    assert rc == 2 and "already holds Lance tables; pass --overwrite" in err

    rc, _ = _convert(capsys, str(source), "--output", str(out), "--overwrite")
    assert rc == 0
    assert read_marker(out) == marker  # written once, kept
    assert json.loads((out / "meta" / "conversion.json").read_text())["tag"] != first_tag
    assert _tree(source) == src_before

    # an output of an earlier version (no marker, only our entries) is recognized and marked
    (out / MARKER_NAME).unlink()
    rc, _ = _convert(capsys, str(source), "--output", str(out), "--overwrite")
    assert rc == 0 and read_marker(out) is not None

    # the same root with a foreign file at its top and no marker is not ours
    (out / MARKER_NAME).unlink()
    (out / "thesis.tex").write_text("x")
    rc, err = _convert(capsys, str(source), "--output", str(out), "--overwrite")
    assert rc == 2 and "not a lerobot-lance output" in err


def test_empty_directory_is_claimed(tmp_path: Path, source: Path) -> None:
    from lerobot_lance.output_root import claim_output_root

    out = tmp_path / "empty"
    out.mkdir()
    check_output_root(str(out), source)
    path = claim_output_root(str(out), str(source))
    assert path == out / MARKER_NAME and read_marker(out)["source"] == str(source)
    assert sorted(os.listdir(out)) == [MARKER_NAME]  # the dataset card comes with the first publish
    check_output_root(str(out), source)  # ours now


def test_ui_run_refuses_a_foreign_directory(tmp_path: Path, source: Path) -> None:
    """The ``source_meta`` asset guards UI runs, where no CLI checks first."""
    from dagster import DagsterInstance

    from pipelines.config import DatasetConfig
    from pipelines.definitions import build_definitions, default_resources
    from pipelines.jobs import source_job_name

    out = tmp_path / "thesis"
    (out / "meta").mkdir(parents=True)
    (out / "meta" / "thesis.tex").write_text("mine\n")
    before = _tree(out)
    cfg = DatasetConfig(name="guard_ui", source=str(source), output=str(out))
    defs = build_definitions([cfg], default_resources())
    with DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def(source_job_name(cfg)).execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failures = [ev for ev in result.all_events if ev.event_type_value == "STEP_FAILURE"]
    assert failures and "not a lerobot-lance output" in failures[0].event_specific_data.error.message
    assert _tree(out) == before
