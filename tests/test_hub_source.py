"""The Hub code path, as far as this offline machine allows.

Two levels:
* the real huggingface_hub library in offline mode (``HF_HUB_OFFLINE=1``)
  against a real cache layout (``datasets--owner--name/snapshots/<sha>/``,
  ``refs/main``): proves our calls (repo_type, revision pinning, cache_dir)
  resolve files the way the library does;
* huggingface_hub's download functions replaced at the module boundary by
  fakes that copy from a shared sample and record each request: proves that
  ``scan`` fetches only ``meta/`` and a conversion of some episodes fetches
  only those episodes' parquet and mp4 files.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from pathlib import Path

import huggingface_hub
import pytest

from lerobot_lance.api import scan
from lerobot_lance.errors import SourceNotFoundError
from lerobot_lance.source import HubSource, open_source
from tests.conftest import sample

SHA = "0123456789abcdef0123456789abcdef01234567"


def _fake_cache(cache: Path, name: str, repo: str = "acme/g1") -> Path:
    snap = cache / f"datasets--{repo.replace('/', '--')}" / "snapshots" / SHA
    shutil.copytree(sample(name), snap, copy_function=os.link)
    refs = cache / f"datasets--{repo.replace('/', '--')}" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(SHA)
    return snap


@pytest.fixture()
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True, raising=False)


def test_real_library_offline_cache(tmp_path: Path, offline: None) -> None:
    cache = tmp_path / "hub"
    _fake_cache(cache, "g1_v30")
    src = open_source("acme/g1", cache_dir=str(cache))
    assert isinstance(src, HubSource)
    assert src.revision() == SHA
    assert (src.meta_root() / "meta" / "info.json").is_file()
    local = src.local_path("videos/observation.images.cam_high/chunk-000/file-001.mp4")
    assert local.stat().st_size == (sample("g1_v30") / "videos/observation.images.cam_high/chunk-000/file-001.mp4").stat().st_size


def test_real_library_offline_missing_repo(tmp_path: Path, offline: None) -> None:
    with pytest.raises(SourceNotFoundError, match="acme/absent"):
        HubSource("acme/absent", cache_dir=str(tmp_path)).meta_root()


class FakeHub:
    """Stands in for huggingface_hub's download functions; serves a shared sample."""

    def __init__(self, root: Path, cache: Path) -> None:
        self.root, self.snap = root, cache / "snapshots" / SHA
        self.snapshot_calls: list[list[str]] = []
        self.file_calls: list[str] = []
        self.extra_files: list[str] = []  # listed by the repo, not referenced by any episode
        self.list_fails = False

    def list_repo_files(self, repo_id: str, *, repo_type: str, revision: str, **kw: object) -> list[str]:
        assert repo_type == "dataset" and revision == SHA, "listings must be pinned to the resolved commit"
        if self.list_fails:
            raise huggingface_hub.errors.OfflineModeIsEnabled("offline")
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()) + self.extra_files

    def snapshot_download(self, repo_id: str, *, repo_type: str, revision: str, allow_patterns: list[str], **kw: object) -> str:
        assert repo_type == "dataset"
        self.snapshot_calls.append(list(allow_patterns))
        for p in self.root.rglob("*"):
            rel = str(p.relative_to(self.root))
            if p.is_file() and any(fnmatch.fnmatch(rel, pat) for pat in allow_patterns):
                (self.snap / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(p, self.snap / rel)
        return str(self.snap)

    def hf_hub_download(self, repo_id: str, filename: str, *, repo_type: str, revision: str, **kw: object) -> str:
        assert repo_type == "dataset" and revision == SHA, "downloads must be pinned to the resolved commit"
        self.file_calls.append(filename)
        (self.snap / filename).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.root / filename, self.snap / filename)
        return str(self.snap / filename)


@pytest.fixture()
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    hub = FakeHub(sample("g1_v21"), tmp_path / "cache")

    class Info:
        sha = SHA

    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub.hf_hub_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", lambda self, repo_id, revision=None, **kw: Info())
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda self, repo_id, **kw: hub.list_repo_files(repo_id, **kw))
    return hub


def test_scan_downloads_only_meta(fake_hub: FakeHub) -> None:
    report = scan("acme/g1")
    assert report["revision"] == SHA and report["episodes"] == 6
    assert fake_hub.snapshot_calls == [["meta/**"]]
    assert fake_hub.file_calls == []
    assert not (fake_hub.snap / "data").exists() and not (fake_hub.snap / "videos").exists()


def test_convert_fetches_only_the_selected_episodes(fake_hub: FakeHub, tmp_path: Path) -> None:
    from pipelines.runner import run_conversion

    summary = run_conversion("acme/g1", str(tmp_path / "out"), episodes=[1])
    assert summary.rows["frames"] == 343 and summary.rows["episodes"] == 1
    assert sorted(set(fake_hub.file_calls)) == [
        "data/chunk-000/episode_000001.parquet",
        "videos/chunk-000/observation.images.cam_high/episode_000001.mp4",
    ]


def test_hub_file_rules_use_the_repo_listing_and_fetch_only_the_selection(fake_hub: FakeHub) -> None:
    from lerobot_lance.quality.source_rules import check_source_files, source_listing
    from lerobot_lance.readers import read_dataset_meta

    src = open_source("acme/g1")
    meta = read_dataset_meta(src.meta_root())
    e = meta.episode(4)
    root = src.fetch([e.data_path, *(r.relative_path for r in e.videos.values())])
    orphan = "videos/chunk-000/observation.images.cam_high/episode_000099.mp4"
    fake_hub.extra_files = [orphan]
    listing, orphans = source_listing(src)
    got = {o.name: o for o in check_source_files(root, meta, episodes=[4], listing=listing, orphans=orphans)}
    assert [o.file for o in got["no_orphan_files"].offenders] == [orphan]
    assert all(got[n].passed for n in got if n != "no_orphan_files"), {n: o.message for n, o in got.items()}
    assert sorted(fake_hub.file_calls) == sorted([e.data_path, *(r.relative_path for r in e.videos.values())])
    # the Hub cannot list the repository: the orphan rule says it did not run
    fake_hub.list_fails = True
    listing, orphans = source_listing(src)
    got = {o.name: o for o in check_source_files(root, meta, episodes=[4], listing=listing, orphans=orphans)}
    assert got["no_orphan_files"].skipped and got["no_orphan_files"].passed
