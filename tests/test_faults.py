"""The fault suite (tests/faults.py) against the quality rules and the conversion.

* Every fault variant is caught by ``doctor`` under the right check, naming the
  defective file and episode; the clean samples pass every blocking check.
* The generator really produces the defect it claims (container packets,
  codecs, sizes) and never touches the shared samples.
* One fault per stage, converted over a published clean conversion: the
  conversion fails naming the check, the published tables stay as they were,
  and per-episode faults can be published around with ``exclude_failed_episodes``.

Variants and conversions are built once per session (``tmp_path_factory``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import lance
import pytest

from lerobot_lance.formats import TABLE_NAMES
from tests.faults import (
    EPISODE_LENGTHS,
    FAULTS,
    FAULTS_BY_KIND,
    SHARED,
    TOTAL_FRAMES,
    Fault,
    make_fault,
    v2_data,
    v2_video,
    v3_shard,
)

CLEAN_SAMPLES = ("g1_v20", "g1_v21", "g1_v30", "g1_multicam_v30", "g1_image_v30", "g1_v30_h264_gop30")

#: sha256 of the shared mp4s, from ../shared/datasets/README.md.
SHARED_MP4_SHA256 = {
    "g1_v21/" + v2_video(0): "11b52f7349c80f45d7ffedf65e4924a0fe43a272fb2df0c3d2f31fe798e1b1c1",
    "g1_v21/" + v2_video(1): "0de5519d74dfb2a369dd63e9dcb1bed9ca53613657e2f11393b25fa5e04fed00",
    "g1_v21/" + v2_video(2): "1038f5505077a6ca876da7450e77a19a2f8164c01e9e3457d2a05190bdcb65be",
    "g1_v21/" + v2_video(3): "e7d0fa9e5ab0bff0e7d8cd2980f854454deb22580cc13830bcc0ea09f1b7c23f",
    "g1_v21/" + v2_video(4): "f1382ad28482e4b7885967354bce1e84f9fdb5788922773fbdc63f5075ab2b6c",
    "g1_v21/" + v2_video(5): "7b035061d01356bccad46c0f3708e6eec7ee7be4b6e2a32e81fb045d85c958d5",
    "g1_v30/" + v3_shard(0): "6b9b7d597bcb2125a85648d18e82b0c68bd63b6a9098a443cb90395909ddf72c",
    "g1_v30/" + v3_shard(1): "c5cd8d4108db6cf7b8d07aa63cecf1f2014f195398d598922ae7cab9d57254db",
    "g1_v30/" + v3_shard(2): "740afe8cc2cc668393a5fb41488e9aa783d634998baf40be6d0a1a95f66dce2f",
}

#: One fault per stage for the conversion tests, and which of them are per-episode.
CONVERT_FAULTS = (
    "info_v40", "episodes_gap",                        # source_meta
    "missing_video", "truncated_mp4", "wrong_resolution",  # source files
    "nan_in_action", "duplicated_frame", "index_gap",  # episode rows
    "null_task_index", "action_float64_lossy",
    "window_short_of_length",                          # episode video
)
#: A conversion meets some file faults at a per-episode gate first: the episode
#: runs come before the publish job, whose source_videos asset runs the file
#: rules. The episode's partition fails there, naming the same file.
CONVERT_CHECK = {"missing_video": "segment_frame_count", "truncated_mp4": "segment_frame_count"}
PER_EPISODE_STAGES = ("episode_frames", "episode_videos")


# --------------------------------------------------------------------------- #
# Fixtures: variants, doctor results and clean conversions, once per session
# --------------------------------------------------------------------------- #


def _digests(bases: set[str]) -> dict[str, str]:
    return {
        str(p.relative_to(SHARED)): hashlib.sha256(p.read_bytes()).hexdigest()
        for base in sorted(bases)
        for p in sorted((SHARED / base).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def shared_digests() -> dict[str, str]:
    """sha256 of every file of the samples the faults copy, before any variant is built."""
    return _digests({f.base for f in FAULTS})


@pytest.fixture(scope="session")
def variant(tmp_path_factory: pytest.TempPathFactory, shared_digests: dict[str, str]) -> Callable[[str], Path]:
    """``variant(kind)`` -> root of the corrupted copy (built on first use)."""
    root = tmp_path_factory.mktemp("faults")
    built: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in built:
            make_fault(kind, root / kind)
            built[kind] = root / kind
        return built[kind]

    return get


@pytest.fixture(scope="session")
def doctor_of(variant: Callable[[str], Path]) -> Callable[[str], list[Any]]:
    from lerobot_lance.quality.doctor import run_doctor

    cache: dict[str, list[Any]] = {}

    def get(kind: str) -> list[Any]:
        if kind not in cache:
            cache[kind] = run_doctor(str(variant(kind)))
        return cache[kind]

    return get


@pytest.fixture(scope="session")
def clean_output(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``clean_output(base)`` -> a published clean conversion of a shared sample
    (converted once; tests work on copies of it)."""
    from lerobot_lance import convert

    root = tmp_path_factory.mktemp("clean")
    done: dict[str, Path] = {}

    def get(base: str) -> Path:
        if base not in done:
            out = root / base
            summary = convert(str(SHARED / base), str(out))
            assert summary.rows["frames"] == TOTAL_FRAMES and summary.tag
            done[base] = out
        return done[base]

    return get


