"""One launched stage: run its ``cmd`` in its ``wdir``, then record it in its ``dvc.lock``.

:class:`StageJob` is what submitit pickles and runs on the worker (a SLURM node or a local process):

1. the stage's non-persistent outputs are removed first, as ``dvc repro`` does, so a job that fails
   leaves no stale or half-written ``model.pt`` behind;
2. the stage's own ``cmd`` runs in its own process group (a training stage on K > 1 GPUs under
   ``torchrun --nproc_per_node K``, using the trainer's DDP);
3. only when it exits 0, ``dvc commit`` of that one stage (:func:`commit`), serialised with the other
   jobs through a lock file, writes its hashes to the lock file and its outputs to the DVC cache.

Time limits and preemption: SLURM signals the job (``USR2``, ``signal_delay_s`` before the limit);
submitit then calls :meth:`StageJob.checkpoint`, which asks the training process to save ``last.pt`` at
the end of its current step (``SIGUSR1``, :mod:`lic.train`), waits for it, and hands submitit the same
job to requeue. The requeued job runs the same ``cmd``, which resumes from ``last.pt`` bit-exactly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from lic.launch import state
from lic.launch.graph import Stage, in_root

#: how long a training process may take to finish its step and save ``last.pt`` after SIGUSR1
STOP_GRACE_S = 600


class StageFailed(RuntimeError):
    """A stage's command exited non-zero (the message names the stage and its log)."""


def command(stage: Stage, nproc: int) -> str:
    """The stage's ``cmd``; a training stage on ``nproc`` > 1 devices runs under torchrun."""
    if nproc > 1 and stage.is_training:
        rest = stage.cmd[len("lic "):]
        return f"torchrun --standalone --nproc_per_node {nproc} -m lic.cli {rest}"
    return stage.cmd


def remove_outputs(stage: Stage) -> None:
    """Delete the stage's non-persistent outputs (what ``dvc repro`` does before running a stage)."""
    for out, persist in zip(stage.outs, stage.persist):
        if persist:
            continue
        p = Path(stage.wdir) / out
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def commit(root: str | Path, address: str) -> None:
    """``dvc commit --force <address>``: the stage's deps and outs hashed into its lock file, its cached
    outputs into the DVC cache; one DVC command at a time (:func:`lic.launch.state.retry_locked`)."""
    from dvc.repo import Repo

    def run() -> None:
        with in_root(root), Repo(str(root)) as repo:
            repo.commit(address, force=True)

    state.retry_locked(root, run)


class StageJob:
    """The callable submitit runs for one stage (picklable; see the module docstring)."""

    def __init__(self, root: str, stage: Stage, nproc: int = 1, gpus: tuple[int, ...] | None = None,
                 threads: int | None = None) -> None:
        self.root, self.stage, self.nproc, self.gpus, self.threads = str(root), stage, nproc, gpus, threads
        self._proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_proc"] = None
        return d

    def _env(self) -> dict:
        env = dict(os.environ)
        env.pop("LIC_WARM", None)  # never through a warm server of the submitting shell
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpus))
        if self.threads:
            env["OMP_NUM_THREADS"] = str(self.threads)
        return env

    def __call__(self) -> str:
        st = self.stage
        log = state.current_log()
        state.update(self.root, st.address, status="running", log=log, host=os.uname().nodename,
                     started=time.time())
        remove_outputs(st)
        cmd = command(st, self.nproc)
        print(f"[launch] {st.address}: {cmd}  (in {st.wdir})", flush=True)
        self._proc = subprocess.Popen(["bash", "-c", cmd], cwd=st.wdir, env=self._env(), start_new_session=True)
        state.update(self.root, st.address, pid=self._proc.pid)  # the stage's process group, on `host`
        # poll, never Popen.wait(): submitit's signal handler runs in this thread, and a wait inside it
        # (checkpoint) would spin on the lock an outer wait() holds
        while (rc := self._proc.poll()) is None:
            time.sleep(0.5)
        self._proc = None
        if rc != 0:
            remove_outputs(st)  # nothing half-written stays behind to be mistaken for a result
            msg = f"stage {st.address} failed (exit {rc}); log: {log}"
            state.update(self.root, st.address, status="failed", error=msg, ended=time.time())
            raise StageFailed(msg)
        commit(self.root, st.address)
        state.update(self.root, st.address, status="done", ended=time.time())
        print(f"[launch] {st.address}: done and recorded in its lock file", flush=True)
        return st.address

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on the time-limit/preemption signal: stop the stage's process at a
        checkpoint, then requeue this same job."""
        import submitit

        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGUSR1)  # lic.train: save last.pt after this step, exit
                deadline = time.monotonic() + STOP_GRACE_S
                while proc.poll() is None and time.monotonic() < deadline:
                    time.sleep(0.2)
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)  # resumes from the previous last.pt instead
                    while proc.poll() is None:
                        time.sleep(0.2)
            except ProcessLookupError:
                pass
        self._proc = None
        state.update(self.root, self.stage.address, status="requeued", requeued=time.time())
        print(f"[launch] {self.stage.address}: stopped at a checkpoint; requeued", flush=True)
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)
