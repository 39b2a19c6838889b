"""A recording fake of the Hugging Face Hub's HTTP API, for offline push tests.

Serves just what ``huggingface_hub`` 2.x's ``HfApi.create_repo``,
``create_branch`` and ``upload_folder`` (its single-commit path, with
``HF_HUB_DISABLE_XET=1``) call: ``POST /api/repos/create``, ``POST /api/validate-yaml`` (the card's front matter), ``POST
/api/datasets/<repo>/branch/<b>``, ``POST /api/datasets/<repo>/preupload/<rev>``
(every file "regular": its bytes then travel inline in the commit) and ``POST
/api/datasets/<repo>/commit/<rev>`` (NDJSON: a header line, then one line per
file with its base64 content). Every request is recorded; the files of each
commit are decoded into ``commits``. Any other route answers 404, recorded too.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeHub:
    """``with FakeHub() as hub:`` -> ``hub.endpoint`` (``http://127.0.0.1:<port>``),
    ``hub.requests`` (method, path, headers, json body or None),
    ``hub.repos`` (create_repo payloads), ``hub.commits`` ({"revision", "summary", "files": {path: bytes}})."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.repos: list[dict[str, Any]] = []
        self.branches: list[str] = []
        self.commits: list[dict[str, Any]] = []
        self.cards: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, code: int, doc: Any) -> None:
                body = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                hub.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers), "json": None})
                self._send(404, {"error": f"fake hub: no route GET {self.path}"})

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                try:
                    doc = json.loads(raw) if raw and "commit/" not in path else None
                except ValueError:
                    doc = None
                hub.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "json": doc})
                if path == "/api/validate-yaml":
                    hub.cards.append(doc["content"])
                    self._send(200, {"errors": [], "warnings": []})
                elif path == "/api/repos/create":
                    hub.repos.append(doc)
                    self._send(200, {"url": f"http://{self.headers['Host']}/datasets/{doc.get('organization') or 'user'}/{doc['name']}"})
                elif "/branch/" in path:
                    hub.branches.append(path.rsplit("/branch/", 1)[1])
                    self._send(200, {})
                elif "/preupload/" in path:
                    self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in doc["files"]]})
                elif "/commit/" in path:
                    files, summary = {}, None
                    for line in raw.decode().splitlines():
                        item = json.loads(line)
                        if item["key"] == "header":
                            summary = item["value"].get("summary")
                        elif item["key"] == "file":
                            files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    hub.commits.append({"revision": path.rsplit("/commit/", 1)[1], "summary": summary, "files": files})
                    repo = path.removeprefix("/api/datasets/").rsplit("/commit/", 1)[0]
                    self._send(200, {"commitUrl": f"http://{self.headers['Host']}/datasets/{repo}/commit/{'0' * 40}", "commitOid": "0" * 40, "pullRequestUrl": None})
                else:
                    self._send(404, {"error": f"fake hub: no route POST {self.path}"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
