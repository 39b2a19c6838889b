"""Shared fixtures: the real samples in ../shared/datasets and conversions of them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
if not SHARED.is_dir():  # a clone next to the workspace's shared/
    SHARED = Path(os.environ.get("LEROBOT_LANCE_SHARED", "/work/shared/datasets"))

SAMPLES = ("g1_v20", "g1_v21", "g1_v30", "g1_v30_h264_gop30", "g1_image_v30", "g1_multicam_v30")
EPISODE_LENGTHS = (393, 343, 357, 368, 410, 445)


def sample(name: str) -> Path:
    path = SHARED / name
    assert path.is_dir(), f"shared sample {path} missing"
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


@pytest.fixture(scope="session", autouse=True)
def _no_dagster_home() -> None:
    """In-process conversions use a throwaway Dagster instance unless a test sets one."""
    os.environ.pop("DAGSTER_HOME", None)


@pytest.fixture(autouse=True)
def _no_current_defs_state_storage() -> None:
    """Every test starts with no "current" Dagster instance.

    Entering a ``DagsterInstance`` sets Dagster's context-local defs-state
    storage (Dagster 1.13), which ``Definitions.get_repository_def()`` reads.
    An instance entered in the main thread but collected by the garbage
    collector in another thread (a context object's ``__del__`` exiting it)
    cannot reset that variable there, so the main thread keeps a storage whose
    instance is gone, and every later resolution in the process fails with
    "Attempted to resolve undefined DagsterInstance weakref" (CI, once, after
    the Celery tests). A sensor or
    schedule context built without ``with`` leaves such an instance behind
    (its ``instance`` property enters one into the context's exit stack), so
    tests use ``with build_sensor_context(...) as context``; and no test
    inherits a stale storage from another. (If Dagster moves that variable,
    this fixture, and so every test, errors in setup.)"""
    from pipelines.dagster_compat import clear_current_defs_state_storage

    clear_current_defs_state_storage()


@pytest.fixture(scope="session", autouse=True)
def _staging_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Staging areas (default under ~/.cache) go to a session temp folder; child
    processes inherit it."""
    os.environ["LEROBOT_LANCE_STAGING"] = str(tmp_path_factory.mktemp("staging"))


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``converted(name)`` -> output root of the sample converted once through
    the Dagster graph (in-process), shared by every test of the session."""
    from pipelines.runner import run_conversion

    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            out = tmp_path_factory.mktemp("out") / name
            run_conversion(str(sample(name)), str(out))
            cache[name] = out
        return cache[name]

    return get


@pytest.fixture()
def sample_copy(tmp_path: Path) -> Callable[[str], Path]:
    """``sample_copy(name)`` -> a writable copy of a shared sample (videos hard-linked
    when possible; tests replace, never edit, the files they change)."""

    def make(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(sample(name), dst, copy_function=_link_or_copy)
        for p in dst.rglob("*"):
            if p.is_dir() or p.stat().st_nlink == 1:  # never chmod a hard link to the shared file
                p.chmod(0o755 if p.is_dir() else 0o644)
        return dst

    return make


def _link_or_copy(src: str, dst: str) -> None:
    if src.endswith(".mp4"):
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)
