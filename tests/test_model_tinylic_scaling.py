"""TinyLIC + ScalingNet variable rate: rate in the bitstream, exact round trip, rate bisection."""

from __future__ import annotations

import math

import pytest
import torch

from lic.models import registry
from lic.models.tinylic_scaling import RATE_LEVELS, TinyLICVR, file_bpp, fit_rate

TINY = dict(N=16, M=48, depths=(1, 1, 1, 1, 1, 1), scaling_hidden=8)


@pytest.fixture(scope="module")
def model() -> TinyLICVR:
    torch.manual_seed(0)
    m = registry.build("lu2022-tinylic-vr", **TINY).eval()
    m.update(force=True)
    return m


def test_registered_full_size_counts():
    m = registry.build("lu2022-tinylic-vr")
    base = 28_338_211  # spec: v3
    # 8 ScalingNets: FC(1→50) + FC(50→C) for C in 128, 192, 256, 320 (encoder and decoder)
    sn = sum(2 * (1 * 50 + 50 + 50 * c + c) for c in (128, 192, 256, 320))
    assert sum(p.numel() for p in m.parameters()) == base + sn


def test_rate_grid_and_lambda_mapping(model):
    assert model.set_rate(0.3) == round(0.3 * RATE_LEVELS) / RATE_LEVELS
    assert model.lambda_of(0.0) == pytest.approx(0.0018) and model.lambda_of(1.0) == pytest.approx(0.18)
    assert model.lambda_of(0.5) == pytest.approx(math.sqrt(0.0018 * 0.18))
    assert model.set_lambda(0.0130) == pytest.approx(0.0130, rel=1e-4)
    with pytest.raises(ValueError):
        model.set_lambda(0.5)
    with pytest.raises(ValueError):
        model.set_rate(1.5)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    lams = [model.sample_lambda(g1) for _ in range(20)]
    assert lams == [model.sample_lambda(g2) for _ in range(20)]  # reproducible from the generator
    assert all(0.0018 <= lam <= 0.18 for lam in lams) and len(set(lams)) > 15


def test_rate_modulates_both_transforms(model):
    x = torch.rand(1, 3, 64, 64)
    model.set_rate(0.1)
    y1 = model.g_a(x)
    s1 = model.g_s(y1)
    model.set_rate(0.9)
    y2 = model.g_a(x)
    assert not torch.allclose(y1, y2)
    assert not torch.allclose(s1, model.g_s(y1))


def test_roundtrip_reads_rate_from_stream(model):
    torch.manual_seed(1)
    x = torch.rand(1, 3, 64, 128)
    model.set_rate(0.37)
    with torch.no_grad():
        ref = model(x)["x_hat"].clamp(0, 1)
        enc = model.compress(x)
    assert len(enc["extra"]) == 3
    model.set_rate(0.9)  # the decoder must not depend on the model's current rate
    dec = model.decompress(enc["strings"], enc["shape"], extra=enc["extra"])["x_hat"]
    assert torch.equal(dec, ref)
    assert model.rate == round(0.9 * RATE_LEVELS) / RATE_LEVELS  # restored
    other = bytes([1]) + (1000).to_bytes(2, "big")
    assert not torch.equal(model.decompress(enc["strings"], enc["shape"], extra=other)["x_hat"], ref)
    with pytest.raises(ValueError):
        model.decompress(enc["strings"], enc["shape"])


def test_fit_rate_hits_target():
    """With ScalingNets set so y grows as 16^r, the bpp is increasing in r; the bisection must return
    the largest code whose real size is within the target."""
    torch.manual_seed(2)
    m = TinyLICVR(**TINY).eval()
    with torch.no_grad():
        for sn in list(m.scaling_enc) + list(m.scaling_dec):
            sn.fc1.weight.zero_(), sn.fc1.bias.zero_(), sn.fc2.weight.zero_(), sn.fc2.bias.zero_()
        last = m.scaling_enc[3]
        last.fc1.weight[0, 0] = 1.0
        last.fc2.weight[:, 0] = math.log(16.0)
    m.update(force=True)
    x = torch.rand(1, 3, 64, 64)
    m.set_rate(0.0)
    b0 = file_bpp(m.compress(x), 64 * 64)
    m.set_rate(1.0)
    b1 = file_bpp(m.compress(x), 64 * 64)
    assert b1 > b0 + 0.5
    target, tol = (b0 + b1) / 2, 0.03 * (b1 - b0)
    r, b = fit_rate(m, x, target, tol_bpp=tol)
    assert b <= target and target - b <= tol and m.rate == r
    assert file_bpp(m.compress(x), 64 * 64) == b  # the model is left at the returned rate
    assert fit_rate(m, x, b1 + 1)[0] == 1.0 and fit_rate(m, x, b0 / 2) == (0.0, b0)


def test_codec_file_carries_the_rate(model):
    """Through lic.codec: the container file alone (not the model's current rate) sets the rate."""
    import numpy as np

    from lic import codec
    lm = codec.LoadedModel(model, "lu2022-tinylic-vr", 0, codec.state_fingerprint(model.state_dict()), {})
    img = (np.random.default_rng(0).random((45, 70, 3)) * 255).astype(np.uint8)
    model.set_rate(0.2)
    lo = codec.encode(lm, img, estimate=False)
    model.set_rate(0.8)
    hi = codec.encode(lm, img, estimate=False)
    model.set_rate(0.5)
    assert (codec.decode(lm, lo.data) == lo.reconstruction).all()
    assert (codec.decode(lm, hi.data) == hi.reconstruction).all()
    assert not (lo.reconstruction == hi.reconstruction).all()
