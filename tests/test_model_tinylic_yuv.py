"""TinyLIC for Y and YUV420 sources, colour conversion, Y-PSNR and YUV-PSNR (6:1:1)."""

from __future__ import annotations

import math

import numpy as np

import pytest
import torch

from lic.models import registry
from lic.models.tinylic_yuv import (pack420, rgb_to_yuv, rgb_to_yuv420, unpack420, y_psnr, yuv420_to_rgb,
                                    yuv_psnr, yuv_to_rgb)

TINY = dict(N=16, M=48, depths=(1, 1, 1, 1, 1, 1))


def test_colour_conversion_known_values_and_inverse():
    px = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]).T.reshape(1, 3, 2, 2)
    yuv = rgb_to_yuv(px).reshape(3, 4).T
    torch.testing.assert_close(yuv[0], torch.tensor([1.0, 0.5, 0.5]))  # white
    torch.testing.assert_close(yuv[1], torch.tensor([0.299, 0.5 - 0.299 / 1.772, 1.0]))  # red (JFIF)
    torch.testing.assert_close(yuv[2], torch.tensor([0.114, 1.0, 0.5 - 0.114 / 1.402]))  # blue
    x = torch.rand(2, 3, 8, 6)
    torch.testing.assert_close(yuv_to_rgb(rgb_to_yuv(x)), x)
    torch.testing.assert_close(yuv_to_rgb(rgb_to_yuv(x, "bt709"), "bt709"), x)


def test_pack420_layout():
    y = torch.arange(16.0).reshape(1, 1, 4, 4)
    uv = torch.rand(1, 2, 2, 2)
    p = pack420(y, uv)
    assert p.shape == (1, 6, 2, 2)
    assert p[0, :4, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]  # the 2×2 luma block of chroma sample (0, 0)
    y2, uv2 = unpack420(p)
    assert torch.equal(y2, y) and torch.equal(uv2, uv)
    with pytest.raises(ValueError):
        pack420(torch.rand(1, 1, 5, 4), torch.rand(1, 2, 2, 2))
    flat = torch.rand(1, 3, 8, 8) * 0 + torch.tensor([0.2, 0.6, 0.4]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(yuv420_to_rgb(rgb_to_yuv420(flat)), flat)  # flat colour survives 4:2:0


def test_psnr_metrics_by_hand():
    p = torch.full((1, 6, 4, 4), 0.5, dtype=torch.float64)
    q = p.clone()
    q[:, :4] += 0.1  # Y error 0.1 everywhere → MSE 1e-2 → 20 dB
    q[:, 4] += 0.01  # U: 40 dB
    q[:, 5] -= 0.001  # V: 60 dB
    m = yuv_psnr(q, p)
    assert m["y"].item() == pytest.approx(20.0) and m["u"].item() == pytest.approx(40.0)
    assert m["v"].item() == pytest.approx(60.0)
    assert m["yuv"].item() == pytest.approx((6 * 20 + 40 + 60) / 8)
    assert y_psnr(q, p).item() == pytest.approx(20.0)
    assert y_psnr(q[:, :1] * 0 + 0.6, p[:, :1]).item() == pytest.approx(-10 * math.log10(0.01))


def _roundtrip(m, x):
    m.update(force=True)
    with torch.no_grad():
        ref = m(x)["x_hat"].clamp(0, 1)
        enc = m.compress(x)
        dec = m.decompress(enc["strings"], enc["shape"])["x_hat"]
    assert dec.shape == x.shape and torch.equal(dec, ref)
    return dec


def test_y_model():
    m = registry.build("lu2022-tinylic-y", **TINY).eval()
    rgb = torch.rand(1, 3, 64, 64)
    y = m.from_rgb(rgb)
    assert y.shape == (1, 1, 64, 64)
    dec = _roundtrip(m, y)
    assert m.to_rgb(dec).shape == (1, 3, 64, 64)
    full = registry.build("lu2022-tinylic-y")
    # v3 minus two input channels at g_a0 (k5, 128 out) and two output channels (+ biases) at g_s7
    assert sum(p.numel() for p in full.parameters()) == 28_338_211 - 2 * 128 * 25 - (2 * 128 * 25 + 2)


def test_yuv420_model():
    torch.manual_seed(0)
    m = registry.build("lu2022-tinylic-yuv420", **TINY).eval()
    p = m.from_rgb(torch.rand(1, 3, 128, 64))
    assert p.shape == (1, 6, 64, 32)
    dec = _roundtrip(m, p)
    assert m.to_rgb(dec).shape == (1, 3, 128, 64)
    assert yuv_psnr(dec, p)["yuv"].shape == (1,)
    full = registry.build("lu2022-tinylic-yuv420")
    # g_a0: k5 3→128 replaced by k3 6→128; g_s7: deconv k5 128→3 by conv k3 128→6
    delta = (6 * 9 - 3 * 25) * 128 + (128 * 6 * 9 + 6) - (128 * 3 * 25 + 3)
    assert sum(q.numel() for q in full.parameters()) == 28_338_211 + delta


@pytest.mark.parametrize("key", ["lu2022-tinylic-y", "lu2022-tinylic-yuv420"])
def test_codec_encodes_estimates_and_decodes_in_the_models_colour_space(key):
    """codec.encode converts RGB once (from_rgb) for both the stream and the bpp estimate."""
    from lic import codec

    torch.manual_seed(0)
    m = registry.build(key, **TINY).eval()
    m.update(force=True)
    loaded = codec.LoadedModel(m, key, 1, codec.state_fingerprint(m.state_dict()), {})
    img = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)  # not a multiple of 64
    enc = codec.encode(loaded, img)
    x = m.from_rgb(codec.pad(codec.to_tensor(img), loaded.pad_multiple))
    with torch.no_grad():
        lk = m(x)["likelihoods"]
    expected = sum(float(-torch.log2(v).sum()) for v in lk.values())
    assert enc.bits_estimated == pytest.approx(expected, rel=1e-6)
    assert enc.reconstruction.shape == img.shape
    assert np.array_equal(codec.decode(loaded, enc.data), enc.reconstruction)
