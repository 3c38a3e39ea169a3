"""Shared fixtures: a local HTTP server on 127.0.0.1 and an isolated project root."""

from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path

import pytest

from lic import paths


class FileServer:
    """Serves ``files`` (name -> bytes) with HTTP Range support and scripted faults.

    ``drop_after[name] = n``: the next request for ``name`` sends its headers (full length) and
    only ``n`` bytes of the body, then closes the connection. ``ignore_range``: answer 200 to Range.
    Every request's path and Range header is logged in ``requests``.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                rng = self.headers.get("Range")
                server.requests.append((name, rng))
                if name not in server.files:
                    self.send_error(404, "not found")
                    return
                body = server.files[name]
                start = 0
                if rng and not server.ignore_range:
                    start = int(rng.split("=")[1].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                self.send_header("Content-Length", str(len(chunk)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                n = server.drop_after.pop(name, None)
                if n is not None:
                    self.wfile.write(chunk[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(chunk)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/{name}"

    def ranges(self, name: str) -> list[str | None]:
        return [r for n, r in self.requests if n == name]


@pytest.fixture
def http_server():
    server = FileServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def project_root(tmp_path: Path, monkeypatch) -> Path:
    """Point lic.paths at an empty project in tmp_path (data stages write there, not in the repo)."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    monkeypatch.setattr(paths, "ROOT", root)
    monkeypatch.setattr(paths, "DATA", root / "data")
    return root
