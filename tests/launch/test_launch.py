"""lic.launch without a cluster: the DVC graph, one job's run-and-commit (and failure), GPU slots, the plan."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lic import paths
from lic.cli import main
from lic.launch import executors, graph, plan, state
from lic.launch.job import StageFailed, StageJob, command


@pytest.fixture(scope="module")
def stages():
    return graph.load(paths.ROOT)


def test_dependencies_come_from_dvc_graph(stages):
    msr = "pipelines/tinylic/dvc.yaml:train_tinylic_msr@lu2022-tinylic-msr-3"
    order = graph.closure(stages, graph.select(stages, ["train_tinylic_msr@lu2022-tinylic-msr-3"]))
    assert order[-1] == msr
    v3 = "pipelines/tinylic/dvc.yaml:train_tinylic@lu2022-tinylic-v3-3"
    assert v3 in order and order.index(v3) < order.index(msr)          # the filter waits for TinyLIC v3 q3
    assert "pipelines/tinylic/dvc.yaml:train_tinylic@lu2022-tinylic-v3-2" not in order
    cgoo = graph.closure(stages, graph.select(stages, ["train_cgoo@kuang2025-cgoo-2"]))
    assert "pipelines/cgoo/dvc.yaml:train_tcm@liu2023-tcm-small-2" in cgoo   # CGOO waits for TCM of its quality
    base = graph.closure(stages, ["train_reference@minnen2018-mean-4"])
    assert "train_reference_base@minnen2018-mean" in base and "recipes" in base
    assert len(graph.select(stages, ["train_hpcm@*"])) == 48
    with pytest.raises(ValueError, match="no stage matches 'train_nothing@\\*'"):
        graph.select(stages, ["train_nothing@*"])


def test_multi_gpu_training_runs_under_torchrun(stages):
    train = stages["pipelines/hpcm/dvc.yaml:train_hpcm@li2025-hpcm-base-1"]
    assert command(train, 1) == train.cmd
    assert command(train, 4) == ("torchrun --standalone --nproc_per_node 4 -m lic.cli " + train.cmd[len("lic "):])
    assert command(stages["evaluate@li2025-hpcm-base"], 4) == "lic evaluate li2025-hpcm-base --quiet"


def test_local_slots_one_gpu_group_per_job(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3,4,5,6,7")
    assert executors.slots("local", executors.Options()) == [(i,) for i in range(8)]
    assert executors.slots("local", executors.Options(gpus_per_job=2, max_parallel=3)) == [(0, 1), (2, 3), (4, 5)]
    with pytest.raises(ValueError, match="--gpus-per-job 16 but this machine has 8"):
        executors.slots("local", executors.Options(gpus_per_job=16))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert executors.slots("local", executors.Options(max_parallel=3)) == [None] * 3
    assert executors.parse_slurm_args(["account=lab", "--qos=high", "exclusive"]) == \
        {"account": "lab", "qos": "high", "exclusive": True}


def _dvc_repo(root, cmd):
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "dvc.yaml").write_text(json.dumps({"stages": {"make": {"cmd": cmd, "outs": ["out.txt"]}}}))
    return graph.load(root)["make"]


def test_job_runs_cmd_then_records_the_stage(tmp_path):
    stage = _dvc_repo(tmp_path, "echo result > out.txt")
    assert StageJob(str(tmp_path), stage)() == "make"
    assert (tmp_path / "out.txt").read_text() == "result\n"
    assert "make" in (tmp_path / "dvc.lock").read_text()
    assert graph.changed(tmp_path, ["make"]) == set()
    assert state.read(tmp_path, "make")["status"] == "done"


def test_failed_job_records_nothing_and_says_where(tmp_path):
    stage = _dvc_repo(tmp_path, "echo half > out.txt; exit 3")
    with pytest.raises(StageFailed, match=r"stage make failed \(exit 3\); log: "):
        StageJob(str(tmp_path), stage)()
    assert not (tmp_path / "out.txt").exists()          # the half-written output is gone
    assert not (tmp_path / "dvc.lock").exists()         # and nothing was recorded
    rec = state.read(tmp_path, "make")
    assert rec["status"] == "failed" and "exit 3" in rec["error"]
    assert "failed" in state.report(tmp_path) and "make" in state.report(tmp_path)


def test_plan_prices_the_paper_profile(stages, tmp_path):
    from lic.config import load_params

    params = load_params(profile="paper")
    rows, total = plan.plan(list(stages.values()), params, bench_roots=[])
    by = {r["stage"]: r for r in rows}
    hpcm = by["pipelines/hpcm/dvc.yaml:train_hpcm@li2025-hpcm-base-1"]
    assert hpcm["steps"] == 2_000_000 and hpcm["source"].startswith("Table A HPCM-Base")
    assert hpcm["gpu_hours"] == pytest.approx(2_000_000 / 3.67 / 3600)
    assert by["pipelines/hpcm/dvc.yaml:train_hpcm_base@li2025-hpcm-base"]["steps"] == 0
    cgoo = by["pipelines/cgoo/dvc.yaml:train_cgoo@kuang2025-cgoo-1"]
    assert cgoo["steps"] == 100_000 + 20_000 + 40_000 + 200_000 and "assumed" in cgoo["source"]
    assert all(r["source"] for r in rows) and total == pytest.approx(sum(r["gpu_hours"] for r in rows))
    assert plan.render(rows, total, "paper").splitlines()[-1] == f"total: {total:.0f} GPU-hours"
    # a GPU measurement of the same model, batch and patch replaces the published figure
    (tmp_path / "gpu.json").write_text(json.dumps({
        "profile": "paper", "torch_device": "cuda", "device_name": "NVIDIA H100", "date": "2026-01-01",
        "models": [{"model": "li2025-hpcm-base", "training": {"steps_per_s": 10.0, "batch": 8, "patch": 256}}]}))
    rows, _ = plan.plan([stages["pipelines/hpcm/dvc.yaml:train_hpcm@li2025-hpcm-base-1"]], params, [tmp_path])
    assert rows[0]["steps_per_s"] == 10.0 and "measured on NVIDIA H100" in rows[0]["source"]


def test_cli_bad_input_is_one_line(capsys):
    assert main(["launch", "train_nothing@*", "--dry"]) == 2
    assert "no stage matches" in capsys.readouterr().err
    assert main(["launch", "recipes", "--max-parallel", "0"]) == 2
    assert main(["launch", "recipes", "--slurm-partition", "debug"]) == 2
    assert main(["launch", "--plan", "recipes"]) == 2
    assert "--plan prices training stages" in capsys.readouterr().err
