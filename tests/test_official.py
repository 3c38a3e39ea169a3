"""lic.official / `lic import-official`: released files (in the authors' layouts) become lic checkpoints that
compress, decompress and evaluate; wrong files give one-line errors."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lic import cli, official
from lic.codec import CheckpointError, decode, encode, load_checkpoint
from lic.config import load_params
from lic.models import registry

KEYS = ("li2025-hpcm-base", "liu2023-tcm-small", "lu2022-tinylic-v3")
_HPCM_OFFICIAL_NAMES = {
    "entropy_estimation._quantized_cdf": "quantized_cdf_y", "entropy_estimation._cdf_length": "cdf_length_y",
    "entropy_estimation._offset": "offset_y", "entropy_estimation.scale_table": "scale_table",
    "entropy_estimation.lower_bound_scale.bound": "entropy_estimation.scale_lower_bound.bound"}


def tiny_kwargs(key: str) -> dict:
    return load_params(profile="default")["models"][key]["kwargs"]


def official_layout(key: str, state: dict) -> dict:
    """Our untrained model's state_dict as the authors' training scripts save it: DataParallel's
    ``module.`` prefix, HPCM's own entropy-buffer names (no z copies, no step embeddings: quirk Q3),
    CompressAI ≤ 1.2.5's EntropyBottleneck names for TCM / TinyLIC, empty CDF tables."""
    out = {}
    for k, v in state.items():
        if key.startswith("li2025"):
            if k.startswith(("entropy_estimation_z.", "adaptive_params_list.")) or k.endswith("scale_bound"):
                continue
            k = _HPCM_OFFICIAL_NAMES.get(k, k)
        else:
            for new, old in (("matrices.", "_matrix"), ("biases.", "_bias"), ("factors.", "_factor")):
                if k.startswith(f"entropy_bottleneck.{new}"):
                    k = f"entropy_bottleneck.{old}{k.rsplit('.', 1)[1]}"
        out[f"module.{k}"] = v.clone()
    return out


def write_release(path: Path, key: str, seed: int = 0) -> torch.nn.Module:
    """A training-script file ``{epoch, state_dict, optimizer, lr_scheduler}`` of a tiny ``key``
    (its MultiStepLR state holds a collections.Counter); returns the model it was made from."""
    torch.manual_seed(seed)
    model = registry.build(key, **tiny_kwargs(key))
    for name, p in model.named_parameters():  # away from the init, so that a skipped tensor would show
        if not name.startswith("adaptive_params_list."):  # HPCM's released step embeddings: 1.0 (Q3)
            p.data.add_(0.01 * torch.randn_like(p))
    opt = torch.optim.Adam(model.parameters())
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [3, 5])
    assert isinstance(sched.state_dict()["milestones"], collections.Counter)
    torch.save({"epoch": 3, "state_dict": official_layout(key, model.state_dict()),
                "optimizer": opt.state_dict(), "lr_scheduler": sched.state_dict()}, path)
    return model


def photo(path: Path, h: int = 70, w: int = 90) -> Path:
    from skimage import data as skdata

    Image.fromarray(np.ascontiguousarray(skdata.astronaut()[100:100 + h, 150:150 + w])).save(path)
    return path


@pytest.mark.parametrize("key", KEYS)
def test_import_gives_the_authors_weights_and_codes_files(key, tmp_path, capsys):
    lam = official.lambdas_for(key, load_params(profile="paper"))[2]
    src = tmp_path / f"mse_lambda_{lam}.pth.tar"
    made = write_release(src, key)
    out = tmp_path / "imported.pt"
    assert cli.main(["import-official", key, str(src), "--out", str(out), "--kwargs",
                     json.dumps(tiny_kwargs(key))]) == 0
    assert f"{key} q3" in capsys.readouterr().out  # the quality read from the λ in the name
    loaded = load_checkpoint(out)
    assert (loaded.key, loaded.quality) == (key, 3)
    assert loaded.record["imported_from"]["file"] == src.name
    made.eval()
    made.update(force=True)
    ours = loaded.model.state_dict()
    for name, value in made.state_dict().items():  # every tensor arrived, tables built the same way
        assert torch.equal(ours[name], value), name
    # a real file through the CLI, decoded by a fresh model: the encoder's exact image
    img = photo(tmp_path / "img.png")
    bits, dec = tmp_path / "img.lic", tmp_path / "dec.png"
    assert cli.main(["compress", str(img), str(bits), "--checkpoint", str(out)]) == 0
    assert cli.main(["decompress", str(bits), str(dec), "--checkpoint", str(out)]) == 0
    from lic.codec import read_image

    enc = encode(loaded, read_image(img), estimate=False)
    assert np.array_equal(np.asarray(Image.open(dec)), enc.reconstruction)
    assert np.array_equal(decode(load_checkpoint(out), bits.read_bytes()), enc.reconstruction)