def _rel_ok(fault: Fault, offender_file: str | None) -> bool:
    return offender_file is not None and fault.file is not None and (
        offender_file == fault.file or offender_file.endswith(fault.file)
    )


# --------------------------------------------------------------------------- #
# The generator itself
# --------------------------------------------------------------------------- #


def test_catalogue() -> None:
    kinds = [f.kind for f in FAULTS]
    assert len(kinds) == len(set(kinds)) >= 26
    assert {f.stage for f in FAULTS} == {"source_meta", "source_files", "episode_frames", "episode_videos"}
    for f in FAULTS:
        assert (SHARED / f.base).is_dir(), f.base
        assert f.file and not f.file.startswith("/"), f.kind
        if f.stage in PER_EPISODE_STAGES:
            assert f.episode_index is not None, f.kind


def _packets(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams.video[0]) if p.size)


def _stream(path: Path) -> tuple[str, int, int, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.name, s.width, s.height, sum(1 for p in c.demux(s) if p.size)


def test_video_variants_are_defective(variant: Callable[[str], Path]) -> None:
    ep2 = v2_video(2)
    assert _packets(SHARED / "g1_v21" / ep2) == 357
    assert _packets(variant("video_short_of_frames") / ep2) == 337
    assert _packets(SHARED / "g1_v30" / v3_shard(1)) == 725
    assert _packets(variant("shard_short_of_frames") / v3_shard(1)) == 705
    assert _stream(variant("wrong_resolution") / ep2) == ("libdav1d", 320, 240, 357)
    with pytest.raises(av.error.FFmpegError):
        av.open(str(variant("truncated_mp4") / ep2)).close()
    assert (variant("zero_byte_video") / ep2).stat().st_size == 0
    assert not (variant("missing_video") / ep2).exists()
    assert (variant("video_wrong_folder") / "videos/chunk-000/cam_high/episode_000002.mp4").is_file()


def test_frame_variants_are_defective(variant: Callable[[str], Path]) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401 - pa.compute
    import pyarrow.parquet as pq

    def table(kind: str) -> Any:
        return pq.read_table(variant(kind) / v2_data(2))

    assert np.isnan(np.array(table("nan_in_action")["action"].to_pylist())).sum() == 1
    assert np.isinf(np.array(table("inf_in_state")["observation.state"].to_pylist())).sum() == 1
    assert {len(v) for v in table("wrong_vector_width")["action"].to_pylist()} == {25}
    assert table("duplicated_frame").num_rows == 358
    fi = table("frame_index_gap")["frame_index"].to_pylist()
    assert len(fi) == 357 and 200 not in fi and fi[-1] == 357
    assert table("wrong_episode_index")["episode_index"].to_pylist().count(3) == 10
    assert table("index_gap")["index"].to_pylist()[0] == 393 + 343 + 7
    assert table("null_task_index")["task_index"].null_count == 1
    lossy = np.array(table("action_float64_lossy")["action"].to_pylist())
    assert lossy.dtype == np.float64 and (lossy.astype(np.float32).astype(np.float64) != lossy).sum() == 1
    shard = pq.read_table(variant("null_in_action_vector_v30") / "data/chunk-000/file-000.parquet")
    assert pa.compute.list_flatten(shard["action"]).null_count == 1


def test_shared_samples_untouched(variant: Callable[[str], Path], shared_digests: dict[str, str]) -> None:
    for f in FAULTS:  # build everything: a write through a hard link would show below
        variant(f.kind)
    for rel, digest in SHARED_MP4_SHA256.items():
        assert shared_digests[rel] == digest, rel
    assert _digests({f.base for f in FAULTS}) == shared_digests


# --------------------------------------------------------------------------- #
# doctor
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("kind", [f.kind for f in FAULTS])
def test_doctor_catches_fault(kind: str, doctor_of: Callable[[str], list[Any]]) -> None:
    from lerobot_lance.quality.doctor import exit_code

    fault = FAULTS_BY_KIND[kind]
    outcomes = doctor_of(kind)
    failed = {o.name: o.message for o in outcomes if not o.passed}
    named = [o for o in outcomes if o.name == fault.check]
    assert named, f"no outcome named {fault.check}; failed: {failed}"
    o = named[0]
    assert not o.passed, f"{fault.check} passed on {kind} ({fault.description}); failed: {failed}"
    assert o.severity == "ERROR"
    assert any(_rel_ok(fault, off.file) for off in o.offenders) or fault.file in o.message, (
        f"{fault.check} does not name {fault.file}: {o.message}"
    )
    if fault.episode_index is not None:
        assert fault.episode_index in {off.episode_index for off in o.offenders}, (
            f"{fault.check} does not name episode {fault.episode_index}: {o.message}"
        )
    assert exit_code(outcomes) >= 1


@pytest.mark.parametrize("name", CLEAN_SAMPLES)
def test_doctor_passes_clean_samples(name: str) -> None:
    from lerobot_lance.quality.doctor import exit_code, run_doctor

    outcomes = run_doctor(str(SHARED / name))
    failed = {o.name: o.message for o in outcomes if not o.passed and o.severity == "ERROR"}
    assert failed == {}
    assert exit_code(outcomes) == 0
    names = {o.name for o in outcomes}
    assert {"supported_version", "files_exist", "no_nan_inf", "segment_frame_count"} <= names


# --------------------------------------------------------------------------- #
# Conversion over a published clean output
# --------------------------------------------------------------------------- #


def _published(out: Path) -> dict[str, Any]:
    """What a reader sees: per table its version, rows and tags (name -> version),
    read back in full to prove the tables readable; plus conversion.json's tag."""
    state: dict[str, Any] = {}
    for t in TABLE_NAMES:
        ds = lance.dataset(str(out / f"{t}.lance"))
        rows = ds.to_table().num_rows
        assert rows == ds.count_rows()
        state[t] = (ds.version, rows, {k: v["version"] for k, v in ds.tags.list().items()})
    state["tag"] = json.loads((out / "meta" / "conversion.json").read_text())["tag"]
    return state


@pytest.mark.parametrize("kind", CONVERT_FAULTS)
def test_conversion_refuses_fault(
    kind: str, variant: Callable[[str], Path], clean_output: Callable[[str], Path], tmp_path: Path
) -> None:
    from lerobot_lance import convert
    from pipelines.runner import ConversionFailed

    fault = FAULTS_BY_KIND[kind]
    out = tmp_path / "out"
    shutil.copytree(clean_output(fault.base), out)
    before = _published(out)
    assert before["frames"][1] == TOTAL_FRAMES

    with pytest.raises(ConversionFailed) as err:
        convert(str(variant(kind)), str(out), overwrite=True)
    text = "\n".join(err.value.failures)
    assert f"/ {CONVERT_CHECK.get(kind, fault.check)}:" in text, text
    if fault.file is not None and fault.stage != "source_meta":
        assert fault.file in text, text
    assert _published(out) == before

    if fault.stage not in PER_EPISODE_STAGES and kind not in CONVERT_CHECK:
        return
    ep = fault.episode_index
    assert ep is not None
    summary = convert(str(variant(kind)), str(out), overwrite=True, exclude_failed_episodes=True)
    kept = [n for i, n in enumerate(EPISODE_LENGTHS) if i != ep]
    assert summary.rows["frames"] == TOTAL_FRAMES - EPISODE_LENGTHS[ep] == sum(kept)
    after = _published(out)
    assert after["frames"][1] == TOTAL_FRAMES - EPISODE_LENGTHS[ep]
    assert after["frames"][0] > before["frames"][0] and summary.tag == after["tag"] != before["tag"]
    episodes = lance.dataset(str(out / "episodes.lance")).to_table(columns=["episode_index", "length"]).sort_by("episode_index")
    assert episodes["episode_index"].to_pylist() == [i for i in range(6) if i != ep]
    assert episodes["length"].to_pylist() == kept
    frames_eps = set(lance.dataset(str(out / "frames.lance")).to_table(columns=["episode_index"])["episode_index"].to_pylist())
    assert frames_eps == set(range(6)) - {ep}
    conv = json.loads((out / "meta" / "conversion.json").read_text())
    assert list(conv["excluded_episodes"]) == [str(ep)]
    assert fault.file in conv["excluded_episodes"][str(ep)], conv["excluded_episodes"]  # the reason names the file
    assert conv["episodes"] == [i for i in range(6) if i != ep]
