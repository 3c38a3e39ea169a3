"""The paper profile is wired, not only listed: one paper-profile training stage per paper runs for 2 steps on
the CPU through ``lic launch --executor local``, its data stages downloading miniatures of the real datasets
from a mirror on 127.0.0.1 (the real download code, ``LIC_DATA_MIRROR``), with the paper's kwargs, batch 8 and
256² patches unchanged.

Expensive, so not part of ``make test`` (``-m "not paper_scale"`` in pyproject.toml): a paper-size model at
batch 8, 256² takes minutes a step and ~10 GB on a CPU (TinyLIC v3 too, on its chunked attention path). ``make
test-paper-scale`` runs it, and ``.ci/run`` does after ``make test``; by hand:
``pytest -m paper_scale tests/launch/test_launch_paper.py`` (``-k hpcm`` for one paper).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

import project

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from miniature import files as miniature_files  # noqa: E402

# minutes per paper-size step on 2 CPU cores: more than the 15-minute limit of a unit test
pytestmark = [pytest.mark.slow, pytest.mark.paper_scale, pytest.mark.timeout(2400)]

NETWORK_SETS = ["kodak", "clic2020-professional-valid", "div2k-train", "div2k-valid", "tecnick"]
#: paper -> (stage, model, quality); CGOO's stage builds on TCM q1, which runs first
STAGES = {
    "hpcm": ("train_hpcm@li2025-hpcm-base-1", "li2025-hpcm-base"),
    "tinylic": ("train_tinylic@lu2022-tinylic-v3-1", "lu2022-tinylic-v3"),
    "tcm": ("train_tcm@liu2023-tcm-small-1", "liu2023-tcm-small"),
    "cgoo": ("train_cgoo@kuang2025-cgoo-1", "kuang2025-cgoo"),
}


@pytest.fixture(scope="module")
def paper_repo(tmp_path_factory):
    """The checkout in the paper profile, every schedule cut to 2 steps (CGOO: 1 DDT + 1 codebook step), one
    data-loader process; kwargs, batch and patch are the paper's."""
    root = project.clone(tmp_path_factory.mktemp("paper-repo"))
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["profile"] = "paper"
    raw["train"]["paper"].update(num_workers=0, checkpoint_every=1, device="cpu")
    for key, block in raw["models"].items():
        train = block.get("paper", {}).get("train")
        if train is None:
            continue
        train.update(steps=2, milestones=[], lr_gammas=[])
        if "base_steps" in train:
            train["base_steps"] = 0 if key != "lu2022-tinylic-vr" else 2
        if train.get("stages"):
            train["stages"] = {"ddt": 1, "msc": 0, "codebook_warmup": 0, "codebook": 1}
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return root


@pytest.mark.parametrize("paper", list(STAGES))
def test_paper_stage_runs_two_steps_through_launch(paper, paper_repo, http_server):
    stage, key = STAGES[paper]
    http_server.files.update(miniature_files(NETWORK_SETS))
    r = project.run(["lic", "launch", stage, "--executor", "local"], paper_repo,
                    {"LIC_DATA_MIRROR": http_server.url(""), "OMP_NUM_THREADS": "2"}, timeout=3600)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = torch.load(paper_repo / "checkpoints" / key / "q1" / "model.pt", map_location="cpu", weights_only=False)
    assert rec["steps"] == 2 and rec["kwargs"] == {}                       # the registry's paper-size model
    t = rec["params"]["train"]
    assert (t["batch_size"], t["patch_size"]) == (8, 256) and rec["params"]["train_dataset"] == "div2k-train"
    manifest = json.loads((paper_repo / "data" / "manifests" / "div2k-train.json").read_text())
    # the module's first test downloaded the data (from its own server: one per test)
    assert manifest["mirror"].startswith("http://127.0.0.1:") and manifest["count"] == 4   # 2 images + x0.5 copies
    pipeline = {"hpcm": "hpcm", "tinylic": "tinylic", "tcm": "cgoo", "cgoo": "cgoo"}[paper]  # its dvc.yaml
    st = project.run(["dvc", "status", f"pipelines/{pipeline}/dvc.yaml:{stage}"], paper_repo)
    assert st.returncode == 0 and "up to date" in st.stdout, st.stdout + st.stderr
