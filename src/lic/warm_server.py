"""The server side of ``lic warm`` (:mod:`lic.warm` is the client and the launcher, and documents the
protocol): import :data:`lic.warm.PRELOAD` once, then fork a child per request that runs
:func:`lic.cli.main` exactly as a fresh process would. Started by :func:`lic.warm.run_with_server` as
``python -m lic.warm_server SOCKET [READY_FD]``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

from lic.warm import IMPORT_ENV, PRELOAD, _flush


def _source_snapshot() -> dict[str, float]:
    """mtime of every loaded ``lic`` module's file."""
    snap = {}
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if (name == "lic" or name.startswith("lic.")) and f:
            try:
                snap[f] = os.stat(f).st_mtime_ns
            except OSError:
                snap[f] = -1
    return snap


def stale_sources(snapshot: dict[str, float]) -> list[str]:
    """The files of ``snapshot`` changed (or gone) since it was taken."""
    changed = []
    for f, mtime in snapshot.items():
        try:
            if os.stat(f).st_mtime_ns != mtime:
                changed.append(f)
        except OSError:
            changed.append(f)
    return changed


def refusal(request: dict, snapshot: dict[str, float]) -> str | None:
    """Why the server must not run ``request`` (None: it may)."""
    if request.get("executable") != sys.executable:
        return f"another Python ({request.get('executable')})"
    env = request.get("env", {})
    for k in IMPORT_ENV:
        if env.get(k) != os.environ.get(k):
            return f"{k} differs"
    if changed := stale_sources(snapshot):
        return f"{os.path.basename(changed[0])} changed since the server started"
    return None


def serve(path: str, ready_fd: int | None = None) -> None:
    """Import :data:`PRELOAD`, listen on ``path`` and fork a child per request, until SIGTERM."""
    import importlib

    from lic.quiet import ignore_known_warnings

    ignore_known_warnings()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception as e:  # an optional module: its commands import it themselves
            print(f"[warm] not preloaded: {name} ({type(e).__name__}: {e})", file=sys.stderr)
    from lic.models import registry

    registry._load_all()

    snapshot = _source_snapshot()
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    stop = False

    def _stop(signum, frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.settimeout(0.5)
    children: dict[int, socket.socket] = {}  # pid -> the connection of the client waiting for it
    if ready_fd is not None:
        os.write(ready_fd, b"ready\n")
        os.close(ready_fd)
    try:
        while not stop:
            _reap(children)
            try:
                conn, _ = server.accept()
            except (TimeoutError, socket.timeout, InterruptedError):
                continue
            except OSError:
                if stop:
                    break
                raise
            pid = None
            try:
                pid = _handle(conn, server, snapshot, list(children.values()))
            except Exception as e:  # a bad request must not take the server down
                print(f"[warm] request failed: {type(e).__name__}: {e}", file=sys.stderr)
            finally:
                if pid is None:
                    conn.close()
                else:
                    children[pid] = conn
    finally:
        server.close()
        if os.path.exists(path):
            os.unlink(path)
        _reap(children)
        for conn in children.values():
            conn.close()


def _reap(children: dict[int, socket.socket]) -> None:
    """Collect every ended child; tell the client of one killed by a signal which signal it was."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is None:
            continue
        with conn:
            if os.WIFSIGNALED(status):  # it could not write S: say why it ended
                try:
                    conn.sendall(f"K{os.WTERMSIG(status)}\n".encode())
                except OSError:
                    pass


def _recv_request(conn: socket.socket) -> tuple[dict, list[int]]:
    conn.settimeout(30)
    msg, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    if len(msg) < 4:
        raise ValueError("short request")
    n = struct.unpack(">I", msg[:4])[0]
    data = msg[4:]
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ValueError("truncated request")
        data += chunk
    return json.loads(data), fds


def _handle(conn: socket.socket, server: socket.socket, snapshot: dict[str, float],
            others: list[socket.socket] = ()) -> int | None:
    """Serve one request: the pid of the forked child, or None when refused. ``others``: the server's
    connections to the clients of running children, closed in the new child (only the server holds them)."""
    request, fds = _recv_request(conn)
    try:
        if len(fds) != 3:
            conn.sendall(b"Rno standard streams\n")
            return None
        if reason := refusal(request, snapshot):
            conn.sendall(f"R{reason}\n".encode())
            return None
        pid = os.fork()
        if pid == 0:  # the child: never returns
            server.close()
            for other in others:
                other.close()
            _child(conn, request, fds)
        return pid
    finally:
        for fd in fds:
            os.close(fd)


def _child(conn: socket.socket, request: dict, fds: list[int]) -> None:
    status = 1
    try:
        conn.settimeout(None)
        conn.sendall(f"P{os.getpid()}\n".encode())
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        sys.stdin = open(0, "r", closefd=False)
        sys.stdout = open(1, "w", closefd=False, buffering=1 if os.isatty(1) else -1)
        sys.stderr = open(2, "w", closefd=False, buffering=1)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["lic", *request["argv"]]
        from lic import cli, parallel  # the server runs the CLI; the CLI only knows the client (lic.warm)

        parallel.mark_fork_safe()  # the server never runs torch code: this child starts clean

        try:
            status = cli.main(request["argv"])
        except SystemExit as e:  # argparse errors, --help
            status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except KeyboardInterrupt:
            status = 128 + signal.SIGINT
        except BaseException:
            import traceback

            traceback.print_exc()
            status = 1
        status = int(status or 0)
    finally:
        _flush()
        try:
            conn.sendall(f"S{status}\n".encode())
        except OSError:
            pass
        os._exit(status)


if __name__ == "__main__":  # python -m lic.warm_server SOCKET [READY_FD]
    if len(sys.argv) >= 2:
        serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else None)
    else:
        print("usage: python -m lic.warm_server SOCKET [READY_FD]", file=sys.stderr)
        sys.exit(2)
