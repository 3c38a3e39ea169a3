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

Paths (``impl`` / the model option ``attention_impl``; :func:`resolve_impl`; docs/tinylic.md measures them):

* ``reference`` (:func:`_na_torch`): ``Tensor.unfold`` views of K and V are gathered at the clamped window
  starts (rows, then columns) in row chunks, then two batched matmuls (q·Kᵀ and attn·V) — so
  ``FlopCounterMode`` counts the attention MACs. Autograd keeps every chunk's gathered windows for
  backward: 2k² times the size of K (a paper-size TinyLIC v3 needs ≈ 60 GB at batch 8, 256²).
* ``chunked`` (:func:`_na_chunked`): the same chunks, each under activation checkpointing — backward
  recomputes one chunk's windows at a time. The forward is the reference's bit for bit (so streams are
  identical), gradients agree to float rounding; one extra attention forward per training step.
* ``flex`` (:mod:`lic.layers.na_flex`): FlexAttention with a neighborhood block mask and the bias as a
  score modification, compiled — fused on CUDA; on the CPU forward-only.
* ``natten``: the natten package's kernels (below).
* ``auto`` (default): natten where usable, else ``flex`` on CUDA where a one-time probe trains it
  correctly (falling back to ``chunked``, with a warning, if it later fails), else ``chunked``.

Optional CUDA path: if the PyPI ``natten`` package is importable with an unfused 2-D API that
takes a relative-position bias — ``na2d_qk(q, k, kernel_size, dilation, rpb=...)``/``na2d_av``
(0.17.x) or ``natten2dqkrpb``/``natten2dav`` (0.14–0.16) — the tensors are on CUDA and H, W ≥ k,
its kernels are used (natten ≥ 0.20 dropped both the unfused ops and rpb: PyTorch path). A failure
inside natten falls back to the PyTorch path with a one-time warning; why natten is not used is
:func:`natten_status`.

