"""``fork_map``: a map over independent jobs in forked worker processes, for the CPU pipeline.

DVC runs one stage at a time, so on a 2-core machine the second core idles once the unit tests are
done. A stage whose work splits into independent jobs (evaluation: one job per quality) maps them over
a few forked workers. A forked worker inherits the imported torch,
CompressAI and lic (a spawned one would spend seconds re-importing them), which is safe on Linux in a
process that holds no CUDA context and has run no backward pass (:func:`mark_fork_safe`). Otherwise,
with one worker or with one job, the map runs in this process.
Results come back in the order of the jobs, and a job's exception is raised in the caller.
"""

from __future__ import annotations

import sys
from typing import Callable, Iterable, Iterator


_FORK_SAFE = False


def mark_fork_safe() -> None:
    """Declare that this process has run no torch computation yet, so forked workers may use autograd:
    :mod:`lic.cli` calls it when a command starts (a ``lic warm`` server never runs torch code either).
    A process that has run a backward pass must not fork workers that run one (PyTorch's autograd
    engine is not fork-safe: the child's backward waits forever for the parent's engine threads), so
    without this mark :func:`fork_map` runs in the calling process."""
    global _FORK_SAFE
    _FORK_SAFE = True


def can_fork() -> bool:
    """Forked workers are used only on Linux, in a process marked by :func:`mark_fork_safe`, and
    only while it holds no CUDA context."""
    if not (_FORK_SAFE and sys.platform.startswith("linux")):
        return False
    torch = sys.modules.get("torch")
    return torch is None or not torch.cuda.is_initialized()


def fork_map(fn: Callable, jobs: Iterable, workers: int = 1) -> Iterator:
    """``map(fn, jobs)``, in ``min(workers, len(jobs))`` forked processes when that is more than one
    and :func:`can_fork`; ``fn`` and the jobs must be picklable, results too."""
    jobs = list(jobs)
    n = workers_used(workers, len(jobs))
    if n == 1:
        yield from map(fn, jobs)
        return
    import multiprocessing as mp

    pool = mp.get_context("fork").Pool(n)
    try:
        yield from pool.imap(fn, jobs)
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def workers_used(workers: int, jobs: int) -> int:
    """How many processes :func:`fork_map` uses for ``jobs`` jobs."""
    n = min(int(workers), jobs)
    return n if n > 1 and can_fork() else 1
