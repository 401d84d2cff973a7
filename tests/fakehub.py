"""A stand-in for the Hugging Face hub on loopback: a local folder served with the endpoints huggingface_hub's
`snapshot_download` calls, so `fetch-models` runs its real download path with no internet.

Layout: `root/<org>/<name>/...` is the repo `<org>/<name>` at one fixed commit. The endpoints (as huggingface_hub 2.x
calls them):
- `GET /api/models/<repo>[/revision/<rev>]`: repo info (`sha`, `siblings`, `gated`);
- `GET /api/models/<repo>/tree/<rev>?recursive=...`: the file listing, one page;
- `HEAD|GET /<repo>/resolve/<rev>/<path>`: file metadata (`X-Repo-Commit`, `ETag`, `Content-Length`) and bytes.
A repo named in `gated` answers its files with 401 and `X-Error-Code: GatedRepo` unless the request carries
`Authorization: Bearer <token>`, as the hub does for gated models whose terms the user has not accepted.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, root: Path, gated: dict[str, str] | None = None) -> None:
        self.root = root
        self.gated = gated or {}  # repo id -> the token that opens it
        self.requests: list[str] = []  # "METHOD path", for tests that check what was asked

    def repo_dir(self, repo: str) -> Path | None:
        folder = self.root / repo
        return folder if repo.count("/") == 1 and folder.is_dir() else None

    def files(self, repo: str) -> list[Path]:
        folder = self.root / repo
        return sorted(p for p in folder.rglob("*") if p.is_file())


def _oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # git's blob id, as the hub reports


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet: tests read hub.requests instead
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _reply(self, status: int, data: bytes = b"", headers: dict[str, str] | None = None, body: bool = True):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _json(self, obj: object, body: bool) -> None:
            self._reply(200, json.dumps(obj).encode(), {"Content-Type": "application/json"}, body)

        def _not_found(self, body: bool, code: str = "RepoNotFound") -> None:
            self._reply(404, b'{"error": "not found"}', {"X-Error-Code": code, "Content-Type": "application/json"},
                        body)  # fmt: skip

        def _serve(self, body: bool) -> None:
            path = unquote(urlsplit(self.path).path)
            hub.requests.append(f"{self.command} {path}")
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 4:
                repo = "/".join(parts[2:4])
                folder = hub.repo_dir(repo)
                if folder is None:
                    return self._not_found(body)
                rest = parts[4:]
                if not rest or rest[0] == "revision":
                    siblings = [{"rfilename": p.relative_to(folder).as_posix()} for p in hub.files(repo)]
                    info = {"id": repo, "modelId": repo, "sha": COMMIT, "private": False,
                            "gated": "manual" if repo in hub.gated else False, "siblings": siblings}  # fmt: skip
                    return self._json(info, body)
                if rest[0] == "tree":
                    entries = []
                    for p in hub.files(repo):
                        data = p.read_bytes()
                        entries.append({"type": "file", "oid": _oid(data), "size": len(data),
                                        "path": p.relative_to(folder).as_posix()})  # fmt: skip
                    return self._json(entries, body)
                return self._not_found(body)
            if len(parts) >= 5 and parts[2] == "resolve":
                repo = "/".join(parts[:2])
                if hub.repo_dir(repo) is None:
                    return self._not_found(body)
                token = hub.gated.get(repo)
                if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                    message = "Access to model is restricted. You must have access to it and be authenticated."
                    return self._reply(401, b"", {"X-Error-Code": "GatedRepo", "X-Error-Message": message}, body)
                file = hub.root / repo / "/".join(parts[4:])
                if not file.is_file():
                    return self._not_found(body, "EntryNotFound")
                data = file.read_bytes()
                headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{_oid(data)}"', "Accept-Ranges": "bytes"}
                start = self._range_start()
                if start:
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    return self._reply(206, data[start:], headers, body)
                return self._reply(200, data, headers, body)
            return self._not_found(body)

        def _range_start(self) -> int:
            value = self.headers.get("Range", "")
            if value.startswith("bytes=") and value.endswith("-"):
                return int(value[6:-1] or 0)
            return 0

    return Handler


@contextmanager
def serve(hub: FakeHub) -> Iterator[str]:
    """Serve `hub` on a free loopback port; yields the endpoint URL (what HF_ENDPOINT gets)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    thread = threading.Thread(target=server.serve_forever, name="fakehub", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