natten 0.17.5, the last release with these ops, predates the pinned torch 2.14.1: its sdist builds
only with its C++ standard raised to 20 (torch's headers require it), and it imports
``torch.cuda._device_t``, which torch 2.14 no longer has. :func:`_import_natten` supplies that one
name (``torch.types.Device``, the same union) when it is missing; nothing else of torch is touched.
Checked on the CPU (``python -m lic.bench_natten``, docs/tinylic.md): natten 0.17.5's CPU kernels
give this module's outputs and gradients to float64 rounding, through these same calls. Its CUDA
kernels have not been run here (no GPU was available to this project).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn

__all__ = ["NeighborhoodAttention", "neighborhood_attention", "run_attention", "resolve_impl", "set_attention_impl",
           "attention_record", "natten_status", "window_starts", "bias_indices", "IMPLS"]

#: device types on which :func:`neighborhood_attention` hands the work to natten. natten's CPU kernels are
#: a slow reference (15–34x slower than the PyTorch path on one CPU thread, docs/tinylic.md);
#: ``lic.bench_natten`` adds "cpu" to compare the two paths.
NATTEN_DEVICE_TYPES = {"cuda"}


def _import_natten():
    """(natten.functional or None, why not): natten 0.17.5 on torch ≥ 2.14 needs ``torch.cuda._device_t``."""
    import importlib.util

    if importlib.util.find_spec("natten") is None:
        return None, "natten is not installed"
    if not hasattr(torch.cuda, "_device_t"):  # removed from torch; natten 0.17 imports it by name
        torch.cuda._device_t = torch.types.Device
    try:
        import natten.functional as f  # type: ignore
    except ImportError as e:
        return None, f"natten is not importable ({e})"
    except Exception as e:  # e.g. natten's import-time CUDA queries on a machine without a driver
        why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        if not torch.cuda.is_available():
            return None, f"natten is installed but imports only where a CUDA device is visible ({why})"
        return None, f"natten failed to import ({why})"
    return f, None


try:  # optional CUDA kernels; never required
    _natten_f, _NATTEN_IMPORT_ERROR = _import_natten()
except Exception as e:  # pragma: no cover - defensive: never let natten break this module
    _natten_f, _NATTEN_IMPORT_ERROR = None, f"natten failed to import ({type(e).__name__}: {e})"

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


def natten_status() -> str:
    """One line: which natten ops :func:`neighborhood_attention` would use, or why none."""
    if _natten_f is None:
        return _NATTEN_IMPORT_ERROR or "natten is not installed"
    import natten  # type: ignore
    version = getattr(natten, "__version__", "?")
    if _natten_ops() is None:
        return f"natten {version} has no unfused 2-D ops with rpb (dropped in 0.20): PyTorch path"
    return f"natten {version}: its kernels are used on {', '.join(sorted(NATTEN_DEVICE_TYPES))} when H, W >= k"


def _natten_available(q: torch.Tensor, kernel_size: int) -> bool:
    return (q.device.type in NATTEN_DEVICE_TYPES and q.shape[2] >= kernel_size and q.shape[3] >= kernel_size
            and _natten_ops() is not None)


def _na_natten(q, k, v, kernel_size, rpb):  # pragma: no cover - needs natten
    qk, av = _natten_ops()
    if rpb is None:
        rpb = q.new_zeros(q.shape[1], 2 * kernel_size - 1, 2 * kernel_size - 1)
    attn = qk(q.contiguous(), k.contiguous(), rpb.to(q.dtype), kernel_size).softmax(dim=-1)
    return av(attn, v.contiguous(), kernel_size)


def _chunk_rows(q: torch.Tensor, kernel_size: int) -> int:
    """Query rows per chunk: the gathered K (or V) windows of one chunk stay under ``_CHUNK_ELEMS``."""
    B, h, H, W, d = q.shape
    per_row = B * h * W * d * min(kernel_size, H) * min(kernel_size, W)
    return max(1, min(H, _CHUNK_ELEMS // max(per_row, 1)))


def _na_rows(q, k, v, rpb, kernel_size: int, r0: int, r1: int) -> torch.Tensor:
    """Output rows r0:r1 of the neighborhood attention: (B, h, r1 − r0, W, d).

    The k×k windows of the chunk's queries are gathered as copies (rows of K/V, then columns), the logits
    are one batched matmul q·Kᵀ (+ bias), the output attn·V. Autograd saves the gathered windows: k² times
    the chunk's K and V.
    """
    B, h, H, W, d = q.shape
    kh, kw = min(kernel_size, H), min(kernel_size, W)
    sh = window_starts(H, kernel_size, q.device)[r0:r1]
    sw = window_starts(W, kernel_size, q.device)
    # (B, h, H-kh+1, W, d, kh) views: row windows at every valid start (no copy); gather the clamped row
    # windows (k× the chunk), then the clamped column windows (k²×)
    kc = k.unfold(2, kh, 1).index_select(2, sh).unfold(3, kw, 1).index_select(3, sw)
    vc = v.unfold(2, kh, 1).index_select(2, sh).unfold(3, kw, 1).index_select(3, sw)
    kc, vc = kc.reshape(B, h, r1 - r0, W, d, kh * kw), vc.reshape(B, h, r1 - r0, W, d, kh * kw)
    logits = q[:, :, r0:r1].unsqueeze(-2) @ kc  # (B, h, rows, W, 1, kk)
    if rpb is not None:
        bi = bias_indices(H, kernel_size, q.device)[r0:r1]  # (rows, kh)
        bj = bias_indices(W, kernel_size, q.device)  # (W, kw)
        logits = logits + rpb[:, bi[:, None, :, None], bj[None, :, None, :]].reshape(h, r1 - r0, W, 1, kh * kw)
    attn = logits.softmax(dim=-1)
    return (attn @ vc.transpose(-1, -2)).squeeze(-2)  # (B, h, rows, W, d)


def _na_torch(q, k, v, kernel_size, rpb):
    """The reference path: every chunk's windows stay saved for backward (≈ 2k² × the size of K)."""
    rows, H = _chunk_rows(q, kernel_size), q.shape[2]
    outs = [_na_rows(q, k, v, rpb, kernel_size, r0, min(H, r0 + rows)) for r0 in range(0, H, rows)]
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


def _na_chunked(q, k, v, kernel_size, rpb):
    """The reference's computation chunk by chunk, each chunk under activation checkpointing: backward
    recomputes one chunk's windows at a time instead of keeping all of them. Its forward is the reference's,
    bit for bit; the gradients differ only by float summation order. Without autograd it *is* the reference."""
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (q, k, v, rpb))
    if not needs_grad:
        return _na_torch(q, k, v, kernel_size, rpb)
    from torch.utils.checkpoint import checkpoint

    rows, H = _chunk_rows(q, kernel_size), q.shape[2]
    outs = [checkpoint(_na_rows, q, k, v, rpb, kernel_size, r0, min(H, r0 + rows), use_reentrant=False)
            for r0 in range(0, H, rows)]
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


#: the paths of :func:`neighborhood_attention` (``attention_impl``); docs/tinylic.md compares them
IMPLS = ("auto", "reference", "chunked", "flex", "natten")
_FLEX_FAILED = False


def check_impl(impl: str) -> str:
    if impl not in IMPLS:
        raise ValueError(f"attention_impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    return impl


def resolve_impl(impl: str, q: torch.Tensor, kernel_size: int, use_natten: bool = True) -> str:
    """The path that ``impl`` runs for this query tensor (its device and map size).

    ``auto``: natten's kernels where they are usable (CUDA, H, W ≥ k, ``use_natten``), else FlexAttention on
    CUDA if it passes :func:`lic.layers.na_flex.flex_probe` there (outputs and gradients of a small case
    against the chunked path), else (the CPU) ``chunked``. ``natten`` on a map smaller than the kernel (natten rejects it): ``chunked``.
    """
    check_impl(impl)
    small = q.shape[2] < kernel_size or q.shape[3] < kernel_size
    if impl == "natten":
        if _natten_ops() is None:
            raise RuntimeError(f"attention_impl='natten' is not usable: {natten_status()}")
        return "chunked" if small else "natten"
    if impl != "auto":
        return impl
    if use_natten and _natten_available(q, kernel_size):
        return "natten"
    if q.device.type == "cuda" and not _FLEX_FAILED:
        from lic.layers.na_flex import flex_probe
        if flex_probe(q.device, _na_chunked) is None:  # once per device: trains and matches the chunked path
            return "flex"
    return "chunked"


def _run(path: str, q, k, v, kernel_size, rpb):
    if path == "natten":
        return _na_natten(q, k, v, kernel_size, rpb)
    if path == "flex":
        from lic.layers.na_flex import na_flex
        return na_flex(q, k, v, kernel_size, rpb)
    return (_na_torch if path == "reference" else _na_chunked)(q, k, v, kernel_size, rpb)


def run_attention(q, k, v, kernel_size: int, rpb=None, impl: str = "auto",
                  use_natten: bool = True) -> tuple[torch.Tensor, str]:
    """(output, the path that computed it); see :func:`neighborhood_attention`."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    path = resolve_impl(impl, q, kernel_size, use_natten)
    if impl != "auto" or path == "chunked":
        return _run(path, q, k, v, kernel_size, rpb), path
    try:  # auto: a failing fused path falls back to the chunked one, with a one-time warning
        return _run(path, q, k, v, kernel_size, rpb), path
    except Exception as e:  # pragma: no cover - needs a device where natten/flex fail
        global _WARNED, _FLEX_FAILED
        if path == "flex":
            _FLEX_FAILED = True
        if not _WARNED:
            warnings.warn(f"{path} neighborhood attention failed ({type(e).__name__}: {e}); using the chunked "
                          "PyTorch path", stacklevel=2)
            _WARNED = True
        return _na_chunked(q, k, v, kernel_size, rpb), "chunked"


def neighborhood_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int,
                           rpb: torch.Tensor | None = None, use_natten: bool = True,
                           impl: str = "auto") -> torch.Tensor:
    """softmax(q·Kᵀ + rpb)·V over each query's k×k neighborhood.

    q, k, v: (B, heads, H, W, head_dim), q already scaled. rpb: (heads, 2k−1, 2k−1) or None.
    impl: one of :data:`IMPLS` (:func:`resolve_impl`); ``use_natten=False`` keeps ``auto`` off natten.
    Returns (B, heads, H, W, head_dim).
    """
    return run_attention(q, k, v, kernel_size, rpb, impl, use_natten)[0]


class NeighborhoodAttention(nn.Module):
    """NATTEN-v0.12-compatible ``NeighborhoodAttention(dim, kernel_size, num_heads)`` on (B, H, W, C).

    Parameters (names as in the official TinyLIC checkpoints): ``qkv`` Linear(C, 3C) with output
    order [q|k|v] × [head] × [head_dim], ``rpb`` (heads, 2k−1, 2k−1) initialised with a truncated
    normal (std .02, [−2, 2]), ``proj`` Linear(C, C).
    """

    def __init__(self, dim: int, kernel_size: int = 7, num_heads: int = 1, qkv_bias: bool = True,
                 qk_scale: float | None = None, attn_drop: float = 0.0, proj_drop: float = 0.0,
                 use_natten: bool = True, attention_impl: str = "auto"):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.dim, self.num_heads, self.kernel_size = dim, num_heads, kernel_size
        self.head_dim = dim // num_heads
        self.scale = qk_scale if qk_scale is not None else self.head_dim ** -0.5
        self.use_natten = use_natten
        self.attention_impl = check_impl(attention_impl)  # a plain attribute: the state_dict is unchanged
        self.last_impl: str | None = None  # the path the latest forward ran (:func:`resolve_impl`)
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
        out, self.last_impl = run_attention(q, k, v, self.kernel_size, self.rpb, self.attention_impl,
                                            self.use_natten)
        out = out.permute(0, 2, 3, 1, 4).reshape(B, H, W, C)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, kernel_size={self.kernel_size}, num_heads={self.num_heads}, "
                f"attention_impl={self.attention_impl!r}")


def set_attention_impl(model: nn.Module, impl: str) -> nn.Module:
    """Switch every :class:`NeighborhoodAttention` of ``model`` to ``impl`` (weights untouched)."""
    check_impl(impl)
    for m in model.modules():
        if isinstance(m, NeighborhoodAttention):
            m.attention_impl = impl
    return model


def attention_record(model: nn.Module) -> dict | None:
    """{"option", "resolved"} of a model's neighborhood attention for checkpoint records, or None if it has
    none. ``resolved``: the path(s) its latest forward ran ("+"-joined if layers differ; None before any)."""
    layers = [m for m in model.modules() if isinstance(m, NeighborhoodAttention)]
    if not layers:
        return None
    options = sorted({m.attention_impl for m in layers})
    ran = sorted({m.last_impl for m in layers if m.last_impl})
    return {"option": "+".join(options), "resolved": "+".join(ran) or None}

