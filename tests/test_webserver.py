"""The real UI and API path: dagster-webserver and dagster-daemon on 127.0.0.1 with
a temporary DAGSTER_HOME (deploy/dagster.yaml on SQLite) and the project's
workspace.yaml; a partition backfill launched through GraphQL; the asset graph
rendered by headless Chromium. One pair of servers serves the whole module;
the tests run in file order, the fresh-instance ones before the backfill.

Screenshots go to ``$LEROBOT_LANCE_TEST_ARTIFACTS`` (default ``out/test-artifacts``):
``fresh_asset_graph.png`` (a fresh instance: nothing materialized),
``check_page.png`` (one asset check's page, with its description),
``asset_graph.png`` and ``lance_dataset.png`` (after the backfill).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import sample
from tests.helpers_dagster import (
    INSTIGATORS_QUERY,
    PARTITIONS_QUERY,
    REPO,
    DagsterServers,
    chromium_binary,
    chromium_until,
    dagster_servers,
    launch_asset_backfill,
    launch_job,
    repository_selector,
    wait_backfill,
    wait_run,
    write_datasets_yaml,
)
from tests.verify import verify_output

pytestmark = [pytest.mark.slow_server, pytest.mark.timeout(600)]

NAME = "g1_multicam"  # no schedule: key, so no schedule
SCHEDULED = "g1_scheduled"  # the same sample with a schedule (1 January, 03:00 UTC: never due during the test)
SAMPLE = "g1_multicam_v30"  # 2 episodes, 2 cameras, LeRobot v3.0
EPISODE_ASSETS = ("episode_frames", "episode_videos", "episode_stats")
TABLE_ASSETS = ("source_videos", "frames_table", "episodes_table", "videos_table", "dataset_stats", "lance_dataset")
ARTIFACTS = Path(os.environ.get("LEROBOT_LANCE_TEST_ARTIFACTS", REPO / "out" / "test-artifacts"))


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterServers]:
    work = tmp_path_factory.mktemp("webserver")
    yml = write_datasets_yaml(
        work / "datasets.yaml",
        [{"name": NAME, "source": str(sample(SAMPLE)), "output": str(work / "out"), "options": {"backfill_batch_size": 100}},
         {"name": SCHEDULED, "source": str(sample(SAMPLE)), "output": str(work / "out_scheduled"), "schedule": "0 3 1 1 *"}],
    )
    with dagster_servers(yml, work) as s:
        yield s


@pytest.fixture(scope="module")
def backfilled(servers: DagsterServers) -> dict[str, Any]:
    """Register the episodes (a run of ``<name>__resolve_source`` launched over
    GraphQL), then backfill every episode partition and the tables over GraphQL
    and wait for the daemon to finish it."""
    run_id = launch_job(servers, f"{NAME}__resolve_source")
    assert wait_run(servers, run_id, 240) == "SUCCESS", servers.log_tail()
    keys = servers.graphql(PARTITIONS_QUERY, {"key": {"path": [NAME, "episode_frames"]}})["assetNodeOrError"]["partitionKeys"]
    assert keys == ["000000", "000001"]
    backfill_id = launch_asset_backfill(
        servers, [[NAME, a] for a in EPISODE_ASSETS], [[NAME, a] for a in TABLE_ASSETS], keys[0], keys[-1], title="all episodes"
    )
    backfill = wait_backfill(servers, backfill_id, 420)
    return {"keys": keys, "backfill": backfill, "out": servers.home.parent / "out"}


def test_servers_bind_to_loopback_only(servers: DagsterServers) -> None:
    listening = _listening_addresses(servers.port)
    assert listening == {"127.0.0.1"}, listening


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp{,6})."""
    import ipaddress

    found = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            addr, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:  # 0A = LISTEN
                continue
            raw = bytes.fromhex(addr)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(raw)))
    return found


ASSET_STATE_QUERY = """
query($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { __typename ... on AssetNode {
    partitionKeys partitionStats { numMaterialized numPartitions numFailed numMaterializing }
    assetMaterializations(limit: 1) { timestamp }
    assetChecksOrError { __typename ... on AssetChecks { checks { name description blocking } } } } }
}"""


