"""CGOO (Kuang et al., ICCV 2025) on TCM: component sizes from the supplement's tables, registry
ablations, the four training stages, exact decoding with a fresh decoder, and the online
optimisation lowering the real RD cost against plain TCM at the same weights.

Expected parameter counts are computed by hand here from supplement Tables 1-2 (not from the model).
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

from lic import codec
from lic.metrics import mse, to_tensor
from lic.models import registry
from lic.models.cgoo import CGOO, DDTDecoder, DDTEncoder, cgoo_stage_setup
from lic.models.tcm import TCM, TCM_PARAMS
from coding_helpers import forbid_compressai

LMBDA = 0.01
# A CPU-sized CGOO: 64-px inputs (windows 4 / 2), narrow entropy model, narrow DDT/MSC.
TINY_TCM = dict(N=16, M=80, z_channels=32, head_dim=(8,) * 6, hyper_head_dim=8, atten_inter_dim=32,
                cc_hidden=(48, 32), window_size=4, hyper_window_size=2, pad_multiple=64, min_size=64)
TINY = dict(TINY_TCM, ddt_channels=(8, 16), ddt_hidden=(32, 64), msc_hidden=(64, 128, 64),
            codebook_size=32, online_iters=20, online_lr=0.01, qp_steps=(0.9, 1.0, 1.2),
            msc_ratios=(0.0, 0.1))

# Supplement Table 1: 1×1 convs 320→256→512→256→320 (encoder with bias, decoder without).
MSC_ENC = 320 * 256 + 256 + 256 * 512 + 512 + 512 * 256 + 256 + 256 * 320 + 320   # 427,328
MSC_DEC = 320 * 256 + 256 * 512 + 512 * 256 + 256 * 320                            # 425,984
# Table 2: conv3×3 3→32 s2, conv3×3 32→64 s2, conv1×1 (3+32+64)→9; FC 9→128→256→9.
DDT_ENC = (3 * 32 * 9 + 32) + (32 * 64 * 9 + 64) + (99 * 9 + 9)                     # 20,292
DDT_DEC = (9 * 128 + 128) + (128 * 256 + 256) + (256 * 9 + 9)                       # 36,617
# EntropyBottleneck(9), filters (3,3,3,3): per channel matrices 3+9+9+9+3, biases 3+3+3+3+1,
# factors 3·4, plus 3 quantiles.
DDT_EB = 9 * (33 + 13 + 12 + 3)                                                     # 549
CODEBOOK = 512 * 320 + 512                                                          # codewords + prior logits


def _images() -> list[np.ndarray]:
    return [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]


def _train(model: CGOO, steps: dict[str, int], seed: int = 0) -> None:
    """A few Adam steps per stage on random 64-px crops of scikit-image's photographs."""
    imgs = [to_tensor(i)[0] for i in _images()]
    g = torch.Generator().manual_seed(seed)

    def batch(n=4, p=64):
        out = []
        for _ in range(n):
            im = imgs[int(torch.randint(len(imgs), (1,), generator=g))]
            y = int(torch.randint(im.shape[1] - p, (1,), generator=g))
            x = int(torch.randint(im.shape[2] - p, (1,), generator=g))
            out.append(im[:, y:y + p, x:x + p])
        return torch.stack(out)

    model.train()
    for stage, n in steps.items():
        params, loss_fn = cgoo_stage_setup(model, stage, lmbda=LMBDA)
        opt = torch.optim.Adam(params, lr=1e-3)
        for _ in range(n):
            x = batch()
            losses = loss_fn(model(x), x)
            opt.zero_grad()
            losses["loss"].backward()
            opt.step()
            assert torch.isfinite(losses["loss"])
    model.eval()
    model.update(force=True)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a loaded 2-core machine, 2 OpenMP threads run this file ~10× slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = CGOO(**TINY)
    _train(model, {"tcm": 20, "ddt": 2, "msc": 2, "codebook_warmup": 1, "codebook": 2})
    return model


def _fresh(model: CGOO, **kw) -> CGOO:
    """A new decoder built from the kwargs and the state_dict only (what a checkpoint holds)."""
    fresh = CGOO(**{**TINY, **kw}).eval()
    fresh.load_state_dict(model.state_dict(), strict=True)
    return fresh


