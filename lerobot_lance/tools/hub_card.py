"""The dataset card (``README.md``) pushed with an output, in the style of the
lance-format Hub cards (seed 002, ``lance-format/lerobot-pusht-lance``): YAML
front matter (license, task category, tags, one ``configs:`` entry per table
so ``datasets.load_dataset`` finds each table), then the tables, their
schemas (column, Arrow type, notes from ``info.json``), and snippets that
open this output with LanceDB and pylance, pin its tag, and (``lerobot``
layout) train with LeRobot's Lance reader. The snippets name the data at
``location`` (``hf://datasets/<repo_id>`` on the Hub); the tests run them on
a local output by passing its path.
"""

from __future__ import annotations

from typing import Any

from lerobot_lance import formats
from lerobot_lance.formats import column_name
from lerobot_lance.tools._output import SOURCE_EPISODE_COLUMN, OutputState

_FIXED_NOTES = {
    "timestamp": "Frame timestamp (seconds) within the episode",
    "frame_index": "Frame index within the episode",
    "episode_index": "Episode id (0..N-1)",
    "index": "Global frame index (row i of a lerobot-layout frames table is index i)",
    "task_index": "Task id (see meta/tasks)",
    SOURCE_EPISODE_COLUMN: "The episode's index in the dataset it was converted or derived from",
    "camera_angle": "Camera key", "video_key": "Camera key",
    "chunk_index": "Chunk of the mp4 (LeRobot path template)", "file_index": "File of the mp4 (LeRobot path template)",
    "relative_path": "The mp4's path in the LeRobot layout", "filename": "The mp4's file name",
    "file_size_bytes": "mp4 size (bytes)", "file_size": "mp4 size (bytes)", "sha256": "SHA-256 of the mp4 bytes",
    "video_blob": "The mp4 bytes (blob-encoded, read lazily with take_blobs)",
    "video_bytes": "The mp4 bytes (blob-encoded, read lazily with take_blobs)",
    "moov_offset": "Byte offset of the mp4 moov box", "moov_size": "Size of the mp4 moov box",
    "kf_indices": "Frame number of each keyframe", "kf_positions": "Byte offset of each keyframe packet",
    "fps": "Frames per second", "length": "Frames in the episode", "tasks": "Task strings of the episode",
    "dataset_from_index": "First frame's index", "dataset_to_index": "One past the last frame's index",
    "timestamps": "Per-frame timestamps", "stats": "Per-episode statistics (min, max, mean, std, count, quantiles)",
    "path": "File path under meta/", "data": "The file's bytes",
}


def _type(t: Any) -> str:
    s = str(t)
    if s.startswith("struct<") and len(s) > 100:
        return f"struct<{', '.join(f.name for f in t)}> (each: min, max, mean, std, count, quantiles as list<double>)"
    return "large_binary (blob-encoded)" if "blob" in s else s.replace("fixed_size_list<item: ", "fixed_size_list<").replace("list<item: ", "list<")


def _notes(state: OutputState, column: str) -> str:
    if column in _FIXED_NOTES:
        return _FIXED_NOTES[column]
    for key, f in state.features.items():
        col = column_name(key)
        names = f.get("names")
        shown = ""
        if isinstance(names, dict):
            names = next(iter(names.values()), None)
        if isinstance(names, list) and names and isinstance(names[0], list):
            names = names[0]
        if isinstance(names, list) and names:
            shown = ", names " + ", ".join(map(str, names[:4])) + (", ..." if len(names) > 4 else "")
        if column in (col, f"{col}_feature", "actions" if key == "action" else None):
            return f"Feature `{key}` ({f.get('dtype')}, shape {f.get('shape')}{shown})"
        if column.startswith(col) and column.endswith(("_video_blob", "_from_timestamp", "_to_timestamp")):
            part = column[len(col) + 1:]
            return {"video_blob": f"The episode's mp4 segment of `{key}` (blob-encoded)",
                    "from_timestamp": f"Segment start in the source file of `{key}` (s)",
                    "to_timestamp": f"Segment end in the source file of `{key}` (s)"}.get(part, "")
    return ""


def _schema_table(state: OutputState, table: str) -> str:
    ds = state.dataset(table)
    rows = [f"| `{f.name}` | `{_type(f.type)}` | {_notes(state, f.name)} |" for f in ds.schema]
    return "| Column | Type | Notes |\n|---|---|---|\n" + "\n".join(rows)


