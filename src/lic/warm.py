"""A warm fork server for the pipeline's many short ``lic`` commands.

DVC runs every stage as its own process, and the default pipeline has ~140 of them. A ``lic train``
or ``lic evaluate`` process of the default profile spends ~9 s importing torch and CompressAI (which
pulls in torch_geometric, torch._dynamo, scipy.stats and pandas) and ~3 s in interpreter teardown,
for a few seconds of work. ``lic warm -- CMD`` starts a server that imports those modules once,
runs CMD (e.g. ``dvc repro``) with ``LIC_WARM`` pointing to its socket, and stops the server when CMD
ends. Each ``lic`` command started under CMD then hands its arguments, working directory, environment
and standard streams to the server (:mod:`lic.warm_server`), which forks a child that runs the command exactly as a fresh
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
        server = subprocess.Popen([sys.executable, "-m", "lic.warm_server", path, str(w)], pass_fds=(w,))
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
