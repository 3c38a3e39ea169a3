"""TinyLIC + MSR in-loop filter: least squares, signalled coefficients, never-worse decision."""

from __future__ import annotations

import pytest
import torch

from lic.models import registry
from lic.models.tinylic import TinyLIC
from lic.models.tinylic_msr import MSRNet, TinyLICMSR, apply_coefficients, solve_coefficients

BASE = dict(N=16, M=48, depths=(1, 1, 1, 1, 1, 1))
TINY = dict(BASE, msr_width=16, msr_depths=())


def psnr(a, b):
    return float(-10 * torch.log10((a - b).square().mean()))


@pytest.fixture(scope="module")
def model() -> TinyLICMSR:
    torch.manual_seed(0)
    m = registry.build("lu2022-tinylic-msr", **TINY).eval()
    m.update(force=True)
    return m


def test_msr_network_sizes():
    plain = MSRNet(depths=())  # 3 convs 3→128→128→6, as in the supplement's Fig. 4
    assert sum(p.numel() for p in plain.parameters()) == (3 * 9 * 128 + 128) + (128 * 9 * 128 + 128) + (128 * 9 * 6 + 6)
    assert plain(torch.rand(2, 3, 8, 8)).shape == (2, 2, 3, 8, 8)
    full = MSRNet()  # the registered default: ≈ 1.7 M parameters ("20 % of TinyLIC")
    assert 1.7e6 <= sum(p.numel() for p in full.parameters()) <= 1.8e6


def test_least_squares_recovers_coefficients():
    g = torch.Generator().manual_seed(0)
    hyp = torch.randn(2, 2, 3, 16, 16, generator=g)
    a = torch.tensor([[0.7, -0.3], [0.1, 0.5], [-1.2, 2.0]])
    err = (hyp * a.T[None, :, :, None, None]).sum(1) + 1e-3 * torch.randn(2, 3, 16, 16, generator=g)
    got = solve_coefficients(err, hyp, per_channel=True)
    torch.testing.assert_close(got, a.expand(2, 3, 2), atol=2e-3, rtol=0)
    shared = solve_coefficients(err, hyp, per_channel=False)
    assert shared.shape == (2, 1, 2)
    # a shared pair can only do worse than per-channel pairs
    e_pc = (err - apply_coefficients(torch.zeros_like(err), hyp, got)).square().sum()
    e_sh = (err - apply_coefficients(torch.zeros_like(err), hyp, shared)).square().sum()
    assert e_pc < e_sh


def test_decision_switches_off_when_quantization_hurts(model):
    """Nearly collinear hypotheses: rounding the LS optimum (1.4, −1.6) to (1, −2) makes it worse."""
    g = torch.Generator().manual_seed(1)
    u, v = 0.1 * torch.randn(1, 3, 32, 32, generator=g), torch.randn(1, 3, 32, 32, generator=g)
    eps = 0.01
    hyp = torch.stack([u + eps * v, u - eps * v], 1)
    x_hat = torch.full((1, 3, 32, 32), 0.5)
    x = x_hat + 1.4 * hyp[:, 0] - 1.6 * hyp[:, 1]
    frac = model.frac_bits
    model.frac_bits = 0
    try:
        on, q = model._decide(x, x_hat, hyp)
        assert q[0, 0].tolist() == [1.0, -2.0] and not bool(on[0])
        model.frac_bits = 4  # fine enough quantization: now it helps
        on, q = model._decide(x, x_hat, hyp)
        assert bool(on[0])
    finally:
        model.frac_bits = frac
    x_off = model._filtered(x_hat, hyp, torch.tensor([False]), torch.tensor([[[9.0, 9.0]] * 3]))
    assert torch.equal(x_off, x_hat)


def test_zero_hypotheses_signal_off():
    torch.manual_seed(2)
    m = TinyLICMSR(**TINY).eval()
    with torch.no_grad():
        m.msr.conv3.weight.zero_(), m.msr.conv3.bias.zero_()
    m.update(force=True)
    x = torch.rand(1, 3, 64, 64)
    enc = m.compress(x)
    assert enc["extra"] == b"\x00"  # off: one flag byte
    dec = m.decompress(enc["strings"], enc["shape"], extra=enc["extra"])["x_hat"]
    base = TinyLIC.decompress(m, enc["strings"], enc["shape"])["x_hat"]
    assert torch.equal(dec, base)


def test_roundtrip_never_worse_and_side_info_counted(model):
    torch.manual_seed(3)
    x = torch.rand(2, 3, 64, 64) * 0.5 + 0.25
    with torch.no_grad():
        out = model(x)
        enc = model.compress(x)
    dec = model.decompress(enc["strings"], enc["shape"], extra=enc["extra"])["x_hat"]
    assert torch.equal(dec, out["x_hat"])  # the eval forward is the decoder's output
    n_on = sum(1 for b in range(2) if bool((out["likelihoods"]["msr"][b] < 1).sum() > 1))
    assert len(enc["extra"]) == 2 + 12 * n_on  # flag per image + 6 int16 when on
    bits = -torch.log2(out["likelihoods"]["msr"]).sum().item()
    assert bits == pytest.approx(8 * len(enc["extra"]))
    for b in range(2):
        assert psnr(dec[b], x[b]) >= psnr(out["x_hat_unfiltered"][b], x[b])
    assert n_on >= 1  # an untrained codec is far off: the LS filter does help here
    with pytest.raises(ValueError):
        model.decompress(enc["strings"], enc["shape"], extra=enc["extra"][:-1])
    with pytest.raises(ValueError):
        model.decompress(enc["strings"], enc["shape"])


def test_training_forward_trains_only_the_filter():
    torch.manual_seed(4)
    base = TinyLIC(**BASE, drop_path_rate=0.0)
    m = TinyLICMSR(**TINY, drop_path_rate=0.0).train()  # deterministic forward (no stochastic depth)
    m.load_base_state_dict(base.state_dict())
    assert torch.equal(m.g_a0.weight, base.g_a0.weight)
    assert m.msr.training and not m.g_a1.training and not m.entropy_bottleneck.training  # frozen base: eval
    x = torch.rand(1, 3, 64, 64)
    out = m(x)
    (out["x_hat"] - x).square().mean().backward()
    grads = {n: p.grad for n, p in m.named_parameters()}
    assert all(grads[n] is not None and grads[n].abs().sum() > 0 for n in grads if n.startswith("msr."))
    assert all(grads[n] is None for n in grads if n.startswith(("g_a", "g_s", "h_", "cc_", "entropy_p")))
    # in training the LS filter is applied unquantized and can only lower the MSE
    with torch.no_grad():
        plain = TinyLIC.forward(m, x)["x_hat"]
    assert (out["x_hat"] - x).square().mean() <= (plain - x).square().mean()
