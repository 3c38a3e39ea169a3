"""The neighborhood-attention paths (``attention_impl``) against the reference path: outputs and gradients
within 1e-5 in float32, at maps larger and smaller than the kernel; TinyLIC v3 streams cross-decoded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lic.layers.neighborhood_attention as na
from lic.layers.neighborhood_attention import (NeighborhoodAttention, attention_record, neighborhood_attention,
                                               resolve_impl, set_attention_impl)

#: (H, W, kernel): square and non-square, H or W equal to k, smaller than k on one or both axes
CASES = [(9, 11, 7), (7, 7, 7), (5, 12, 7), (3, 3, 5), (8, 5, 3), (2, 2, 3), (13, 6, 5), (1, 4, 3)]


def _inputs(H, W, ks, seed, B=2, h=2, d=8):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, h, H, W, d, generator=g) for _ in range(3))
    rpb = torch.randn(h, 2 * ks - 1, 2 * ks - 1, generator=g)
    return q, k, v, rpb


def _out_and_grads(impl, q, k, v, rpb, ks):
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v, rpb)]
    out = neighborhood_attention(*leaves[:3], ks, leaves[3], impl=impl)
    upstream = torch.linspace(-1, 1, out.numel()).reshape(out.shape)  # not symmetric: every grad entry counts
    (out * upstream).sum().backward()
    return out.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("H,W,ks", CASES)
def test_chunked_matches_reference(H, W, ks):
    q, k, v, rpb = _inputs(H, W, ks, H * 100 + W * 10 + ks)
    out_r, grads_r = _out_and_grads("reference", q, k, v, rpb, ks)
    out_c, grads_c = _out_and_grads("chunked", q, k, v, rpb, ks)
    assert torch.equal(out_c, out_r)  # the same computation, recomputed in backward: bit for bit
    for name, a, b in zip(("q", "k", "v", "rpb"), grads_c, grads_r):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=f"grad {name}")


def test_chunked_over_many_chunks_matches_reference(monkeypatch):
    """Rows split into chunks of 2 (the paper-size case: many chunks, each recomputed in backward)."""
    q, k, v, rpb = _inputs(11, 9, 7, 3)
    out_r, grads_r = _out_and_grads("reference", q, k, v, rpb, 7)
    monkeypatch.setattr(na, "_CHUNK_ELEMS", 2 * 9 * 8 * 49 * 2 * 2)  # B·h·W·d·k² elements per row: 2 rows
    assert na._chunk_rows(q, 7) == 2
    out_c, grads_c = _out_and_grads("chunked", q, k, v, rpb, 7)
    assert torch.equal(out_c, out_r)
    for a, b in zip(grads_c, grads_r):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_chunked_does_not_keep_the_windows_for_backward():
    """What autograd holds after the forward: the reference keeps the gathered k² windows, the chunked path
    only its inputs and output (measured with saved-tensor hooks)."""
    q, k, v, rpb = (t.requires_grad_(True) for t in _inputs(16, 16, 7, 0, B=1, h=2, d=16))
    sizes = {}
    for impl in ("reference", "chunked"):
        saved = []

        def pack(t):
            saved.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            neighborhood_attention(q, k, v, 7, rpb, impl=impl)
        sizes[impl] = sum(saved)
    window = q.numel() * 49
    assert sizes["reference"] >= 2 * window  # K and V windows
    assert sizes["chunked"] < window / 4


def test_flex_forward_matches_reference_on_cpu():
    """FlexAttention (compiled on the CPU; forward only there): a map shorter than the kernel along H and
    wider along W, so both the whole-axis rule and the shifted edge windows are exercised."""
    pytest.importorskip("torch.nn.attention.flex_attention")
    q, k, v, rpb = _inputs(5, 12, 7, 1, B=1, h=2, d=16)
    with torch.no_grad():
        ref = neighborhood_attention(q, k, v, 7, rpb, impl="reference")
        try:
            out = neighborhood_attention(q, k, v, 7, rpb, impl="flex")
        except Exception as e:  # torch.compile needs a C++ compiler on the CPU
            if "compiler" in str(e).lower() or "InvalidCxxCompiler" in type(e).__name__:
                pytest.skip(f"torch.compile cannot build here: {e}")
            raise
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention's backward needs a GPU")
def test_flex_gradients_match_reference_on_cuda():  # pragma: no cover - needs a GPU
    for H, W, ks in [(20, 17, 7), (5, 12, 7), (8, 8, 3)]:
        q, k, v, rpb = (t.cuda() for t in _inputs(H, W, ks, 5, d=16))
        out_r, grads_r = _out_and_grads("reference", q, k, v, rpb, ks)
        out_f, grads_f = _out_and_grads("flex", q, k, v, rpb, ks)
        torch.testing.assert_close(out_f, out_r, atol=1e-5, rtol=1e-5)
        for a, b in zip(grads_f, grads_r):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_flex_refuses_to_train_on_cpu():
    q, k, v, rpb = (t.requires_grad_(True) for t in _inputs(8, 8, 3, 0, d=16))
    with pytest.raises(NotImplementedError, match="cannot train on the CPU"):
        neighborhood_attention(q, k, v, 3, rpb, impl="flex")


def test_resolution_of_auto_and_errors(monkeypatch):
    q = torch.zeros(1, 1, 8, 8, 4)
    assert resolve_impl("auto", q, 7) == "chunked"  # the CPU
    assert resolve_impl("reference", q, 7) == "reference"
    with pytest.raises(ValueError, match="attention_impl must be one of"):
        resolve_impl("fast", q, 7)
    with pytest.raises(ValueError, match="attention_impl must be one of"):
        NeighborhoodAttention(8, 3, 2, attention_impl="natten2")
    monkeypatch.setattr(na, "_natten_ops", lambda: None)
    with pytest.raises(RuntimeError, match="attention_impl='natten' is not usable"):
        resolve_impl("natten", q, 7)
    monkeypatch.setattr(na, "_natten_ops", lambda: (None, None))
    assert resolve_impl("natten", q, 7) == "natten"
    assert resolve_impl("natten", q, 9) == "chunked"  # a map smaller than the kernel: natten rejects it
    assert resolve_impl("auto", q, 7) == "chunked"  # natten's CPU kernels are never chosen by auto


# ------------------------------------------------------------------------------------------- the model
TINY = dict(N=16, M=48, depths=[1, 1, 1, 1, 1, 1], kernel_size=5)


@pytest.fixture(scope="module")
def tiny_v3():
    from lic.models import registry

    torch.manual_seed(0)
    model = registry.build("lu2022-tinylic-v3", **TINY)
    model.update(force=True)
    return model


def test_option_leaves_the_weights_alone():
    from lic.models import registry

    keys = {impl: list(registry.build("lu2022-tinylic-v3", attention_impl=impl, **TINY).state_dict())
            for impl in ("reference", "chunked", "flex")}
    assert keys["reference"] == keys["chunked"] == keys["flex"]
    paper = registry.build("lu2022-tinylic-v3", attention_impl="chunked")
    assert sum(p.numel() for p in paper.parameters()) == 28_338_211


def test_model_outputs_and_gradients_match_across_paths(tiny_v3):
    """Training-mode TinyLIC v3 (tiny kwargs, stochastic depth seeded alike): loss and every parameter's
    gradient equal within 1e-5; the record names the path that ran."""
    from lic.train import RateDistortionLoss

    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    loss_fn, res = RateDistortionLoss(0.0130), {}
    for impl in ("reference", "chunked"):
        set_attention_impl(tiny_v3, impl).train()
        tiny_v3.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        out = tiny_v3(x)
        loss_fn(out, x)["loss"].backward()
        res[impl] = (out["x_hat"].detach(), {n: p.grad.clone() for n, p in tiny_v3.named_parameters()
                                             if p.grad is not None})
        assert attention_record(tiny_v3) == {"option": impl, "resolved": impl}
    tiny_v3.eval().zero_grad(set_to_none=True)
    assert torch.equal(res["chunked"][0], res["reference"][0])
    assert res["chunked"][1].keys() == res["reference"][1].keys() and len(res["chunked"][1]) > 100
    for n, g in res["chunked"][1].items():
        torch.testing.assert_close(g, res["reference"][1][n], atol=1e-5, rtol=1e-5, msg=n)


def test_streams_decode_identically_across_paths(tiny_v3):
    """lic.codec: a stream encoded with one path decodes to the encoder's image with the other."""
    from lic import codec

    lm = codec.LoadedModel(tiny_v3, "lu2022-tinylic-v3", 0, codec.state_fingerprint(tiny_v3.state_dict()), {})
    img = (np.random.default_rng(0).random((45, 70, 3)) * 255).astype(np.uint8)
    enc = {}
    for impl in ("chunked", "reference"):
        set_attention_impl(tiny_v3, impl)
        enc[impl] = codec.encode(lm, img, estimate=False)
    assert enc["chunked"].data == enc["reference"].data
    for src, dst in (("chunked", "reference"), ("reference", "chunked")):
        set_attention_impl(tiny_v3, dst)
        assert np.array_equal(codec.decode(lm, enc[src].data), enc[src].reconstruction), f"{src} -> {dst}"
    set_attention_impl(tiny_v3, "auto")


