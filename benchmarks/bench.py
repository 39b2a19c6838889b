"""Benchmark: wall time and peak memory of converting the shared samples and a
300-episode dataset through the Dagster graph (in-process, like the CLI).

    python benchmarks/bench.py                     # every shared sample + 300 episodes
    python benchmarks/bench.py --samples g1_v30    # one sample
    python benchmarks/bench.py --big-only --repeat 50
    python benchmarks/bench.py --graphql-backfill 300  # UI/daemon path: runs, wall time, overhead per episode
    python benchmarks/bench.py --celery-backfill 300 --workers 2 --batch 50  # Celery executor vs in-process
    python benchmarks/bench.py --ui-sample         # the bundled sample materialized from the UI (GraphQL launch)
    python benchmarks/bench.py --ui-sample --ui-repeat 5 --ui-no-backfill  # reconvert runs only: timeline medians
    python benchmarks/bench.py --lerobot-vs-peer   # --layout lerobot beside lerobot-lancedb's converter
    python benchmarks/bench.py --peer --pairs 3    # paired runs (A B A B) of both layouts against the peer, 300 episodes
    python benchmarks/bench.py --peer --rss-sample # ... with each peak's anon/file split and time (50 ms samples)
    python benchmarks/bench.py --scale 25,50,100   # linearity: s/episode and peak RSS at 150/300/600 episodes
    python benchmarks/bench.py --ab /tmp/base --pairs 3  # before/after: another checkout (A) vs this one (B), A B A B

``--peer`` runs, on the 300-episode v3.0 dataset (``--repeat`` sets its
size), ``--pairs`` rounds of: our ``convert`` (card layout), the peer's
converter, our ``convert --layout lerobot``, the peer's converter again, each
a whole fresh process, back to back; it prints the median of wall, CPU
(user + sys of the child, ``RUSAGE_CHILDREN`` deltas) and peak RSS of each,
the fragments per table, the output bytes per source byte, and the ratio of
ours to the peer's run beside it, pair by pair. Without the peer's venv it
says so and measures ours alone.

``--lerobot-vs-peer`` converts the same v3.0 sources (``g1_v30``, and the
300-episode dataset converted to v3.0 by LeRobot's own
``convert_dataset_v21_to_v30``) with ``--layout lerobot`` and with
lerobot-lancedb 0.3.1's ``lerobot-lance-convert`` (the peer venv:
``$LEROBOT_LANCE_PEER_PYTHON``, default ``/work/peer-venv/bin/python``),
printing wall, CPU and peak RSS of each, the bytes of each output per source
byte (and of the card layout's), and the read side: items/s of
``LanceDBDataset`` over both outputs (``benchmarks/lerobot_read_bench.py``).

Each conversion runs in a fresh subprocess (``/usr/bin/time``-style: wall
clock and ``ru_maxrss`` of the child), so figures include interpreter start
and imports, as a user's shell command would. It prints a table; nothing is
asserted (speed and memory targets are figures, not tests).

The 300-episode dataset is built from ``g1_v21`` by repeating its six episodes
50 times (115,800 frames, ~1.1 GB of mp4): parquet rows rewritten with new
``episode_index``/``index``, mp4s hard-linked, metadata regenerated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"
if not SHARED.is_dir():  # a clone or worktree elsewhere (as tests/conftest.py)
    SHARED = Path(os.environ.get("LEROBOT_LANCE_SHARED", "/work/shared/datasets"))
SAMPLES = ("g1_v20", "g1_v21", "g1_v30", "g1_v30_h264_gop30", "g1_image_v30", "g1_multicam_v30")


def build_repeated_v21(dst: Path, repeat: int = 50, src: Path = SHARED / "g1_v21") -> Path:
    """A v2.1 dataset of ``6 * repeat`` episodes made by repeating ``src``'s episodes."""
    if (dst / "meta" / "info.json").exists():
        return dst
    info = json.loads((src / "meta" / "info.json").read_text())
    episodes = [json.loads(line) for line in (src / "meta" / "episodes.jsonl").read_text().splitlines() if line.strip()]
    stats = [json.loads(line) for line in (src / "meta" / "episodes_stats.jsonl").read_text().splitlines() if line.strip()]
    n_src = len(episodes)
    chunks_size = info["chunks_size"]
    (dst / "meta").mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "meta" / "tasks.jsonl", dst / "meta" / "tasks.jsonl")
    index = 0
    ep_lines, stat_lines = [], []
    video_key = next(k for k, f in info["features"].items() if f["dtype"] == "video")
    for new in range(n_src * repeat):
        old = new % n_src
        chunk = new // chunks_size
        t = pq.read_table(src / info["data_path"].format(episode_chunk=0, episode_index=old))
        n = t.num_rows
        t = t.set_column(t.schema.get_field_index("episode_index"), "episode_index", pa.array([new] * n, pa.int64()))
        t = t.set_column(t.schema.get_field_index("index"), "index", pc.add(pa.array(range(n), pa.int64()), index))
        data_path = dst / info["data_path"].format(episode_chunk=chunk, episode_index=new)
        data_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, data_path)
        vsrc = src / info["video_path"].format(episode_chunk=0, video_key=video_key, episode_index=old)
        vdst = dst / info["video_path"].format(episode_chunk=chunk, video_key=video_key, episode_index=new)
        vdst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(vsrc, vdst)
        except OSError:
            shutil.copy(vsrc, vdst)
        ep_lines.append(json.dumps({**episodes[old], "episode_index": new}))
        s = json.loads(json.dumps(stats[old]))
        s["episode_index"] = new
        for key, lo, hi in (("episode_index", new, new), ("index", index, index + n - 1)):
            s["stats"][key].update(min=[lo], max=[hi], mean=[(lo + hi) / 2])
        stat_lines.append(json.dumps(s))
        index += n
    info.update(total_episodes=n_src * repeat, total_frames=index, total_videos=n_src * repeat,
                total_chunks=(n_src * repeat - 1) // chunks_size + 1, splits={"train": f"0:{n_src * repeat}"})
    (dst / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    (dst / "meta" / "episodes.jsonl").write_text("\n".join(ep_lines) + "\n")
    (dst / "meta" / "episodes_stats.jsonl").write_text("\n".join(stat_lines) + "\n")
    return dst


def _status_mb(pid: int) -> tuple[float, float, float] | None:
    """(VmRSS, RssAnon, RssFile) of a live process in MB, from ``/proc/<pid>/status``."""
    try:
        with open(f"/proc/{pid}/status") as f:
            d = {k: int(v.split()[0]) / 1024 for k, _, v in (line.partition(":") for line in f) if k in ("VmRSS", "RssAnon", "RssFile")}
    except (OSError, ValueError):
        return None
    return (d["VmRSS"], d["RssAnon"], d["RssFile"]) if len(d) == 3 else None


def measure(source: Path, out: Path, extra: list[str] | None = None, rss_sample: bool = False) -> dict[str, float]:
    """Convert in a child process through the CLI; return wall seconds and peak RSS (MB).

    ``rss_sample``: also read the child's ``/proc/<pid>/status`` every 50 ms and
    return ``rss_at_peak`` = {``rss_mb``, ``anon_mb``, ``file_mb``, ``at_s``}: the
    sampled peak split into anonymous memory and file-backed pages (page-cache
    mmaps of the source or of Lance files), and when it happened (seconds
    after the start; ``step_seconds`` say which step ran then). Linux only."""
    import threading

    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    cmd = [sys.executable, "-m", "lerobot_lance.cli", "convert", str(source), "--output", str(out), "--quiet", "--json", *(extra or [])]
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = r0.ru_maxrss
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    top: list[float] = [0.0, 0.0, 0.0, 0.0]

    def sample() -> None:
        while child.poll() is None:
            s = _status_mb(child.pid)
            if s is not None and s[0] > top[0]:
                top[:] = [*s, time.perf_counter() - t0]
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True) if rss_sample else None
    if sampler is not None:
        sampler.start()
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - t0
    if sampler is not None:
        sampler.join()
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = r1.ru_maxrss
    if child.returncode != 0:
        raise RuntimeError(f"conversion of {source} failed:\n{stderr[-3000:]}")
    summary = json.loads(stdout)
    steps = summary["step_seconds"]
    # ru_maxrss of children is the max over all children so far: report it only when it grew.
    result = {
        "wall_s": wall, "peak_rss_mb": max(peak, before) / 1024, "grew": peak > before, "runs": len(summary["runs"]),
        "cpu_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
        "stats_s": steps.get("episode_stats", 0.0) + steps.get("dataset_stats", 0.0), "steps": steps,
    }
    if rss_sample:
        result["rss_at_peak"] = dict(zip(("rss_mb", "anon_mb", "file_mb", "at_s"), top))
    return result


PEER_PYTHON = Path(os.environ.get("LEROBOT_LANCE_PEER_PYTHON", "/work/peer-venv/bin/python"))


def measure_peer(source: Path, out: Path) -> dict[str, float]:
    """Convert a v3.0 ``source`` with lerobot-lancedb's ``lerobot-lance-convert``
    (peer venv) in a child; wall and CPU seconds, peak RSS (MB)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(PEER_PYTHON.parent / "lerobot-lance-convert"), "--root", str(source), "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    t0 = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"peer conversion of {source} failed:\n{proc.stderr[-3000:]}")
    return {"wall_s": wall, "cpu_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime), "peak_rss_mb": r1.ru_maxrss / 1024}


def tree_bytes(root: Path, skip: tuple[str, ...] = ("_staging",)) -> int:
    """Bytes of the distinct files under ``root`` (hard links counted once), ``skip`` dirs left out."""
    seen, total = set(), 0
    for p in root.rglob("*"):
        if p.is_file() and not any(part in skip for part in p.relative_to(root).parts):
            st = p.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def build_v30_with_lerobot(v21: Path, dst: Path) -> Path:
    """``v21`` converted to v3.0 by LeRobot's own ``convert_dataset_v21_to_v30``
    (peer venv, in place on a hard-linked copy at ``dst``)."""
    if (dst / "meta" / "info.json").exists() and json.loads((dst / "meta" / "info.json").read_text())["codebase_version"] == "v3.0":
        return dst
    shutil.rmtree(dst, ignore_errors=True)
    shutil.rmtree(dst.with_name(dst.name + "_old"), ignore_errors=True)
    shutil.copytree(v21, dst, copy_function=os.link)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_LEROBOT_HOME": str(dst.parent / "hf_lerobot")}
    subprocess.run([str(PEER_PYTHON), "-m", "lerobot.scripts.convert_dataset_v21_to_v30", "--repo-id", f"local/{dst.name}",
                    "--root", str(dst), "--push-to-hub", "false"], env=env, check=True, capture_output=True)
    return dst


def fragments_per_table(out: Path) -> dict[str, int]:
    """Fragments of each ``*.lance`` table of an output root (its latest version)."""
    import lance

    return {p.name.removesuffix(".lance"): len(lance.dataset(str(p)).get_fragments()) for p in sorted(out.glob("*.lance"))}


def _median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def paired_vs_peer(work: Path, repeat: int, pairs: int, extra: list[str], rss_sample: bool = False) -> None:
    """``--peer``: paired runs of both layouts against the peer's converter (see module docstring)."""
    big = build_repeated_v21(work / f"g1_v21_x{repeat}", repeat)
    if PEER_PYTHON.is_file():
        src = build_v30_with_lerobot(big, work / f"g1_x{repeat}_v30")
        peer_ok = True
    else:
        print(f"!!! PEER VENV MISSING ({PEER_PYTHON}; set LEROBOT_LANCE_PEER_PYTHON): the peer side is SKIPPED, "
              f"and the source stays v2.1 ({big}) since LeRobot's v2.1 -> v3.0 converter runs in that venv")
        src, peer_ok = big, False
    src_bytes = tree_bytes(src)
    sides = {"card": ["--overwrite", *extra], "lerobot": ["--layout", "lerobot", "--overwrite", *extra]}
    runs: dict[str, list[dict]] = {"card": [], "lerobot": [], "peer": []}
    ratios: dict[str, list[tuple[float, float]]] = {"card": [], "lerobot": []}
    print(f"source: {src} ({src_bytes / 1e9:.2f} GB), {pairs} pair(s) per layout, order: card, peer, lerobot, peer, ...")
    for i in range(pairs):
        for layout, flags in sides.items():
            out = work / "out" / f"paired_{layout}"
            r = _isolated(src, out, flags, rss_sample)
            r.update(fragments=fragments_per_table(out), out_per_src=tree_bytes(out) / src_bytes)
            runs[layout].append(r)
            line = f"pair {i + 1} {layout:<8} wall {r['wall_s']:7.1f} s  CPU {r['cpu_s']:7.1f} s  RSS {r['peak_rss_mb']:6.0f} MB"
            if "rss_at_peak" in r:
                p = r["rss_at_peak"]
                line += f" (anon {p['anon_mb']:.0f} + file {p['file_mb']:.0f} at {p['at_s']:.1f} s)"
            if peer_ok:
                pout = work / "out" / "paired_peer"
                q = _isolated_peer(src, pout)
                q.update(fragments=fragments_per_table(pout), out_per_src=tree_bytes(pout) / src_bytes)
                runs["peer"].append(q)
                ratios[layout].append((r["wall_s"] / q["wall_s"], r["cpu_s"] / q["cpu_s"]))
                line += (f"  | peer wall {q['wall_s']:6.1f} s  CPU {q['cpu_s']:6.1f} s  RSS {q['peak_rss_mb']:6.0f} MB"
                         f"  | ratio wall {ratios[layout][-1][0]:.2f}  CPU {ratios[layout][-1][1]:.2f}")
            print(line, flush=True)
    print()
    print(f"{'converter':<24} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'out/src':>8}  fragments per table   (medians)")
    for name, rs in (("lerobot-lance card", runs["card"]), ("lerobot-lance lerobot", runs["lerobot"]), ("lerobot-lancedb 0.3.1", runs["peer"])):
        if not rs:
            print(f"{name:<24} SKIPPED (no peer venv)")
            continue
        frags = ", ".join(f"{t} {n}" for t, n in rs[-1]["fragments"].items())
        print(f"{name:<24} {_median([r['wall_s'] for r in rs]):>8.1f} {_median([r['cpu_s'] for r in rs]):>8.1f} "
              f"{_median([r['peak_rss_mb'] for r in rs]):>12.0f} {_median([r['out_per_src'] for r in rs]):>8.3f}  {frags}")
    for layout, rs in ratios.items():
        if rs:
            print(f"ratio {layout} / peer, pair by pair: wall {', '.join(f'{w:.2f}' for w, _ in rs)}; "
                  f"CPU {', '.join(f'{c:.2f}' for _, c in rs)}; median wall {_median([w for w, _ in rs]):.2f}, CPU {_median([c for _, c in rs]):.2f}")


def scale_runs(work: Path, repeats: list[int], extra: list[str]) -> None:
    """``--scale``: one conversion of the ``6 * repeat``-episode v2.1 dataset per
    repeat (default layout): wall, CPU, seconds per episode, peak RSS."""
    print(f"{'episodes':>8} {'wall s':>8} {'CPU s':>8} {'s/episode':>10} {'CPU s/episode':>14} {'peak RSS MB':>12}")
    peaks: dict[int, float] = {}
    for repeat in repeats:
        src = build_repeated_v21(work / f"g1_v21_x{repeat}", repeat)
        r = _isolated(src, work / "out" / f"scale_{repeat}", ["--overwrite", *extra])
        n = 6 * repeat
        peaks[n] = r["peak_rss_mb"]
        print(f"{n:>8} {r['wall_s']:>8.1f} {r['cpu_s']:>8.1f} {r['wall_s'] / n:>10.3f} {r['cpu_s'] / n:>14.3f} {r['peak_rss_mb']:>12.0f}", flush=True)
    if len(peaks) >= 2:
        lo, hi = min(peaks), max(peaks)
        print(f"RSS per episode: {(peaks[hi] - peaks[lo]) / (hi - lo):.3f} MB/episode between {lo} and {hi} episodes "
              f"({peaks[lo]:.0f} -> {peaks[hi]:.0f} MB, {100 * (peaks[hi] / peaks[lo] - 1):+.0f}%)")


def lerobot_vs_peer(work: Path, repeat: int, items: int, with_big: bool = True) -> None:
    """Print the side-by-side of ``--layout lerobot`` and the peer's converter (see module docstring)."""
    if not PEER_PYTHON.is_file():
        print(f"PEER VENV MISSING ({PEER_PYTHON}): set LEROBOT_LANCE_PEER_PYTHON; nothing measured")
        return
    sources = [("g1_v30", SHARED / "g1_v30")]
    if with_big:
        big = build_repeated_v21(work / f"g1_v21_x{repeat}", repeat)
        sources.append((f"g1_v21 x{repeat} -> v3.0 ({6 * repeat} episodes)", build_v30_with_lerobot(big, work / f"g1_x{repeat}_v30")))
    print(f"{'dataset':<34} {'converter':<22} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'out/src bytes':>14}")
    reads = []
    for name, src in sources:
        src_bytes = tree_bytes(src)
        tag = src.name
        ours = _isolated(src, work / "out" / f"{tag}_lerobot", ["--layout", "lerobot", "--overwrite"])
        peer = _isolated_peer(src, work / "out" / f"{tag}_peer")
        card = _isolated(src, work / "out" / f"{tag}_card", ["--overwrite"])
        for label, r, out in (("lerobot-lance lerobot", ours, f"{tag}_lerobot"), ("lerobot-lancedb 0.3.1", peer, f"{tag}_peer"),
                              ("lerobot-lance card", card, f"{tag}_card")):
            ratio = tree_bytes(work / "out" / out) / src_bytes
            print(f"{name:<34} {label:<22} {r['wall_s']:>8.2f} {r['cpu_s']:>8.2f} {r['peak_rss_mb']:>12.0f} {ratio:>14.3f}")
        print(f"{'':<34} wall ratio lerobot-lance / peer: {ours['wall_s'] / peer['wall_s']:.2f}")
        reads.append((name, work / "out" / f"{tag}_lerobot", work / "out" / f"{tag}_peer"))
    print()
    print(f"read side: LanceDBDataset items/s, {items} seeded random indices, delta window on the camera and the state, batch 16")
    print(f"{'dataset':<34} {'output':<22} {'workers 0':>10} {'workers 2':>10}")
    for name, ours_out, peer_out in reads:
        proc = subprocess.run([str(PEER_PYTHON), str(REPO / "benchmarks" / "lerobot_read_bench.py"), "--roots", str(ours_out), str(peer_out),
                               "--items", str(items)], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if proc.returncode != 0:
            print(f"{name:<34} read benchmark failed: {proc.stderr[-500:]}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        for label, out in (("lerobot-lance lerobot", ours_out), ("lerobot-lancedb 0.3.1", peer_out)):
            r = res[str(out)]
            print(f"{name:<34} {label:<22} {r['0']:>10.1f} {r['2']:>10.1f}")


def measure_checks(source: Path, out: Path) -> dict[str, float]:
    """Seconds of the quality rules on one sample, in this process: every
    source-side rule (what ``doctor`` runs: metadata, files, each episode's rows
    and video window, content) and the output rules on the converted tables.
    Great Expectations' import (~3 s, paid once per process) is timed apart."""
    from lerobot_lance.quality.episode_rules import _gx_batch_definition

    t0 = time.perf_counter()
    _gx_batch_definition()
    t1 = time.perf_counter()
    from lerobot_lance.quality import check_output, run_doctor
    from lerobot_lance.readers import read_dataset_meta

    outcomes = run_doctor(str(source))
    t2 = time.perf_counter()
    conv = json.loads((out / "meta" / "conversion.json").read_text())
    check_output(out, read_dataset_meta(source), source, tag=conv["tag"], episodes=conv["episodes"])
    t3 = time.perf_counter()
    failed = [o.name for o in outcomes if not o.passed and o.severity == "ERROR"]
    return {"gx_import_s": t1 - t0, "source_checks_s": t2 - t1, "output_checks_s": t3 - t2, "failed": failed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", nargs="*", default=list(SAMPLES))
    ap.add_argument("--big-only", action="store_true", help="only the repeated dataset")
    ap.add_argument("--repeat", type=int, default=50, help="repetitions of the 6 sample episodes (50 -> 300 episodes)")
    ap.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="extra CLI flags for convert")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--no-checks", dest="checks", action="store_false", help="skip timing the quality rules per sample")
    ap.add_argument("--graphql-backfill", type=int, metavar="N", default=0,
                    help="instead: backfill an N-episode dataset over GraphQL against a real webserver + daemon "
                         "and report runs, wall time and the orchestration overhead per episode")
    ap.add_argument("--ui-sample", action="store_true",
                    help="instead: the bundled sample's full materialization from the UI (webserver + daemon, GraphQL): "
                         "one <name>__reconvert run (with its timeline: queue, run worker start, steps), and an asset "
                         "backfill of every asset")
    ap.add_argument("--ui-repeat", type=int, default=2, help="launches of each kind in --ui-sample (medians printed)")
    ap.add_argument("--ui-no-backfill", action="store_true", help="--ui-sample: the reconvert runs only (no asset backfill)")
    ap.add_argument("--ui-postgres", action="store_true",
                    help="--ui-sample: deploy/dagster.yaml with its PostgreSQL storage (a throwaway local cluster) instead of SQLite")
    ap.add_argument("--batch", type=int, default=100, help="backfill_batch_size (max partitions per run) of --graphql-backfill")
    ap.add_argument("--backfill-policy", choices=("multi_run", "single_run"), default="multi_run",
                    help="options.backfill_policy of --graphql-backfill")
    ap.add_argument("--celery-backfill", type=int, metavar="N", default=0,
                    help="instead: N-episode backfill through the Celery executor vs in-process (benchmarks/distributed_bench.py)")
    ap.add_argument("--workers", type=int, default=2, help="Celery workers of --celery-backfill")
    ap.add_argument("--concurrent-runs", type=int, default=1,
                    help="episode runs of --celery-backfill's Celery part launched at the same time (1: one after another)")
    ap.add_argument("--publish-in-process", action="store_true",
                    help="--celery-backfill: the publish run in-process after the Celery episode runs (see distributed_bench.py)")
    ap.add_argument("--lerobot-vs-peer", action="store_true",
                    help="instead: --layout lerobot beside lerobot-lancedb's converter, conversion and read side")
    ap.add_argument("--read-items", type=int, default=256, help="items read per setting in --lerobot-vs-peer")
    ap.add_argument("--peer", action="store_true",
                    help="instead: paired runs (A B A B) of both layouts against lerobot-lancedb's converter on the v3.0 scale-up")
    ap.add_argument("--rss-sample", action="store_true",
                    help="--peer: sample each conversion's RSS every 50 ms; print the peak's anon/file split and when it happened")
    ap.add_argument("--pairs", type=int, default=3, help="pairs per layout in --peer")
    ap.add_argument("--scale", default="", help="instead: linearity, comma-separated repeats (25,50,100 -> 150/300/600 episodes)")
    ap.add_argument("--encodings", action="store_true", help="frames/s of image-to-video and JPEG frames (benchmarks/encodings_bench.py)")
    ap.add_argument("--ab", type=Path, metavar="CHECKOUT", default=None,
                    help="instead: paired runs (A B A B) of CHECKOUT's code (A) and this one (B) on the scale-up, "
                         "CPU/wall/RSS per run and B/A per pair (benchmarks/ab_bench.py); --pairs, --repeat, --extra")
    args = ap.parse_args()
    if args.ab:
        sys.path.insert(0, str(REPO))
        from benchmarks.ab_bench import ab_pairs

        work = args.workdir or Path(tempfile.mkdtemp(prefix="lerobot-lance-bench-"))
        ab_pairs(work, args.ab, args.repeat, args.pairs, args.extra)
        print(f"(work dir: {work})")
        return
    if args.encodings:
        from benchmarks.encodings_bench import bench_encodings

        bench_encodings()
        return
    if args.peer or args.scale:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="lerobot-lance-bench-"))
        if args.peer:
            paired_vs_peer(work, args.repeat, args.pairs, args.extra, args.rss_sample)
        if args.scale:
            scale_runs(work, [int(x) for x in args.scale.split(",") if x.strip()], args.extra)
        print(f"(work dir: {work})")
        return
    if args.lerobot_vs_peer:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="lerobot-lance-bench-"))
        lerobot_vs_peer(work, args.repeat, args.read_items, with_big=not args.samples or args.samples != ["g1_v30"])
        print(f"(work dir: {work})")
        return
    if args.celery_backfill:
        sys.path.insert(0, str(REPO))
        from benchmarks.distributed_bench import celery_backfill

        work = args.workdir or Path(tempfile.mkdtemp(prefix="lerobot-lance-bench-"))
        print(json.dumps(celery_backfill(args.celery_backfill, args.workers, args.batch, work, args.concurrent_runs,
                                                    args.publish_in_process), indent=2))
        print(f"(work dir: {work})")
        return
    if args.graphql_backfill:
        sys.path.insert(0, str(REPO))
        from tests.helpers_dagster import bench_backfill

        print(json.dumps(bench_backfill(args.graphql_backfill, args.batch, args.backfill_policy), indent=2))
        return
    if args.ui_sample:
        sys.path.insert(0, str(REPO))
        from tests.helpers_dagster import bench_ui_sample

        print(json.dumps(bench_ui_sample(args.ui_repeat, backfill=not args.ui_no_backfill, postgres=args.ui_postgres), indent=2))
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lerobot-lance-bench-"))
    rows = []
    if not args.big_only:
        for name in args.samples:
            # each sample in its own child: ru_maxrss of children is a running max, so run
            # the smallest first and report per child via a fresh measurement process
            r = _isolated(SHARED / name, work / "out" / name, args.extra)
            rows.append((name, r))
    big = build_repeated_v21(work / f"g1_v21_x{args.repeat}", args.repeat)
    rows.append((f"g1_v21 x{args.repeat} ({6 * args.repeat} episodes)", _isolated(big, work / "out" / "big", args.extra)))
    print(f"{'dataset':<36} {'wall s':>8} {'peak RSS MB':>12} {'runs':>5} {'stats s':>8} {'stats %':>8}")
    for name, r in rows:
        print(f"{name:<36} {r['wall_s']:>8.2f} {r['peak_rss_mb']:>12.0f} {r['runs']:>5} {r['stats_s']:>8.2f} {100 * r['stats_s'] / r['wall_s']:>7.1f}%")
    if args.checks and not args.big_only:
        print()
        print("quality rules, seconds (source rules = everything `doctor` runs; share = of the conversion's wall time)")
        print(f"{'dataset':<36} {'GE import':>9} {'source':>8} {'output':>8} {'share':>7}  failed")
        for name, r in rows[:-1]:
            c = _isolated_checks(SHARED / name, work / "out" / name)
            share = (c["source_checks_s"] + c["output_checks_s"]) / r["wall_s"]
            print(f"{name:<36} {c['gx_import_s']:>9.2f} {c['source_checks_s']:>8.2f} {c['output_checks_s']:>8.2f} {100 * share:>6.1f}%  {c['failed'] or '-'}")
    print(f"(work dir: {work})")


def _isolated(source: Path, out: Path, extra: list[str], rss_sample: bool = False) -> dict[str, float]:
    """Run :func:`measure` inside a fresh Python so ``RUSAGE_CHILDREN`` covers one conversion."""
    code = (
        "import json,sys; sys.path.insert(0, %r); from benchmarks.bench import measure; "
        "from pathlib import Path; print(json.dumps(measure(Path(%r), Path(%r), %r, %r)))"
    ) % (str(REPO), str(source), str(out), extra, rss_sample)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _isolated_peer(source: Path, out: Path) -> dict[str, float]:
    """Run :func:`measure_peer` inside a fresh Python (see :func:`_isolated`)."""
    code = (
        "import json,sys; sys.path.insert(0, %r); from benchmarks.bench import measure_peer; "
        "from pathlib import Path; print(json.dumps(measure_peer(Path(%r), Path(%r))))"
    ) % (str(REPO), str(source), str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _isolated_checks(source: Path, out: Path) -> dict[str, float]:
    code = (
        "import json,sys; sys.path.insert(0, %r); from benchmarks.bench import measure_checks; "
        "from pathlib import Path; print(json.dumps(measure_checks(Path(%r), Path(%r))))"
    ) % (str(REPO), str(source), str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
