"""Production configuration, exercised: deploy/dagster.yaml (PostgreSQL run, event
and schedule storage; run queue limits; run retries) against a throwaway
PostgreSQL cluster on 127.0.0.1, and one end-to-end conversion with the
multiprocess executor: the dataset's reconversion schedule is evaluated and the
run it requests executed, every step in its own process.

Skipped, with the reason, only when the PostgreSQL server binaries are absent
(.ci/run installs Debian's postgresql).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import sample
from tests.helpers_dagster import DEPLOY_YAML, REPO, Postgres, postgres_bindir, postgres_cluster, write_datasets_yaml
from tests.verify import verify_output

pytestmark = [
    pytest.mark.slow_server,
    pytest.mark.timeout(480),
    pytest.mark.skipif(postgres_bindir() is None, reason="PostgreSQL server binaries not found (apt-get install -y postgresql)"),
]

SAMPLE = "g1_multicam_v30"


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    with postgres_cluster(tmp_path_factory.mktemp("pg")) as cluster:
        yield cluster


def test_conversion_with_postgres_storage_and_multiprocess_executor(pg: Postgres, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy2(DEPLOY_YAML, home / "dagster.yaml")  # the documented file, unchanged
    out = tmp_path / "out"
    yml = write_datasets_yaml(
        tmp_path / "datasets.yaml", [{"name": "g1", "source": str(sample(SAMPLE)), "output": str(out), "schedule": "0 3 * * 0"}]
    )
    env = {**os.environ, **pg.env(), "DAGSTER_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.helpers_dagster", "scheduled-reconversion", str(yml), "g1"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=420,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_id = json.loads(proc.stdout.strip().splitlines()[-1])["run_id"]

    for k, v in pg.env().items():
        monkeypatch.setenv(k, v)
    from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == DagsterRunStatus.SUCCESS
        assert run.job_name == "g1__reconvert" and run.tags.get("lerobot_lance/trigger") == "schedule"
        assert instance.get_dynamic_partitions("g1_episodes") == ["000000", "000001"]
        starts = instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
        assert len(starts) == 10  # every asset of the dataset, one step each
        assert len({e.dagster_event.pid for e in starts}) == 10  # the multiprocess executor: one process per step
    verify_output(out, sample(SAMPLE))
