"""Building blocks of TinyLIC (Lu & Ma, arXiv 2204.11448): RNAB and v1's Swin RSTB, masked convs.

Module and attribute names follow the official code (lumingzzz/TinyLIC) so that its checkpoints load
with the same keys (spec ``tinylic.md`` §5):

* :class:`ResidualTransformerStage` — ``x + NHWC→NCHW(blocks(NCHW→NHWC(x)))``; its blocks live in
  ``residual_group.blocks.<i>``. With :class:`NSABlock` (neighborhood attention) it is v3's RNAB
  ("ResViTBlock"), with :class:`SwinBlock` (shifted windows) v1's RSTB.
* :class:`MultistageMaskedConv2d` — ``weight``, ``bias`` and the ``mask`` buffer; the mask is applied
  functionally (the official layer multiplies ``weight.data`` in place at every forward — same output).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from lic.layers.neighborhood_attention import NeighborhoodAttention


def conv(ci: int, co: int, k: int = 5, s: int = 2) -> nn.Conv2d:
    return nn.Conv2d(ci, co, k, stride=s, padding=k // 2)


def deconv(ci: int, co: int, k: int = 5, s: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(ci, co, k, stride=s, padding=k // 2, output_padding=s - 1)


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval or with p = 0)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class NSABlock(nn.Module):
    """Pre-norm NAT block on NHWC: t + DP(NA(LN1 t)); t + DP(MLP(LN2 t))."""

    def __init__(self, dim: int, num_heads: int, kernel_size: int = 7, mlp_ratio: float = 2.0,
                 drop_path: float = 0.0, use_natten: bool = True, attention_impl: str = "auto"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = NeighborhoodAttention(dim, kernel_size=kernel_size, num_heads=num_heads,
                                          use_natten=use_natten, attention_impl=attention_impl)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------------------- v1: Swin
class WindowAttention(nn.Module):
    """Swin window attention with a ((2w−1)², heads) relative-position bias table."""

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.dim, self.window_size, self.num_heads = dim, window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        w = window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * w - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (w - 1)
        self.register_buffer("relative_position_index", rel[..., 0] * (2 * w - 1) + rel[..., 1])
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):  # x: (B·nW, N, C); mask: (nW, N, N) of 0 / −100
        Bn, N, C = x.shape
        qkv = self.qkv(x).reshape(Bn, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = attn + bias.reshape(N, N, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            attn = (attn.reshape(Bn // nW, nW, self.num_heads, N, N) + mask[None, :, None]).reshape(
                Bn, self.num_heads, N, N)
        attn = attn.softmax(-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(Bn, N, C))


def _swin_mask(H: int, W: int, w: int, s: int, device) -> torch.Tensor:
    img = torch.zeros(H, W, device=device)
    cnt = 0
    for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
        for ws in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            img[hs, ws] = cnt
            cnt += 1
    win = img.reshape(H // w, w, W // w, w).permute(0, 2, 1, 3).reshape(-1, w * w)
    diff = win[:, None, :] - win[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class SwinBlock(nn.Module):
    """Swin transformer block (v1 RSTB). ``input_resolution`` is the training-crop resolution the
    official code hard-codes: if min(resolution) ≤ window, the window becomes min(resolution) and the
    shift 0. Maps not divisible by the window are zero-padded after ``norm1`` (as in Swin); the shift
    mask is computed per input size (not stored: the official ``attn_mask`` buffers are dropped)."""

    def __init__(self, dim: int, num_heads: int, window_size: int = 8, shift: bool = False,
                 input_resolution: int | None = None, mlp_ratio: float = 2.0, drop_path: float = 0.0):
        super().__init__()
        self.window_size, self.shift_size = window_size, (window_size // 2 if shift else 0)
        if input_resolution is not None and input_resolution <= window_size:
            self.window_size, self.shift_size = input_resolution, 0
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, self.window_size, num_heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):  # (B, H, W, C)
        B, H, W, C = x.shape
        w, s = self.window_size, self.shift_size
        t = self.norm1(x)
        ph, pw = (-H) % w, (-W) % w
        if ph or pw:
            t = F.pad(t, (0, 0, 0, pw, 0, ph))
        Hp, Wp = H + ph, W + pw
        if s:
            t = torch.roll(t, shifts=(-s, -s), dims=(1, 2))
        win = t.reshape(B, Hp // w, w, Wp // w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w, C)
        mask = _swin_mask(Hp, Wp, w, s, x.device) if s else None
        t = self.attn(win, mask)
        t = t.reshape(B, Hp // w, Wp // w, w, w, C).permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, C)
        if s:
            t = torch.roll(t, shifts=(s, s), dims=(1, 2))
        x = x + self.drop_path(t[:, :H, :W])
        return x + self.drop_path(self.mlp(self.norm2(x)))


# --------------------------------------------------------------------------------------- stages
class _BlockList(nn.Module):
    def __init__(self, blocks: Sequence[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return x


class ResidualTransformerStage(nn.Module):
    """x + NHWC→NCHW(blocks(NCHW→NHWC(x))) — RNAB (v3) or RSTB (v1); keys ``residual_group.blocks.i``."""

    def __init__(self, blocks: Sequence[nn.Module]):
        super().__init__()
        self.residual_group = _BlockList(blocks)

    def forward(self, x):
        return x + self.residual_group(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def rnab(dim: int, depth: int, num_heads: int, kernel_size: int, dpr: Sequence[float],
         mlp_ratio: float = 2.0, use_natten: bool = True, attention_impl: str = "auto") -> ResidualTransformerStage:
    return ResidualTransformerStage([NSABlock(dim, num_heads, kernel_size, mlp_ratio, dpr[i], use_natten,
                                              attention_impl) for i in range(depth)])


def rstb(dim: int, depth: int, num_heads: int, window_size: int, dpr: Sequence[float],
         input_resolution: int | None, mlp_ratio: float = 2.0) -> ResidualTransformerStage:
    return ResidualTransformerStage([SwinBlock(dim, num_heads, window_size, i % 2 == 1, input_resolution,
                                               mlp_ratio, dpr[i]) for i in range(depth)])


# --------------------------------------------------------------------------------------- masked conv
def kernel_mask(kind: str, k: int) -> torch.Tensor:
    """Masks of the official ``MultistageMaskedConv2d`` (1 = kept; spec §3.5 and §4.2).

    A: [0::2, 0::2]; B: [0::2, 1::2] ∪ [1::2, 0::2]; C: [0::2, 1::2] ∪ odd rows [1::2, :];
    D (v1's third mask, k=3 "all but the centre"): ones except [k//2, k//2].
    """
    m = torch.zeros(k, k)
    if kind == "A":
        m[0::2, 0::2] = 1
    elif kind == "B":
        m[0::2, 1::2] = 1
        m[1::2, 0::2] = 1
    elif kind == "C":
        m[0::2, 1::2] = 1
        m[1::2, :] = 1
    elif kind == "D":
        m[:] = 1
        m[k // 2, k // 2] = 0
    else:
        raise ValueError(f"unknown mask type {kind!r}")
    return m


class MultistageMaskedConv2d(nn.Conv2d):
    def __init__(self, ci: int, co: int, kernel_size: int, mask_type: str):
        super().__init__(ci, co, kernel_size, stride=1, padding=kernel_size // 2)
        self.register_buffer("mask", kernel_mask(mask_type, kernel_size).expand_as(self.weight).clone())

    def forward(self, x):
        return self._conv_forward(x, self.weight * self.mask, self.bias)