def _loaded(model, key: str) -> codec.LoadedModel:
    return codec.LoadedModel(model, key, 1, codec.state_fingerprint(model.state_dict()), {})


# ------------------------------------------------------------------ sizes and registry
def test_component_param_counts_paper_widths():
    model = CGOO()  # defaults: TCM-small (N=64) backbone, supplement widths, 512 codewords
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(model.msc.encoder) == MSC_ENC == 427_328
    assert count(model.msc.decoder) == MSC_DEC == 425_984
    assert all(c.bias is None for c in model.msc.decoder if isinstance(c, torch.nn.Conv2d))
    assert count(model.ddt_encoder) == DDT_ENC == 20_292
    assert count(model.ddt_decoder) == DDT_DEC == 36_617
    assert count(model.ddt_bottleneck) == DDT_EB
    assert model.msc.codebook.numel() + model.msc.logits.numel() == CODEBOOK
    assert count(model) == TCM_PARAMS[64] + MSC_ENC + MSC_DEC + DDT_ENC + DDT_DEC + DDT_EB + CODEBOOK


def test_registry_ablations():
    keys = ["kuang2025-cgoo", "kuang2025-cgoo-noddt", "kuang2025-cgoo-nomsc", "kuang2025-cgoo-noonline",
            "kuang2025-cgoo-noqp"]
    for k in keys:
        spec = registry.get(k)
        assert spec.pad_multiple == 128 and spec.defaults["N"] == 64
    tiny = {k: v for k, v in TINY.items() if k not in ("online_iters", "qp_steps", "msc_ratios")}
    full = registry.build("kuang2025-cgoo", **tiny)
    noddt = registry.build("kuang2025-cgoo-noddt", **tiny)
    nomsc = registry.build("kuang2025-cgoo-nomsc", **tiny)
    noonline = registry.build("kuang2025-cgoo-noonline", **tiny)
    noqp = registry.build("kuang2025-cgoo-noqp", **tiny)
    assert not any(k.startswith("ddt_") for k in noddt.state_dict())
    assert not any(k.startswith("msc.") for k in nomsc.state_dict())
    # the encoder-only ablations share the full model's weights
    assert set(noonline.state_dict()) == set(noqp.state_dict()) == set(full.state_dict())
    assert noonline.online_iters == 0 and noonline.qp_steps == (1.0,) and len(noonline.msc_ratios) == 1
    assert noqp.qp_steps == (1.0,) and noqp.online_rate_weight == 1.0 and noqp.online_iters > 0
    assert full.qp_steps[full.default_qp_index] == 1.0


def test_ddt_modules():
    enc, dec = DDTEncoder(), DDTDecoder()
    x = torch.rand(2, 3, 64, 48)
    s = enc(x)
    assert s.shape == (2, 9, 1, 1)
    assert torch.equal(dec(x, s), x)  # the residual decoder starts as the identity
    torch.nn.init.normal_(dec.mlp[4].weight)
    assert not torch.allclose(dec(x, s), x)


# ------------------------------------------------------------------ training stages
EXPECTED_TRAINABLE = {
    "ddt": ("ddt_encoder.", "ddt_decoder.", "ddt_bottleneck."),
    "msc": ("msc.encoder.", "msc.decoder."),
    "codebook_warmup": ("msc.codebook", "msc.logits"),
    "codebook": ("msc.codebook", "msc.logits", "msc.encoder.", "msc.decoder."),
}


