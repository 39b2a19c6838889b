"""What the Dagster UI shows of the definitions: every asset check described by
its rule (lerobot_lance/quality/descriptions.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lerobot_lance.quality.descriptions import RULE_DESCRIPTIONS, check_description
from pipelines.config import DatasetConfig
from pipelines.definitions import build_definitions


def _check_specs(tmp_path: Path) -> list[tuple[str, object]]:
    cfg = DatasetConfig(name="g1", source=str(tmp_path / "src"), output=str(tmp_path / "out"))
    repo = build_definitions([cfg]).get_repository_def()
    return [(key.path[-1], spec) for key, ad in repo.assets_defs_by_key.items() for spec in ad.check_specs]


def test_every_asset_check_is_described_by_its_rule(tmp_path: Path) -> None:
    specs = _check_specs(tmp_path)
    assert len(specs) >= 40  # every rule of every stage, not an empty graph
    for asset, spec in specs:
        assert spec.name in RULE_DESCRIPTIONS, f"{asset}/{spec.name}: no entry in RULE_DESCRIPTIONS"
        rule = RULE_DESCRIPTIONS[spec.name].strip()
        assert rule, f"{asset}/{spec.name}: empty rule description"
        assert spec.description == check_description(spec.name, blocking=spec.blocking), (asset, spec.name)
        assert rule.rstrip(".")[1:] in spec.description  # the rule's own words, not a generic text
        # what fails it: a blocking check stops its downstream assets, a WARN one does not
        assert ("stops what depends on it" in spec.description) == spec.blocking, (asset, spec.name, spec.description)
        assert "\n" not in spec.description  # one line


def test_descriptions_differ_per_rule(tmp_path: Path) -> None:
    by_name = {spec.name: spec.description for _, spec in _check_specs(tmp_path)}
    assert len(set(by_name.values())) == len(by_name)


def test_a_rule_without_a_description_is_named() -> None:
    with pytest.raises(KeyError, match="no_such_rule"):
        check_description("no_such_rule", blocking=True)


def _events(instance: object, kind: str, key: list[str]) -> list[object]:
    from dagster import AssetKey, DagsterEventType, EventRecordsFilter

    return list(instance.get_event_records(EventRecordsFilter(getattr(DagsterEventType, kind), asset_key=AssetKey(key))))  # type: ignore[attr-defined]


def test_a_failed_episode_partition_carries_its_located_reason(tmp_path: Path) -> None:
    """One batch run of the 6-episode sample with a NaN in episode 2's action:
    every partition of the range is materialized, and episode 2's partition
    (only it) gets an observation, logged after the materialization, whose
    metadata holds the located reason the partition page then shows."""
    from dagster import instance_for_test

    from tests.faults import make_fault
    from tests.helpers_dagster import run_conversion_jobs

    fault = make_fault("nan_in_action", tmp_path / "src")
    cfg = DatasetConfig(name="g1", source=str(tmp_path / "src"), output=str(tmp_path / "out"), options={"backfill_batch_size": 100})
    with instance_for_test() as instance:
        log = run_conversion_jobs(build_definitions([cfg]), cfg, instance, publish=False)
        assert [ok for *_, ok in log.runs] == [True, False]  # the blocking checks of episode_frames failed the batch run
        obs = _events(instance, "ASSET_OBSERVATION", ["g1", "episode_frames"])
        assert [o.partition_key for o in obs] == ["000002"]
        md = obs[0].event_log_entry.asset_observation.metadata
        assert md["status"].value == "failed" and md["episode_index"].value == 2
        reason = md["failure_reason"].value
        assert "episode 2" in reason and "no_nan_inf" in reason and fault.file in reason, reason
        mats = {m.partition_key: m.timestamp for m in _events(instance, "ASSET_MATERIALIZATION", ["g1", "episode_frames"])}
        assert sorted(mats) == [f"{i:06d}" for i in range(6)]
        assert obs[0].timestamp > mats["000002"]  # after it: shown as the partition's latest metadata


def test_lance_dataset_metadata_has_url_versions_bytes_and_snippet(tmp_path: Path) -> None:
    import json
    import os

    from dagster import instance_for_test

    from tests.conftest import sample
    from tests.helpers_dagster import run_conversion_jobs

    out = tmp_path / "out"
    cfg = DatasetConfig(name="g1", source=str(sample("g1_multicam_v30")), output=str(out))
    with instance_for_test() as instance:
        log = run_conversion_jobs(build_definitions([cfg]), cfg, instance)
        assert all(ok for *_, ok in log.runs), log.runs
        (mat,) = _events(instance, "ASSET_MATERIALIZATION", ["g1", "lance_dataset"])
        md = mat.event_log_entry.asset_materialization.metadata
    tag = json.loads((out / "meta" / "conversion.json").read_text())["tag"]
    assert md["output_url"].value == out.resolve().as_uri() and md["output"].path == str(out)
    assert md["tag"].value == tag and tag in md["open_with"].value
    import lance

    for t in ("frames", "episodes", "videos"):
        ds = lance.dataset(str(out / f"{t}.lance"), version=tag)
        assert md["versions"].value[t] == ds.version
        assert md["table_latest_versions"].value[t] == lance.dataset(str(out / f"{t}.lance")).version
        on_disk = sum(os.path.getsize(Path(d) / f) for d, _, fs in os.walk(out / f"{t}.lance") for f in fs)
        # the tagged version's files: most of the directory (one conversion), never more than it
        assert 0.5 * on_disk < md["table_bytes"].value[t] <= on_disk, (t, md["table_bytes"].value[t], on_disk)
        assert f"| {t} | {ds.count_rows():,} | {ds.version} |" in md["tables"].value
    assert md["rows"].value == {"frames": 736, "episodes": 2, "videos": 2}