def _asset_state(servers: DagsterServers, asset: str, dataset: str = NAME) -> dict[str, Any]:
    data = servers.graphql(ASSET_STATE_QUERY, {"key": {"path": [dataset, asset]}})
    node = data["assetNodeOrError"]
    assert node["__typename"] == "AssetNode", node
    return dict(node)


def test_fresh_instance_shows_the_episode_assets_as_never_materialized(servers: DagsterServers, tmp_path: Path) -> None:
    """Before any run: the registration sensor (run by the daemon) registers the
    two episodes, so each per-episode asset reads 0 of 2 materialized, no
    failure, no materialization; nothing else is materialized either, and the
    graph says so. (Dagster's graph draws 0 of 0 partitions green.)"""
    from tests.helpers_dagster import wait_until

    for asset in EPISODE_ASSETS:
        state = wait_until(lambda a=asset: (st := _asset_state(servers, a))["partitionKeys"] and st, 120,
                           f"the episode partitions of {asset} registered by {NAME}__register_episodes", 2)
        assert state["partitionKeys"] == ["000000", "000001"]
        assert state["partitionStats"] == {"numMaterialized": 0, "numPartitions": 2, "numFailed": 0, "numMaterializing": 0}, state
        assert state["assetMaterializations"] == [], state
    for asset in ("source_meta", *TABLE_ASSETS):
        state = _asset_state(servers, asset)
        assert state["partitionStats"] is None and state["assetMaterializations"] == [], state
    runs = servers.graphql("{ runsOrError { ... on Runs { results { runId } } } }")["runsOrError"]["results"]
    assert runs == []  # the registration sensor launched nothing

    if chromium_binary() is None:
        pytest.skip("chromium is not installed")
    sel = repository_selector(servers)
    shot = tmp_path / "fresh_asset_graph.png"
    dom = chromium_until(f"{servers.url}/locations/{sel['repositoryLocationName']}/asset-groups/{NAME}", tmp_path,
                         ["source_meta", *EPISODE_ASSETS, "Never materialized", "2 partitions"], screenshot=shot)
    assert "0 partitions" not in dom
    _save(shot)


def test_every_asset_check_shows_its_rule_description(servers: DagsterServers, tmp_path: Path) -> None:
    """Through GraphQL: every check of every asset has the one-line description of
    its rule; in the UI, a check's page shows it instead of "No description provided"."""
    from lerobot_lance.quality.descriptions import RULE_DESCRIPTIONS, check_description

    seen = 0
    for asset in ("source_meta", *EPISODE_ASSETS, *TABLE_ASSETS):
        node = _asset_state(servers, asset)
        checks = node["assetChecksOrError"]["checks"]
        assert checks, asset
        for c in checks:
            assert c["name"] in RULE_DESCRIPTIONS and c["description"], (asset, c)
            assert c["description"] == check_description(c["name"], blocking=c["blocking"]), (asset, c)
            seen += 1
    assert seen >= 40

    if chromium_binary() is None:
        pytest.skip("chromium is not installed")
    shot = tmp_path / "check_page.png"
    expected = check_description("supported_version", blocking=True)
    dom = chromium_until(f"{servers.url}/assets/{NAME}/source_meta?view=checks&checkDetail=supported_version", tmp_path,
                         ["supported_version", "codebase_version is one of"], screenshot=shot)
    assert "No description provided" not in dom and expected.split(" is one of ")[0] in dom
    _save(shot)


def _save(shot: Path) -> None:
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy2(shot, ARTIFACTS / shot.name)


