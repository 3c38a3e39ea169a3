"""TinyLIC for YUV420 and Y (monochrome) sources (TinyLIC supplement §4), and Y/YUV PSNR.

Lu & Ma, *High-Efficiency Lossy Image Coding Through Adaptive Neighborhood Information
Aggregation*, supplement §4 ("support of YUV420 and Y (monochrome) images"). The supplement's
text stops after its first paragraph, so the architecture below is **this project's design**.

::

    Y only:   Y (B,1,H,W) ─ g_a0: conv k5 s2 1→N ─ … TinyLIC v3 … ─ g_s7: deconv k5 s2 N→1 ─ Ŷ

    YUV420:   Y (B,1,H,W) ─ space-to-depth 2 ─┐ (B,4,H/2,W/2)
              U,V (B,2,H/2,W/2) ──────────────┴─ packed P (B,6,H/2,W/2)
              P ─ g_a0: conv k3 s1 6→N ─ … TinyLIC v3 (unchanged from g_a1 on) … ─ g_s7: conv k3 s1 N→6 ─ P̂
              P̂ ─ depth-to-space ─ Ŷ, Û, V̂

The models work on their native tensors (Y, or the packed 4:2:0 tensor P), so forward/compress/
decompress and the trainer's MSE are unchanged: MSE over P weights the Y:U:V *samples* 4:1:1, i.e.
it is the per-sample MSE of the 4:2:0 picture. Colour conversion (BT.601 full range, the JPEG/JFIF
YCbCr) and 2×2 mean chroma subsampling are provided for RGB data; ``from_rgb``/``to_rgb`` are the
hooks a pipeline that only has RGB images calls (chroma is upsampled by nearest neighbour).

Metrics: :func:`y_psnr` and :func:`yuv_psnr` (weighted (6·PSNR_Y + PSNR_U + PSNR_V)/8, the
JVET/MPEG convention), both for peak 1.0.

Deviations (parameter in brackets): the YUV420 input layer replaces v3's conv k5 s2 by a conv k3 s1
on the packed tensor (same H/2 output grid; kernel [``yuv_kernel_size``]); the YUV model is registered
with ``pad_multiple=64`` in *luma* pixels (the packed tensor must be a multiple of 32). Colour
matrix [``matrix``: "bt601" or "bt709"].
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lic.models.registry import register
from lic.models.tinylic import CITATION, TinyLIC

_MATRICES = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722)}  # (Kr, Kb)


def rgb_to_yuv(x: torch.Tensor, matrix: str = "bt601") -> torch.Tensor:
    """RGB (B,3,H,W) in [0,1] → full-range Y, Cb, Cr in [0,1] (chroma offset 0.5)."""
    kr, kb = _MATRICES[matrix]
    r, g, b = x.unbind(1)
    y = kr * r + (1 - kr - kb) * g + kb * b
    u = (b - y) / (2 * (1 - kb)) + 0.5
    v = (r - y) / (2 * (1 - kr)) + 0.5
    return torch.stack([y, u, v], 1)


def yuv_to_rgb(x: torch.Tensor, matrix: str = "bt601") -> torch.Tensor:
    kr, kb = _MATRICES[matrix]
    y, u, v = x.unbind(1)
    r = y + 2 * (1 - kr) * (v - 0.5)
    b = y + 2 * (1 - kb) * (u - 0.5)
    g = (y - kr * r - kb * b) / (1 - kr - kb)
    return torch.stack([r, g, b], 1)


def pack420(y: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Y (B,1,H,W), UV (B,2,H/2,W/2) → P (B,6,H/2,W/2) = space-to-depth(Y) ⊕ U ⊕ V."""
    if y.shape[-2] % 2 or y.shape[-1] % 2 or uv.shape[-2:] != (y.shape[-2] // 2, y.shape[-1] // 2):
        raise ValueError(f"YUV420 needs even luma size and half-size chroma, got {tuple(y.shape)}, {tuple(uv.shape)}")
    return torch.cat([F.pixel_unshuffle(y, 2), uv], 1)


def unpack420(p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return F.pixel_shuffle(p[:, :4], 2), p[:, 4:]


def rgb_to_yuv420(x: torch.Tensor, matrix: str = "bt601") -> torch.Tensor:
    """RGB (B,3,H,W), H and W even → packed 4:2:0 P (2×2 mean chroma subsampling)."""
    yuv = rgb_to_yuv(x, matrix)
    return pack420(yuv[:, :1], F.avg_pool2d(yuv[:, 1:], 2))


def yuv420_to_rgb(p: torch.Tensor, matrix: str = "bt601") -> torch.Tensor:
    y, uv = unpack420(p)
    uv = F.interpolate(uv, scale_factor=2, mode="nearest")
    return yuv_to_rgb(torch.cat([y, uv], 1), matrix).clamp(0, 1)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (peak 1.0) over all dims but the first."""
    mse = (a.double() - b.double()).square().flatten(1).mean(1)
    return -10 * torch.log10(mse.clamp_min(1e-20))


def y_psnr(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR of the luma plane (B,1,H,W) (or of P's first 4 channels, which hold the same samples)."""
    if y.shape[1] == 6:
        y_hat, y = y_hat[:, :4], y[:, :4]
    return _psnr(y_hat, y)


def yuv_psnr(p_hat: torch.Tensor, p: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image PSNR of the Y, U, V planes of packed 4:2:0 tensors and YUV-PSNR = (6Y + U + V)/8."""
    py, pu, pv = _psnr(p_hat[:, :4], p[:, :4]), _psnr(p_hat[:, 4:5], p[:, 4:5]), _psnr(p_hat[:, 5:6], p[:, 5:6])
    return {"y": py, "u": pu, "v": pv, "yuv": (6 * py + pu + pv) / 8}


class TinyLICY(TinyLIC):
    """Monochrome TinyLIC: 1-channel g_a0/g_s7; native tensor Y (B,1,H,W)."""

    input_format = "y"

    def __init__(self, *args, matrix: str = "bt601", **kwargs):
        super().__init__(*args, in_channels=1, **kwargs)
        self.matrix = matrix

    def from_rgb(self, x: torch.Tensor) -> torch.Tensor:
        return rgb_to_yuv(x, self.matrix)[:, :1]

    def to_rgb(self, y: torch.Tensor) -> torch.Tensor:
        return y.expand(-1, 3, -1, -1)


class TinyLICYUV420(TinyLIC):
    """4:2:0 TinyLIC: native tensor P (B,6,H/2,W/2); g_a0 = conv k3 s1 6→N, g_s7 = conv k3 s1 N→6."""

    input_format = "yuv420"

    def __init__(self, *args, matrix: str = "bt601", yuv_kernel_size: int = 3, **kwargs):
        super().__init__(*args, **kwargs)
        self.matrix = matrix
        c0 = self.g_a0.out_channels
        k = yuv_kernel_size
        self.g_a0 = nn.Conv2d(6, c0, k, padding=k // 2)
        self.g_s7 = nn.Conv2d(c0, 6, k, padding=k // 2)

    def from_rgb(self, x: torch.Tensor) -> torch.Tensor:
        return rgb_to_yuv420(x, self.matrix)

    def to_rgb(self, p: torch.Tensor) -> torch.Tensor:
        return yuv420_to_rgb(p, self.matrix)


@register("lu2022-tinylic-y", description="TinyLIC v3 for Y (monochrome) input (supplement §4; "
          "project design)", citation=CITATION, pad_multiple=64, N=128, M=320)
def tinylic_y(N: int = 128, M: int = 320, **kwargs) -> TinyLICY:
    return TinyLICY(N, M, **kwargs)


@register("lu2022-tinylic-yuv420", description="TinyLIC v3 for YUV 4:2:0 input, packed space-to-depth "
          "luma + chroma (supplement §4; project design)", citation=CITATION, pad_multiple=64, N=128, M=320)
def tinylic_yuv420(N: int = 128, M: int = 320, **kwargs) -> TinyLICYUV420:
    return TinyLICYUV420(N, M, **kwargs)


__all__ = ["TinyLICY", "TinyLICYUV420", "rgb_to_yuv", "yuv_to_rgb", "rgb_to_yuv420", "yuv420_to_rgb",
           "pack420", "unpack420", "y_psnr", "yuv_psnr"]
