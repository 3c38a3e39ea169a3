"""Model complexity: parameter count and kMACs per pixel.

Convention (papers' and this project's): **kMACs/pixel = MACs / (H·W) / 1000** for one forward of a
1×3×H×W input (image pixels, not ×3 for channels), default 256×256 like HPCM (issue #12 of
lyq133/LIC-HPCM). One multiply-accumulate = 2 FLOPs.

Tool: :class:`torch.utils.flop_counter.FlopCounterMode` (dispatcher level, so functional matmuls and
attention inside custom blocks are seen, unlike module-hook counters such as thop/ptflops). It counts
convolutions, (batched) matrix products and attention as 2·MACs and ignores elementwise ops
(activations, GDN's square/sqrt, softmax, additions, biases), as fvcore does. We report
MACs = FLOPs / 2. (The project's HPCM spec finds 918.56 kMACs/px this way for HPCM-Base against the
paper's DeepSpeed-profiler 918.57.)

**CPU attention.** FlopCounterMode has no formula for the CPU kernels of
``F.scaled_dot_product_attention`` (``aten._scaled_dot_product_flash_attention_for_cpu``; pytorch
issue 195460) and so counts 0 for attention on CPU while counting it on CUDA. Every forward
``aten._scaled_dot_product_*`` op without a registered formula is given one here: with query
(B, Hq, L, E), key (B, Hk, S, E), value (B, Hk, S, Ev),

    MACs = B·Hq·L·S·E (Q·Kᵀ) + B·Hq·L·S·Ev (A·V),

the same as PyTorch's CUDA formula (which returns 2× that in FLOPs). Grouped-query attention counts
the query heads. ``nn.MultiheadAttention``'s fused inference path (``aten._native_multi_head_attention``,
taken under ``no_grad`` in eval mode) is likewise counted as its projections plus attention. SDPA's
math fallback (used e.g. for Ev ≠ E or an explicit mask on CPU) decomposes into ``bmm`` ops that the
counter already sees, so nothing is counted twice. CPU and GPU counts should therefore agree.

Not counted: custom CUDA/C++ kernels without a formula (e.g. NATTEN), other fused inference
kernels (e.g. ``nn.TransformerEncoderLayer``'s fast path, ``aten._transformer_encoder_layer_fwd``),
entropy coding, and anything outside ``fn``. Check ``count_macs(...).by_op`` when in doubt. The
CPU/GPU agreement has not been checked on a GPU yet (none was available); on CUDA, PyTorch's own
SDPA formula applies, and ours mirrors it.

The forward (training graph) and ``compress``/``decompress`` paths can differ for context models;
pass ``fn`` to profile another path and say which one was used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, flop_registry

TOOL = (f"torch.utils.flop_counter.FlopCounterMode (torch {torch.__version__}), MACs = FLOPs/2, "
        "CPU SDPA counted")

aten = torch.ops.aten


def count_params(model: nn.Module) -> int:
    """Number of parameters (each shared tensor once), trainable or not; buffers excluded."""
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- attention formulas
def _sdpa_macs(q_shape, k_shape, v_shape) -> int:
    """MACs of softmax(Q Kᵀ) V for (..., Hq, L, E), (..., Hk, S, E), (..., Hk, S, Ev)."""
    *batch, L, E = q_shape
    S, Ev = k_shape[-2], v_shape[-1]
    return math.prod(batch) * L * S * (E + Ev)


def _sdpa_flop(query, key, value, *args, out_shape=None, **kwargs) -> int:
    # FlopCounterMode's formulas return FLOPs; 2 per MAC.
    return 2 * _sdpa_macs(query, key, value)


def _native_mha_flop(query, key, value, embed_dim, num_head, qkv_weight, qkv_bias, proj_weight,
                     *args, out_shape=None, **kwargs) -> int:
    # query (B, L, E), key/value (B, S, E); in-projections E->E each, out-projection E->E.
    *batch, L, E = query
    S = key[-2]
    b = math.prod(batch)
    proj = b * (L + 2 * S) * E * embed_dim + b * L * embed_dim * proj_weight[0]
    attn = b * L * S * 2 * embed_dim  # summed over heads: head_dim * num_head = embed_dim
    return 2 * (proj + attn)


def _extra_formulas() -> dict:
    """Formulas for the attention ops FlopCounterMode leaves at 0 (see module docstring)."""
    extra = {}
    for name in dir(aten):
        if name.startswith("_scaled_dot_product_") and not name.endswith("_backward"):
            op = getattr(aten, name)
            if op not in flop_registry:
                extra[op] = _sdpa_flop
    mha = getattr(aten, "_native_multi_head_attention", None)
    if mha is not None and mha not in flop_registry:
        extra[mha] = _native_mha_flop
    return extra


# ----------------------------------------------------------------------------- counting
@dataclass
class MacCount:
    """MACs of one profiled call: total, per module path ('' = the model) and per aten op."""

    macs: int
    pixels: int
    by_module: dict[str, int] = field(default_factory=dict)
    by_op: dict[str, int] = field(default_factory=dict)

    @property
    def kmacs_per_pixel(self) -> float:
        return self.macs / self.pixels / 1000


def _forward(model, x):
    return model(x)


def count_macs(model: nn.Module, height: int = 256, width: int = 256,
               fn: Callable[[nn.Module, torch.Tensor], object] | None = None) -> MacCount:
    """Count the MACs of ``fn(model, x)`` (default ``model(x)``) on a 1×3×H×W uniform-random input.

    Runs in eval mode under ``torch.no_grad()`` on the model's device; every module's train/eval
    flag is restored afterwards.
    """
    fn = fn or _forward
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.rand(1, 3, height, width, device=device)
    counter = FlopCounterMode(display=False, custom_mapping=_extra_formulas())
    root = type(model).__name__
    # Name modules by their path in `model`, even when fn calls a submodule directly (the tracker
    # otherwise names a module it meets first by its class). Private attribute: best effort.
    known = getattr(counter.mod_tracker, "_known_modules", None)
    if known is not None:
        for path, mod in model.named_modules():
            known[mod] = f"{root}.{path}" if path else root
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad(), counter:
            fn(model, x)
    finally:
        for m, training in modes.items():  # per module: some may have been frozen in eval
            m.training = training
    counts = counter.get_flop_counts()
    total = counter.get_total_flops() // 2
    by_module = {}
    for name, ops in counts.items():
        if name == "Global":
            continue
        rel = "" if name == root else name[len(root) + 1:] if name.startswith(root + ".") else name
        by_module[rel] = sum(ops.values()) // 2
    by_op = {str(op): v // 2 for op, v in counts.get("Global", {}).items()}
    return MacCount(macs=total, pixels=height * width, by_module=by_module, by_op=by_op)


def kmacs_per_pixel(model: nn.Module, height: int = 256, width: int = 256,
                    fn: Callable[[nn.Module, torch.Tensor], object] | None = None) -> float:
    """kMACs per pixel of one forward (or ``fn(model, x)``) on a 1×3×H×W input."""
    return count_macs(model, height, width, fn).kmacs_per_pixel


def macs_by_module(model: nn.Module, height: int = 256, width: int = 256,
                   fn: Callable[[nn.Module, torch.Tensor], object] | None = None,
                   depth: int | None = 1) -> dict[str, int]:
    """MACs per submodule path (``'g_a'``, ``'g_a.0'``, …; ``''`` is the whole model), up to ``depth``
    levels below the model (None: all). A module called several times is summed over its calls."""
    by_module = count_macs(model, height, width, fn).by_module
    return {k: v for k, v in sorted(by_module.items())
            if depth is None or k == "" or k.count(".") < depth}


def complexity_record(key: str, model: nn.Module, height: int = 256, width: int = 256,
                      fn: Callable[[nn.Module, torch.Tensor], object] | None = None,
                      path: str | None = None) -> dict:
    """One row for :func:`lic.compare.complexity_table`.

    Fields: ``key``, ``params``, ``kmacs_per_pixel``, ``macs``, ``input`` ("1x3xHxW"), ``path``
    (what was profiled: "forward" or ``fn``'s name unless given), ``tool``, and
    ``kmacs_per_pixel_by_module`` for the model's direct children.
    """
    count = count_macs(model, height, width, fn)
    if path is None:
        path = "forward" if fn is None else getattr(fn, "__name__", "custom")
    return {"key": key, "params": count_params(model), "kmacs_per_pixel": count.kmacs_per_pixel,
            "macs": count.macs, "input": f"1x3x{height}x{width}", "path": path, "tool": TOOL,
            "kmacs_per_pixel_by_module": {k: v / count.pixels / 1000
                                          for k, v in count.by_module.items() if k and "." not in k}}
