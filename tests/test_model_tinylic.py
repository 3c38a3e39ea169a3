"""TinyLIC v3 (released model) and the v1 / supplement Tables 1–2 configurations.

Expected numbers come from the spec (shared/specs/tinylic.md), never from the code under test:
parameter counts (§1, §4.4), the official state_dict key/shape scheme (Appendix A, §5).
"""

from __future__ import annotations

import pytest
import torch

from lic.codec import pad
from lic.models import registry
from lic.models.tinylic import TinyLIC, convert_official_state_dict, mcm_slices
from lic.models.tinylic_blocks import kernel_mask
from coding_helpers import forbid_compressai

#: CPU-sized kwargs (the ones recommended for the default profile)
TINY = dict(N=16, M=48, depths=(1, 1, 1, 1, 1, 1))
TINY_V1 = dict(N=16, M=32, depths=(1, 1, 1, 1, 1, 1), num_heads=(2, 2, 2, 2, 2, 2))


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------ spec key scheme
RNAB_TABLE = [  # module, C, heads, k, blocks (spec Appendix A)
    ("g_a1", 128, 8, 7, 2), ("g_a3", 192, 12, 7, 2), ("g_a5", 256, 16, 7, 6), ("g_a7", 320, 20, 7, 2),
    ("h_a1", 192, 12, 3, 2), ("h_a3", 192, 12, 3, 2), ("h_s0", 192, 12, 3, 2), ("h_s2", 192, 12, 3, 2),
    ("g_s0", 320, 20, 7, 2), ("g_s2", 256, 16, 7, 6), ("g_s4", 192, 12, 7, 2), ("g_s6", 128, 8, 7, 2),
]
CONV_TABLE = {  # name: weight shape (bias = the out channels)
    "g_a0": (128, 3, 5, 5), "g_a2": (192, 128, 3, 3), "g_a4": (256, 192, 3, 3), "g_a6": (320, 256, 3, 3),
    "h_a0": (192, 320, 3, 3), "h_a2": (192, 192, 3, 3), "h_s1": (192, 192, 3, 3), "h_s3": (192, 640, 3, 3),
    "g_s1": (320, 256, 3, 3), "g_s3": (256, 192, 3, 3), "g_s5": (192, 128, 3, 3), "g_s7": (128, 3, 5, 5),
}
SEQ_TABLE = {  # 3-conv sequentials: name: [(out, in, k)] * 3
    "entropy_parameters_1": [(80, 736, 1), (64, 80, 1), (48, 64, 1)],
    "entropy_parameters_2": [(230, 916, 1), (184, 230, 1), (138, 184, 1)],
    "entropy_parameters_3": [(346, 1056, 1), (277, 346, 1), (208, 277, 1)],
    "entropy_parameters_4": [(246, 886, 1), (246, 246, 1), (246, 246, 1)],
    "cc_transforms.0": [(24, 640, 5), (24, 24, 5), (48, 24, 3)],
    "cc_transforms.1": [(69, 664, 5), (69, 69, 5), (138, 69, 3)],
    "cc_transforms.2": [(104, 733, 5), (104, 104, 5), (208, 104, 3)],
    "cc_transforms.3": [(123, 837, 5), (123, 123, 5), (246, 123, 3)],
}
SC_TABLE = {"sc_transform_1": (48, 24, 3), "sc_transform_2": (48, 24, 5), "sc_transform_3": (48, 24, 5),
            "sc_transform_4": (138, 69, 5), "sc_transform_5": (208, 104, 5)}


