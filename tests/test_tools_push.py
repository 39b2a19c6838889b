"""``push``: the real ``huggingface_hub`` client (2.x) against a recording fake of
the Hub's HTTP API (tests/fake_hub.py), offline; and the generated dataset card.

How far this goes: ``create_repo`` (dataset, private), ``create_branch``
(revision), the card's YAML validation, ``preupload`` and the single-commit
``upload_folder`` path with every file inline (``HF_HUB_DISABLE_XET``), the
token in the ``Authorization`` header, and the bytes of every committed file.
Not covered: the Hub's LFS / Xet transfer of large files and
``upload_large_folder`` (its worker pool talks to the Xet service).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from lerobot_lance.tools import ToolError, push_to_hub, read_output
from lerobot_lance.tools.hub_card import dataset_card
from tests.fake_hub import FakeHub


@pytest.fixture()
def no_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)


def test_push_uploads_the_tables_meta_and_card(converted: Callable[[str], Path], no_xet: None, monkeypatch: pytest.MonkeyPatch) -> None:
    out = converted("g1_v21")
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    with FakeHub() as hub:
        res = push_to_hub(out, "me/g1-lance", private=True, revision="curated", endpoint=hub.endpoint)
    assert hub.repos == [{"name": "g1-lance", "organization": "me", "visibility": "private", "type": "dataset"}]
    assert hub.branches == ["curated"]
    assert {r["headers"].get("authorization") or r["headers"].get("Authorization") for r in hub.requests} == {"Bearer hf_from_env"}
    [commit] = hub.commits
    assert commit["revision"] == "curated"
    files = commit["files"]
    assert sorted(files) == list(res.files)
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(files) - {"README.md"} == on_disk - {".lerobot-lance.lock", "README.md"}
    for rel in ("meta/info.json", "meta/conversion.json", "videos.lance/_versions/latest_version_hint.json"):
        if (out / rel).exists():
            assert files[rel] == (out / rel).read_bytes()
    data = [k for k in files if k.startswith("videos.lance/data/")]
    assert data and all(files[k] == (out / k).read_bytes() for k in data)
    assert res.bytes == sum(len(v) for v in files.values())
    card = files["README.md"].decode()
    assert hub.cards and hub.cards[0] == card
    front = yaml.safe_load(card.split("---\n")[1])
    assert [c["config_name"] for c in front["configs"]] == ["frames", "episodes", "videos"]
    assert front["task_categories"] == ["robotics"] and "lance" in front["tags"]
    assert "| `frames.lance` | 2316 |" in card and "### `videos.lance`" in card
    assert "| `observation_state` | `fixed_size_list<float>[26]` | Feature `observation.state`" in card


def test_card_snippets_run_on_the_output(converted: Callable[[str], Path]) -> None:
    """Every python block of the card runs, pointed at the local output instead of the Hub."""
    out = converted("g1_v21")
    card = dataset_card(read_output(out), "me/g1-lance", location=str(out))
    blocks = re.findall(r"(<!-- card-test: skip[^>]*-->\n)?```python\n(.*?)```", card, flags=re.S)
    ran = 0
    for skip, code in blocks:
        if skip:
            continue
        exec(compile(code, "<card>", "exec"), {})  # noqa: S102 - the card's own snippets
        ran += 1
    assert ran >= 4


def test_push_errors_are_located_not_tracebacks(converted: Callable[[str], Path], no_xet: None, tmp_path: Path) -> None:
    out = converted("g1_v21")
    with pytest.raises(ToolError, match="expected owner/name"):
        push_to_hub(out, "no-namespace")
    with pytest.raises(ToolError, match="not an output of lerobot-lance"):
        push_to_hub(tmp_path, "me/x")
    # nothing listens there: the client's connection error becomes a located ToolError
    with pytest.raises(ToolError, match=r"-> me/x@main: the Hub refused or could not be reached"):
        push_to_hub(out, "me/x", endpoint="http://127.0.0.1:9", token="hf_x")


def test_cli_push_prints_what_it_uploaded(converted: Callable[[str], Path], no_xet: None, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    import huggingface_hub.constants

    from lerobot_lance.cli import main

    out = converted("g1_v21")
    with FakeHub() as hub:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.endpoint)
        assert main(["push", str(out), "me/cli", "--token", "hf_cli", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["repo_id"] == "me/cli" and doc["revision"] == "main" and "README.md" in doc["files"]
    assert hub.repos[0]["visibility"] == "public" and hub.commits[0]["revision"] == "main"
