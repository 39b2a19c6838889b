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