@pytest.mark.parametrize("stage", list(EXPECTED_TRAINABLE) + ["tcm"])
def test_stage_setup_trains_only_its_modules(stage):
    torch.manual_seed(0)
    model = CGOO(**TINY).train()
    params, loss_fn = cgoo_stage_setup(model, stage, lmbda=0.05)
    assert float(model.lmbda) == 0.05 and model.train_stage == stage
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in model.named_parameters() if any(p is q for q in params)}
    if stage == "tcm":
        assert trainable and not any(n.startswith(("ddt_", "msc.")) for n in trainable)
        assert "g_a.0.conv1.weight" in trainable and "entropy_bottleneck.quantiles" in trainable
    else:
        assert trainable == {n for n, _ in model.named_parameters() if n.startswith(EXPECTED_TRAINABLE[stage])}
    x = torch.rand(2, 3, 64, 64)
    out = model(x)
    expected_liks = {"tcm": {"y", "z"}, "ddt": {"y", "z", "ddt"}, "msc": {"y", "z", "ddt"}}
    assert set(out["likelihoods"]) == expected_liks.get(stage, {"y", "z", "ddt", "msc"})
    losses = loss_fn(out, x)
    losses["loss"].backward()
    nonzero = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert nonzero and nonzero <= trainable
    # every trained parameter is in the graph (DDP needs no unused ones; the zero-initialised DDT
    # decoder tail gives zero gradients once); the quantiles are the auxiliary optimizer's
    reached = {n for n, p in model.named_parameters() if p.grad is not None}
    assert {n for n in reached if not n.endswith(".quantiles")} == \
        {n for n in trainable if not n.endswith(".quantiles")}
    if stage == "codebook_warmup":
        assert bool(model.msc.initialised)  # data initialisation of the codebook on the first batch


def test_stage_without_modules_is_empty():
    model = CGOO(**TINY, use_ddt=False, use_msc=False)
    assert model.training_stages == ["tcm"]
    assert CGOO(**TINY).training_stages == ["tcm", "ddt", "msc", "codebook_warmup", "codebook"]
    for stage in ("ddt", "msc", "codebook_warmup", "codebook"):
        params, _ = cgoo_stage_setup(model, stage)
        assert params == []
    with pytest.raises(ValueError, match="unknown CGOO stage"):
        cgoo_stage_setup(model, "finetune")


# ------------------------------------------------------------------ bitstreams
def test_every_choice_decodes_exactly_with_fresh_decoder(trained):
    """Δ ≠ 1 and a forced MSC mask: the encoder's reconstruction is what a fresh decoder outputs."""
    x = to_tensor(skimage.data.coffee()[50:127, 10:75])  # 77×65, padded inside to 128×128
    with torch.no_grad():
        y = trained.g_a(trained._pad(x))
        s = trained.ddt_syntax(trained._pad(x))
        fresh = _fresh(trained)
        for qp in range(len(trained.qp_steps)):
            enc = trained.encode_latent(y, s, qp, 0.25, x.shape[-2:])
            assert enc["extra"][0] == qp and enc["extra"][1] > 0 and len(enc["strings"][3][0]) > 0
            dec = fresh.decompress(enc["strings"], enc["shape"], extra=enc["extra"])
            assert torch.equal(dec["x_hat"], enc["x_hat"])
        # the MSC stream matters: dropping it changes the reconstruction
        no_msc = trained.encode_latent(y, s, 1, 0.0, x.shape[-2:])
        assert no_msc["extra"][1] == 0 and not torch.equal(no_msc["x_hat"], enc["x_hat"])
        with pytest.raises(ValueError, match="QP index"):
            fresh.decompress(enc["strings"], enc["shape"], extra=bytes([7, 0]))
        with pytest.raises(ValueError, match="not a CGOO stream"):
            fresh.decompress(enc["strings"][:2], enc["shape"])


@pytest.mark.slow
def test_online_lowers_rd_cost_vs_plain_tcm(trained):
    """Done criterion: on every test image, CGOO's stream (online optimisation on) has a lower
    λ·255²·MSE + bpp than plain TCM at the same backbone weights, bpp from the container file bytes,
    and a fresh decoder decodes it to exactly the encoder's reconstruction."""
    tcm = TCM(**TINY_TCM).eval()
    tcm.load_state_dict({k: v for k, v in trained.state_dict().items() if k in tcm.state_dict()})
    tcm.update(force=True)
    lt, lc = _loaded(tcm, "liu2023-tcm-small"), _loaded(trained, "kuang2025-cgoo")
    fresh = _loaded(_fresh(trained), "kuang2025-cgoo")
    assert fresh.fingerprint == lc.fingerprint
    imgs = _images()
    crops = [imgs[0][100:161, 200:291], imgs[2][120:185, 300:380]]  # 61×91, 65×80
    for img in crops:
        h, w = img.shape[:2]
        costs = {}
        for name, loaded in (("tcm", lt), ("cgoo", lc)):
            enc = codec.encode(loaded, img, estimate=False)
            costs[name] = LMBDA * mse(enc.reconstruction, img) + 8 * len(enc.data) / (h * w)
            if name == "cgoo":
                assert np.array_equal(codec.decode(fresh, enc.data), enc.reconstruction)
        assert costs["cgoo"] < costs["tcm"], (img.shape, costs)