def official_v3_learnables() -> dict[str, tuple[int, ...]]:
    """Learnable keys/shapes of an official v3 checkpoint (old CompressAI EB names)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, C, h, k, n in RNAB_TABLE:
        for i in range(n):
            p = f"{name}.residual_group.blocks.{i}."
            shapes.update({p + "norm1.weight": (C,), p + "norm1.bias": (C,), p + "attn.rpb": (h, 2 * k - 1, 2 * k - 1),
                           p + "attn.qkv.weight": (3 * C, C), p + "attn.qkv.bias": (3 * C,),
                           p + "attn.proj.weight": (C, C), p + "attn.proj.bias": (C,),
                           p + "norm2.weight": (C,), p + "norm2.bias": (C,),
                           p + "mlp.fc1.weight": (2 * C, C), p + "mlp.fc1.bias": (2 * C,),
                           p + "mlp.fc2.weight": (C, 2 * C), p + "mlp.fc2.bias": (C,)})
    for name, w in CONV_TABLE.items():
        transposed = name.startswith(("h_s", "g_s"))
        shapes[name + ".weight"], shapes[name + ".bias"] = w, (w[1] if transposed else w[0],)
    for name, convs in SEQ_TABLE.items():
        for j, (o, i, k) in zip((0, 2, 4), convs):
            shapes[f"{name}.{j}.weight"], shapes[f"{name}.{j}.bias"] = (o, i, k, k), (o,)
    for name, (o, i, k) in SC_TABLE.items():
        shapes[name + ".weight"], shapes[name + ".bias"] = (o, i, k, k), (o,)
    dims = [(1, 3), (3, 3), (3, 3), (3, 3), (3, 1)]
    for j, (a, b) in enumerate(dims):
        shapes[f"entropy_bottleneck._matrix{j}"] = (192, b, a)
        shapes[f"entropy_bottleneck._bias{j}"] = (192, b, 1)
        if j < 4:
            shapes[f"entropy_bottleneck._factor{j}"] = (192, b, 1)
    shapes["entropy_bottleneck.quantiles"] = (192, 1, 3)
    return shapes


def official_v3_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(s, generator=g) for k, s in official_v3_learnables().items()}
    for name, (o, i, k) in SC_TABLE.items():  # the masks are buffers; weights are stored pre-masked
        kind = {"sc_transform_1": "A", "sc_transform_3": "C"}.get(name, "B")
        mask = torch.zeros(k, k)
        if kind == "A":
            mask[0::2, 0::2] = 1
        elif kind == "B":
            mask[0::2, 1::2] = 1
            mask[1::2, 0::2] = 1
        else:
            mask[0::2, 1::2] = 1
            mask[1::2, :] = 1
        sd[name + ".mask"] = mask.expand(o, i, k, k).clone()
        sd[name + ".weight"] *= sd[name + ".mask"]
    sd["entropy_bottleneck.target"] = torch.tensor([-9.0, 0.0, 9.0])
    sd["entropy_bottleneck.likelihood_lower_bound.bound"] = torch.tensor([1e-9])
    for p in ("entropy_bottleneck", "gaussian_conditional"):  # CDF buffers of a different size: resized
        sd[f"{p}._offset"] = torch.zeros(7, dtype=torch.int32)
        sd[f"{p}._quantized_cdf"] = torch.zeros(7, 11, dtype=torch.int32)
        sd[f"{p}._cdf_length"] = torch.zeros(7, dtype=torch.int32)
    sd["gaussian_conditional.scale_table"] = torch.linspace(0.11, 256, 7)
    sd["gaussian_conditional.scale_bound"] = torch.tensor([0.11])
    sd["gaussian_conditional.likelihood_lower_bound.bound"] = torch.tensor([1e-9])
    sd["gaussian_conditional.lower_bound_scale.bound"] = torch.tensor([0.11])
    return {"module." + k: v for k, v in sd.items()}  # a DataParallel-saved checkpoint


@pytest.fixture(scope="module")
def v3() -> TinyLIC:
    torch.manual_seed(0)
    return registry.build("lu2022-tinylic-v3").eval()


def test_v3_param_count_matches_spec(v3):
    assert n_params(v3) == 28_338_211
    sizes = {k: sum(p.numel() for n, p in v3.named_parameters() if n.startswith(k)) for k in ("g_a", "g_s")}
    assert round(sizes["g_a"] / 1e6, 2) == 7.11 and round(sizes["g_s"] / 1e6, 2) == 7.11
    assert round(sum(p.numel() for p in v3.cc_transforms.parameters()) / 1e6, 2) == 7.36


def test_v3_structure(v3):
    assert mcm_slices(320) == [24, 69, 104, 123]
    assert v3.slices == [24, 69, 104, 123]
    for name, C, h, k, n in RNAB_TABLE:
        blocks = getattr(v3, name).residual_group.blocks
        assert len(blocks) == n
        assert all(b.attn.num_heads == h and b.attn.kernel_size == k and b.attn.head_dim == 16 for b in blocks)
    # dpr = linspace(0, .1, 16); the decoder takes its slices from the same, unreversed list
    dpr = torch.linspace(0, 0.1, 16).tolist()
    lo = {"g_a1": 0, "g_a3": 2, "g_a5": 4, "g_a7": 10, "h_a1": 12, "h_a3": 14,
          "h_s0": 0, "h_s2": 2, "g_s0": 4, "g_s2": 6, "g_s4": 12, "g_s6": 14}
    for name, start in lo.items():
        got = [b.drop_path.p for b in getattr(v3, name).residual_group.blocks]
        assert got == pytest.approx(dpr[start:start + len(got)])
    assert torch.equal(v3.sc_transform_3.mask[0, 0], kernel_mask("C", 5))
    assert v3.sc_transform_3.mask[0, 0].tolist() == [[0, 1, 0, 1, 0], [1, 1, 1, 1, 1], [0, 1, 0, 1, 0],
                                                    [1, 1, 1, 1, 1], [0, 1, 0, 1, 0]]


def test_official_checkpoint_loads_strictly():
    model = TinyLIC()
    official = official_v3_state_dict()
    assert len(official) == 530  # spec §5
    converted = convert_official_state_dict({"state_dict": official, "epoch": 3})
    model.load_state_dict(converted, strict=True)  # raises on any missing/unexpected key or bad shape
    ours = model.state_dict()
    for k, v in official.items():  # every learnable value arrived at the right place
        k = k[len("module."):]
        if "_matrix" in k or "_bias" in k and "entropy_bottleneck" in k or "_factor" in k:
            j = k[-1]
            k = k.replace(f"_matrix{j}", f"matrices.{j}").replace(f"_bias{j}", f"biases.{j}").replace(
                f"_factor{j}", f"factors.{j}")
        assert torch.equal(ours[k].float(), v.float()), k
    learn = {n for n, _ in model.named_parameters()}
    assert len(learn) == len(official_v3_learnables())


def test_gradients_flow_on_cpu():
    torch.manual_seed(0)
    m = TinyLIC(**TINY).train()
    x = torch.rand(1, 3, 128, 128)  # 2×2 at 1/64: on a 1×1 map the hyper coder's rpb gets no gradient
    out = m(x)
    bpp = sum(-torch.log2(lk).sum() for lk in out["likelihoods"].values()) / (128 * 128)
    (bpp + 100 * (out["x_hat"] - x).square().mean()).backward()
    no_grad = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # the EB quantiles are trained by the aux loss only; drop_path is stochastic, but every block
    # still receives gradients through the other residual branch
    assert no_grad == ["entropy_bottleneck.quantiles"], no_grad


def _roundtrip(model: TinyLIC, x: torch.Tensor) -> None:
    """compress→decompress equals the eval forward's reconstruction, after codec padding + crop."""
    h, w = x.shape[-2:]
    xp = pad(x, model.pad_multiple)
    model.update(force=True)
    with torch.no_grad():
        ref = model(xp)["x_hat"].clamp(0, 1)[..., :h, :w]
        enc = model.compress(xp)
        assert set(enc) == {"strings", "shape"} and len(enc["strings"]) == 2
        dec = model.decompress(enc["strings"], enc["shape"])["x_hat"][..., :h, :w]
    assert torch.equal(dec, ref)
    assert dec.min() >= 0 and dec.max() <= 1


