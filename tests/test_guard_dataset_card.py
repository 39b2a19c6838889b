"""The dataset card at the output root: Hugging Face ``datasets`` loads each table through its ``configs:``.

``datasets`` is not a dependency of the project: the loading test runs where
it is importable, or with ``LEROBOT_LANCE_DATASETS_PYTHON`` naming an
interpreter that has ``datasets`` and ``pylance`` (checked with datasets 5.2.0,
pylance 14.0.2 in a throwaway venv), and is skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lerobot_lance.formats import TABLE_NAMES
from lerobot_lance.output_root import CARD_NAME, write_dataset_card
from tests.conftest import sample


def _card_yaml(root: Path) -> dict:
    text = (root / CARD_NAME).read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_card_names_one_config_per_table(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    write_dataset_card(tmp_path / "out", "acme/g1", TABLE_NAMES)
    configs = _card_yaml(tmp_path / "out")["configs"]
    assert [c["config_name"] for c in configs] == list(TABLE_NAMES)
    assert [c["data_files"] for c in configs] == [[{"split": "train", "path": f"{t}.lance/**"}] for t in TABLE_NAMES]
    assert [c.get("default", False) for c in configs] == [True, False, False]
    assert "acme/g1" in (tmp_path / "out" / CARD_NAME).read_text()


def test_publish_writes_the_card_of_the_tables_it_published(converted) -> None:
    out = converted("g1_multicam_v30")  # card layout: frames, episodes, videos
    configs = _card_yaml(out)["configs"]
    assert [c["config_name"] for c in configs] == list(TABLE_NAMES)


def test_card_of_the_user_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / CARD_NAME).write_text("mine")
    assert write_dataset_card(out, "acme/g1", TABLE_NAMES) is None
    assert (out / CARD_NAME).read_text() == "mine"


_LOAD = """
import json, sys, datasets
out = sys.argv[1]
frames = datasets.load_dataset(out, split="train")
episodes = datasets.load_dataset(out, "episodes", columns=["episode_index", "length"], split="train")
one = datasets.load_dataset("lance", data_dir=out + "/frames.lance", split="train")
print(json.dumps({"frames": frames.num_rows, "columns": frames.column_names, "first": frames[0]["frame_index"],
                  "episodes": episodes.to_dict(), "one": one.num_rows}))
"""


def test_datasets_loads_the_tables(converted, tmp_path: Path) -> None:
    python = os.environ.get("LEROBOT_LANCE_DATASETS_PYTHON")
    if python is None:
        if importlib.util.find_spec("datasets") is None:
            pytest.skip("datasets is not installed (set LEROBOT_LANCE_DATASETS_PYTHON to an interpreter that has it)")
        python = sys.executable
    out = converted("g1_multicam_v30")
    env = {**os.environ, "HF_DATASETS_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([python, "-c", _LOAD, str(out)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["frames"] == got["one"] == 736 and got["first"] == 0
    assert {"observation_state", "action", "episode_index", "frame_index"} <= set(got["columns"])
    assert got["episodes"] == {"episode_index": [0, 1], "length": [393, 343]}
    assert sample("g1_multicam_v30").is_dir()
