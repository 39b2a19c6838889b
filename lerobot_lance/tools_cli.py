"""The dataset tools' subcommands of ``lerobot-lance`` (standard library only
until one runs: ``lerobot-lance --help`` stays light).

::

    lerobot-lance delete-episodes OUT --episodes 1,3 (--output NEW | --in-place)
    lerobot-lance split OUT --splits train=0.8,val=0.2 --output DIR
    lerobot-lance merge OUT1 OUT2 ... --output NEW
    lerobot-lance add-features OUT --from TABLE.parquet (--output NEW | --in-place)
    lerobot-lance remove-features OUT --features a,b (--output NEW | --in-place)
    lerobot-lance push OUT REPO_ID [--private] [--revision R] [--token T] [--large]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

#: The subcommands this module adds.
TOOL_COMMANDS: tuple[str, ...] = ("delete-episodes", "split", "merge", "add-features", "remove-features", "push")


def _episode_list(text: str) -> list[int]:
    out: list[int] = []
    try:
        for part in text.split(","):
            a, dash, b = part.strip().partition("-")
            out += list(range(int(a), int(b) + 1)) if dash else [int(a)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected episode indices such as 1,3 or 0-4,7") from None
    return out


def _target(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--output", "-o", help="write the result as this new output root (copies every kept row and blob)")
    g.add_argument("--in-place", action="store_true",
                   help="commit the result as a new tagged version of OUT (Lance deletion files / new columns; the old tag stays readable)")


def add_tool_parsers(sub: Any) -> None:
    """Add the tools' subcommands to the ``lerobot-lance`` subparsers ``sub``."""
    d = sub.add_parser("delete-episodes", help="delete episodes from an output; the rest renumbered 0..N-1 (LeRobot's delete_episodes)")
    d.add_argument("output_root", metavar="OUT")
    d.add_argument("--episodes", required=True, type=_episode_list, help="episode indices to delete, e.g. 1,3 or 0-4")
    _target(d)
    s = sub.add_parser("split", help="split an output into one output per split under --output DIR (LeRobot's split_dataset)")
    s.add_argument("output_root", metavar="OUT")
    s.add_argument("--splits", required=True, help="train=0.8,val=0.2 (fractions) or train=0-3,val=4:5 (episodes; ':' separates)")
    s.add_argument("--output", "-o", required=True, help="directory that receives one output root per split")
    m = sub.add_parser("merge", help="merge outputs with the same features and fps into a new output (LeRobot's merge_datasets)")
    m.add_argument("output_roots", metavar="OUT", nargs="+")
    m.add_argument("--output", "-o", required=True, help="the new output root")
    a = sub.add_parser("add-features", help="add per-frame features from a parquet table keyed by index")
    a.add_argument("output_root", metavar="OUT")
    a.add_argument("--from", dest="table", required=True, help="parquet file: an 'index' column and one column per new feature")
    _target(a)
    r = sub.add_parser("remove-features", help="remove features (not index, frame_index, episode_index, timestamp, task_index)")
    r.add_argument("output_root", metavar="OUT")
    r.add_argument("--features", required=True, help="feature keys, comma-separated (a camera removes its videos rows and blobs)")
    _target(r)
    p = sub.add_parser("push", help="upload an output to a Hugging Face Hub dataset repo with a generated dataset card")
    p.add_argument("output_root", metavar="OUT")
    p.add_argument("repo_id", metavar="REPO_ID", help="owner/name")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--revision", help="branch to write (created if missing; default main)")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    p.add_argument("--large", action="store_true", help="use upload_large_folder (resumable, several commits)")
    for sp in (d, s, m, a, r, p):
        sp.add_argument("--json", action="store_true", help="print the result as JSON")


def run_tool(args: argparse.Namespace) -> int:
    """Run the tool subcommand ``args.command``; returns the exit code (0).

    Raises:
        LeRobotLanceError: the tool refused (the CLI prints it, exit code 2).
    """
    from lerobot_lance import tools

    cmd = args.command
    if cmd == "delete-episodes":
        res: Any = tools.delete_episodes(args.output_root, args.episodes, new_output=args.output, in_place=args.in_place)
    elif cmd == "split":
        from lerobot_lance.tools.split import parse_splits

        res = tools.split_dataset(args.output_root, parse_splits(args.splits), args.output)
    elif cmd == "merge":
        res = tools.merge_datasets(args.output_roots, args.output)
    elif cmd == "add-features":
        res = tools.add_features(args.output_root, args.table, new_output=args.output, in_place=args.in_place)
    elif cmd == "remove-features":
        names = [n.strip() for n in args.features.split(",") if n.strip()]
        res = tools.remove_features(args.output_root, names, new_output=args.output, in_place=args.in_place)
    else:
        res = tools.push_to_hub(args.output_root, args.repo_id, private=args.private, revision=args.revision, token=args.token, large=args.large)
    results = res if isinstance(res, dict) else {"": res}
    if args.json:
        doc = {k: {f: v for f, v in dataclasses.asdict(r).items() if f != "commit"} for k, r in results.items()}
        print(json.dumps(doc if isinstance(res, dict) else doc[""], indent=2, default=str))
        return 0
    for name, r in results.items():
        if cmd == "push":
            print(f"pushed {len(r.files)} files ({r.bytes} bytes) to {r.repo_id}@{r.revision}")
            continue
        where = f"{name}: " if name else ""
        print(f"{where}wrote {r.output} tag {r.tag}" + (f" (in place; previous tag {r.previous_tag} still opens the old state)" if r.in_place else "")
              + ": " + ", ".join(f"{t} {n} rows" for t, n in r.rows.items())
              + f"; {r.bytes_written} bytes written, output {r.output_bytes} bytes; {r.seconds:.1f} s; checks "
              + ("all passed" if all(r.checks.values()) else "FAILED " + ", ".join(k for k, ok in r.checks.items() if not ok)))
    return 0
