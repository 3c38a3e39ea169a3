"""The warm fork server (lic.warm): commands run through it exactly as in a fresh process, and
whenever it cannot be used the client runs the command itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from lic import recipes, warm, warm_server


def _start_server(path, env):
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "lic.warm_server", str(path), str(w)], pass_fds=(w,), env=env)
    os.close(w)
    with os.fdopen(r, "rb") as ready:
        assert ready.readline() == b"ready\n"
    return proc


@pytest.fixture
def server(in_tiny_project, tmp_path, monkeypatch):
    path = tmp_path / "warm.sock"
    proc = _start_server(path, dict(os.environ))
    monkeypatch.setenv(warm.ENV, str(path))
    yield path
    proc.terminate()
    proc.wait(timeout=30)
    assert not path.exists()  # the server removes its socket


def test_commands_run_in_the_server_like_a_fresh_process(server, in_tiny_project, tmp_path, capfd, monkeypatch):
    root, params = in_tiny_project
    out = tmp_path / "recipes"
    assert warm.run_remote(["recipes", "--out", str(out)]) == 0
    assert "[recipes]" in capfd.readouterr().out  # the child wrote to the caller's stdout
    assert json.loads(recipes.path("minnen2018-mean", 1, out).read_text())["model"] == "minnen2018-mean"

    # the caller's cwd and environment, and its exit status
    monkeypatch.chdir(tmp_path)
    assert warm.run_remote(["train", "minnen2018-mean", "--quality", "1", "--recipe", "nope.json"]) == 2
    err = capfd.readouterr().err
    assert "nope.json: no such recipe file" in err and "Traceback" not in err
    assert warm.run_remote(["nosuch-command"]) == 2  # argparse's SystemExit
    assert "invalid choice" in capfd.readouterr().err

    # the same training run gives the same weights through the server as in this process
    recipes.write_all(params)
    rec = recipes.path("minnen2018-mean", 2)
    assert warm.run_remote(["train", "minnen2018-mean", "--quality", "2", "--recipe", str(rec), "--quiet"]) == 0
    ckpt = root / "checkpoints" / "minnen2018-mean" / "q2" / "model.pt"
    remote = torch.load(ckpt, weights_only=False)["fingerprint"]
    (ckpt.parent / "last.pt").unlink()
    from lic import cli

    assert cli.main(["train", "minnen2018-mean", "--quality", "2", "--recipe", str(rec), "--quiet"]) == 0
    assert torch.load(ckpt, weights_only=False)["fingerprint"] == remote


def test_the_client_runs_the_command_itself_when_the_server_cannot(server, in_tiny_project, tmp_path, monkeypatch):
    root, _ = in_tiny_project
    monkeypatch.setenv("LIC_ROOT", str(tmp_path))  # another checkout than the server's
    assert warm.run_remote(["recipes", "--out", str(tmp_path / "r")]) is None
    assert not (tmp_path / "r").exists()  # refused before anything ran
    monkeypatch.setenv("LIC_ROOT", str(root))
    assert warm.run_remote(["recipes", "--out", str(tmp_path / "r")]) == 0
    monkeypatch.setenv(warm.ENV, str(tmp_path / "no-server"))
    assert warm.run_remote(["recipes"]) is None
    monkeypatch.delenv(warm.ENV)
    assert warm.run_remote(["recipes"]) is None


def test_changed_sources_are_detected(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("x = 1\n")
    snap = {str(f): os.stat(f).st_mtime_ns}
    assert warm_server.stale_sources(snap) == []
    time.sleep(0.01)
    f.write_text("x = 2\n")
    os.utime(f, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert warm_server.stale_sources(snap) == [str(f)]
    f.unlink()
    assert warm_server.stale_sources(snap) == [str(f)]


def test_warm_command_runs_a_command_under_a_server_and_returns_its_status(in_tiny_project, tmp_path):
    out = tmp_path / "r"
    script = (f"import os, subprocess, sys; assert os.environ['{warm.ENV}']; "
              f"r = subprocess.run(['lic', 'recipes', '--out', {str(out)!r}]); sys.exit(3 if r.returncode == 0 else 1)")
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    r = subprocess.run([sys.executable, "-m", "lic.cli", "warm", "--", sys.executable, "-c", script], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 3, r.stderr
    assert "[recipes]" in r.stdout and (out / "train").is_dir()


def test_a_child_killed_by_a_signal_is_reported_to_its_client(tmp_path, monkeypatch, capsys):
    """A native crash (glibc's heap check aborts: SIGABRT) cannot write its status: the server, which
    reaps the child, sends the signal instead, and the client exits 128 + signal with a message."""
    import signal
    import socket
    import threading

    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the "worker": dies the way the crashed bench stage did
        import faulthandler

        faulthandler.disable()  # pytest's traceback dump would only be noise here
        os.abort()
    children = {pid: theirs}
    deadline = time.monotonic() + 30
    while children and time.monotonic() < deadline:
        warm_server._reap(children)
        time.sleep(0.01)
    assert not children  # reaped, and its connection closed
    assert ours.makefile("rb").read() == f"K{int(signal.SIGABRT)}\n".encode()

    # the client's side, against a stand-in server that answers what the real one would
    path = tmp_path / "s"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def answer():
        conn, _ = listener.accept()
        with conn:
            socket.recv_fds(conn, 1 << 20, 3)
            conn.sendall(b"P4242\nK6\n")

    t = threading.Thread(target=answer)
    t.start()
    monkeypatch.setenv(warm.ENV, str(path))
    assert warm.run_remote(["recipes"]) == 128 + 6
    t.join(timeout=30)
    listener.close()
    assert "the warm worker (pid 4242) was killed by signal 6 (SIGABRT)" in capsys.readouterr().err