def test_sensors_and_schedule_are_listed_and_toggleable(servers: DagsterServers) -> None:
    """Per dataset the change sensor (off) and the registration sensor (on); a
    schedule only for the dataset whose config sets ``schedule:``, on from the start."""
    sel = repository_selector(servers)
    repo = servers.graphql(INSTIGATORS_QUERY, {"sel": sel})["repositoryOrError"]
    assert {s["name"]: s["sensorState"]["status"] for s in repo["sensors"]} == {
        f"{NAME}__source_change": "STOPPED", f"{NAME}__register_episodes": "RUNNING",
        f"{SCHEDULED}__source_change": "STOPPED", f"{SCHEDULED}__register_episodes": "RUNNING",
    }
    assert {s["name"]: (s["cronSchedule"], s["scheduleState"]["status"]) for s in repo["schedules"]} == {
        f"{SCHEDULED}__full_reconversion": ("0 3 1 1 *", "RUNNING")
    }

    start = servers.graphql(
        "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename ... on Sensor { id sensorState { status } } "
        "... on PythonError { message } } }",
        {"s": {**sel, "sensorName": f"{NAME}__source_change"}},
    )["startSensor"]
    assert start["__typename"] == "Sensor" and start["sensorState"]["status"] == "RUNNING", start
    stop = servers.graphql(
        "mutation($id: String!) { stopSensor(id: $id) { __typename ... on StopSensorMutationResult { instigationState { status } } "
        "... on PythonError { message } } }",
        {"id": start["id"]},
    )["stopSensor"]
    assert stop["instigationState"]["status"] == "STOPPED", stop

    def stop_schedule(state_id: str) -> dict[str, Any]:
        return servers.graphql(
            "mutation($id: String!) { stopRunningSchedule(id: $id) { __typename "
            "... on ScheduleStateResult { scheduleState { status } } ... on PythonError { message } } }",
            {"id": state_id},
        )["stopRunningSchedule"]

    started = servers.graphql(
        "mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename "
        "... on ScheduleStateResult { scheduleState { id status } } ... on PythonError { message } } }",
        {"s": {**sel, "scheduleName": f"{SCHEDULED}__full_reconversion"}},
    )["startSchedule"]
    assert started["scheduleState"]["status"] == "RUNNING", started
    stopped = stop_schedule(started["scheduleState"]["id"])
    assert stopped["scheduleState"]["status"] == "STOPPED", stopped


def test_graphql_backfill_of_all_episodes_completes_in_few_runs(servers: DagsterServers, backfilled: dict[str, Any]) -> None:
    b = backfilled["backfill"]
    assert b["status"] == "COMPLETED_SUCCESS", (b, servers.log_tail())
    runs = b["runs"]
    assert all(r["status"] == "SUCCESS" for r in runs), runs
    ranged = [r for r in runs if any(t["key"] == "dagster/asset_partition_range_start" for t in r["tags"])]
    # Both episodes in one run (BackfillPolicy.multi_run(100)); the tables in at most two more.
    assert len(ranged) == 1 and len(runs) <= 3, runs
    verify_output(backfilled["out"], sample(SAMPLE))


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")
def test_asset_graph_page_in_headless_chromium(servers: DagsterServers, backfilled: dict[str, Any], tmp_path: Path) -> None:
    sel = repository_selector(servers)
    graph_url = f"{servers.url}/locations/{sel['repositoryLocationName']}/asset-groups/{NAME}"
    shot = tmp_path / "asset_graph.png"
    # The partitioned assets show their partition count on the graph.
    chromium_until(graph_url, tmp_path, ["source_meta", *EPISODE_ASSETS, *TABLE_ASSETS, f"{len(backfilled['keys'])} partitions"],
                   screenshot=shot)
    chromium_until(f"{servers.url}/assets/{NAME}/episode_frames?view=partitions", tmp_path, backfilled["keys"])
    _save(shot)