def test_v3_roundtrip_odd_size(v3):
    torch.manual_seed(1)
    _roundtrip(v3, torch.rand(1, 3, 61, 57))


@pytest.mark.parametrize("key,kw", [("lu2022-tinylic-v3", TINY), ("lu2022-tinylic-low", TINY_V1)])
def test_tiny_roundtrip_and_rate(key, kw):
    torch.manual_seed(2)
    m = registry.build(key, **kw).eval()
    x = pad(torch.rand(2, 3, 67, 45), m.pad_multiple)
    _roundtrip(m, x[..., :67, :45])
    with torch.no_grad():
        out = m(x)
        est = sum(-torch.log2(lk).sum() for lk in out["likelihoods"].values()).item()
        enc = m.compress(x)
    real = 8 * sum(len(s) for group in enc["strings"] for s in group)
    assert 0.7 * est < real < 1.3 * est + 400  # real file size close to the estimate


def test_decoder_depends_on_context():
    """Changing a decoded anchor must change later Gaussian parameters (the context is used)."""
    torch.manual_seed(3)
    m = TinyLIC(**TINY).eval()
    psi = torch.randn(1, 2 * 48, 4, 4)
    seen = []

    def step(i, groups, scales, means):
        seen.append((i, groups, means.clone()))
        return torch.full_like(means, 3.0 if flip else 0.0)

    flip = False
    m._code_y(psi, step)
    a = [s[2] for s in seen]
    seen.clear()
    flip = True
    m._code_y(psi, step)
    b = [s[2] for s in seen]
    assert torch.equal(a[0], b[0])  # first step: no context yet
    assert not torch.equal(a[1], b[1])  # slice 0, step 1 uses the (0,0) anchors
    assert not torch.equal(a[4], b[4])  # slice 1 anchors use slice 0 through cc_transforms


