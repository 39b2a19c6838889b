"""``lerobot-lance``: convert, scan and doctor LeRobot datasets from a shell.

``convert`` runs the same Dagster graph as the UI, in-process, with a progress
bar per stage; with ``DAGSTER_HOME`` set its runs show in the UI.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import Any

from lerobot_lance.episode_selection import EpisodeRanges
from lerobot_lance.errors import LeRobotLanceError


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number >= 0")
    return value


def _int_at_least(low: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= {low}")
        return value

    return parse


def parse_episodes(text: str) -> EpisodeRanges:
    """``"0-9,12"`` -> the ranges ``0-9`` and ``12``, not expanded: the
    conversion checks them against the dataset's episodes first (so
    ``0-200000000`` is refused as naming episodes the dataset lacks, in
    constant memory; see :mod:`lerobot_lance.episode_selection`).

    Raises:
        argparse.ArgumentTypeError: malformed ranges.
    """
    try:
        return EpisodeRanges.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _storage_option(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` of ``--storage-option``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. aws_endpoint=http://127.0.0.1:9000), found {text!r}")
    return key.strip(), value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lerobot-lance", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="convert a dataset (local dir or Hub id) to Lance tables through Dagster")
    c.add_argument("source", help="local dataset directory, Hub dataset id (owner/name), or s3://bucket/prefix (credentials: --storage-option or the AWS variables)")
    c.add_argument("--output", "-o", required=True, help="output root (directory or object-store URI)")
    c.add_argument("--revision", help="Hub branch, tag or commit")
    c.add_argument("--episodes", type=parse_episodes,
                   help="episodes to convert, e.g. 0-9,12 (default all); over an existing output of the same source the other published episodes are kept")
    c.add_argument("--overwrite", action="store_true", help="replace existing tables (as a new Lance version)")
    c.add_argument("--skip-videos", action="store_true", help="tabular-only conversion (no video segments, no videos table)")
    c.add_argument("--storage-option", type=_storage_option, action="append", default=[], metavar="KEY=VALUE",
                   help="object-store option for an s3:// (gs://, az://) output, Lance's keys (aws_endpoint, aws_region, allow_http, ...); "
                        "repeatable; absent keys come from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ALLOW_HTTP")
    c.add_argument("--staging-dir", help="staging area for per-episode output: a directory, or an object-store URI shared by every machine "
                   "(mirrored in the local default folder); default: for an s3:// output "
                   "<parent>/.lerobot-lance-staging/<name>-<hash> on the store, else "
                   "$LEROBOT_LANCE_STAGING or ~/.cache/lerobot-lance/staging/<name>-<hash>")
    c.add_argument("--exclude-failed-episodes", action="store_true", help="publish the sound episodes; record the excluded ones")
    c.add_argument("--reencode", choices=["auto", "always", "never"], default="auto", help="v3.0 segment cutting (default auto)")
    c.add_argument("--layout", choices=["card", "lerobot"], default="card",
                   help="output layout: card (frames/episodes/videos, default) or lerobot (what LeRobot's Lance reader serves)")
    from lerobot_lance.encodings.cli_options import add_encoding_arguments

    add_encoding_arguments(c)  # --encode-images, --video-*, --frames-format, --jpeg-*, --reencode-crf/-preset
    c.add_argument("--camera-stats-samples", type=_int_at_least(0), help="decoded frames per episode and camera for camera stats (0: none)")
    c.add_argument("--tolerance-s", type=_non_negative_float, help="timestamp tolerance in seconds (default 1e-4)")
    c.add_argument("--batch-size", type=_int_at_least(1), help="episodes per run (Dagster backfill batch, default 100)")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    c.add_argument("--json", action="store_true", help="print a JSON summary (tag, rows, runs, seconds per asset, warnings); on failure a JSON error object (error, message, every offender, hint)")

    s = sub.add_parser("scan", help="describe a dataset from its metadata (downloads only meta/)")
    s.add_argument("source")
    s.add_argument("--revision")
    s.add_argument("--json", action="store_true", help="print JSON (with a 'problems' list; on failure a JSON error object)")

    d = sub.add_parser("doctor", help="run the source-side quality checks; exit code = failed checks")
    d.add_argument("source")
    d.add_argument("--revision")
    d.add_argument("--json", action="store_true", help="print JSON (every offender of every check; error, message, offenders and hint when a check failed)")
    d.add_argument("--deep", action="store_true", help="also decode every frame of every episode window (slow)")
    d.add_argument("--tolerance-s", type=_non_negative_float, default=None, help="timestamp tolerance in seconds (default 1e-4)")

    from lerobot_lance.tools_cli import add_tool_parsers

    add_tool_parsers(sub)  # delete-episodes, split, merge, add-features, remove-features, push
    return p


def _print_scan(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"[bold]{report['source']}[/] @ {report['revision']}")
    con.print(
        f"LeRobot {report['codebase_version']} · {report['fps']} fps · {report['episodes']} episodes · "
        f"{report['frames']} frames · robot {report.get('robot_type')}"
    )
    cams = Table("camera", "dtype", "codec", "resolution", "pix_fmt", title="cameras")
    for k, c in report["cameras"].items():
        cams.add_row(k, c["dtype"], str(c["codec"]), f"{c['width']}x{c['height']}", str(c.get("pix_fmt")))
    con.print(cams)
    feats = Table("feature", "dtype", "shape", title="features")
    for k, f in report["features"].items():
        feats.add_row(k, f["dtype"], str(tuple(f["shape"])))
    con.print(feats)
    for i, t in report["tasks"].items():
        con.print(f"task {i}: {t}")
    for prob in report.get("problems", []):
        con.print(f"[red]problem[/] {prob['check'] or 'meta'}: {prob['message']}", highlight=False, markup=True)
    if report.get("problems"):
        con.print(f"{len(report['problems'])} problem(s) in meta/; `lerobot-lance doctor` checks the files too")


def _convert(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    options: dict[str, Any] = {"skip_videos": args.skip_videos, "exclude_failed_episodes": args.exclude_failed_episodes, "reencode": args.reencode}
    if args.layout != "card":
        options["layout"] = args.layout
    from lerobot_lance.encodings.cli_options import encoding_options

    options.update(encoding_options(args))
    if args.camera_stats_samples is not None:
        options["camera_stats_samples"] = args.camera_stats_samples
    if args.tolerance_s is not None:
        options["tolerance_s"] = args.tolerance_s
    if args.batch_size is not None:
        options["backfill_batch_size"] = args.batch_size
    if args.storage_option:
        options["storage_options"] = dict(args.storage_option)
    con = Console(stderr=True)
    bars = Progress(TextColumn("{task.description:<15}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=con, disable=args.quiet)
    tasks: dict[str, Any] = {}

    def on_stage(stage: str, total: int) -> None:
        tasks[stage] = bars.add_task(stage, total=total)

    def progress(stage: str, n: int) -> None:
        if stage in tasks:
            bars.advance(tasks[stage], n)

    from pipelines.runner import run_conversion

    if _COMMAND_LINE:
        # Everything imported so far (Dagster, pyarrow, ...) lives until the
        # process ends: keep the collector from rescanning it on every full
        # collection during the runs (about 0.3 s for the bundled sample).
        import gc

        gc.freeze()
    with bars:
        summary = run_conversion(
            args.source, args.output, revision=args.revision, episodes=args.episodes, overwrite=args.overwrite,
            options=options, progress=progress, on_stage=on_stage, staging_dir=args.staging_dir,
        )
    if args.json:
        print(json.dumps(dataclasses.asdict(summary), indent=2))
        return 0
    _print_summary(summary, options.get("storage_options"))
    return 0


def _frame_columns(output: str, storage_options: dict[str, str] | None = None) -> list[str]:
    """Column names of the published frames table (``[]`` when it cannot be opened)."""
    try:
        import lance

        from lerobot_lance.lance_io import table_uri

        return list(lance.dataset(table_uri(output, "frames"), storage_options=storage_options).schema.names)
    except Exception:  # noqa: BLE001 - the snippet then selects the bookkeeping columns only
        return []


def _print_summary(summary: Any, storage_options: dict[str, str] | None = None) -> None:
    """Warnings in full, the published tables, and the snippet that opens them.

    Lines are never cut or hard-wrapped (``soft_wrap``): a terminal wraps them
    at its own width, a pipe or log file gets each warning on one line.
    """
    from rich.console import Console

    from lerobot_lance.snippets import open_snippet

    out = Console(soft_wrap=True)
    for w in summary.warnings:
        out.print(f"[yellow]warning[/] {_escape(w)}", highlight=False)
    for note in getattr(summary, "notes", []):
        out.print(f"note {_escape(note)}", highlight=False)
    from lerobot_lance.encodings.output import summary_lines

    for line in summary_lines(getattr(summary, "encodings", None) or {}):
        out.print(f"encoding {_escape(line)}", highlight=False)
    out.print(f"[green]published[/] {_escape(summary.output)} tag {summary.tag}: " + ", ".join(f"{t} {n} rows" for t, n in summary.rows.items()), highlight=False)
    out.print("open with:", highlight=False)
    out.print(open_snippet(summary.output, "latest", _frame_columns(summary.output, storage_options)), markup=False, highlight=False)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


_COMMAND_LINE = False  # set by main() when this process is the ``lerobot-lance`` command itself


def _is_the_command(argv: Sequence[str] | None) -> bool:
    """True when :func:`main` runs as the process's command: the console script
    (its ``__main__`` imported ``main`` and calls it without arguments) or
    ``python -m lerobot_lance.cli``; False for a Python caller (tests, the API)."""
    return argv is None and getattr(sys.modules.get("__main__"), "main", None) is main


def _exit_now(code: int) -> None:
    """End the command's process at once with ``code``, skipping the interpreter's
    teardown (freeing every module's objects: Dagster, sqlalchemy, pyarrow,
    Lance; about 0.5-1 s of CPU at the end of a conversion that changes nothing).

    What a normal exit does that matters still happens first: the ``atexit``
    handlers (logging's flush, ``tempfile``/``weakref.finalize`` clean-up) and
    the flush of stdout/stderr. Returns without exiting (the normal exit then
    follows) when a non-daemon thread is still running, which a normal exit
    would wait for, or when the flush fails (e.g. a closed pipe), which a
    normal exit reports.
    """
    import atexit
    import os
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lerobot-lance`` console script; returns the exit code.

    Run as the command (console script, ``python -m``) it ends the process
    itself once done (:func:`_exit_now`); a Python caller gets the code back.
    """
    global _COMMAND_LINE
    _COMMAND_LINE = _is_the_command(argv)
    if _COMMAND_LINE:
        # A conversion imports ~250 000 long-lived objects (Dagster, pyarrow,
        # sqlalchemy) and makes few cycles: collect the young generation every
        # 20 000 allocations, not 700 (the generations above as usual).
        import gc

        gc.set_threshold(20_000, 10, 10)
    code = _main(argv)
    if _COMMAND_LINE:
        _exit_now(code)
    return code


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "scan":
            from lerobot_lance.api import scan

            report = scan(args.source, args.revision)
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                _print_scan(report)
            return 0
        if args.command == "doctor":
            from lerobot_lance.quality.doctor import exit_code, format_report, run_doctor

            kw: dict[str, Any] = {"deep": args.deep}
            if args.tolerance_s is not None:
                kw["tolerance_s"] = args.tolerance_s
            outcomes = run_doctor(args.source, args.revision, **kw)
            print(format_report(outcomes, as_json=args.json))
            return exit_code(outcomes)
        from lerobot_lance.tools_cli import TOOL_COMMANDS, run_tool

        if args.command in TOOL_COMMANDS:
            return run_tool(args)
        return _convert(args)
    except LeRobotLanceError as e:
        # --json: the failure as one JSON object on stdout (error type, message,
        # every offender, hint); the text goes to stderr either way
        if getattr(args, "json", False):
            from lerobot_lance.refusal import error_object

            print(json.dumps(error_object(e), indent=2))
        print(f"lerobot-lance: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, not bad data: --json still gets its object, the traceback still shows
        if getattr(args, "json", False):
            from lerobot_lance.refusal import error_object

            print(json.dumps({**error_object(e), "internal": True}, indent=2), flush=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
