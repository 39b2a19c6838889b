"""Where a dataset comes from: a local directory, a Hugging Face Hub dataset repo,
or an ``s3://`` prefix (:mod:`lerobot_lance.object_store_source`).

A :class:`DatasetSource` gives a local directory laid out like the dataset
(``meta/``, ``data/``, ``videos/``) and fetches files into it on demand:

* :class:`LocalSource` — the directory itself; nothing is fetched.
* :class:`HubSource` — a ``repo_type="dataset"`` repository at a revision,
  resolved once to a commit sha so every file of a conversion comes from the
  same commit. ``meta/`` is downloaded first (``snapshot_download`` with
  ``allow_patterns=["meta/**"]``); data and video files only when an episode
  needs them (``hf_hub_download``). Authentication and caching are
  huggingface_hub's: ``HF_TOKEN`` / the stored token, ``HF_HOME`` /
  ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``.
* :class:`~lerobot_lance.object_store_source.S3Source` — an ``s3://bucket/prefix``
  pinned to one listing (keys, ETags, sizes), mirrored into a local cache the
  same way: ``meta/`` first, then the files of the episodes converted.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from lerobot_lance.errors import SourceNotFoundError
from lerobot_lance.source_base import DatasetSource, safe_join

__all__ = ["DatasetSource", "HubSource", "LocalSource", "open_source", "safe_join"]


class LocalSource(DatasetSource):
    """A dataset directory on local disk (or any mounted file system)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.description = str(self.root)
        if not self.root.is_dir():
            raise SourceNotFoundError(f"{self.root}: dataset directory does not exist")

    def meta_root(self) -> Path:
        return self.root

    def fetch(self, relative_paths: Iterable[str], *, missing_ok: bool = False) -> Path:
        for rel in relative_paths:
            safe_join(self.root, rel)
        return self.root

    def revision(self) -> str:
        """sha256 over ``meta/`` file contents and every data/video file's path,
        size and mtime (so a replaced file or a new episode changes it)."""
        h = hashlib.sha256()
        meta = self.root / "meta"
        for p in sorted(meta.rglob("*")) if meta.is_dir() else []:
            if p.is_file():
                h.update(str(p.relative_to(self.root)).encode())
                h.update(p.read_bytes())
        for top in ("data", "videos"):
            d = self.root / top
            for p in sorted(d.rglob("*")) if d.is_dir() else []:
                if p.is_file():
                    st = p.stat()
                    h.update(f"{p.relative_to(self.root)}:{st.st_size}:{st.st_mtime_ns}".encode())
        return "local-" + h.hexdigest()[:16]