def test_v1_param_counts_match_spec():
    low, high = registry.build("lu2022-tinylic-low"), registry.build("lu2022-tinylic-high")
    assert round(n_params(low) / 1e6, 2) == 12.45  # spec §4.4 (v1 code)
    assert round(n_params(high) / 1e6, 2) == 31.39
    sup = registry.build("lu2022-tinylic-low", v1_entropy_parameters="supplement")
    assert [c.out_channels for c in sup.entropy_parameters if isinstance(c, torch.nn.Conv2d)] == [640, 512, 384]
    assert sup.entropy_parameters[0].in_channels == 4 * 192
    sup_hi = registry.build("lu2022-tinylic-high", v1_entropy_parameters="supplement")
    assert [c.out_channels for c in sup_hi.entropy_parameters if isinstance(c, torch.nn.Conv2d)] == [1066, 853, 640]
    assert round(n_params(sup) / 1e6, 1) == 10.5  # spec §4.4: "≈10.5 M"


def test_v1_structure_matches_supplement_table_1():
    m = registry.build("lu2022-tinylic-low")
    convs = [(getattr(m, n).out_channels, getattr(m, n).kernel_size[0], getattr(m, n).stride[0])
             for n in ("g_a0", "g_a2", "g_a4", "g_a6", "h_a0", "h_a2", "h_s1", "h_s3", "g_s1", "g_s3", "g_s5", "g_s7")]
    assert convs == [(128, 5, 2), (128, 3, 2), (128, 3, 2), (192, 3, 2), (128, 3, 2), (128, 3, 2),
                     (128, 3, 2), (384, 3, 2), (128, 3, 2), (128, 3, 2), (128, 3, 2), (3, 5, 2)]
    depth = {n: len(getattr(m, n).residual_group.blocks) for n in
             ("g_a1", "g_a3", "g_a5", "g_a7", "h_a1", "h_a3", "h_s0", "h_s2", "g_s0", "g_s2", "g_s4", "g_s6")}
    assert list(depth.values()) == [2, 4, 6, 2, 2, 2, 2, 2, 2, 6, 4, 2]
    assert [m.context_prediction_1.out_channels, m.context_prediction_1.kernel_size[0]] == [384, 3]
    blk = m.g_a1.residual_group.blocks
    assert blk[0].window_size == 8 and blk[0].shift_size == 0 and blk[1].shift_size == 4
    assert m.h_a1.residual_group.blocks[1].window_size == 4  # hyper coder window 8 // 2
    assert m.h_a3.residual_group.blocks[1].shift_size == 0  # 4×4 map at a 256² crop: no shift


def test_v1_supplement_variant_roundtrip():
    torch.manual_seed(4)
    m = registry.build("lu2022-tinylic-low", v1_entropy_parameters="supplement", **TINY_V1).eval()
    _roundtrip(m, torch.rand(1, 3, 40, 70))


def test_bad_config_fails_loudly():
    with pytest.raises(ValueError):
        TinyLIC(N=16, M=48, depths=(1, 1, 1))
    with pytest.raises(ValueError):
        TinyLIC(N=16, M=48, channels=(16, 24, 32, 40))
    with pytest.raises(ValueError):
        TinyLIC(N=16, M=48, context="nope")


def test_fast_and_compressai_coders_write_the_same_streams_and_decode_each_other(monkeypatch):
    """entropy_coder="fast" (default) and "compressai", batch 2 (one stream per image): identical
    bytes (y and z); each decodes the other's streams exactly to the eval forward's reconstruction;
    the fast path touches no CompressAI coder."""
    torch.manual_seed(4)
    fast = registry.build("lu2022-tinylic-v3", **TINY).eval()
    other = registry.build("lu2022-tinylic-v3", **TINY, entropy_coder="compressai").eval()
    other.load_state_dict(fast.state_dict())
    assert fast.entropy_coder_name == "fast" and other.entropy_coder_name == "compressai"
    for m in (fast, other):
        m.update(force=True)
    x = pad(torch.rand(2, 3, 67, 45), fast.pad_multiple)
    with torch.no_grad():
        ref = fast(x)["x_hat"].clamp(0, 1)
        enc_cai = other.compress(x)
        with monkeypatch.context() as mp:
            forbid_compressai(mp, fast)
            enc_fast = fast.compress(x)
            assert torch.equal(fast.decompress(enc_cai["strings"], enc_cai["shape"])["x_hat"], ref)
        assert enc_fast["strings"] == enc_cai["strings"] and enc_fast["shape"] == enc_cai["shape"]
        assert torch.equal(other.decompress(enc_fast["strings"], enc_fast["shape"])["x_hat"], ref)
    with pytest.raises(ValueError, match="entropy_coder"):
        TinyLIC(**TINY, entropy_coder="CompressAI")