def test_lance_dataset_page_shows_where_versions_and_sizes(servers: DagsterServers, backfilled: dict[str, Any], tmp_path: Path) -> None:
    """The publish's metadata through GraphQL (a file:// link to the output, the
    tag, per-table versions and bytes, the snippet to open it), then its page."""
    mat = servers.graphql(
        "query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode { assetMaterializations(limit: 1) {"
        " metadataEntries { label __typename ... on UrlMetadataEntry { url } ... on PathMetadataEntry { path }"
        " ... on JsonMetadataEntry { jsonString } ... on MarkdownMetadataEntry { mdStr } ... on TextMetadataEntry { text } } } } } }",
        {"key": {"path": [NAME, "lance_dataset"]}},
    )["assetNodeOrError"]["assetMaterializations"]
    entries = {e["label"]: e for e in mat[0]["metadataEntries"]}
    out = backfilled["out"]
    assert entries["output_url"] == {"label": "output_url", "__typename": "UrlMetadataEntry", "url": out.resolve().as_uri()}
    assert entries["output"]["path"] == str(out)
    tag = entries["tag"]["text"]
    assert tag in entries["open_with"]["mdStr"]
    sizes = json.loads(entries["table_bytes"]["jsonString"])
    versions = json.loads(entries["versions"]["jsonString"])
    assert set(sizes) == set(versions) == {"frames", "episodes", "videos"} and all(v > 0 for v in sizes.values())
    for t, v in versions.items():
        assert f"| {t} |" in entries["tables"]["mdStr"] and f"`{out}/{t}.lance`" in entries["tables"]["mdStr"]

    if chromium_binary() is None:
        pytest.skip("chromium is not installed")
    shot = tmp_path / "lance_dataset.png"
    # a tall window: the whole metadata table (path, link, per-table versions and bytes, snippet) in one picture
    chromium_until(f"{servers.url}/assets/{NAME}/lance_dataset", tmp_path, ["output_url", "table_bytes", tag], screenshot=shot,
                   window=(1600, 2000))
    _save(shot)


BACKFILLS_QUERY = """query { partitionBackfillsOrError(limit: 10) { ... on PartitionBackfills { results { id status
  numPartitions runs(limit: 100) { status tags { key value } } } } } }"""


@pytest.mark.skipif(not os.environ.get("LEROBOT_LANCE_DAEMON_E2E"),
                    reason="opt-in (about 4 minutes): set LEROBOT_LANCE_DAEMON_E2E=1; the sensor logic itself is "
                           "covered in test_automation.py")
def test_sensor_through_the_daemon_backfills_new_episodes(tmp_path: Path) -> None:
    """The change sensor, switched on over GraphQL, run by dagster-daemon: one
    backfill converts the 4-episode copy, a second one exactly the 2 episodes
    added to it, then the sensor skips."""
    from tests.helpers_dagster import make_v2_dataset, wait_until

    src = make_v2_dataset(sample("g1_v21"), tmp_path / "src", 4)
    yml = write_datasets_yaml(tmp_path / "datasets.yaml", [
        {"name": "g1", "source": str(src), "output": str(tmp_path / "out"),
         "options": {"backfill_batch_size": 100, "sensor_interval_seconds": 5}},
    ])
    with dagster_servers(yml, tmp_path) as s:
        sel = repository_selector(s)
        s.graphql("mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }",
                  {"s": {**sel, "sensorName": "g1__source_change"}})

        def finished(n: int) -> list[dict[str, Any]] | None:
            bs = s.graphql(BACKFILLS_QUERY)["partitionBackfillsOrError"]["results"]
            return bs if len(bs) >= n and all(b["status"] != "REQUESTED" for b in bs) else None

        def ranges(b: dict[str, Any]) -> list[list[str]]:
            return [sorted(t["value"] for t in r["tags"] if "partition_range" in t["key"]) for r in b["runs"]
                    if any("partition_range" in t["key"] for t in r["tags"])]

        first = wait_until(lambda: finished(1), 420, "the sensor's first backfill", 3)
        assert first[0]["status"] == "COMPLETED_SUCCESS" and ranges(first[0]) == [["000000", "000003"]]
        make_v2_dataset(sample("g1_v21"), src, 6)
        second = wait_until(lambda: finished(2), 420, "the sensor's second backfill", 3)
        newest = next(b for b in second if b["id"] != first[0]["id"])
        assert newest["status"] == "COMPLETED_SUCCESS" and ranges(newest) == [["000004", "000005"]]
    verify_output(tmp_path / "out", src, decode=False)