@pytest.mark.parametrize("ablation", [{"use_ddt": False}, {"use_msc": False}, {"online_iters": 0}])
def test_ablations_round_trip(ablation):
    """Each ablation writes streams that a fresh decoder of the same configuration decodes to the
    encoder's reconstruction (untrained weights, odd size 61×70, 2 online steps)."""
    torch.manual_seed(0)
    kw = {**TINY, "online_iters": 2, "qp_steps": (1.0, 1.2), "msc_ratios": (0.0, 0.3), **ablation}
    model = CGOO(**kw).eval()
    model.update(force=True)
    x = to_tensor(skimage.data.chelsea()[:61, :70])
    from lic.models.cgoo_online import online_encode

    enc = online_encode(model, x)
    assert len(enc["history"]) == kw["online_iters"]
    assert (enc["strings"][2] == []) == (not model.use_ddt)
    assert (enc["strings"][3] == []) == (enc["extra"][1] == 0)
    fresh = CGOO(**kw).eval()
    fresh.load_state_dict(model.state_dict(), strict=True)
    out = model.compress(x)
    assert out["strings"] == enc["strings"] and out["extra"] == enc["extra"]  # deterministic encoder
    dec = fresh.decompress(out["strings"], out["shape"], extra=out["extra"])
    assert torch.equal(dec["x_hat"], enc["x_hat"])


def test_load_tcm_backbone():
    """A TCM checkpoint (here with DataParallel ``module.`` keys) initialises the backbone; the
    CGOO modules keep their weights; a TCM of another size is refused."""
    torch.manual_seed(0)
    tcm = TCM(**TINY_TCM)
    model = CGOO(**TINY)
    ddt_before = model.ddt_encoder.conv1.weight.clone()
    model.load_tcm_state_dict({"state_dict": {f"module.{k}": v for k, v in tcm.state_dict().items()}})
    loaded = model.state_dict()
    for k, v in tcm.state_dict().items():
        assert torch.equal(loaded[k], v), k
    assert torch.equal(model.ddt_encoder.conv1.weight, ddt_before)
    with pytest.raises(KeyError, match="backbone keys"):
        model.load_tcm_state_dict({k: v for k, v in tcm.state_dict().items() if not k.startswith("g_s.")})
    with pytest.raises(RuntimeError):
        model.load_tcm_state_dict(TCM(**{**TINY_TCM, "N": 32}).state_dict())


def test_fast_and_compressai_coders_write_the_same_streams_and_decode_each_other(trained, monkeypatch):
    """entropy_coder="fast" (default) and "compressai", every stream (y, z, DDT syntax, MSC):
    identical bytes, and each decodes the other's streams exactly to the encoder's reconstruction;
    the fast path touches no CompressAI coder."""
    x = to_tensor(skimage.data.coffee()[50:127, 10:75])
    fast, other = _fresh(trained), _fresh(trained, entropy_coder="compressai")
    assert fast.entropy_coder_name == "fast" and other.entropy_coder_name == "compressai"
    with torch.no_grad():
        y = trained.g_a(trained._pad(x))
        s = trained.ddt_syntax(trained._pad(x))
        enc_cai = other.encode_latent(y, s, 0, 0.25, x.shape[-2:])
        with monkeypatch.context() as mp:
            forbid_compressai(mp, fast)
            enc_fast = fast.encode_latent(y, s, 0, 0.25, x.shape[-2:])
            dec = fast.decompress(enc_cai["strings"], enc_cai["shape"], extra=enc_cai["extra"])["x_hat"]
        assert torch.equal(dec, enc_cai["x_hat"])
        assert enc_fast["extra"][1] > 0 and len(enc_fast["strings"][3][0]) > 0  # MSC coded
        assert len(enc_fast["strings"][2]) == 1  # DDT syntax coded
        assert enc_fast["strings"] == enc_cai["strings"] and enc_fast["extra"] == enc_cai["extra"]
        assert torch.equal(enc_fast["x_hat"], enc_cai["x_hat"])
        dec = other.decompress(enc_fast["strings"], enc_fast["shape"], extra=enc_fast["extra"])["x_hat"]
        assert torch.equal(dec, enc_fast["x_hat"])


