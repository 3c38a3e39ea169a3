"""A warm fork server for the pipeline's many short ``lic`` commands.

DVC runs every stage as its own process, and the default pipeline has ~140 of them. A ``lic train``
or ``lic evaluate`` process of the default profile spends ~9 s importing torch and CompressAI (which
pulls in torch_geometric, torch._dynamo, scipy.stats and pandas) and ~3 s in interpreter teardown,
for a few seconds of work. ``lic warm -- CMD`` starts a server that imports those modules once,
runs CMD (e.g. ``dvc repro``) with ``LIC_WARM`` pointing to its socket, and stops the server when CMD
ends. Each ``lic`` command started under CMD then hands its arguments, working directory, environment
and standard streams to the server, which forks a child that runs the command exactly as a fresh
process would (same :func:`lic.cli.main`, the caller's streams, cwd and environment) and returns its
exit status. Nothing runs in the server itself, so every command starts from the same state: the
modules imported, no torch thread pool, no CUDA context, no RNG use.

The client runs the command itself, in its own process, whenever the server cannot be used:

* ``LIC_WARM`` unset, or no server answering on it;
* the server's checkout, Python or import-time environment (:data:`IMPORT_ENV`) differs from the
  caller's;
* a ``lic`` source file changed since the server imported it (the child would run stale code).

So the warm path is an optimisation only: with or without it, a command gives the same outputs.
Signals the client receives (SIGINT, SIGTERM, SIGHUP: DVC interrupted) are forwarded to the child.

Protocol (one connection per command, AF_UNIX stream): the client sends a 4-byte big-endian length
and a JSON request {argv, cwd, env, executable} with its fds 0-2 attached (SCM_RIGHTS); the server
answers ``R<reason>\\n`` (refused: run it yourself) or ``P<pid>\\n`` then, when the child ends,
``S<status>\\n``. The server keeps its end of the connection until it has reaped the child: a child
killed by a signal (a native crash, e.g. SIGABRT from glibc's heap checks) ends without writing ``S``, and
the server then sends ``K<signal>\\n`` (the client reports it and exits 128 + signal, as a shell would). A
connection closed without either means the server went away (status 1).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

ENV = "LIC_WARM"
#: environment variables read at import time by lic, Python or torch: a caller whose values differ from
#: the server's runs its command itself (the server's modules were imported under the server's values)
IMPORT_ENV = ("LIC_ROOT", "PYTHONHASHSEED", "PYTHONPATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "CUDA_VISIBLE_DEVICES", "TORCH_HOME", "PYTORCH_CUDA_ALLOC_CONF")
#: what the server imports once: every module a pipeline stage's command needs that is slow to import
PRELOAD = ("torch", "compressai", "lic.train", "lic.evaluate", "lic.codec", "lic.models.registry",
           "lic.complexity", "lic.bench", "lic.anchors", "lic.metrics", "lic.results", "dvclive", "dvclive.live",
           "dvc.repo", "tqdm.auto", "PIL.Image")


# ------------------------------------------------------------------------------------------- client

def run_remote(argv: list[str]) -> int | None:
    """Run ``lic argv`` through the server named by ``$LIC_WARM``; None: run it here instead."""
    path = os.environ.get(ENV)
    if not path or argv[:1] == ["warm"]:
        return None
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
    except OSError:
        return None
    with sock:
        request = json.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ),
                              "executable": sys.executable}).encode()
        fds = _std_fds()
        try:
            socket.send_fds(sock, [struct.pack(">I", len(request)) + request], fds)
        finally:
            for fd in fds:
                if fd > 2:
                    os.close(fd)
        reader = sock.makefile("rb")
        first = reader.readline()
        if not first or first.startswith(b"R"):
            return None  # refused (or the server went away before forking): nothing has run yet
        pid = int(first[1:])
        previous = {s: signal.signal(s, lambda signum, _frame: _forward(pid, signum))
                    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            status = reader.readline()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        if status.startswith(b"S"):
            return int(status[1:])
        if status.startswith(b"K"):
            signum = int(status[1:])
            try:
                name = signal.Signals(signum).name
            except ValueError:
                name = "unknown"
            print(f"lic: the warm worker (pid {pid}) was killed by signal {signum} ({name})", file=sys.stderr)
            return 128 + signum
        print(f"lic: the warm worker (pid {pid}) ended without an exit status", file=sys.stderr)
        return 1


def _forward(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _std_fds() -> list[int]:
    """fds 0-2, with /dev/null standing in for a closed one."""
    fds = []
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            fds.append(os.open(os.devnull, mode))
    return fds


# ------------------------------------------------------------------------------------------- server

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

    from lic.cli import ignore_known_warnings

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
        from lic import cli, parallel

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


def _flush() -> None:
    import logging

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


# ----------------------------------------------------------------------------------------- launcher

def run_with_server(cmd: list[str]) -> int:
    """Start a server, run ``cmd`` with ``$LIC_WARM`` set to it, stop the server; ``cmd``'s status."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="lic-warm-") as tmp:
        path = os.path.join(tmp, "s")
        r, w = os.pipe()
        server = subprocess.Popen([sys.executable, "-m", "lic.warm", "serve", path, str(w)], pass_fds=(w,))
        os.close(w)
        with os.fdopen(r, "rb") as ready:
            ok = ready.readline() == b"ready\n"
        env = dict(os.environ)
        if ok:
            env[ENV] = path
        else:
            print("[warm] the server did not start; running the commands without it", file=sys.stderr)
        try:
            return subprocess.call(cmd, env=env)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


def exit_now(status: int) -> None:
    """End the process with ``status`` without the interpreter's teardown (~3 s with torch and CompressAI
    loaded): streams and logging are flushed first; atexit handlers do not run."""
    _flush()
    os._exit(status)


if __name__ == "__main__":  # python -m lic.warm serve PATH [READY_FD]
    if len(sys.argv) >= 3 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
    else:
        print("usage: python -m lic.warm serve SOCKET [READY_FD]", file=sys.stderr)
        sys.exit(2)