def test_quality_from_name():
    tcm = (0.0025, 0.0035, 0.0067, 0.013, 0.025, 0.05)
    assert official.quality_from_name("mse_lambda_0.05.pth.tar", tcm) == 6
    assert official.quality_from_name("0.0025.pth.tar", tcm) == 1
    assert official.quality_from_name("/x/2023/ckpt_0.013_best.pth", tcm) == 4
    assert official.quality_from_name("checkpoint_best.pth.tar", tcm) is None
    assert official.quality_from_name("0.0025_to_0.05.pth", tcm) is None  # two candidates: ambiguous
    assert official.quality_from_name("lambda_0.0500.pth", tcm) == 6
    assert official.quality_from_name("v1.0.05.pth", tcm) is None  # part of a longer number


def test_released_keys_and_their_lambdas():
    rel = official.releases()
    assert {"li2025-hpcm-base", "li2025-hpcm-large", "li2025-hpcm-base-msssim", "liu2023-tcm-small",
            "liu2023-tcm-large", "lu2022-tinylic-v3"} <= set(rel)
    assert not any(k.startswith("kuang2025") for k in rel)  # CGOO released no weights
    paper = load_params(profile="paper")
    assert official.lambdas_for("li2025-hpcm-base", paper)[3] == pytest.approx(0.013)
    assert official.lambdas_for("li2025-hpcm-base-msssim", paper)[0] == pytest.approx(2.4)
    assert len(official.lambdas_for("lu2022-tinylic-v3", paper)) == 8
    assert official.lambdas_for("liu2023-tcm-large", paper)[5] == pytest.approx(0.05)