# ------------------------------------------------------------------ the eval forward follows the encoder's MSC
@pytest.mark.parametrize("ratio", [0.0, 0.1])
def test_eval_forward_uses_the_encoders_msc_ratio(trained, ratio):
    """Issue 17: with one fixed MSC ratio and no other encoder choice (no online steps, Δ = 1), the eval
    forward codes the same thing as compress: the same reconstruction, and an "msc" rate only when the
    stream has an MSC part (ratio 0: none, although msc_train_ratio is 0.1), whose estimate is close to
    the MSC stream's real size."""
    model = _fresh(trained, online_iters=0, qp_steps=(1.0,), msc_ratios=(ratio,))
    model.update(force=True)
    x = to_tensor(skimage.data.astronaut()[200:264, 180:244])
    with torch.no_grad():
        out = model(x)
    enc = model.compress(x)
    assert ("msc" in out["likelihoods"]) == bool(enc["strings"][3]) == (ratio > 0)
    dec = _fresh(trained, online_iters=0, qp_steps=(1.0,), msc_ratios=(ratio,))
    dec.update(force=True)
    x_dec = dec.decompress(enc["strings"], enc["shape"], extra=enc["extra"])["x_hat"]
    assert (out["x_hat"].clamp(0, 1) - x_dec).abs().max() < 1e-4
    if ratio:
        est = float(-torch.log2(out["likelihoods"]["msc"]).sum()) / 8
        real = len(enc["strings"][3][0])  # 16 positions, 2 compensated: mostly the rANS flush (4 bytes)
        assert 0 < est <= real < est + 6


def test_eval_forward_picks_one_of_the_encoders_msc_ratios(trained):
    """With several MSC ratios the eval forward returns the candidate of one of them (the smallest
    estimated RD cost, as the encoder takes the smallest real one), never msc_train_ratio's by default."""
    x = to_tensor(skimage.data.astronaut()[200:264, 180:244])
    with torch.no_grad():
        both = _fresh(trained, msc_ratios=(0.0, 0.3))(x)
        single = [_fresh(trained, msc_ratios=(r,))(x) for r in (0.0, 0.3)]
        train_ratio = _fresh(trained, msc_ratios=(0.1,))(x)
    assert any(torch.equal(both["x_hat"], s["x_hat"]) for s in single)
    assert not torch.equal(both["x_hat"], train_ratio["x_hat"])


def test_tcm_weights_load_over_built_tables_of_another_size():
    """init_from after the quality's own base (train.py): the CGOO already holds CDF tables; a TCM whose
    tables have another size still loads, and its tables are the ones kept (the paper profile's CGOO stage
    failed on exactly this: [192, 25] tables into [192, 23])."""
    torch.manual_seed(0)
    cgoo, tcm = CGOO(**TINY).eval(), TCM(**TINY_TCM).eval()
    cgoo.update(force=True)
    with torch.no_grad():
        tcm.entropy_bottleneck.quantiles.mul_(4)  # wider z range: longer CDF rows
    tcm.update(force=True)
    key = "entropy_bottleneck._quantized_cdf"
    assert cgoo.state_dict()[key].shape != tcm.state_dict()[key].shape
    cgoo.load_tcm_state_dict(tcm.state_dict())
    for k in (key, "entropy_bottleneck._offset", "entropy_bottleneck._cdf_length"):
        assert torch.equal(cgoo.state_dict()[k], tcm.state_dict()[k]), k
