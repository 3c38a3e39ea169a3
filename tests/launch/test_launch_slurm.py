"""``lic launch`` end to end on a real single-node SLURM cluster (conftest.py) and with the local executor:
the reference model's default-profile stages (shrunk, tests/launch/project.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

import project
from lic import paths, recipes
from lic.launch import state
from lic.train import BASE, train

KEY = "minnen2018-mean"
TRAINED = (BASE, 1, 6)   # the shrunk copy's active qualities


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return project.clone(tmp_path_factory.mktemp("launch-repo"))


def _fingerprint(path: Path) -> str:
    return torch.load(path, map_location="cpu", weights_only=False)["fingerprint"].hex()


def _model(root: Path, q) -> Path:
    return root / "checkpoints" / KEY / (BASE if q == BASE else f"q{q}") / "model.pt"


def _logs(repo: Path, out: str) -> str:
    """The launcher's output and the tail of every job log, for a failure message."""
    tails = [f"--- {p}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
             for p in sorted((repo / "logs" / "launch" / "jobs").glob("*/*.out"))]
    return "\n".join([out, *tails])


def test_local_executor_runs_upstream_stages_and_records_them(repo):
    r = project.run(["lic", "launch", "data@*", "recipes", "--executor", "local", "--max-parallel", "2"], repo)
    assert r.returncode == 0, _logs(repo, r.stdout + r.stderr)
    assert "8 stage(s)" in r.stdout
    st = project.run(["dvc", "status", "--json", "recipes", "data"], repo)
    assert st.returncode == 0 and json.loads(st.stdout) == {}, st.stdout + st.stderr
    recs = {rec["stage"]: rec for rec in state.records(repo)}
    assert recs["recipes"]["status"] == "done" and recs["recipes"]["executor"] == "local"
    assert Path(recs["recipes"]["log"]).is_file()


def test_slurm_training_requeues_resumes_and_matches_local(repo, slurm_cluster, tmp_path, monkeypatch):
    cmd = ["lic", "launch", "train_reference_base*", "train_reference@*", "--executor", "slurm",
           "--slurm-partition", "debug", "--timeout-min", "30", "--cpus-per-job", "1", "--signal-delay-s", "30"]
    launcher = subprocess.Popen(cmd, cwd=repo, env=project.env(repo, slurm_cluster.env), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        # preempt the base job once it has written a checkpoint: SLURM's time-limit/preemption signal (USR2).
        # Its training process is paused (SIGSTOP) from the first checkpoint until the signal is sent, so that
        # the signal lands mid-run however fast this machine trains.
        last = repo / "checkpoints" / KEY / "base" / "last.pt"
        deadline = time.monotonic() + 240
        while not last.exists():
            assert launcher.poll() is None and time.monotonic() < deadline, _logs(repo, launcher.stdout.read())
            time.sleep(0.05)
        rec = state.read(repo, f"train_reference_base@{KEY}")
        job_id, pgid = rec["job_id"], rec["pid"]
        os.killpg(pgid, signal.SIGSTOP)
        subprocess.run(["scancel", "--signal=USR2", job_id], env=slurm_cluster.env, check=True)
        time.sleep(1)
        os.killpg(pgid, signal.SIGCONT)
        # SLURM holds a requeued job for two minutes (its EligibleTime); release it at once
        while slurm_cluster.squeue(job_id) != "PENDING":
            assert launcher.poll() is None and time.monotonic() < deadline, _logs(repo, launcher.stdout.read())
            time.sleep(0.2)
        subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env=slurm_cluster.env, check=True)
        out, _ = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 0, _logs(repo, out)
    # the 7 stages ran as SLURM jobs; their upstream (data, recipes) was already recorded by the local launch
    assert "finished: 7 done, 8 up to date" in out, out
    base = state.read(repo, f"train_reference_base@{KEY}")
    assert base["status"] == "done" and "requeued" in base, base
    log = Path(base["log"]).read_text()
    assert "requeued" in log and "resumed from step" in log, log

    status = project.run(["lic", "launch", "--status"], repo, slurm_cluster.env)
    assert status.returncode == 0 and status.stdout.strip().splitlines()[-1] == "done: 15", status.stdout
    assert re.search(rf"^done +slurm +{job_id}  train_reference_base@{KEY} ", status.stdout, re.M), status.stdout

    # DVC: every launched stage recorded, nothing left to reproduce
    st = project.run(["dvc", "status", f"train_reference_base@{KEY}", "train_reference"], repo)
    assert st.returncode == 0 and "up to date" in st.stdout, st.stdout + st.stderr

    # no TARGET: every training stage dvc status reports changed, i.e. the papers' but no longer the reference's
    dry = project.run(["lic", "launch", "--dry"], repo)
    assert dry.returncode == 0 and "pipelines/hpcm/dvc.yaml:train_hpcm@li2025-hpcm-base-1:" in dry.stdout, dry.stdout
    assert "train_reference" not in dry.stdout, dry.stdout

    # the same recipes trained here, uninterrupted, give the same weights
    monkeypatch.setattr(paths, "ROOT", repo)
    monkeypatch.setattr(paths, "DATA", repo / "data")
    monkeypatch.setattr(paths, "CHECKPOINTS", tmp_path / "checkpoints")
    for q in TRAINED:
        rec = recipes.read(repo / "recipes" / "train" / KEY / ("base.json" if q == BASE else f"q{q}.json"))
        local = train(KEY, q, None, progress=False, resolved=rec["recipe"])
        assert _fingerprint(local) == _fingerprint(_model(repo, q)), f"{KEY} {q}: SLURM weights differ"


def test_sbatch_refusal_is_one_line(repo, slurm_cluster):
    r = project.run(["lic", "launch", "complexity", "--executor", "slurm", "--slurm-partition", "nosuch"],
                    repo, slurm_cluster.env)
    assert r.returncode == 2, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("lic: error: slurm executor could not submit complexity: ") and "partition" in last, last
