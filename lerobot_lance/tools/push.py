"""``push``: upload an output to a Hugging Face Hub dataset repository.

With ``huggingface_hub`` (2.x): ``HfApi.create_repo(repo_id,
repo_type="dataset", private=..., exist_ok=True)``, ``create_branch`` for a
``revision`` other than ``main``, then ``upload_folder`` (one commit) or
``upload_large_folder`` (``large=True``: resumable, several commits) of a
folder holding the output's tables and ``meta/`` and the generated card as
``README.md`` (:func:`lerobot_lance.tools.hub_card.dataset_card`). The token is
``token`` or, when ``None``, what ``huggingface_hub`` finds (``HF_TOKEN``,
then the saved login). The writer's own files (lock, journal, pending and
prepared folders) are not uploaded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lerobot_lance.tools._output import ToolError, read_output
from lerobot_lance.tools.hub_card import dataset_card

#: Entries of an output root that are the writer's, not the dataset's.
NOT_UPLOADED = (".lerobot-lance.lock", ".lerobot-lance-publish.json", ".lerobot-lance-pending", ".lerobot-lance-meta.new", "README.md")


@dataclass(frozen=True)
class PushResult:
    """What :func:`push_to_hub` uploaded.

    Attributes:
        repo_id: the dataset repository.
        revision: the branch written.
        files: paths in the repository, sorted.
        bytes: their total size.
        commit: what ``upload_folder`` returned (a ``CommitInfo``; ``None`` for ``upload_large_folder``).
    """

    repo_id: str
    revision: str
    files: tuple[str, ...]
    bytes: int
    commit: Any


def upload_files(root: Path) -> list[str]:
    """The output's files to upload (relative posix paths), without the writer's own."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir == Path("."):
            dirs[:] = [d for d in dirs if d not in NOT_UPLOADED]
        for f in files:
            rel = (rel_dir / f).as_posix()
            if rel not in NOT_UPLOADED:
                out.append(rel)
    return sorted(out)


def push_to_hub(output: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
                token: str | None = None, large: bool = False, endpoint: str | None = None) -> PushResult:
    """Upload the output ``output`` to the Hub dataset repo ``repo_id``.

    Args:
        private: create the repository private (an existing one keeps its visibility).
        revision: branch to write (created from ``main`` if missing); default ``main``.
        token: Hub token; ``None``: ``HF_TOKEN`` or the saved login.
        large: ``upload_large_folder`` instead of ``upload_folder``.
        endpoint: Hub endpoint (default ``HF_ENDPOINT`` / huggingface.co).

    Raises:
        ToolError: ``repo_id`` is not ``owner/name``, the output is not ours,
            or the Hub refuses or cannot be reached (the Hub's message kept).
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    network: tuple[type[BaseException], ...] = ()
    for name in ("httpx2", "httpx", "requests"):  # huggingface_hub's HTTP client, by version
        try:
            mod = __import__(name)
        except ImportError:
            continue
        network += (getattr(mod, "HTTPError", None) or getattr(mod, "RequestException"),)

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ToolError(f"push: repo id {repo_id!r}: expected owner/name")
    state = read_output(output)
    files = upload_files(state.root)
    api = HfApi(endpoint=endpoint, token=token)
    branch = revision or "main"
    with tempfile.TemporaryDirectory(prefix="lerobot-lance-push-") as tmp:
        folder = Path(tmp) / "upload"
        for rel in files:
            dst = folder / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(state.root / rel, dst)  # no copy of the blobs when tmp is on the same filesystem
            except OSError:
                shutil.copyfile(state.root / rel, dst)
        (folder / "README.md").write_text(dataset_card(state, repo_id), encoding="utf-8")
        uploaded = sorted([*files, "README.md"])
        try:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            if branch != "main":
                api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
            if large:
                api.upload_large_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset", revision=branch, private=private)
                commit = None
            else:
                commit = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="dataset", revision=branch,
                                           commit_message=f"lerobot-lance push of {state.conversion.get('tag')}")
        except (HfHubHTTPError, OfflineModeIsEnabled, OSError, *network) as err:
            raise ToolError(f"push {state.root} -> {repo_id}@{branch}: the Hub refused or could not be reached: {err}") from None
        total = sum((folder / rel).stat().st_size for rel in uploaded)
    return PushResult(repo_id, branch, tuple(uploaded), total, commit)
