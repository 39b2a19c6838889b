"""Malformed metadata (issue 8, items 14-16) through ``doctor`` and the readers.

* ``lerobot-lance doctor`` on every variant of ``tests/faults_malformed.py``
  and on the WARN variants below: no traceback, exit code = failed checks,
  the named check fails with a located message.
* The WARN rules (``tasks_unique``, ``feature_names_match_shape``,
  ``declared_stats_match_features``) name the file, the episode, expected
  and found, and do not count in the exit code.
* The readers collect every malformed row and raise once, located.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from lerobot_lance.cli import main as cli
from lerobot_lance.errors import MetadataErrors, SourceDataError, UnsupportedFormatError
from lerobot_lance.readers import read_dataset_meta
from tests.faults import FAULTS, INFO, V2_EPISODES, V2_TASKS, copy_sample, edit_info, make_fault, read_jsonl, write_bytes, write_jsonl

MALFORMED = [f for f in FAULTS if f.kind in Path(__file__).with_name("faults_malformed.py").read_text()]
EPISODES_STATS = "meta/episodes_stats.jsonl"


def _duplicate_task_strings(root: Path) -> None:
    rows = read_jsonl(root / V2_TASKS)
    write_jsonl(root / V2_TASKS, [*rows, {"task_index": 1, "task": rows[0]["task"]}])
    edit_info(root, lambda i: i.update(total_tasks=2))


def _names_shape_mismatch(root: Path) -> None:
    def edit(info: dict) -> None:
        names = info["features"]["action"]["names"]
        assert len(names) == 1 and len(names[0]) == 26  # the sample nests its 26 joint names in one list
        info["features"]["action"]["names"] = [names[0][:25]]

    edit_info(root, edit)


def _episodes_stats_wrong_width(root: Path) -> None:
    rows = read_jsonl(root / EPISODES_STATS)
    rows[2]["stats"]["action"]["min"] = rows[2]["stats"]["action"]["min"][:25]
    write_jsonl(root / EPISODES_STATS, rows)


#: kind -> (builder, WARN rule, file named, episode named)
WARN_VARIANTS: dict[str, tuple[Callable[[Path], None], str, str, int | None]] = {
    "duplicate_task_strings": (_duplicate_task_strings, "tasks_unique", V2_TASKS, None),
    "names_shape_mismatch": (_names_shape_mismatch, "feature_names_match_shape", "meta/info.json (features.action)", None),
    "episodes_stats_wrong_width": (_episodes_stats_wrong_width, "declared_stats_match_features", EPISODES_STATS, 2),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    root = tmp_path_factory.mktemp("malformed")
    done: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in done:
            if kind in WARN_VARIANTS:
                copy_sample("g1_v21", root / kind)
                WARN_VARIANTS[kind][0](root / kind)
            else:
                make_fault(kind, root / kind)
            done[kind] = root / kind
        return done[kind]

    return get


def _doctor_cli(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = cli(["doctor", str(path)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("kind", [f.kind for f in MALFORMED])
def test_doctor_cli_refuses_malformed_meta_without_traceback(kind: str, built: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    fault = next(f for f in MALFORMED if f.kind == kind)
    rc, out, err = _doctor_cli(built(kind), capsys)
    assert "Traceback" not in out + err and not err, err
    failed = re.findall(r"^FAIL \S+/(\S+):", out, re.M)
    assert rc == len(failed) >= 1, out
    assert fault.check in failed, out
    line = next(x for x in out.splitlines() if x.startswith(f"FAIL source_meta/{fault.check}:"))
    assert fault.file in line, line
    if fault.episode_index is not None:
        assert f"(episode {fault.episode_index})" in line, line


@pytest.mark.parametrize("kind", list(WARN_VARIANTS))
def test_warn_rules_locate_and_do_not_block(kind: str, built: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, rule, file, ep = WARN_VARIANTS[kind]
    rc, out, err = _doctor_cli(built(kind), capsys)
    assert "Traceback" not in out + err, err
    assert rc == 0 and "FAIL" not in out, out
    line = next(x for x in out.splitlines() if f"/{rule}:" in x)
    assert line.startswith(f"WARN source_meta/{rule}: 1 problem(s): {file}"), line
    if ep is not None:
        assert f"(episode {ep})" in line, line

    from lerobot_lance.quality import check_source_meta

    o = next(o for o in check_source_meta(built(kind)) if o.name == rule)
    assert o.severity == "WARN" and not o.passed and o.n_offenders == 1
    off = o.offenders[0]
    assert off.expected is not None and off.found is not None
    if kind == "duplicate_task_strings":
        assert off.found == [0, 1] and "Pick up the yellow bottle" in off.detail
    elif kind == "names_shape_mismatch":
        assert off.expected == "26 names (shape [26])" and off.found == "25 names"
    else:
        assert off.episode_index == 2 and off.detail == "action/min has 25 value(s)" and off.found == 25


def test_clean_samples_pass_the_warn_rules(shared: Path) -> None:
    from lerobot_lance.quality import check_source_meta

    for name in ("g1_v20", "g1_v21", "g1_v30", "g1_image_v30", "g1_multicam_v30"):
        got = {o.name: o for o in check_source_meta(shared / name)}
        for rule in ("tasks_unique", "feature_names_match_shape", "declared_stats_match_features"):
            assert got[rule].passed and not got[rule].skipped, (name, got[rule].message)


def test_reader_collects_every_malformed_row(tmp_path: Path) -> None:
    root = copy_sample("g1_v21", tmp_path / "ds")
    rows = read_jsonl(root / V2_EPISODES)
    rows[1]["length"] = "343"
    rows[4]["episode_index"] = True
    write_jsonl(root / V2_EPISODES, rows)
    write_jsonl(root / V2_TASKS, [{"task_index": 0.5, "task": "x"}])
    with pytest.raises(MetadataErrors) as err:
        read_dataset_meta(root)
    got = [(e.path, e.detail, e.found) for e in err.value.errors]
    assert (V2_EPISODES, "line 2: length missing or not an integer >= 1", "'343'") in got
    assert (V2_EPISODES, "line 5 has an episode_index that is not an integer >= 0", "True") in got
    assert (V2_TASKS, "line 1 has a task_index that is not an integer >= 0", "0.5") in got
    assert isinstance(err.value, SourceDataError) and str(err.value).count("meta/") >= 3


@pytest.mark.parametrize(
    "edit, found",
    [
        (lambda i: i.update(fps=29.97), "'fps' must be a whole number of frames per second"),
        (lambda i: i.update(chunks_size=0), "'chunks_size' must be a positive integer"),
        (lambda i: i["features"]["action"].update(info=["x"]), "feature 'action' has an 'info' that is not an object"),
    ],
)
def test_reader_refuses_bad_info_values(tmp_path: Path, edit: Callable[[dict], None], found: str) -> None:
    root = copy_sample("g1_v21", tmp_path / "ds")
    edit_info(root, edit)
    with pytest.raises(MetadataErrors) as err:
        read_dataset_meta(root)
    assert err.value.path == INFO and found in str(err.value)


def test_reader_names_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    root = copy_sample("g1_v21", tmp_path / "ds")
    write_bytes(root / V2_TASKS, b'{"task_index": 0, "task": "caf\xe9"}\n')
    with pytest.raises(MetadataErrors) as err:
        read_dataset_meta(root)
    assert str(err.value) == f"{V2_TASKS}: not UTF-8 text (line 1, byte offset 30); expected UTF-8 JSON (RFC 8259), found byte 0xe9"
    info = json.loads((root / INFO).read_text())
    write_bytes(root / INFO, json.dumps(info).replace('"v2.1"', '"v2.1\\u00e9"').encode("utf-8").replace(b"\\u00e9", b"\xe9"))
    with pytest.raises(UnsupportedFormatError, match="not UTF-8 text"):
        read_dataset_meta(root)
