"""2-D neighborhood attention (NA, Hassani et al.) in pure PyTorch, with NATTEN v0.12 semantics.

This is the attention used by TinyLIC's RNABs (``docs``: the project spec ``tinylic.md`` §3.3).
For a query at (i, j) on an H×W map and an odd kernel k (r = k // 2), the keys/values are the
k×k window whose top-left corner is

    ni = clamp(i − r, 0, H − k),   nj = clamp(j − r, 0, W − k)

i.e. edge windows are *shifted inside the map* (no zero padding), so every query sees exactly k²
real positions. The logits are ``⟨q_ij · hd^-0.5, k_(ni+a, nj+b)⟩ + rpb[h, ni+a−i+k−1, nj+b−j+k−1]``:
the relative-position bias table ``rpb`` of shape (heads, 2k−1, 2k−1) is indexed by the
*relative offset* key − query (+ k − 1) per axis, which is the same as NATTEN's
``pi + a`` with ``pi = r + [i<r](r−i) + [i+r≥H](H−i−1−r)``. Softmax runs over the k² entries.

**Maps smaller than the kernel** (H < k or W < k) are rejected by NATTEN (``CHECK_FEATMAP``), and
the official padding fallback crashes. Here, as a documented extension, the window along such an
axis is the whole axis (effective kernel min(k, L)); the bias is still indexed by relative offset,
which stays inside the table. For H, W ≥ k this is exactly the NATTEN definition.

Implementation: ``Tensor.unfold`` views of K and V are gathered at the clamped window starts (rows,
then columns), then two batched matmuls (q·Kᵀ and attn·V) — so ``FlopCounterMode`` counts the attention
MACs. Queries are processed in row chunks to bound memory. Differentiable on any device.

Optional CUDA path: if the PyPI ``natten`` package is importable with an unfused 2-D API that
takes a relative-position bias — ``na2d_qk(q, k, kernel_size, dilation, rpb=...)``/``na2d_av``
(0.17.x) or ``natten2dqkrpb``/``natten2dav`` (0.14–0.16) — the tensors are on CUDA and H, W ≥ k,
its kernels are used (natten ≥ 0.20 dropped both the unfused ops and rpb: PyTorch path). A failure
inside natten falls back to the PyTorch path with a one-time warning. **Unverified:** no GPU with
natten was available to this project; ``tests/test_neighborhood_attention.py`` compares the two
paths when one is.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

__all__ = ["NeighborhoodAttention", "neighborhood_attention", "window_starts", "bias_indices"]

try:  # optional CUDA kernels; never required
    import natten.functional as _natten_f  # type: ignore
except Exception:  # pragma: no cover - natten absent
    _natten_f = None

#: upper bound on elements of one gathered K (or V) window tensor per chunk (≈ 128 MB in fp32)
_CHUNK_ELEMS = 1 << 25


def window_starts(length: int, kernel_size: int, device=None) -> torch.Tensor:
    """Start index of each position's window along one axis: clamp(i − k//2, 0, L − min(k, L))."""
    k = min(kernel_size, length)
    i = torch.arange(length, device=device)
    return (i - kernel_size // 2).clamp(min=0, max=length - k)


def bias_indices(length: int, kernel_size: int, device=None) -> torch.Tensor:
    """(L, min(k, L)) row/col index into the (2k−1) bias axis: key − query + k − 1."""
    k = min(kernel_size, length)
    start = window_starts(length, kernel_size, device)
    i = torch.arange(length, device=device)
    return start[:, None] + torch.arange(k, device=device)[None, :] - i[:, None] + kernel_size - 1


def _natten_ops():
    """(qk, av) callables of the installed natten with signature qk(q, k, rpb, ks), av(a, v, ks), or None."""
    if _natten_f is None:
        return None
    if hasattr(_natten_f, "na2d_qk") and hasattr(_natten_f, "na2d_av"):  # natten 0.17
        return (lambda q, k, rpb, ks: _natten_f.na2d_qk(q, k, ks, 1, rpb=rpb),
                lambda a, v, ks: _natten_f.na2d_av(a, v, ks, 1))
    if hasattr(_natten_f, "natten2dqkrpb") and hasattr(_natten_f, "natten2dav"):  # natten 0.14-0.16
        return (lambda q, k, rpb, ks: _natten_f.natten2dqkrpb(q, k, rpb, ks, 1),
                lambda a, v, ks: _natten_f.natten2dav(a, v, ks, 1))
    return None


_WARNED = False


def _natten_available(q: torch.Tensor, kernel_size: int) -> bool:
    return (q.is_cuda and q.shape[2] >= kernel_size and q.shape[3] >= kernel_size
            and _natten_ops() is not None)


def _na_natten(q, k, v, kernel_size, rpb):  # pragma: no cover - needs CUDA + natten
    qk, av = _natten_ops()
    if rpb is None:
        rpb = q.new_zeros(q.shape[1], 2 * kernel_size - 1, 2 * kernel_size - 1)
    attn = qk(q.contiguous(), k.contiguous(), rpb.to(q.dtype), kernel_size).softmax(dim=-1)
    return av(attn, v.contiguous(), kernel_size)


def _na_torch(q, k, v, kernel_size, rpb):
    B, h, H, W, d = q.shape
    kh, kw = min(kernel_size, H), min(kernel_size, W)
    sh = window_starts(H, kernel_size, q.device)
    sw = window_starts(W, kernel_size, q.device)
    # (B, h, H-kh+1, W, d, kh) views: row windows at every valid start (no copy)
    krows = k.unfold(2, kh, 1)
    vrows = v.unfold(2, kh, 1)
    bias = None
    if rpb is not None:
        bi = bias_indices(H, kernel_size, q.device)  # (H, kh)
        bj = bias_indices(W, kernel_size, q.device)  # (W, kw)
        bias = rpb[:, bi[:, None, :, None], bj[None, :, None, :]]  # (h, H, W, kh, kw)
        bias = bias.reshape(h, H, W, 1, kh * kw)
    per_row = B * h * W * d * kh * kw
    rows = max(1, min(H, _CHUNK_ELEMS // max(per_row, 1)))
    outs = []
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        idx = sh[r0:r1]
        # gather the clamped row windows (k× the chunk), then the clamped column windows (k²×)
        kc = krows.index_select(2, idx).unfold(3, kw, 1).index_select(3, sw).reshape(B, h, r1 - r0, W, d, kh * kw)
        vc = vrows.index_select(2, idx).unfold(3, kw, 1).index_select(3, sw).reshape(B, h, r1 - r0, W, d, kh * kw)
        logits = q[:, :, r0:r1].unsqueeze(-2) @ kc  # (B, h, rows, W, 1, kk)
        if bias is not None:
            logits = logits + bias[:, r0:r1]
        attn = logits.softmax(dim=-1)
        outs.append((attn @ vc.transpose(-1, -2)).squeeze(-2))  # (B, h, rows, W, d)
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def neighborhood_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int,
                           rpb: torch.Tensor | None = None, use_natten: bool = True) -> torch.Tensor:
    """softmax(q·Kᵀ + rpb)·V over each query's k×k neighborhood.

    q, k, v: (B, heads, H, W, head_dim), q already scaled. rpb: (heads, 2k−1, 2k−1) or None.
    Returns (B, heads, H, W, head_dim).
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    if use_natten and _natten_available(q, kernel_size):
        try:
            return _na_natten(q, k, v, kernel_size, rpb)
        except Exception as e:  # pragma: no cover - fall back, once with a warning
            global _WARNED
            if not _WARNED:
                warnings.warn(f"natten kernels failed ({type(e).__name__}: {e}); using the PyTorch path",
                              stacklevel=2)
                _WARNED = True
    return _na_torch(q, k, v, kernel_size, rpb)


class NeighborhoodAttention(nn.Module):
    """NATTEN-v0.12-compatible ``NeighborhoodAttention(dim, kernel_size, num_heads)`` on (B, H, W, C).

    Parameters (names as in the official TinyLIC checkpoints): ``qkv`` Linear(C, 3C) with output
    order [q|k|v] × [head] × [head_dim], ``rpb`` (heads, 2k−1, 2k−1) initialised with a truncated
    normal (std .02, [−2, 2]), ``proj`` Linear(C, C).
    """

    def __init__(self, dim: int, kernel_size: int = 7, num_heads: int = 1, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 use_natten: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.dim, self.num_heads, self.kernel_size = dim, num_heads, kernel_size
        self.head_dim = dim // num_heads
        self.scale = qk_scale if qk_scale is not None else self.head_dim ** -0.5
        self.use_natten = use_natten
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1))
        nn.init.trunc_normal_(self.rpb, std=0.02, a=-2.0, b=2.0)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        qkv = self.qkv(x).reshape(B, H, W, 3, self.num_heads, self.head_dim).permute(3, 0, 4, 1, 2, 5)
        q, k, v = qkv[0] * self.scale, qkv[1], qkv[2]
        if self.attn_drop > 0 and self.training:
            raise NotImplementedError("attention dropout is not implemented (TinyLIC uses 0)")
        out = neighborhood_attention(q, k, v, self.kernel_size, self.rpb, self.use_natten)
        out = out.permute(0, 2, 3, 1, 4).reshape(B, H, W, C)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kernel_size={self.kernel_size}, num_heads={self.num_heads}"