def test_import_errors_are_one_line(tmp_path, capsys):
    hpcm = tmp_path / "hpcm_0.0067.pth.tar"
    write_release(hpcm, "li2025-hpcm-base")
    tcm = tmp_path / "tcm_0.0067.pth.tar"
    write_release(tcm, "liu2023-tcm-small")
    kw = json.dumps(tiny_kwargs("li2025-hpcm-base"))
    cases = [
        (["kuang2025-cgoo", str(hpcm)], "no released weights load into 'kuang2025-cgoo'"),
        (["li2025-hpcm-base", str(tcm), "--kwargs", kw], "not a released li2025-hpcm-base checkpoint"),
        # the paper-size model (the default kwargs) and a tiny file: shapes named
        (["li2025-hpcm-base", str(hpcm)], "do not fit li2025-hpcm-base"),
        (["li2025-hpcm-base", str(tmp_path / "missing_0.05.pth")], "does not exist"),
        (["li2025-hpcm-base", str(photo(tmp_path / "not_weights_0.0067.png")), "--kwargs", kw],
         "cannot read"),
        (["li2025-hpcm-base", str(hpcm), "--kwargs", "{N:"], "--kwargs is not JSON"),
    ]
    renamed = tmp_path / "best.pth.tar"
    renamed.write_bytes(hpcm.read_bytes())
    cases.append((["li2025-hpcm-base", str(renamed), "--kwargs", kw], "give --quality"))
    for argv, expected in cases:
        assert cli.main(["import-official", *argv, "--out", str(tmp_path / "o.pt")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, (argv, err)
    assert not (tmp_path / "o.pt").exists()
    # a lic checkpoint is refused as a source (it loads as it is)
    assert cli.main(["import-official", "li2025-hpcm-base", str(hpcm), "--kwargs", kw, "--out",
                     str(tmp_path / "ok.pt")]) == 0
    with pytest.raises(CheckpointError, match="already a lic checkpoint|cannot read"):
        official.read_official(tmp_path / "ok.pt")


def test_nan_weights_are_refused(tmp_path):
    key = "liu2023-tcm-small"
    src = tmp_path / "0.05.pth.tar"
    write_release(src, key)
    obj = torch.load(src, weights_only=False)
    first = next(k for k, v in obj["state_dict"].items() if v.is_floating_point() and v.numel())
    obj["state_dict"][first][...] = float("nan")
    torch.save(obj, src)
    with pytest.raises(CheckpointError, match="NaN"):
        official.import_official(key, src, tmp_path / "o.pt", kwargs=tiny_kwargs(key))


def test_evaluate_imported_checkpoints(in_tiny_project, tmp_path, capsys):
    """`lic evaluate KEY --checkpoint ...` codes the dataset with the given files, writes the result file
    under --results (not results/), and prints the RD points and BD-rate table."""
    root, _ = in_tiny_project
    key = "liu2023-tcm-small"
    files = []
    for q, lam in ((1, 0.0025), (6, 0.05)):
        src = tmp_path / f"mse_lambda_{lam}.pth.tar"
        write_release(src, key, seed=q)
        files.append(tmp_path / f"q{q}.pt")
        official.import_official(key, src, files[-1], kwargs=tiny_kwargs(key))
    out = tmp_path / "res"
    assert cli.main(["evaluate", key, "--checkpoint", *map(str, files), "--dataset", "sample",
                     "--results", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((out / key / "sample.json").read_text())
    assert doc["results"]["quality"] == [1, 6]
    assert all(r["decoded_exactly"] for r in doc["per_image"])
    assert doc["meta"]["imported_from"]["6"]["file"] == "mse_lambda_0.05.pth.tar"
    assert sorted(p.name for p in (out / key / "bitstreams" / "sample" / "q6").iterdir()) == [
        "astronaut.lic", "chelsea.lic"]
    assert not (root / "results" / key).exists()
    assert "psnr-rgb" in printed and "BD-rate" in printed
    # released weights: the authors' protocol by default (TCM's eval.py: centred zeros to 128), the
    # payload's bpp (the coded strings, as the paper counts) beside the file's
    assert doc["meta"]["protocol"] == "authors" and "compare bpp_payload" in printed
    assert doc["meta"]["padding"] == {"mode": "centre-zeros", "multiple": 128}
    assert doc["meta"]["authors_eval_script"].endswith("eval.py")
    assert all(0 < r["payload_bytes"] < r["bytes"] for r in doc["per_image"])
    assert all(r["bpp_payload"] < r["bpp"] for r in doc["per_image"])
    assert "bpp_payload" in printed
    # the pipeline's protocol on request: edge padding, other streams of the same weights
    assert cli.main(["evaluate", key, "--checkpoint", str(files[1]), "--dataset", "sample", "--protocol",
                     "pipeline", "--results", str(tmp_path / "pipe"), "--quiet"]) == 0
    capsys.readouterr()
    pipe = json.loads((tmp_path / "pipe" / key / "sample.json").read_text())
    assert pipe["meta"]["padding"] == {"mode": "edge", "multiple": 128}
    assert (tmp_path / "pipe" / key / "bitstreams/sample/q6/astronaut.lic").read_bytes() != \
        (out / key / "bitstreams/sample/q6/astronaut.lic").read_bytes()
    # --protocol goes with --checkpoint
    assert cli.main(["evaluate", key, "--protocol", "authors", "--quiet"]) == 2
    assert "--protocol go with --checkpoint" in capsys.readouterr().err
    # two files of one quality are refused
    assert cli.main(["evaluate", key, "--checkpoint", str(files[0]), str(files[0]), "--quiet"]) == 2
    assert "both quality 1" in capsys.readouterr().err
    # a checkpoint of another model is refused, not evaluated under this key's name
    assert cli.main(["evaluate", "li2025-hpcm-base", "--checkpoint", str(files[0]), "--quiet"]) == 2
    assert "holds a 'liu2023-tcm-small' model" in capsys.readouterr().err
    # --dataset / --results only go with --checkpoint
    assert cli.main(["evaluate", key, "--dataset", "sample", "--quiet"]) == 2


def test_summary_against_the_published_curves(tmp_path):
    """The BD-rate table's wiring on real transcribed data: a result whose points are the paper's own
    Kodak points of HPCM-Base is 0 % against them and about the paper's −15.3 % against VTM."""
    from lic import reference
    from lic.results import write_results

    pub = reference.load_reference("kodak", "li2025-hpcm-base")["results"]
    rows = [{"image": "kodim01", "quality": q, "bytes": 0, "pixels": 1, "bpp": b, "psnr-rgb": p,
             "ms-ssim-rgb": None, "encoding_time": 0.0, "decoding_time": 0.0}
            for q, (b, p) in enumerate(zip(pub["bpp"], pub["psnr-rgb"]), start=1)]
    path = write_results("kodak", "li2025-hpcm-base", rows, path=tmp_path / "r.json")
    per_q, bd = official.summary("li2025-hpcm-base", "kodak", path)
    assert list(per_q.index) == list(range(1, len(pub["bpp"]) + 1))
    assert bd.loc[("psnr-rgb", "bpp"), "published li2025-hpcm-base"] == pytest.approx(0, abs=1e-9)
    assert bd.loc[("psnr-rgb", "bpp"), "vtm"] == pytest.approx(-15.3, abs=1.0)
    # with a payload 1 % below the file (the container's header): BD-rates on both rates, the payload's
    # 1 % lower against every curve
    for r in rows:
        r["bpp_payload"] = r["bpp"] * 0.99
    path = write_results("kodak", "li2025-hpcm-base", rows, path=tmp_path / "r2.json")
    per_q, bd = official.summary("li2025-hpcm-base", "kodak", path)
    assert list(per_q.columns[:2]) == ["bpp_payload", "bpp"]
    assert bd.loc[("psnr-rgb", "bpp_payload"), "published li2025-hpcm-base"] == pytest.approx(-1, abs=1e-6)
    assert bd.loc[("psnr-rgb", "bpp"), "published li2025-hpcm-base"] == pytest.approx(0, abs=1e-9)
    assert official.published_key("lu2022-tinylic-v3", "kodak") == "lu2022-tinylic"
    assert official.published_key("li2025-hpcm-base", "sample") is None


@pytest.mark.slow
def test_paper_size_hpcm_file_in_the_spec_layout(tmp_path):
    """A file with the released HPCM-Base's keys and shapes (spec §1.3–§5, empty CDF tables, no step
    embeddings) imports with the default (paper) kwargs: 68,505,299 parameters, tables built."""
    from test_model_hpcm import official_keys

    g = torch.Generator().manual_seed(3)
    sd = {f"module.{k}": (torch.empty(0, dtype=torch.int32) if shape == (0,) else 0.02 * torch.randn(shape, generator=g))
          for k, shape in official_keys(4, ((2, 1), (3, 2))).items()}
    sd["module.entropy_estimation.beta"] = torch.tensor([1.5])
    sd["module.entropy_estimation.scale_lower_bound.bound"] = torch.tensor([0.12])
    sd["module.entropy_estimation.likelihood_lower_bound.bound"] = torch.tensor([1e-9])
    src = tmp_path / "HPCM_Base_0.0483.pth.tar"
    torch.save(sd, src)
    info = official.import_official("li2025-hpcm-base", src, tmp_path / "q.pt", params=load_params(profile="paper"))
    assert (info["quality"], info["params"]) == (6, 68_505_299)
    loaded = load_checkpoint(tmp_path / "q.pt")
    assert loaded.model.entropy_estimation._quantized_cdf.numel() > 0
    assert torch.equal(loaded.model.g_s.branch[0].weight, sd["module.g_s.branch.0.weight"])
