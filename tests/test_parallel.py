"""lic.parallel.fork_map: results in job order, errors raised in the caller, in-process fallback."""

import os

import pytest

from lic import parallel


@pytest.fixture(autouse=True)
def fork_safe(monkeypatch):
    """These workers run no autograd, so forking this (test) process is safe for them."""
    monkeypatch.setattr(parallel, "_FORK_SAFE", True)


def _square_and_pid(x):
    if x == 7:
        raise ValueError("seven")
    return x * x, os.getpid()


def test_fork_map_keeps_the_order_and_uses_other_processes():
    out = list(parallel.fork_map(_square_and_pid, range(6), workers=2))
    assert [v for v, _ in out] == [0, 1, 4, 9, 16, 25]
    assert os.getpid() not in {pid for _, pid in out} and parallel.workers_used(2, 6) == 2


def test_fork_map_in_process_with_one_worker_or_one_job():
    for jobs, workers in ((range(3), 1), ([5], 4)):
        assert {pid for _, pid in parallel.fork_map(_square_and_pid, jobs, workers)} == {os.getpid()}
    assert parallel.workers_used(4, 1) == 1 and parallel.workers_used(1, 9) == 1


def test_fork_map_raises_a_jobs_error_in_the_caller():
    with pytest.raises(ValueError, match="seven"):
        list(parallel.fork_map(_square_and_pid, [1, 7, 2], workers=2))


def test_fork_map_stays_in_process_unless_marked_fork_safe(monkeypatch):
    """A process that has not been marked (it may have run a backward pass: forked autograd hangs) maps
    in-process; lic's console script and lic warm's children mark themselves at start."""
    monkeypatch.setattr(parallel, "_FORK_SAFE", False)
    assert {pid for _, pid in parallel.fork_map(_square_and_pid, range(4), workers=2)} == {os.getpid()}
    assert parallel.workers_used(2, 4) == 1