def dataset_card(state: OutputState, repo_id: str, *, location: str | None = None) -> str:
    """The card of ``state`` for the Hub repo ``repo_id``.

    Args:
        location: where the snippets open the tables (default
            ``hf://datasets/<repo_id>``).

    Returns:
        Markdown with YAML front matter.
    """
    loc = location or f"hf://datasets/{repo_id}"
    tables = list(state.tables)
    info = state.info
    rows = {t: state.dataset(t).count_rows() for t in tables}
    tag = state.conversion.get("tag")
    n_frames = int(info.get("total_frames", 0))
    size = "n<1K" if n_frames < 1000 else "1K<n<10K" if n_frames < 10000 else "10K<n<100K" if n_frames < 100000 else "100K<n<1M" if n_frames < 1000000 else "n>1M"
    robot = info.get("robot_type") or "unknown"
    configs = "".join(
        f"- config_name: {t}\n" + ("  default: true\n" if t == formats.FRAMES_TABLE else "") + f"  data_files:\n  - split: train\n    path: {t}.lance/**\n"
        for t in tables
    )
    source = state.conversion.get("source", "")
    tool = state.conversion.get("tool") or {}
    purpose = {
        "frames": "one row per frame: observations, actions, episode/task indices",
        "episodes": "one row per episode: per-frame sequences, the episode's mp4 segment per camera (blobs), statistics",
        "videos": "one row per source mp4: the bytes (blob) and provenance (path, size, sha256)" + (", byte index for LeRobot's reader" if state.layout == "lerobot" else ""),
        "meta": "one row per meta/ file (what LeRobot's reader reads for remote roots)",
    }
    first_key = next((k for k, f in state.features.items() if f.get("dtype") == "video"), None)
    lines = [
        "---",
        "license: other",
        "task_categories:\n- robotics",
        "tags:\n- lerobot\n- lance\n- robotics" + (f"\n- {robot}" if robot != "unknown" else ""),
        f"pretty_name: {repo_id.split('/')[-1]}",
        f"size_categories:\n- {size}",
        f"configs:\n{configs}".rstrip(),
        "---",
        f"# {repo_id.split('/')[-1]} (Lance format)",
        "",
        f"A LeRobot dataset ({state.codebase_version} metadata, robot `{robot}`, {info.get('fps')} fps) stored as Lance tables "
        f"by lerobot-lance, `{state.layout}` layout"
        + (f", converted from `{source}`" if source else "") + (f", then `{tool.get('verb')}`" if tool.get("verb") else "") + ". "
        f"{info.get('total_episodes')} episodes, {n_frames} frames, {len(state.tasks)} task(s), "
        f"cameras: {', '.join(f'`{k}`' for k, f in state.features.items() if f.get('dtype') in ('video', 'image')) or 'none'}. "
        + (f"Every table carries the tag `{tag}` (also `latest`); `meta/conversion.json` records it and each table's version." if tag else ""),
        "",
        "## Tables",
        "",
        "| Table | Rows | Purpose |",
        "|---|---:|---|",
        *[f"| `{t}.lance` | {rows[t]} | {purpose.get(t, '')} |" for t in tables],
        "",
        "`meta/` holds LeRobot's metadata (`info.json`, episodes, tasks, `stats.json`) describing exactly these tables.",
        "",
        "## Schemas",
        "",
    ]
    for t in tables:
        lines += [f"### `{t}.lance`", "", _schema_table(state, t), ""]
    lines += [
        "## Load with LanceDB",
        "",
        "```python",
        "import lancedb",
        "",
        f'db = lancedb.connect("{loc}")',
        f'frames = db.open_table("frames"{f", version={tag!r}" if tag else ""})',
        'print(len(frames), frames.schema.names)',
        'rows = (frames.search().where("episode_index = 0 AND frame_index < 5", prefilter=True)',
        '        .select(["episode_index", "frame_index", "timestamp", "index"]).limit(5).to_list())',
        'print(rows)',
        "```",
        "",
        "## Load with Lance",
        "",
        "```python",
        "import lance",
        "",
        f'ds = lance.dataset("{loc}/frames.lance")',
        "print(ds.count_rows(), ds.schema.names, ds.tags.list().keys())",
        "```",
        "",
    ]
    if first_key is not None:
        blob_table, blob_col = ("episodes", f"{column_name(first_key)}_video_blob") if state.layout == "card" else ("videos", "video_bytes")
        lines += [
            "Video bytes are blobs, read lazily (metadata scans never read them):",
            "",
            "```python",
            "import lance",
            "",
            f'ds = lance.dataset("{loc}/{blob_table}.lance")',
            f'blob = ds.take_blobs("{blob_col}", indices=[0])[0]',
            "print(len(blob.read(1024)))  # the first KiB of the mp4",
            "```",
            "",
        ]
    lines += [
        "## Versioning",
        "",
        "Every change is a new Lance version; tags pin a snapshot. The tag in `meta/conversion.json` opens the tables this `meta/` describes:",
        "",
        "```python",
        "import lancedb",
        "",
        f'db = lancedb.connect("{loc}")',
        'frames = db.open_table("frames")',
        'print(frames.version, sorted(frames.tags.list()))',
        "```",
        "",
    ]
    if state.layout == "lerobot":
        lines += [
            "## Train with LeRobot",
            "",
            "LeRobot's Lance reader (`lerobot_lancedb.LanceDBDataset`, lerobot-lancedb 0.3.1) serves this layout; "
            "download it first (`hf download " + repo_id + " --repo-type dataset --local-dir ./data`):",
            "",
            "<!-- card-test: skip (needs lerobot-lancedb and torch) -->",
            "```python",
            "from lerobot_lancedb import LanceDBDataset",
            "",
            'ds = LanceDBDataset(root="./data")',
            "print(len(ds), ds[0].keys())",
            "```",
            "",
        ]
    lines += [
        "## Source",
        "",
        f"Written by lerobot-lance from `{source}`." if source else "Written by lerobot-lance.",
        "",
    ]
    return "\n".join(lines)