class HubSource(DatasetSource):
    """A dataset repository on the Hugging Face Hub, pinned to one commit.

    Args:
        repo_id: ``"owner/name"`` of a ``repo_type="dataset"`` repository.
        revision: branch, tag or commit; ``None`` means ``"main"``.
        cache_dir: huggingface_hub cache directory; ``None`` uses ``HF_HUB_CACHE``.
        token: access token; ``None`` lets huggingface_hub use ``HF_TOKEN`` or
            the stored login.

    Raises:
        SourceNotFoundError: the repository or revision does not exist, or the
            Hub is unreachable and nothing is cached for that revision.
    """

    def __init__(
        self,
        repo_id: str,
        revision: str | None = None,
        cache_dir: str | None = None,
        token: str | None = None,
    ) -> None:
        self.repo_id = repo_id
        self.requested_revision = revision or "main"
        self.cache_dir = cache_dir
        self.token = token
        self.description = f"hf://datasets/{repo_id}@{self.requested_revision}"
        self._sha: str | None = None
        self._root: Path | None = None

    def revision(self) -> str:
        if self._sha is None:
            self._sha = self._resolve_sha()
        return self._sha

    def commit_sha(self) -> str:
        """The commit sha the requested revision points to on the Hub now
        (``HfApi.dataset_info``; no cache fallback, so a sensor sees new commits).

        Raises:
            SourceNotFoundError: the Hub does not know the repo or revision, or
                returned no sha. Network errors propagate as huggingface_hub raises them.
        """
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError

        try:
            info = HfApi(token=self.token).dataset_info(self.repo_id, revision=self.requested_revision)
        except HfHubHTTPError as e:
            raise SourceNotFoundError(f"{self.description}: {e}") from None
        if not info.sha:
            raise SourceNotFoundError(f"{self.description}: the Hub returned no commit sha")
        return str(info.sha)

    def _resolve_sha(self) -> str:
        try:
            return self.commit_sha()
        except SourceNotFoundError:
            raise
        except Exception:  # noqa: BLE001 - unreachable Hub (offline mode, OSError, httpx transport errors)
            # fall back to what the local cache knows of this revision
            return self.meta_root().name  # snapshot folders are named by commit sha

    def meta_root(self) -> Path:
        if self._root is None:
            from huggingface_hub import snapshot_download
            from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

            try:
                path = snapshot_download(
                    self.repo_id,
                    repo_type="dataset",
                    revision=self._sha or self.requested_revision,
                    allow_patterns=["meta/**"],
                    cache_dir=self.cache_dir,
                    token=self.token,
                )
            except (HfHubHTTPError, LocalEntryNotFoundError) as e:
                raise SourceNotFoundError(f"{self.description}: cannot fetch meta/ ({e})") from None
            self._root = Path(path)
        return self._root

    def list_files(self) -> list[str] | None:
        """The repository's files at the pinned commit (``HfApi.list_repo_files``).

        Raises:
            SourceNotFoundError: the Hub cannot be reached.
        """
        from huggingface_hub import HfApi

        try:
            return list(HfApi(token=self.token).list_repo_files(self.repo_id, repo_type="dataset", revision=self.revision()))
        except Exception as e:  # noqa: BLE001 - HTTP errors, offline mode, httpx transport errors
            raise SourceNotFoundError(f"{self.description}: cannot list the repository's files ({e})") from None

    def fetch(self, relative_paths: Iterable[str], *, missing_ok: bool = False) -> Path:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

        root = self.meta_root()
        for rel in relative_paths:
            target = safe_join(root, rel)
            if target.exists():
                continue
            try:
                hf_hub_download(
                    self.repo_id,
                    rel,
                    repo_type="dataset",
                    revision=self.revision(),
                    cache_dir=self.cache_dir,
                    token=self.token,
                )
            except EntryNotFoundError:
                if missing_ok:
                    continue
                raise SourceNotFoundError(f"{self.description}: {rel} does not exist in the repository") from None
            except (HfHubHTTPError, LocalEntryNotFoundError) as e:
                raise SourceNotFoundError(f"{self.description}: cannot fetch {rel} ({e})") from None
        return root


def open_source(
    source: str,
    revision: str | None = None,
    *,
    cache_dir: str | None = None,
    token: str | None = None,
    storage_options: dict[str, str] | None = None,
) -> DatasetSource:
    """A :class:`LocalSource` if ``source`` is an existing directory, an
    :class:`~lerobot_lance.object_store_source.S3Source` for ``s3://bucket/prefix``
    (``storage_options``: the object-store options of the conversion; the AWS
    variables fill in the rest), else a :class:`HubSource` for ``source`` as a
    repo id (``hf://datasets/`` prefix allowed). ``cache_dir`` is the Hub cache;
    an s3 source mirrors into ``$LEROBOT_LANCE_SOURCE_CACHE`` (see that module).

    Raises:
        SourceNotFoundError: ``source`` is neither a directory, an ``s3://`` URI
            nor an ``owner/name`` id.
    """
    from lerobot_lance.object_store_source import S3Source, is_s3_uri

    if is_s3_uri(source):
        return S3Source(source, revision, storage_options=storage_options)
    if source.startswith("hf://datasets/"):
        return HubSource(source.removeprefix("hf://datasets/"), revision, cache_dir, token)
    p = Path(source).expanduser()
    if p.is_dir():
        return LocalSource(p)
    if source.count("/") == 1 and not source.startswith((".", "/", "~")):
        return HubSource(source, revision, cache_dir, token)
    raise SourceNotFoundError(f"{source}: not a directory, not an s3:// URI and not a Hub dataset id (owner/name)")
