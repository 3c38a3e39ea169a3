"""Shared fixtures: a local HTTP server on 127.0.0.1 and an isolated project root."""

from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path

import pytest

from lic import paths

# The tests' models are tiny: one thread is faster than two (no synchronisation), and on a shared CPU
# much faster.
import torch  # noqa: E402

torch.set_num_threads(1)


class FileServer:
    """Serves ``files`` (name -> bytes) with HTTP Range support and scripted faults.

    ``drop_after[name] = n``: the next request for ``name`` sends its headers (full length) and
    only ``n`` bytes of the body, then closes the connection. ``ignore_range``: answer 200 to Range.
    Faults of a server that lies: names in ``omit_length`` get no Content-Length (the body ends when the
    connection closes); names in ``range_from_zero`` answer a Range request with a 206 whose body (and
    Content-Range) restarts at byte 0; ``trailing[name]`` is sent after the body, beyond its length.
    Every request's path and Range header is logged in ``requests``.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}
        self.ignore_range = False
        self.omit_length: set[str] = set()
        self.range_from_zero: set[str] = set()
        self.trailing: dict[str, bytes] = {}
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
                    if name in server.range_from_zero:
                        start = 0
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                chunk = body[start:]
                if name not in server.omit_length:
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
                self.wfile.write(chunk + server.trailing.get(name, b""))

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that hangs up early (a refused 206)
                import sys

                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self.httpd = Server(("127.0.0.1", 0), Handler)
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


# --------------------------------------------------------------------------- tiny training project
TINY_OVERRIDES = {"base_steps": 4, "steps": 6, "batch_size": 2, "patch_size": 64, "lr": 1e-3, "milestones": [5],
                  "checkpoint_every": 2, "log_every": 2, "num_workers": 0, "device": "cpu"}


def make_tiny_project(root: Path) -> dict:
    """A self-contained project at ``root``: params.yaml shrunk to a tiny model and schedule, and small
    sample / sample-train datasets (crops of scikit-image photographs). Returns the resolved params."""
    import numpy as np
    import yaml
    from PIL import Image
    from skimage import data as skdata

    from lic import config

    raw = yaml.safe_load(paths.PARAMS.read_text())
    raw["profile"] = "default"
    raw["train"]["default"].update(TINY_OVERRIDES)
    raw["models"]["minnen2018-mean"]["default"]["kwargs"] = {"N": 16, "M": 24}
    raw["models"]["minnen2018-mean"]["default"]["train"] = {}  # the tiny schedule above, not the profile's
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    photos = {"astronaut": skdata.astronaut(), "coffee": skdata.coffee(), "chelsea": skdata.chelsea()}
    sets = {"sample": {"astronaut": (0, 0, 97, 131), "chelsea": (10, 20, 64, 64)},
            "sample-train": {"coffee": (0, 0, 150, 200), "astronaut": (200, 200, 180, 120)}}
    for ds, crops in sets.items():
        d = root / "data" / "datasets" / ds
        d.mkdir(parents=True, exist_ok=True)
        for name, (y, x, h, w) in crops.items():
            Image.fromarray(np.ascontiguousarray(photos[name][y:y + h, x:x + w])).save(d / f"{name}.png")
    return config.resolve(raw)


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory):
    """(root, params) of a tiny project with one trained checkpoint per quality 1 and 6."""
    from lic import train
    from lic.data import prepare

    root = tmp_path_factory.mktemp("tiny")
    mp = pytest.MonkeyPatch()
    mp.setattr(paths, "ROOT", root)
    mp.setattr(paths, "DATA", root / "data")
    mp.setattr(paths, "CHECKPOINTS", root / "checkpoints")
    mp.setattr(paths, "RESULTS", root / "results")
    try:
        params = make_tiny_project(root)
        for ds in ("sample", "sample-train"):
            prepare.write_manifest(ds)
        train.train("minnen2018-mean", "base", params, progress=False)
        for q in (1, 6):
            train.train("minnen2018-mean", q, params, progress=False)
    finally:
        mp.undo()
    return root, params


@pytest.fixture
def in_tiny_project(tiny_project, monkeypatch):
    root, params = tiny_project
    monkeypatch.setattr(paths, "ROOT", root)
    monkeypatch.setattr(paths, "DATA", root / "data")
    monkeypatch.setattr(paths, "CHECKPOINTS", root / "checkpoints")
    monkeypatch.setattr(paths, "RESULTS", root / "results")
    monkeypatch.setenv("LIC_ROOT", str(root))
    return root, params
