"""The executor selection (pipelines/executor.py) and deploy/'s executor configs:
each entry of deploy/executors.yaml is valid config of its Dagster executor
(checked by Dagster against that executor's own schema when its package is
installed), the Celery worker file says the same as the executor entry, and
datasets.yaml's ``executor:`` section picks the code location's executor."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from dagster import asset, define_asset_job, Definitions, validate_run_config

from pipelines.config import load_executor_settings
from pipelines.executor import EXECUTOR_KINDS, code_location_executor, executor_from_settings

REPO = Path(__file__).resolve().parents[1]
EXECUTORS = yaml.safe_load((REPO / "deploy" / "executors.yaml").read_text())
MODULES = {"celery": ("dagster_celery", "celery_executor"), "dask": ("dagster_dask", "dask_executor"),
           "k8s_job": ("dagster_k8s", "k8s_job_executor")}


@asset
def one() -> int:
    return 1


@pytest.mark.parametrize("kind", sorted(MODULES))
def test_each_deploy_entry_is_valid_config_of_its_executor(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module, name = MODULES[kind]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} not installed")
    for var in ("LEROBOT_LANCE_CELERY_BROKER", "LEROBOT_LANCE_CELERY_BACKEND", "LEROBOT_LANCE_DASK_SCHEDULER"):
        monkeypatch.setenv(var, "redis://127.0.0.1:6379/0")
    base = getattr(importlib.import_module(module), name)
    job = Definitions(assets=[one], jobs=[define_asset_job("j", selection=[one])], executor=base).resolve_job_def("j")
    validate_run_config(job, {"execution": {"config": EXECUTORS[kind]}})  # raises on any wrong key or type
    with pytest.raises(Exception, match="not_a_setting"):
        validate_run_config(job, {"execution": {"config": {**EXECUTORS[kind], "not_a_setting": 1}}})


def test_the_worker_file_matches_the_celery_executor_entry() -> None:
    worker = yaml.safe_load((REPO / "deploy" / "celery-worker.yaml").read_text())
    assert worker["execution"]["config"] == EXECUTORS["celery"]


def test_datasets_yaml_executor_section_picks_the_executor(tmp_path: Path) -> None:
    assert sorted(EXECUTORS) == sorted(k for k in EXECUTOR_KINDS if k not in ("in_process", "multiprocess"))
    assert executor_from_settings(None) is code_location_executor
    plain = tmp_path / "plain.yaml"
    plain.write_text("datasets: []\n")
    assert load_executor_settings(plain) == {}
    celery = tmp_path / "celery.yaml"
    celery.write_text(yaml.safe_dump({"executor": {"celery": EXECUTORS["celery"]}, "datasets": []}))
    settings = load_executor_settings(celery)
    assert settings == {"celery": EXECUTORS["celery"]}
    if importlib.util.find_spec("dagster_celery") is not None:
        assert executor_from_settings(settings).name == "lerobot_lance_celery"
    two = tmp_path / "two.yaml"
    two.write_text(yaml.safe_dump({"executor": {"celery": {}, "dask": {}}, "datasets": []}))
    with pytest.raises(ValueError, match=r"two\.yaml: executor: must map one executor kind"):
        load_executor_settings(two)
    with pytest.raises(ValueError, match="unknown kind 'spark'"):
        executor_from_settings({"spark": {}})


def test_backfill_policy_option_sets_the_episode_assets_policy(tmp_path: Path) -> None:
    from assets import build_dataset_assets
    from pipelines.config import load_dataset_configs

    yml = tmp_path / "datasets.yaml"
    entries = [
        {"name": "multi", "source": "owner/a", "output": str(tmp_path / "a"), "options": {"backfill_batch_size": 25}},
        {"name": "single", "source": "owner/b", "output": str(tmp_path / "b"), "options": {"backfill_policy": "single_run"}},
    ]
    yml.write_text(yaml.safe_dump({"datasets": entries}))
    multi, single = load_dataset_configs(yml)
    for cfg, per_run in ((multi, 25), (single, None)):
        policies = {a.key.path[-1]: a.backfill_policy for a in build_dataset_assets(cfg)}
        for name in ("episode_frames", "episode_videos", "episode_stats"):
            assert policies[name].max_partitions_per_run == per_run, (cfg.name, name, policies[name])
    entries[0]["options"] = {"backfill_policy": "every_run"}
    yml.write_text(yaml.safe_dump({"datasets": entries}))
    with pytest.raises(ValueError, match=r"dataset 'multi': options.backfill_policy must be one of \['multi_run', 'single_run'\], found 'every_run'"):
        load_dataset_configs(yml)
