"""YUV metrics of lic.metrics against hand-computed values."""

import math

import numpy as np
import pytest

from lic import metrics


def test_bt601_conversion_of_primaries():
    img = np.array([[[255, 0, 0], [0, 255, 0], [255, 255, 255], [0, 0, 0]]], dtype=np.uint8)
    yuv = metrics.rgb_to_yuv(img)
    assert np.allclose(yuv[0, :, 0], [76.245, 149.685, 255.0, 0.0], atol=1e-3)
    assert np.allclose(yuv[0, 2, 1:], [128, 128]) and np.allclose(yuv[0, 3, 1:], [128, 128])
    assert math.isclose(yuv[0, 0, 2], 255.5, abs_tol=1e-3)  # V of pure red: 0.5·255 + 128


def test_yuv_psnr_weights_and_chroma_subsampling():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
    gray = a.copy()
    gray[...] = a[..., :1]  # R = G = B: the chroma of the reconstruction is exactly 128
    m = metrics.yuv_metrics(a, a)
    assert m["psnr-y"] == math.inf and m["psnr-yuv420"] == math.inf
    m = metrics.yuv_metrics(a, gray)
    ya, yg = metrics.rgb_to_yuv(a)[..., 0], metrics.rgb_to_yuv(gray)[..., 0]
    expected_y = 10 * math.log10(255**2 / np.mean((ya - yg) ** 2))
    assert math.isclose(m["psnr-y"], expected_y, rel_tol=1e-12)
    u = metrics.rgb_to_yuv(a)[..., 1].reshape(4, 2, 3, 2).mean(axis=(1, 3))
    expected_u = 10 * math.log10(255**2 / np.mean((u - 128) ** 2))
    assert math.isclose(m["psnr-u420"], expected_u, rel_tol=1e-9)
    assert math.isclose(m["psnr-yuv420"], (6 * m["psnr-y"] + m["psnr-u420"] + m["psnr-v420"]) / 8)


def test_odd_sizes_are_handled():
    a = np.zeros((5, 7, 3), np.uint8)
    b = a.copy()
    b[0, 0] = [10, 0, 0]
    assert math.isfinite(metrics.yuv_metrics(a, b)["psnr-yuv420"])


def test_ms_ssim_float32_agrees_with_float64_reference():
    import torch
    from pytorch_msssim import ms_ssim as ref

    from lic.metrics import MSSSIM_MIN_SIDE, ms_ssim, ms_ssim_db

    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (200, 180, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None].double()
    expected = float(ref(t(a), t(b), data_range=255.0))
    assert abs(ms_ssim(a, b) - expected) < 1e-6
    assert ms_ssim(a, a) == pytest.approx(1.0) and ms_ssim_db(1.0) == float("inf")
    small = a[: MSSSIM_MIN_SIDE - 1]
    assert np.isnan(ms_ssim(small, small))
