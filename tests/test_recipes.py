"""Resolved recipe files (lic.recipes) and the train stages that read them."""

import copy
import json
import subprocess
import sys

import pytest
import torch

from lic import paths, recipes, train


def test_recipe_files_hold_what_train_resolves(in_tiny_project, tmp_path):
    _, params = in_tiny_project
    written = recipes.write_all(params, tmp_path)
    models = recipes.trained_models(params)
    assert len(written) == len(models) * (1 + len(params["train"]["qualities"]))
    for q in ["base", *params["train"]["qualities"]]:
        rec = recipes.read(recipes.path("minnen2018-mean", q, tmp_path))
        assert rec["model"] == "minnen2018-mean" and rec["quality"] == q
        assert rec["active"] == (q == "base" or q in params["train"]["active_qualities"])
        if rec["active"]:
            r = train.recipe(params, "minnen2018-mean", q)
            assert rec["recipe"] == r and train.recipe_hash(rec["recipe"]) == train.recipe_hash(r)
        else:  # an inactive quality's file does not change with the recipe it would have had
            assert "recipe" not in rec


def test_unchanged_recipes_are_not_rewritten_and_stale_ones_go(in_tiny_project, tmp_path):
    _, params = in_tiny_project
    recipes.write_all(params, tmp_path)
    q6 = recipes.path("minnen2018-mean", 6, tmp_path)
    q1 = recipes.path("minnen2018-mean", 1, tmp_path)
    stale = tmp_path / "train" / "gone-model" / "q1.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    before = q6.stat().st_mtime_ns, q6.read_text()
    changed = copy.deepcopy(params)
    changed["models"]["minnen2018-mean"]["lambdas"][0] = 0.002  # quality 1 only
    recipes.write_all(changed, tmp_path)
    assert (q6.stat().st_mtime_ns, q6.read_text()) == before
    assert recipes.read(q1)["recipe"]["lmbda"] == 0.002
    assert not stale.exists()


def test_missing_recipe_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="lic recipes"):
        recipes.read(tmp_path / "nope.json")


def test_train_from_a_recipe_file_matches_training_from_params(in_tiny_project, tmp_path):
    _, params = in_tiny_project
    rec = recipes.resolve(params, "minnen2018-mean", 2)
    a = train.train("minnen2018-mean", 2, params, tmp_path / "params", progress=False)
    b = train.train("minnen2018-mean", 2, None, tmp_path / "file", progress=False, resolved=rec["recipe"])
    sa = torch.load(a, weights_only=False)["state_dict"]
    sb = torch.load(b, weights_only=False)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    with pytest.raises(ValueError, match="not minnen2018-mean q3"):
        train.train("minnen2018-mean", 3, None, tmp_path / "x", progress=False, resolved=rec["recipe"])


def test_cli_train_with_recipe(in_tiny_project, tmp_path):
    root, params = in_tiny_project
    recipes.write_all(params)
    env = {"LIC_ROOT": str(root), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    inactive = next(q for q in params["train"]["qualities"] if q not in params["train"]["active_qualities"])
    run = lambda *a: subprocess.run([sys.executable, "-m", "lic.cli", "train", *a, "--quiet"], env=env,
                                    capture_output=True, text=True, timeout=300)
    r = run("minnen2018-mean", "--quality", str(inactive), "--recipe",
            str(recipes.path("minnen2018-mean", inactive)))
    assert r.returncode == 0 and "placeholder" in r.stdout, r.stderr
    r = run("minnen2018-mean", "--quality", "1", "--recipe", str(recipes.path("minnen2018-mean", 2)))
    assert r.returncode == 2 and "is the recipe of minnen2018-mean q2" in r.stderr and "Traceback" not in r.stderr


def test_zero_step_schedule_still_writes_the_resumable_state(in_tiny_project, tmp_path):
    _, params = in_tiny_project
    p = copy.deepcopy(params)
    p["train"]["base_steps"] = 0  # e.g. CGOO's base: the seeded initialisation itself
    final = train.train("minnen2018-mean", "base", p, tmp_path / "b", progress=False)
    assert final.exists() and (tmp_path / "b" / "last.pt").exists()  # both are DVC outputs
    assert torch.load(final, weights_only=False)["steps"] == 0
    again = train.train("minnen2018-mean", "base", p, tmp_path / "b", progress=False)
    assert again == final


def test_every_train_stage_reads_its_recipe_file():
    """All dvc.yaml files of the pipeline: each train stage passes --recipe and declares that file."""
    import yaml

    files = [paths.ROOT / "dvc.yaml", *sorted((paths.ROOT / "pipelines").glob("*/dvc.yaml"))]
    n = 0
    for f in files:
        stages = yaml.safe_load(f.read_text())["stages"]
        for name, st in stages.items():
            body = st.get("do", st)
            if not body["cmd"].startswith("lic train"):
                continue
            n += 1
            recipe = body["cmd"].split("--recipe ")[1].split()[0]
            assert recipe in body["deps"], (f, name)
            assert "params" not in body, (f, name)  # the recipe file is the stage's params
            if f.parent != paths.ROOT:
                assert body["wdir"] == "../..", (f, name)
            for dep in body["deps"]:
                if dep.startswith("src/"):
                    assert (paths.ROOT / dep).exists(), (f, name, dep)
    assert n >= 13
