"""Image quality metrics on 8-bit images and the Bjøntegaard delta rate.

PSNR and MS-SSIM are computed on the 8-bit RGB images a user would see (the decoder's output rounded
to uint8), over the original, unpadded size. MS-SSIM uses ``pytorch_msssim`` at data_range 255 like
CompressAI's benchmarks; images smaller than 161 px on a side (too small for 5 scales at window 11)
get NaN rather than a made-up value.
"""

from __future__ import annotations

import math

import numpy as np
import torch

MSSSIM_MIN_SIDE = 161  # (11 - 1) * 2**4 + 1: pytorch_msssim's requirement for 5 scales


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> (H, W, 3) uint8, rounded like a PNG writer."""
    if x.dim() == 4:
        x = x[0]
    return (x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy())


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(img, dtype=np.uint8, copy=True)).permute(2, 0, 1)[None].float().div(255)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """PSNR in dB between two uint8 images (inf when identical)."""
    m = mse(a, b)
    return math.inf if m == 0 else 10 * math.log10(peak**2 / m)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM (linear, in [0, 1]) between two (H, W, 3) uint8 images; NaN if too small."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    if min(a.shape[:2]) < MSSSIM_MIN_SIDE:
        return float("nan")
    # float32, as CompressAI's evaluation: 3x faster than float64 on CPU, values within ~1e-7
    ta = torch.from_numpy(np.array(a, copy=True)).permute(2, 0, 1)[None].float()
    tb = torch.from_numpy(np.array(b, copy=True)).permute(2, 0, 1)[None].float()
    return float(_ms_ssim(ta, tb, data_range=255.0))


def ms_ssim_db(value: float) -> float:
    """MS-SSIM in dB, -10 log10(1 - MS-SSIM), as the papers plot it."""
    return math.inf if value >= 1 else -10 * math.log10(1 - value)


_BT601 = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def rgb_to_yuv(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) float64 Y'CbCr (BT.601 full range, 0-255, chroma centred at 128)."""
    yuv = img.astype(np.float64) @ _BT601.T
    yuv[..., 1:] += 128.0
    return yuv


def _chroma420(c: np.ndarray) -> np.ndarray:
    """2×2 box average of a chroma plane (odd sizes: the last row/column replicated)."""
    h, w = c.shape
    c = np.pad(c, ((0, h % 2), (0, w % 2)), mode="edge")
    return c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2).mean(axis=(1, 3))


def _psnr_float(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    m = float(np.mean((a - b) ** 2))
    return math.inf if m == 0 else 10 * math.log10(peak**2 / m)


def yuv_metrics(original: np.ndarray, reconstruction: np.ndarray) -> dict[str, float]:
    """Y-PSNR and YUV-PSNR of the 4:2:0 planes, (6·Y + U + V) / 8 — the metrics of YUV and Y (monochrome)
    coding (TinyLIC supplement §4; the weights of the JPEG AI / MPEG common test conditions). Both images
    are converted with BT.601 full range and the chroma planes box-averaged to half resolution."""
    a, b = rgb_to_yuv(original), rgb_to_yuv(reconstruction)
    py = _psnr_float(a[..., 0], b[..., 0])
    pu = _psnr_float(_chroma420(a[..., 1]), _chroma420(b[..., 1]))
    pv = _psnr_float(_chroma420(a[..., 2]), _chroma420(b[..., 2]))
    return {"psnr-y": py, "psnr-u420": pu, "psnr-v420": pv, "psnr-yuv420": (6 * py + pu + pv) / 8}


def image_metrics(original: np.ndarray, reconstruction: np.ndarray) -> dict[str, float]:
    """The per-image distortion fields of a result row (RGB PSNR / MS-SSIM, and the YUV metrics)."""
    m = ms_ssim(original, reconstruction)
    return {"psnr-rgb": psnr(original, reconstruction), "ms-ssim-rgb": m,
            "ms-ssim-db-rgb": ms_ssim_db(m) if not math.isnan(m) else float("nan"),
            "mse-rgb": mse(original, reconstruction), **yuv_metrics(original, reconstruction)}
