"""Neighborhood attention through PyTorch's FlexAttention (``torch.nn.attention.flex_attention``).

The same attention as :mod:`lic.layers.neighborhood_attention` (NATTEN v0.12 semantics), written as
dense attention over the flattened H·W map with

* a **block mask** (``mask_mod``): query (i, j) sees key (a, b) iff a ∈ [sᵢ, sᵢ + kₕ) and b ∈ [sⱼ, sⱼ + k_w)
  with the shifted-inside window starts sᵢ = clamp(i − k//2, 0, H − kₕ), kₕ = min(k, H) (likewise for
  columns) — so edge windows are shifted inside the map, and a map smaller than the kernel attends to
  the whole axis, exactly as the reference path;
* the **relative position bias** as ``score_mod``: + rpb[head, a − i + k − 1, b − j + k − 1]. FlexAttention
  also evaluates score_mod on masked-out entries of partly-masked blocks, so the offsets are clamped into
  the table there (those scores are discarded).

Whole 128×128 blocks of the flattened map that no query of the block can see are skipped, so the work is
O(H·W · W·k) rather than O((H·W)²): on a GPU, fused and memory-efficient (the (H·W)² scores are never
stored). It is compiled with ``torch.compile`` (one compilation per map size, head count and batch; dynamo's
recompile limit is raised to :data:`RECOMPILE_LIMIT` for that); without it FlexAttention would materialise
all scores.

On the CPU, torch 2.14's FlexAttention runs the forward only (its backward raises NotImplementedError), and
each new shape costs a compilation of ≈ 10–15 s: usable for inference, not for training. The CPU's
training path is the chunked one (:func:`lic.layers.neighborhood_attention._na_chunked`).
"""

from __future__ import annotations

import torch

__all__ = ["na_flex", "flex_status", "flex_probe"]

_COMPILED = None
_BLOCK_MASKS: dict = {}
_PROBES: dict[str, str | None] = {}


def flex_status() -> str | None:
    """None when FlexAttention is importable, else one line saying why not."""
    try:
        import torch.nn.attention.flex_attention  # noqa: F401
    except Exception as e:  # pragma: no cover - torch without FlexAttention
        return f"torch {torch.__version__} has no FlexAttention ({type(e).__name__}: {e})"
    return None


#: compilations torch.compile may keep per function: one per (map size, heads, batch) — a TinyLIC has 6 shapes per
#: input size, and beyond dynamo's default limit (8) it would fall back to eager FlexAttention, which stores all
#: (H·W)² scores
RECOMPILE_LIMIT = 64


def _flex():
    global _COMPILED
    if _COMPILED is None:
        import torch._dynamo.config as dynamo_config
        from torch.nn.attention.flex_attention import flex_attention

        dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, RECOMPILE_LIMIT)
        _COMPILED = torch.compile(flex_attention, dynamic=False)
    return _COMPILED


def _block_mask(H: int, W: int, kernel_size: int, device: torch.device):
    key = (H, W, kernel_size, str(device))
    if key not in _BLOCK_MASKS:
        from torch.nn.attention.flex_attention import create_block_mask

        kh, kw, r = min(kernel_size, H), min(kernel_size, W), kernel_size // 2

        def neighborhood(b, h, q_idx, kv_idx):
            qi, qj, ki, kj = q_idx // W, q_idx % W, kv_idx // W, kv_idx % W
            si, sj = (qi - r).clamp(0, H - kh), (qj - r).clamp(0, W - kw)
            return (ki >= si) & (ki < si + kh) & (kj >= sj) & (kj < sj + kw)

        _BLOCK_MASKS[key] = create_block_mask(neighborhood, None, None, H * W, H * W, device=device)
    return _BLOCK_MASKS[key]


def na_flex(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int,
            rpb: torch.Tensor | None) -> torch.Tensor:
    """q, k, v: (B, heads, H, W, d), q already scaled; rpb (heads, 2k−1, 2k−1) or None → (B, heads, H, W, d)."""
    B, h, H, W, d = q.shape
    if q.device.type == "cpu" and torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (q, k, v, rpb)):
        raise NotImplementedError("attention_impl='flex' cannot train on the CPU (torch's FlexAttention has no "
                                  "CPU backward); use 'chunked' or 'auto'")
    score_mod = None
    if rpb is not None:
        top = 2 * kernel_size - 2

        def score_mod(score, b, head, q_idx, kv_idx):
            di = (kv_idx // W - q_idx // W + kernel_size - 1).clamp(0, top)
            dj = (kv_idx % W - q_idx % W + kernel_size - 1).clamp(0, top)
            return score + rpb[head, di, dj]

    flat = [t.reshape(B, h, H * W, d) for t in (q, k, v)]
    out = _flex()(*flat, score_mod=score_mod, block_mask=_block_mask(H, W, kernel_size, q.device), scale=1.0)
    return out.reshape(B, h, H, W, d)


def flex_probe(device, chunked) -> str | None:
    """None if FlexAttention trains correctly on ``device``, else why not; run once per device.

    A small case (a map shorter than the kernel on one axis, shifted edge windows on the other, the bias
    trained) through :func:`na_flex` and ``chunked`` (the selector's chunked path, passed in so that this
    module does not import its caller): outputs and the gradients of q, k, v and the bias
    must agree within 1e-4. ``attention_impl="auto"`` uses FlexAttention only where this passes, so a
    torch build whose FlexAttention fails (or differs) on a device falls back to the chunked path.
    """
    key = str(torch.device(device))
    if key not in _PROBES:
        why = flex_status()
        if why is None:
            try:
                why = _probe(torch.device(device), chunked)
            except Exception as e:
                why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        _PROBES[key] = why
    return _PROBES[key]


def _probe(device: torch.device, _na_chunked) -> str | None:
    g = torch.Generator().manual_seed(0)
    base = [torch.randn(1, 2, 5, 12, 16, generator=g) for _ in range(3)] + [torch.randn(2, 13, 13, generator=g)]
    up = torch.randn(1, 2, 5, 12, 16, generator=g).to(device)
    results = []
    with torch.enable_grad():
        for fn in (na_flex, _na_chunked):
            leaves = [t.to(device).requires_grad_(True) for t in base]
            out = fn(*leaves[:3], 7, leaves[3])
            (out * up).sum().backward()
            results.append([out.detach()] + [t.grad for t in leaves])
    diff = max((a - b).abs().max().item() for a, b in zip(*results))
    return None if diff <= 1e-4 else f"FlexAttention differs from the chunked path by {diff:.1e} on {device}"
