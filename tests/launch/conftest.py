"""A real single-node SLURM cluster on this machine for the ``lic launch --executor slurm`` tests.

Debian's ``slurm-wlm`` and ``munge`` (installed by ``make system-deps``, as the codec anchors' tools are):
the fixture writes a munge key and a ``slurm.conf`` for one node (this host, its real CPUs and memory,
partition ``debug``) in a temporary folder, starts ``munged``, ``slurmctld`` and ``slurmd`` as root, waits
until ``sinfo`` shows the node idle, and at the end stops every daemon and any stray ``slurmstepd`` it
started, even when a test failed. Where the cluster cannot start, the tests fail saying why; they are
skipped only when not root and ``LIC_SKIP_SLURM=1`` says so.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo", "scontrol", "squeue", "scancel")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """``slurmd -C``'s description of this machine (real CPUs, sockets, memory) as the node's line."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=60, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("NodeName="))
    fields = dict(f.split("=", 1) for f in line.split())
    mem = int(fields.get("RealMemory", "1024"))
    fields["RealMemory"] = str(max(256, mem - 512))  # a little under: the node must not drain for low memory
    return " ".join(f"{k}={v}" for k, v in fields.items())


class SlurmCluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[subprocess.Popen] = []
        self.env = dict(os.environ)
        self.conf = folder / "slurm.conf"
        self.host = socket.gethostname().split(".")[0]

    def _write(self) -> None:
        f = self.folder
        for d in ("state", "spool", "log", "munge"):
            (f / d).mkdir(parents=True, exist_ok=True)
        os.chmod(f / "munge", 0o700)
        key = f / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        self.munge_socket = f / "munge" / "munge.socket"
        node = _node_line()
        self.node = node.split()[0].split("=", 1)[1]
        self.conf.write_text("\n".join([
            "ClusterName=lictest",
            f"SlurmctldHost={self.node}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={f / 'state'}",
            f"SlurmdSpoolDir={f / 'spool'}",
            f"SlurmctldPidFile={f / 'slurmctld.pid'}",
            f"SlurmdPidFile={f / 'slurmd.pid'}",
            f"SlurmctldLogFile={f / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={f / 'log' / 'slurmd.log'}",
            "ProctrackType=proctrack/pgid",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=2",
            "MinJobAge=300",
            "JobRequeue=1",
            "KillWait=5",
            "InactiveLimit=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            f"{node} NodeAddr=127.0.0.1 State=UNKNOWN",
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=60 State=UP OverSubscribe=NO",
            "",
        ]))
        self.env["SLURM_CONF"] = str(self.conf)

    def _start(self, cmd: list[str], name: str) -> None:
        log = open(self.folder / "log" / f"{name}.out", "w")
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                           start_new_session=True))

    def _log_tail(self) -> str:
        parts = []
        for p in sorted((self.folder / "log").glob("*")):
            text = p.read_text(errors="replace").strip().splitlines()[-8:]
            if text:
                parts.append(f"--- {p.name}\n" + "\n".join(text))
        return "\n".join(parts)

    def start(self, timeout_s: float = 90) -> None:
        missing = [b for b in BINARIES if shutil.which(b) is None]
        if missing:
            raise RuntimeError(f"SLURM test cluster: {', '.join(missing)} not installed; run `make system-deps` "
                               f"as root (apt-get install slurm-wlm munge)")
        if os.geteuid() != 0:
            raise RuntimeError("SLURM test cluster: the daemons must run as root (set LIC_SKIP_SLURM=1 to skip "
                               "these tests when not root)")
        self._write()
        self._start(["munged", "--foreground", "--force", f"--key-file={self.folder / 'munge' / 'munge.key'}",
                     f"--socket={self.munge_socket}", f"--pid-file={self.folder / 'munge' / 'munged.pid'}",
                     f"--log-file={self.folder / 'log' / 'munged.log'}",
                     f"--seed-file={self.folder / 'munge' / 'munged.seed'}"], "munged")
        deadline = time.monotonic() + 20
        while not self.munge_socket.exists():
            if time.monotonic() > deadline or self.procs[-1].poll() is not None:
                raise RuntimeError(f"SLURM test cluster: munged did not start\n{self._log_tail()}")
            time.sleep(0.2)
        self._start(["slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._start(["slurmd", "-D", "-N", self.node, "-f", str(self.conf)], "slurmd")
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"SLURM test cluster: {p.args[0]} exited with {p.returncode}\n{self._log_tail()}")
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env)
            state = (out.stdout + out.stderr).strip()
            if out.returncode == 0 and state.startswith("idle"):
                return
            time.sleep(1)
        raise RuntimeError(f"SLURM test cluster: the node is not idle after {timeout_s:.0f} s (sinfo: {state!r})\n"
                           f"{self._log_tail()}")

    def squeue(self, job_id: str) -> str:
        """The job's state (PENDING, RUNNING, ...; empty once it has left the queue)."""
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], env=self.env, capture_output=True, text=True)
        return out.stdout.strip()

    def stop(self) -> None:
        subprocess.run(["scancel", "--full", "--quiet", "-u", "root"], env=self.env, capture_output=True, timeout=30)
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self._kill_strays()

    def _kill_strays(self) -> None:
        """Processes of this cluster that outlived their daemons (slurmstepd and the jobs it ran): every
        process whose environment names this cluster's slurm.conf."""
        mark = f"SLURM_CONF={self.conf}".encode()
        for d in Path("/proc").iterdir():
            if not d.name.isdigit() or int(d.name) == os.getpid():
                continue
            try:
                if mark not in (d / "environ").read_bytes():
                    continue
                os.kill(int(d.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    if os.geteuid() != 0 and os.environ.get("LIC_SKIP_SLURM") == "1":
        pytest.skip("not root and LIC_SKIP_SLURM=1: the SLURM cluster tests need root to start the daemons")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
