"""The two executors of ``lic launch``, both submitit's: ``local`` (processes on this machine) and
``slurm`` (sbatch). Also how many jobs may run at once and on which GPUs (``local``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("local", "slurm")
#: a local job without a time limit still needs one for submitit: a year
LOCAL_TIMEOUT_MIN = 365 * 24 * 60


@dataclass
class Options:
    max_parallel: int | None = None       # local: default one job per GPU (one on a CPU); slurm: unlimited
    gpus_per_job: int | None = None       # > 1: the training stage runs under torchrun --nproc_per_node K;
                                          # slurm: --gpus-per-node (none requested when unset); local: 1
    cpus_per_job: int | None = None
    timeout_min: int | None = None        # slurm: the job's wall-clock limit (--time); requeued when reached
    partition: str | None = None
    slurm_args: dict = field(default_factory=dict)   # extra #SBATCH lines, KEY=VALUE
    signal_delay_s: int = 120             # the USR2 warning before the time limit: one step and a save
    max_requeues: int = 1000              # time limits a job may reach before it is given up


def parse_slurm_args(items: list[str]) -> dict:
    """``["account=lab", "qos=high", "exclusive"]`` -> submitit's ``additional_parameters``."""
    out = {}
    for item in items:
        key, sep, value = item.lstrip("-").partition("=")
        if not key:
            raise ValueError(f"--slurm-arg {item!r}: expected KEY=VALUE (an #SBATCH option without its --)")
        out[key.replace("-", "_")] = value if sep else True
    return out


def local_gpus() -> int:
    """GPUs this machine shows (``CUDA_VISIBLE_DEVICES`` respected)."""
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    if vis is not None:
        return len([v for v in vis.split(",") if v.strip() and v.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def slots(kind: str, opts: Options) -> list[tuple[int, ...] | None]:
    """One entry per job that may run at once: the GPU indices it gets (local GPU machine), or None
    (a CPU process, or a SLURM job whose GPUs SLURM assigns)."""
    if kind == "slurm":
        return [None] * (opts.max_parallel or 10**6)
    k = opts.gpus_per_job or 1
    if k < 1:
        raise ValueError("--gpus-per-job must be at least 1")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    n = local_gpus()
    if n == 0:
        return [None] * (opts.max_parallel or 1)
    ids = [int(v) for v in visible.split(",") if v.strip()] if visible else list(range(n))
    groups = [tuple(ids[i:i + k]) for i in range(0, n - k + 1, k)]
    if not groups:
        raise ValueError(f"--gpus-per-job {k} but this machine has {n} GPU(s)")
    return groups[:opts.max_parallel] if opts.max_parallel else groups


def make(kind: str, folder: Path, opts: Options):
    """A submitit executor writing its scripts and logs under ``folder`` (``%j``: one folder per job)."""
    import submitit

    folder = Path(folder) / "%j"
    if kind == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=opts.timeout_min or LOCAL_TIMEOUT_MIN, signal_delay_s=opts.signal_delay_s)
        return ex
    if kind != "slurm":
        raise ValueError(f"unknown executor {kind!r}; use one of {KINDS}")
    if shutil.which("sbatch") is None:
        raise FileNotFoundError("--executor slurm: no `sbatch` on PATH (run lic launch on a SLURM login node)")
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=opts.max_requeues)
    params = dict(time=opts.timeout_min or 60, nodes=1, ntasks_per_node=1, signal_delay_s=opts.signal_delay_s,
                  stderr_to_stdout=True, additional_parameters={"requeue": True, **opts.slurm_args})
    if opts.partition:
        params["partition"] = opts.partition
    if opts.cpus_per_job:
        params["cpus_per_task"] = opts.cpus_per_job
    if opts.gpus_per_job:
        params["gpus_per_node"] = opts.gpus_per_job
    ex.update_parameters(**params)
    return ex