def test_checkpoint_without_the_option_loads_with_auto(tmp_path, tiny_v3):
    from lic import codec

    rec = {"model": "lu2022-tinylic-v3", "kwargs": TINY, "state_dict": tiny_v3.state_dict(), "updated": True}
    torch.save(rec, tmp_path / "m.pt")
    loaded = codec.load_checkpoint(tmp_path / "m.pt")
    layers = [m for m in loaded.model.modules() if isinstance(m, NeighborhoodAttention)]
    assert layers and {m.attention_impl for m in layers} == {"auto"}
    assert attention_record(loaded.model) == {"option": "auto", "resolved": None}


def test_training_record_names_the_path(tmp_path, in_tiny_project):
    """lic.train writes the option and the path that ran into model.pt (a 2-step run of the tiny v3)."""
    import copy

    from lic import train

    params = copy.deepcopy(in_tiny_project[1])  # the session's project: its params stay as they are
    params["models"]["lu2022-tinylic-v3"]["kwargs"] = {**TINY, "attention_impl": "auto"}
    params["models"]["lu2022-tinylic-v3"]["train"] = {"base_steps": 2, "milestones": []}
    final = train.train("lu2022-tinylic-v3", "base", params, tmp_path / "run", progress=False)
    rec = torch.load(final, map_location="cpu", weights_only=False)
    assert rec["attention_impl"] == {"option": "auto", "resolved": "chunked"}
    assert rec["kwargs"]["attention_impl"] == "auto"


def test_flex_probe_says_why_flex_cannot_train_on_cpu():
    """auto uses FlexAttention only where a one-time probe trains it correctly; on the CPU it cannot."""
    from lic.layers import na_flex

    why = na_flex.flex_probe("cpu", na._na_chunked)
    assert why is not None and "cannot train on the CPU" in why
    assert na_flex.flex_probe("cpu", na._na_chunked) is why  # probed once per device
