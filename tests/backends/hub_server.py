"""A loopback HTTP server that serves checkpoint folders the way the Hugging Face hub does.

What huggingface_hub (file_download.py, _snapshot_download.py, hf_api.py) requests:

- ``GET /api/models/{repo}[/revision/{rev}]``: repository info, ``sha`` and ``siblings``
  (with ``size`` when ``blobs=True``);
- ``GET /api/models/{repo}/tree/{rev}``: the file listing (``type``, ``path``, ``size``,
  ``oid``);
- ``HEAD`` and ``GET /{repo}/resolve/{rev}/{file}``: the file, with ``X-Repo-Commit``, an
  ``ETag`` and ``Content-Length``; a missing file is 404 with ``X-Error-Code:
  EntryNotFound`` (transformers asks for optional files and expects exactly that).

``broken`` maps a repository to how many more GETs of its files send half the bytes
before closing (a dropped connection); a large number breaks it for good.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serve ``repos`` (hub id -> local folder) on 127.0.0.1; use as a context manager."""

    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {repo: Path(folder) for repo, folder in repos.items()}
        self.broken: dict[str, int] = {}
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                return

            def do_HEAD(self) -> None:  # noqa: N802
                hub.answer(self, body=False)

            def do_GET(self) -> None:  # noqa: N802
                hub.answer(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _files(self, repo: str) -> list[Path]:
        folder = self.repos[repo]
        return sorted(p for p in folder.rglob("*") if p.is_file())

    def _split(self, path: str) -> tuple[str | None, str, str]:
        """(repo, kind, rest) of a request path."""
        api = path.startswith("/api/models/")
        parts = path.removeprefix("/api/models/" if api else "/").split("/")
        repo = "/".join(parts[:2])
        if repo not in self.repos:
            return None, "", ""
        rest = parts[2:]
        if api:
            kind = "tree" if rest[:1] == ["tree"] else "info"
            return repo, kind, ""
        if rest[:1] == ["resolve"] and len(rest) >= 3:
            return repo, "file", "/".join(rest[2:])
        return None, "", ""

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(handler.path).path)
        self.requests.append(f"{handler.command} {path}")
        repo, kind, name = self._split(path)
        if repo is None:
            self._send(handler, 404, b'{"error": "Repository not found"}', body,
                       {"X-Error-Code": "RepoNotFound"})  # fmt: skip
            return
        folder = self.repos[repo]
        if kind == "info":
            siblings = [
                {"rfilename": str(p.relative_to(folder)), "size": p.stat().st_size}
                for p in self._files(repo)
            ]
            data = {"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                    "siblings": siblings, "tags": []}  # fmt: skip
            self._send(handler, 200, json.dumps(data).encode(), body)
            return
        if kind == "tree":
            entries = [
                {
                    "type": "file",
                    "path": str(p.relative_to(folder)),
                    "size": p.stat().st_size,
                    "oid": hashlib.sha1(p.read_bytes()).hexdigest(),
                }  # fmt: skip
                for p in self._files(repo)
            ]
            self._send(handler, 200, json.dumps(entries).encode(), body)
            return
        target = folder / name
        if not target.is_file():
            self._send(handler, 404, b'{"error": "Entry not found"}', body,
                       {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})  # fmt: skip
            return
        data = target.read_bytes()
        headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
        if body and self.broken.get(repo, 0) > 0 and len(data) > 1000:
            self.broken[repo] -= 1
            handler.send_response(200)
            for key, value in {**headers, "Content-Length": str(len(data))}.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])  # then the connection drops
            handler.close_connection = True
            return
        self._send(handler, 200, data, body, headers)

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        handler.send_response(status)
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body:
            handler.wfile.write(data)
