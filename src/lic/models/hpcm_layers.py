"""Building blocks of HPCM (Li, Zhang, Li & Liu, ICCV 2025), written from the project's
specification ``shared/specs/hpcm.md`` §1 (official code: lyq133/LIC-HPCM, MIT; no code copied).

All convolutions have a bias; the activation is LeakyReLU(0.01); there is no normalisation. The
module and attribute names (``branch``, ``pconv``, ``branch_1``/``branch_2``, ``conv_q`` …) are the
official state_dict names, so released checkpoints load without renaming.

::

    PConvRB(C):   x ─┬─ pconv3x3 (first C/4 ch) ─ 1x1 C→rC ─ LReLU ─ 1x1 rC→C ─(+)─
                     └──────────────────────────────────────────────────────────┘
    DWConvRB(C):  x ─┬─ dw3x3 ─ 1x1 C→2C ─ LReLU ─ 1x1 2C→C ─(+)─
                     └───────────────────────────────────────┘
    EntropyParameters (g_ep):  x ─ branch_1 (N1×DWConvRB) ─ ·e (step embedding) ─ branch_2 (N2×DWConvRB, 1x1 → out)
    CrossAttentionCell (PCF):  C_next = WindowAttn(q = ψ, k = v = C) + conv_out(ψ)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["conv1x1", "conv2x2_down", "conv4x4_down", "deconv2x2_up", "deconv4x4_up",
           "PartialConv3x3", "PConvRB", "DWConvRB", "analysis_transform", "synthesis_transform",
           "hyper_analysis", "hyper_synthesis", "EntropyParameters", "CrossAttentionCell"]


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1)


def conv2x2_down(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=2, stride=2)


def conv4x4_down(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=4, stride=2, padding=1)


def deconv2x2_up(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2)


def deconv4x4_up(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel_size=4, stride=2, padding=1)


class PartialConv3x3(nn.Module):
    """3×3 conv on the first ``c_partial`` of ``channels`` channels; the rest pass through."""

    def __init__(self, channels: int, c_partial: int):
        super().__init__()
        self.channels, self.c_partial = channels, c_partial
        self.pconv = nn.Conv2d(c_partial, c_partial, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.split([self.c_partial, self.channels - self.c_partial], dim=1)
        return torch.cat([self.pconv(a), b], dim=1)


class PConvRB(nn.Module):
    """FasterNet residual block (the paper's ResBlock). HPCM uses partial_ratio=4, mlp_ratio=4."""

    def __init__(self, channels: int, partial_ratio: int = 4, mlp_ratio: int = 4):
        super().__init__()
        hidden = channels * mlp_ratio
        self.branch = nn.Sequential(PartialConv3x3(channels, channels // partial_ratio),
                                    conv1x1(channels, hidden), nn.LeakyReLU(),
                                    conv1x1(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class DWConvRB(nn.Module):
    """Depthwise residual block (the paper's DepthConvBlock), hidden width mlp_ratio·C."""

    def __init__(self, channels: int, mlp_ratio: int = 2):
        super().__init__()
        hidden = channels * mlp_ratio
        self.branch = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
                                    conv1x1(channels, hidden), nn.LeakyReLU(),
                                    conv1x1(hidden, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


class _Branch(nn.Module):
    """A transform: one ``nn.Sequential`` named ``branch`` (the official key layout)."""

    def __init__(self, layers: Sequence[nn.Module]):
        super().__init__()
        self.branch = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch(x)


def _blocks(n: int, c: int, pr: int, mr: int) -> list[nn.Module]:
    return [PConvRB(c, pr, mr) for _ in range(n)]


def analysis_transform(M: int, channels: Sequence[int], blocks: Sequence[int], pr: int = 4,
                       mr: int = 4) -> _Branch:
    """g_a: 3 → M at H/16. channels (c1,c2,c3) = (96,192,384), blocks (L1,L2,L3) = (2,2,4)."""
    c1, c2, c3 = channels
    return _Branch([conv4x4_down(3, c1), *_blocks(blocks[0], c1, pr, mr),
                    conv2x2_down(c1, c2), *_blocks(blocks[1], c2, pr, mr),
                    conv2x2_down(c2, c3), *_blocks(blocks[2], c3, pr, mr),
                    conv2x2_down(c3, M)])


def synthesis_transform(M: int, channels: Sequence[int], blocks: Sequence[int], pr: int = 4,
                        mr: int = 4) -> _Branch:
    """g_s: the mirror of g_a (deconv 2x2 ups, a 4x4 deconv to 3 channels). No clamp."""
    c1, c2, c3 = channels
    return _Branch([deconv2x2_up(M, c3), *_blocks(blocks[2], c3, pr, mr),
                    deconv2x2_up(c3, c2), *_blocks(blocks[1], c2, pr, mr),
                    deconv2x2_up(c2, c1), *_blocks(blocks[0], c1, pr, mr),
                    deconv4x4_up(c1, 3)])


def hyper_analysis(M: int, N: int, blocks: Sequence[int], pr: int = 4, mr: int = 4) -> _Branch:
    """h_a: M → N at 1/4 of y's size. blocks (L4, L5) = (1, 3)."""
    return _Branch([*_blocks(blocks[0], M, pr, mr), conv2x2_down(M, N),
                    *_blocks(blocks[1], N, pr, mr), conv2x2_down(N, N)])


def hyper_synthesis(M: int, N: int, blocks: Sequence[int], pr: int = 4, mr: int = 4) -> _Branch:
    """h_s: N → 2M (first M channels: scales, last M: means) at y's size."""
    return _Branch([deconv2x2_up(N, N), *_blocks(blocks[1], N, pr, mr), deconv2x2_up(N, 2 * M),
                    *_blocks(blocks[0], 2 * M, pr, mr)])


class EntropyParameters(nn.Module):
    """g_ep: ``branch_2(branch_1(x) · e)`` with x of 3M channels and output 2M (scales | means).

    ``e`` is the step-adaptive embedding (1, 3M, 1, 1), a per-channel multiplicative scale.
    """

    def __init__(self, M: int, n1: int, n2: int, mlp_ratio: int = 2):
        super().__init__()
        self.branch_1 = nn.Sequential(*(DWConvRB(3 * M, mlp_ratio) for _ in range(n1)))
        self.branch_2 = nn.Sequential(*(DWConvRB(3 * M, mlp_ratio) for _ in range(n2)),
                                      conv1x1(3 * M, 2 * M))

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return self.branch_2(self.branch_1(x) * embedding)


def _windows(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, h·p, w·p) → (B·h·w, C, p·p), windows in raster order."""
    b, c, H, W = x.shape
    x = x.view(b, c, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * (H // p) * (W // p), c, p * p)


def _unwindows(x: torch.Tensor, b: int, H: int, W: int, p: int) -> torch.Tensor:
    c = x.shape[1]
    x = x.view(b, H // p, W // p, c, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, c, H, W)


class CrossAttentionCell(nn.Module):
    """Progressive context fusion: windowed multi-head cross-attention, queries from ψ_i, keys
    and values from C_i, over the p² tokens of each non-overlapping p×p window; then
    ``C_{i+1} = attn + conv_out(ψ_i)`` (no residual from C_i, no norm, no positional encoding).

    The operation order is the authors': the image is cut into windows first and the 1×1 q/k/v
    projections run on the batch of windows, (B·h·w, C, p, p); ``conv_out`` runs on the whole map.
    Projecting the whole map first and cutting windows afterwards is the same function, but not the
    same float32 arithmetic (another conv kernel layout and summation order): with the released
    weights it flipped up to 17 of 491,520 quantised latents of a 768×512 image. In this order the
    cell gives the authors' ŷ and x̂ bit for bit on the same machine (docs/hpcm.md).
    """

    def __init__(self, channels: int, window_size: int, num_heads: int = 32):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"{channels} channels are not divisible by {num_heads} heads")
        self.channels, self.window_size, self.num_heads = channels, window_size, num_heads
        self.conv_q = conv1x1(channels, channels)
        self.conv_k = conv1x1(channels, channels)
        self.conv_v = conv1x1(channels, channels)
        self.conv_out = conv1x1(channels, channels)

    def forward(self, psi: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, H, W = psi.shape
        p, heads = self.window_size, self.num_heads
        if H % p or W % p:
            raise ValueError(f"context of size {H}×{W} is not divisible by the attention window {p}; "
                             f"pad the image to the model's size multiple")
        hd = c // heads

        def project(conv: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:  # windows, then the 1×1 conv
            return conv(_windows(t, p).view(-1, c, p, p)).view(-1, heads, hd, p * p)

        q = project(self.conv_q, psi).transpose(2, 3)      # (B·h·w, heads, p², hd)
        k = project(self.conv_k, context)                  # (B·h·w, heads, hd, p²)
        v = project(self.conv_v, context).transpose(2, 3)  # (B·h·w, heads, p², hd)
        attn = torch.softmax(torch.matmul(q, k) / math.sqrt(hd), dim=-1)
        out = torch.matmul(attn, v).transpose(2, 3).reshape(-1, c, p * p)
        return _unwindows(out, b, H, W, p) + self.conv_out(psi)
