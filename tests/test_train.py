import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from lic import train


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def test_recipe_resolves_lambda_and_overrides(tiny_project):
    _, params = tiny_project
    r = train.recipe(params, "minnen2018-mean", 3)
    assert r["lmbda"] == 0.0067 and r["metric"] == "mse" and r["kwargs"] == {"N": 16, "M": 24}
    with pytest.raises(ValueError, match="quality 7 out of range"):
        train.recipe(params, "minnen2018-mean", 7)
    with pytest.raises(KeyError, match="no models.not-a-model"):
        train.recipe(params, "not-a-model", 1)


def test_checkpoint_record_is_complete(tiny_project):
    root, _ = tiny_project
    rec = torch.load(root / "checkpoints/minnen2018-mean/q6/model.pt", map_location="cpu", weights_only=False)
    assert {"model", "kwargs", "quality", "state_dict", "params", "git_sha", "fingerprint"} <= set(rec)
    assert rec["updated"] and rec["steps"] == 6 and rec["params"]["lmbda"] == 0.0483
    run = json.loads((root / "checkpoints/minnen2018-mean/q6/run.json").read_text())
    assert run["params"]["train"]["steps"] == 6 and run["versions"]["torch"]


def test_interrupted_run_resumes_and_ends_identical(in_tiny_project, tmp_path):
    _, params = in_tiny_project
    full = train.train("minnen2018-mean", 2, params, tmp_path / "full", progress=False)
    train.train("minnen2018-mean", 2, params, tmp_path / "cut", progress=False, stop_after=3)
    state = torch.load(tmp_path / "cut/last.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 2  # checkpoint_every=2: at most that many steps are lost
    resumed = train.train("minnen2018-mean", 2, params, tmp_path / "cut", progress=False)
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_stop_signal_saves_the_step_and_resumes_identical(in_tiny_project, tmp_path, monkeypatch):
    """SIGUSR1 (what lic launch sends at a SLURM time limit): the run saves last.pt at the end of its current
    step, even between checkpoints, and stops; the rerun resumes there and ends with the uninterrupted weights."""
    _, params = in_tiny_project
    full = train.train("minnen2018-mean", 2, params, tmp_path / "full", progress=False)
    calls = {"n": 0}
    check = train._stop_requested

    def signal_at_step_3(world, device):
        calls["n"] += 1
        if calls["n"] == 3:  # checkpoint_every=2: step 3 is between checkpoints
            os.kill(os.getpid(), train.STOP_SIGNAL)
        return check(world, device)

    monkeypatch.setattr(train, "_stop_requested", signal_at_step_3)
    with pytest.raises(train.Interrupted, match="stopped at step 3 of 6"):
        train.train("minnen2018-mean", 2, params, tmp_path / "cut", progress=False)
    monkeypatch.setattr(train, "_stop_requested", check)
    assert torch.load(tmp_path / "cut/last.pt", map_location="cpu", weights_only=False)["step"] == 3
    assert not (tmp_path / "cut/model.pt").exists()
    resumed = train.train("minnen2018-mean", 2, params, tmp_path / "cut", progress=False)
    a, b = _weights(full), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_changed_recipe_starts_over_and_keeps_the_old_state(in_tiny_project, tmp_path, capsys):
    import copy

    _, params = in_tiny_project
    train.train("minnen2018-mean", 2, params, tmp_path / "r", progress=False, stop_after=2)
    changed = copy.deepcopy(params)
    changed["models"]["minnen2018-mean"]["lambdas"][1] = 0.004
    train.train("minnen2018-mean", 2, changed, tmp_path / "r", progress=False)
    assert "the recipe changed" in capsys.readouterr().out
    assert len(list((tmp_path / "r").glob("last.*.pt"))) == 1
    assert torch.load(tmp_path / "r/model.pt", weights_only=False)["params"]["lmbda"] == 0.004


def test_killed_process_resumes_not_restarts(in_tiny_project):
    root, _ = in_tiny_project
    import yaml

    proj = root.parent / "killproj2"
    proj.mkdir(exist_ok=True)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["train"]["default"].update({"steps": 60, "checkpoint_every": 3})
    (proj / "params.yaml").write_text(yaml.safe_dump(raw))
    if not (proj / "data").exists():
        os.symlink(root / "data", proj / "data")
        (proj / "checkpoints/minnen2018-mean").mkdir(parents=True)
        os.symlink(root / "checkpoints/minnen2018-mean/base", proj / "checkpoints/minnen2018-mean/base")
    env = {**os.environ, "LIC_ROOT": str(proj)}
    cmd = [sys.executable, "-m", "lic.cli", "train", "minnen2018-mean", "--quality", "4", "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = proj / "checkpoints/minnen2018-mean/q4/last.pt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:
        pytest.skip("training finished before it could be killed")
    step_at_kill = torch.load(last, map_location="cpu", weights_only=False)["step"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"resumed from step {step_at_kill}" in r.stdout
    rec = torch.load(last.parent / "model.pt", map_location="cpu", weights_only=False)
    assert rec["steps"] == 60


def test_nan_loss_stops_and_keeps_last_good_checkpoint(in_tiny_project, tmp_path, monkeypatch):
    _, params = in_tiny_project
    real_forward = train.RateDistortionLoss.forward
    calls = {"n": 0}

    def poisoned(self, out, x):
        calls["n"] += 1
        res = real_forward(self, out, x)
        if calls["n"] == 4:
            res["loss"] = res["loss"] * float("nan")
        return res

    monkeypatch.setattr(train.RateDistortionLoss, "forward", poisoned)
    with pytest.raises(train.TrainingDiverged, match=r"loss is nan at step 3.*last good checkpoint .*step 2"):
        train.train("minnen2018-mean", 1, params, tmp_path / "nan", progress=False)
    assert torch.load(tmp_path / "nan/last.pt", weights_only=False)["step"] == 2
    assert not (tmp_path / "nan/model.pt").exists()


def test_rd_loss_by_hand():
    x = torch.zeros(1, 3, 4, 4)
    out = {"x_hat": torch.full_like(x, 0.1), "likelihoods": {"y": torch.full((1, 2, 2, 2), 0.5)}}
    res = train.RateDistortionLoss(lmbda=0.01)(out, x)
    # 8 symbols of 1 bit over 16 pixels = 0.5 bpp; MSE = 0.01 -> 0.01 * 255^2 * 0.01 = 6.5025
    assert res["bpp"].item() == pytest.approx(0.5)
    assert res["loss"].item() == pytest.approx(6.5025 + 0.5)


def test_base_run_and_missing_base(in_tiny_project, tmp_path, monkeypatch):
    root, params = in_tiny_project
    base = torch.load(root / "checkpoints/minnen2018-mean/base/model.pt", weights_only=False)
    lambdas = params["models"]["minnen2018-mean"]["lambdas"]
    assert base["quality"] == "base" and base["steps"] == 4
    assert base["params"]["lmbda"] == lambdas[params["train"]["base_quality"] - 1]  # the λ of train.base_quality
    q1 = torch.load(root / "checkpoints/minnen2018-mean/q1/model.pt", weights_only=False)
    assert q1["params"]["init_fingerprint"] == base["fingerprint"].hex()
    from lic import paths

    monkeypatch.setattr(paths, "CHECKPOINTS", tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="--base"):
        train.train("minnen2018-mean", 2, params, tmp_path / "x", progress=False)


def test_cli_out_writes_a_run_outside_the_checkpoints(in_tiny_project, tmp_path):
    """lic train --recipe FILE --out DIR (data/bench/coding's weights): the run and its model.pt in DIR, the
    pipeline's checkpoints untouched, the weights those of the same recipe run in place."""
    from lic import cli, recipes

    root, params = in_tiny_project
    recipe_file = tmp_path / "base.json"
    recipe_file.write_text(json.dumps(recipes.resolve(params, "minnen2018-mean", "base")))
    before = {p: p.stat().st_mtime_ns for p in (root / "checkpoints").rglob("*") if p.is_file()}
    assert cli.main(["train", "minnen2018-mean", "--base", "--recipe", str(recipe_file), "--out",
                     str(tmp_path / "run"), "--quiet"]) == 0
    assert (tmp_path / "run" / "model.pt").is_file() and (tmp_path / "run" / "run.json").is_file()
    after = {p: p.stat().st_mtime_ns for p in (root / "checkpoints").rglob("*") if p.is_file()}
    assert after == before
    ours = _weights(tmp_path / "run" / "model.pt")
    theirs = _weights(root / "checkpoints/minnen2018-mean/base/model.pt")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_crops_are_a_function_of_the_step(tiny_project):
    from lic.data.prepare import load_manifest  # noqa: F401
    root, _ = tiny_project
    files = sorted((root / "data/datasets/sample-train").glob("*.png"))
    a = train.StepCrops(files, 2, 32, seed=0, rank=0)
    b = train.StepCrops(files, 2, 32, seed=0, rank=0)
    assert torch.equal(a[17], b[17]) and not torch.equal(a[17], a[18])
    assert not torch.equal(a[17], train.StepCrops(files, 2, 32, seed=0, rank=1)[17])
    assert a[0].shape == (2, 3, 32, 32)
    big = train.StepCrops(files, 1, 512, seed=0, rank=0)[0]  # larger than the images: edge padded
    assert big.shape == (1, 3, 512, 512)


@pytest.mark.slow
def test_ddp_two_processes_gloo(in_tiny_project, tmp_path):
    root, _ = in_tiny_project
    env = {**os.environ, "LIC_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lic.cli", "train", "minnen2018-mean", "--quality", "4", "--quiet"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = torch.load(root / "checkpoints/minnen2018-mean/q4/model.pt", map_location="cpu", weights_only=False)
    assert rec["world_size"] == 2 and rec["steps"] == 6


def test_quality_not_trained_by_the_profile_writes_a_placeholder(in_tiny_project, tmp_path):
    _, params = in_tiny_project
    inactive = next(q for q in params["train"]["qualities"] if q not in params["train"]["active_qualities"])
    path = train.main("minnen2018-mean", inactive, params, progress=False)
    from lic import codec, placeholder

    assert placeholder.is_placeholder(path) and placeholder.read(path)["inactive"] is True
    with pytest.raises(codec.CheckpointError, match="placeholder"):
        codec.load_checkpoint(path)
    assert (path.parent / "run.json").exists() and (path.parent / "dvclive").is_dir()
    # a later real run (another profile) ignores the placeholder state and trains from the start
    active = copy.deepcopy(params)
    active["train"]["active_qualities"].append(inactive)
    final = train.main("minnen2018-mean", inactive, active, progress=False)
    assert torch.load(final, weights_only=False)["steps"] == params["train"]["steps"]


def test_lr_factor_has_one_factor_per_milestone():
    f = train.lr_factor([10, 20, 30], [0.2, 0.25, 0.2], 0.1)
    assert [f(s) for s in (0, 9, 10, 19, 20, 30, 99)] == pytest.approx([1, 1, 0.2, 0.2, 0.05, 0.01, 0.01])
    g = train.lr_factor([5], [], 0.1)
    assert g(4) == 1 and g(5) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="2 factors for 1 milestones"):
        train.lr_factor([5], [0.1, 0.2], 0.1)


def test_stage_plan_skips_stages_without_parameters():
    class Staged(torch.nn.Module):
        all_stages = ("a", "b", "c")
        training_stages = ("a", "c")  # "b" has nothing to train (e.g. an ablated module)

        def stage_setup(self, stage, lmbda=None):
            return [], None

    plan = train.stage_plan(Staged(), {"a": 3, "b": 5, "c": 2})
    assert plan == [("a", 0, 3), ("c", 3, 5)]
    assert [train.stage_at(plan, s) for s in range(5)] == ["a", "a", "a", "c", "c"]
    with pytest.raises(ValueError, match="unknown training stages"):
        train.stage_plan(Staged(), {"z": 1})
    assert train.stage_plan(Staged(), {}) == []


def test_out_for_a_quality_the_profile_does_not_train_is_refused(in_tiny_project, tmp_path, capsys):
    """lic train --out DIR (with params.yaml or a recipe file) for an inactive quality: one-line error, exit 2,
    nothing in DIR and no placeholder written in the pipeline's folder instead."""
    from lic import cli, recipes

    root, params = in_tiny_project
    inactive = next(q for q in params["train"]["qualities"] if q not in params["train"]["active_qualities"])
    pipeline_dir = root / "checkpoints" / "minnen2018-mean" / f"q{inactive}"
    before = sorted(p.name for p in pipeline_dir.rglob("*")) if pipeline_dir.exists() else None
    recipe_file = tmp_path / "q.json"
    recipe_file.write_text(json.dumps(recipes.resolve(params, "minnen2018-mean", inactive)))
    for extra in ([], ["--recipe", str(recipe_file)]):
        capsys.readouterr()
        code = cli.main(["train", "minnen2018-mean", "--quality", str(inactive), "--out", str(tmp_path / "run"),
                         "--quiet", *extra])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "not trained by profile" in err, err
        assert not (tmp_path / "run").exists()
        after = sorted(p.name for p in pipeline_dir.rglob("*")) if pipeline_dir.exists() else None
        assert after == before
    with pytest.raises(ValueError, match="nothing written"):
        train.main("minnen2018-mean", inactive, params, progress=False, out_dir=tmp_path / "run")


def test_base_from_starts_a_variant_from_the_main_models_base(in_tiny_project, tmp_path, monkeypatch):
    """models.<key>.train.base_from: each quality of an ablation variant starts from the main model's
    base for every tensor of the same name and shape; the others keep the variant's own base."""
    from lic import paths
    from lic.models import registry

    root, params = in_tiny_project
    spec = registry.get("minnen2018-mean")
    monkeypatch.setitem(registry.MODELS, "test-minnen-wide", spec)  # a variant: same model, another M
    params = copy.deepcopy(params)
    params["models"]["test-minnen-wide"] = {
        **params["models"]["minnen2018-mean"], "kwargs": {"N": 16, "M": 32},
        "train": {"base_steps": 0, "steps": 0, "base_from": "minnen2018-mean"}}
    assert "base_from" not in train.recipe(params, "test-minnen-wide", "base")
    own = train.train("test-minnen-wide", "base", params, progress=False)
    final = train.train("test-minnen-wide", 2, params, progress=False)
    main = _weights(root / "checkpoints/minnen2018-mean/base/model.pt")
    mine, own_base = _weights(final), _weights(own)
    assert torch.equal(mine["g_a.0.weight"], main["g_a.0.weight"])             # N-sized: shared
    assert not torch.equal(mine["g_a.0.weight"], own_base["g_a.0.weight"])
    assert mine["g_a.6.weight"].shape != main["g_a.6.weight"].shape            # M-sized: its own
    assert torch.equal(mine["g_a.6.weight"], own_base["g_a.6.weight"])
    rec = torch.load(final, weights_only=False)["params"]
    loaded, total = map(int, rec["base_from_tensors"].split("/"))
    assert 0 < loaded < total
    main_rec = torch.load(root / "checkpoints/minnen2018-mean/base/model.pt", weights_only=False)
    assert rec["base_from_fingerprint"] == main_rec["fingerprint"].hex()
    # without the main model's base: an error naming the command that makes it (the session's tiny project
    # is shared with later tests, so the base is moved aside and put back, never deleted)
    base = root / "checkpoints/minnen2018-mean/base/model.pt"
    base.rename(base.with_name("model.pt.aside"))
    try:
        with pytest.raises(FileNotFoundError, match="minnen2018-mean --base"):
            train.train("test-minnen-wide", 3, params, tmp_path / "x", progress=False)
    finally:
        base.with_name("model.pt.aside").rename(base)
