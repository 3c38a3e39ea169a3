"""TinyLIC — Lu, Chen, Pu & Ma, *High-Efficiency Lossy Image Coding Through Adaptive Neighborhood
Information Aggregation* (arXiv 2204.11448); official code lumingzzz/TinyLIC (spec ``tinylic.md``).

::

    x ─ g_a (conv s2 + RNAB ×4) ─ y ─ h_a ─ z ─ [EB] ─ ẑ ─ h_s ─ ψ (2M)
                                  │                           │
                                  └── MCM / spatial context ──┴─ ŷ ─ g_s (RNAB + deconv s2 ×4) ─ x̂

Registered models:

* ``lu2022-tinylic-v3`` — the released model (HEAD b9081f7, spec §3): RNAB transforms with
  neighborhood attention (k 7; 3 in the hyper coder), channels N, 3N/2, 2N, M = 128/192/256/320, head
  dim 16, EntropyBottleneck(3N/2), multistage context model (MCM) with 4 cosine channel slices
  (24/69/104/123) and checkerboard / 2×2 spatial steps inside the first three. 28,338,211 parameters.
* ``lu2022-tinylic-low`` / ``lu2022-tinylic-high`` — the supplement's Tables 1/2 = the v1 code
  (6a14a16, spec §4): Swin RSTBs (window 8, hyper 4, depths 2/4/6/2/2/2), N/M = 128/192 and 192/320,
  the 4-step spatial context model (three masked k3 convs M→2M) and entropy parameters 8M→6M→4M→2M
  (v1 code; 12.45 M / 31.39 M parameters) or, with ``v1_entropy_parameters="supplement"``, the
  tables' 4M→10M/3→8M/3→2M on ψ ⊕ the summed context (10.52 M / 26.01 M).

**One coding loop** (:meth:`TinyLIC._code_y`) walks the context-model stages (slice → spatial step)
for ``forward``, ``compress`` and ``decompress``; a per-step callback turns the step's Gaussian
parameters into ŷ (forward: STE rounding around the mean; compress: rANS symbols; decompress: rANS
decoding). The forward's eval reconstruction therefore equals the decoder's bit for bit.

Deviations / assumptions (constructor parameter in brackets):

* Neighborhood attention is the pure-PyTorch :mod:`lic.layers.neighborhood_attention` (NATTEN CUDA
  kernels only if ``natten`` is importable and on CUDA [``use_natten``]); maps smaller than the kernel
  attend to the whole axis (the official code crashes there) — so ``pad_multiple`` is 64 for v3
  instead of the official evaluation's 256 (identical results whenever the 1/64 map is ≥ 3×3).
* Channel widths for N ≠ 128 are an extrapolation: (N, 3N/2, 2N, M), hyper 3N/2 [``channels``,
  ``hyper_channels``]; heads = width / 16 [``num_heads``].
* The MCM is fixed at 4 slices (like the official code, issue #17); entropy-parameter widths follow
  the official integer formulas (2s·10//6, 2s·8//6, 2s; the last slice 2s, 2s, 2s).
* y is coded into **one** rANS stream (like v3); for the v1 configurations too (v1 wrote 4 strings).
  v1's forward quirks (noise instead of STE; eval rounding without the mean) are *not* reproduced:
  all configurations use v3's mean-centred STE rounding [no switch]. Hence the v1 forward runs the
  entropy-parameter net once per spatial step (4×): 338.6 instead of ≈305 kMACs/px (spec §4.4).
* v1 Swin blocks pad maps to a multiple of the window and compute the shift mask per input size; the
  official ``attn_mask`` buffers (fixed to 256² crops) are not stored [``train_resolution`` only sets
  the window/shift clamping]. v1 ``pad_multiple`` is 256 (the official evaluation's).
* compressai 1.2.8 names the EntropyBottleneck parameters ``matrices.i``/``biases.i``/``factors.i``;
  :func:`convert_official_state_dict` renames the official ``_matrix{i}``/``_bias{i}``/``_factor{i}``.
* Masked convs apply their mask functionally instead of mutating ``weight.data`` (same outputs).

Supplement extensions, one module each (lic.models.registry imports them, so their keys register):
:mod:`lic.models.tinylic_scaling` (``lu2022-tinylic-vr``, ScalingNet variable rate),
:mod:`lic.models.tinylic_msr` (``lu2022-tinylic-msr``, MSR in-loop filter) and
:mod:`lic.models.tinylic_yuv` (``lu2022-tinylic-y`` / ``-yuv420``). Design notes: ``docs/tinylic.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.models import CompressionModel

from lic.entropy.fast import check_coder, coder
from lic.entropy.indexes import scale_indexes
from lic.models.registry import OfficialRelease, register
from lic.layers.neighborhood_attention import check_impl
from lic.models.tinylic_blocks import MultistageMaskedConv2d, conv, deconv, rnab, rstb

CITATION = ("Lu, Chen, Pu, Ma, High-Efficiency Lossy Image Coding Through Adaptive Neighborhood "
            "Information Aggregation, arXiv 2204.11448 (TinyLIC); code lumingzzz/TinyLIC")

Group = tuple[tuple[int, int], ...] | None  # (row parity, col parity) positions; None = all


class _RoundSTE(torch.autograd.Function):
    """torch.round in the forward (bit-exact), identity gradient."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return _RoundSTE.apply(x)


def mcm_slices(M: int, num_slices: int = 4) -> list[int]:
    """Cosine channel schedule: n_t = ceil(cos(t/T·π/2)·M); sizes n_{t−1} − n_t (M=320 → 24/69/104/123)."""
    n = [M] + [math.ceil(math.cos(t / num_slices * math.pi / 2) * M) for t in range(1, num_slices)] + [0]
    return [n[t - 1] - n[t] for t in range(1, num_slices + 1)]


def _ep(ci: int, widths: Sequence[int]) -> nn.Sequential:
    """1×1 conv → GELU → 1×1 conv → GELU → 1×1 conv (keys .0/.2/.4)."""
    a, b, c = widths
    return nn.Sequential(nn.Conv2d(ci, a, 1), nn.GELU(), nn.Conv2d(a, b, 1), nn.GELU(), nn.Conv2d(b, c, 1))


def _group_mask(groups: Group, H: int, W: int, device) -> torch.Tensor:
    if groups is None:
        return torch.ones(1, 1, H, W, dtype=torch.bool, device=device)
    m = torch.zeros(1, 1, H, W, dtype=torch.bool, device=device)
    for py, px in groups:
        m[..., py::2, px::2] = True
    return m


_S00, _S11, _S01, _S10 = ((0, 0),), ((1, 1),), ((0, 1),), ((1, 0),)


class TinyLIC(CompressionModel):
    """TinyLIC v3 (``block="rnab"``, ``context="mcm"``) or v1 (``block="rstb"``, ``context="spatial4"``).

    Args:
        N, M: transform / latent widths. channels: the four g_a stage widths (default (N, 3N/2, 2N, M)).
        hyper_channels: h_a/h_s width and EntropyBottleneck channels (default 3N/2).
        depths, num_heads: per encoder stage g_a1, g_a3, g_a5, g_a7, h_a1, h_a3; the decoder
            (h_s0, h_s2, g_s0, g_s2, g_s4, g_s6) uses them reversed. num_heads default: width/16.
        kernel_size, hyper_kernel_size: NA kernel (v3) or Swin window (v1).
        drop_path_rate: stochastic depth, linspace(0, rate, sum(depths)) sliced like the official code.
        context: "mcm" (v3) or "spatial4" (v1). train_resolution: v1 Swin window clamping crop size.
        v1_entropy_parameters: "code" (v1 code: concat(ψ, ctx1, ctx2, ctx3) 8M→6M→4M→2M) or
            "supplement" (Tables 1–2: ψ ⊕ Σctx, 4M→10M/3→8M/3→2M; the contexts are disjoint, so the
            sum equals the current step's context). Only for ``context="spatial4"``.
        in_channels, out_channels: image channels at g_a0 / g_s7 (3 = RGB; 1 for the Y-only model).
        attention_impl: neighborhood-attention path (v3 RNABs; no effect on v1's Swin blocks):
            "auto" (default: natten's kernels if usable, else FlexAttention on CUDA; "chunked" on the CPU),
            "reference" (windows materialised and kept for backward), "chunked" (the reference's
            computation with per-chunk recomputation in backward: same forward bit for bit, memory of a
            chunk), "flex" (FlexAttention, compiled; CPU: inference only), "natten". Not in the state_dict.
        use_natten: let "auto" use the ``natten`` CUDA kernels when installed and on CUDA.
        entropy_coder: rANS path of y and z, "fast" (:mod:`lic.entropy.fast`) or "compressai"
            (CompressAI's per-call ``compressai.ans`` / ``EntropyBottleneck.compress``); same bytes.
    """

    def __init__(self, N: int = 128, M: int = 320, *, block: str = "rnab", context: str = "mcm",
                 channels: Sequence[int] | None = None, hyper_channels: int | None = None,
                 depths: Sequence[int] = (2, 2, 6, 2, 2, 2), num_heads: Sequence[int] | None = None,
                 kernel_size: int = 7, hyper_kernel_size: int = 3, mlp_ratio: float = 2.0,
                 drop_path_rate: float = 0.1, train_resolution: int = 256, use_natten: bool = True,
                 attention_impl: str = "auto",
                 v1_entropy_parameters: str = "code", in_channels: int = 3, out_channels: int | None = None,
                 entropy_coder: str = "fast"):
        super().__init__()
        self.entropy_coder_name = check_coder(entropy_coder)  # "fast" | "compressai": same bytes
        check_impl(attention_impl)  # each NeighborhoodAttention holds it (lic.layers.set_attention_impl switches)
        if len(tuple(depths)) != 6:
            raise ValueError(f"depths needs 6 entries (g_a1, g_a3, g_a5, g_a7, h_a1, h_a3), got {depths}")
        c = list(channels) if channels is not None else [N, 3 * N // 2, 2 * N, M]
        hc = hyper_channels if hyper_channels is not None else 3 * N // 2
        if c[3] != M:
            raise ValueError(f"channels[3] must equal M={M}")
        widths = c + [hc, hc]
        heads = list(num_heads) if num_heads is not None else [w // 16 for w in widths]
        depths = list(depths)
        self.N, self.M, self.block, self.context = N, M, block, context
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        res = [train_resolution // 2 ** s for s in (1, 2, 3, 4, 5, 6)]  # map size per encoder stage
        ks = [kernel_size] * 4 + [hyper_kernel_size] * 2

        def stage(i: int, lo: int, order: list[int]) -> nn.Module:
            d, r = depths[i], dpr[lo:lo + depths[i]]
            if block == "rnab":
                return rnab(widths[i], d, heads[i], ks[i], r, mlp_ratio, use_natten, attention_impl)
            if block == "rstb":
                return rstb(widths[i], d, heads[i], ks[i], r, res[i], mlp_ratio)
            raise ValueError(f"unknown block {block!r}")

        enc_lo = [sum(depths[:i]) for i in range(6)]
        dec_order = [5, 4, 3, 2, 1, 0]  # h_s0, h_s2, g_s0, g_s2, g_s4, g_s6 use stages reversed
        dec_lo = [sum(depths[j] for j in dec_order[:t]) for t in range(6)]
        dec = {j: stage(j, dec_lo[t], dec_order) for t, j in enumerate(dec_order)}

        self.g_a0, self.g_a1 = conv(in_channels, c[0], 5, 2), stage(0, enc_lo[0], [])
        self.g_a2, self.g_a3 = conv(c[0], c[1], 3, 2), stage(1, enc_lo[1], [])
        self.g_a4, self.g_a5 = conv(c[1], c[2], 3, 2), stage(2, enc_lo[2], [])
        self.g_a6, self.g_a7 = conv(c[2], M, 3, 2), stage(3, enc_lo[3], [])
        self.h_a0, self.h_a1 = conv(M, hc, 3, 2), stage(4, enc_lo[4], [])
        self.h_a2, self.h_a3 = conv(hc, hc, 3, 2), stage(5, enc_lo[5], [])
        self.h_s0, self.h_s1 = dec[5], deconv(hc, hc, 3, 2)
        self.h_s2, self.h_s3 = dec[4], deconv(hc, 2 * M, 3, 2)
        self.g_s0, self.g_s1 = dec[3], deconv(M, c[2], 3, 2)
        self.g_s2, self.g_s3 = dec[2], deconv(c[2], c[1], 3, 2)
        self.g_s4, self.g_s5 = dec[1], deconv(c[1], c[0], 3, 2)
        self.g_s6, self.g_s7 = dec[0], deconv(c[0], in_channels if out_channels is None else out_channels, 5, 2)

        self.entropy_bottleneck = EntropyBottleneck(hc)
        self.gaussian_conditional = GaussianConditional(None)

        if context == "mcm":
            s = self.slices = mcm_slices(M, 4)
            self.steps: list[list[Group]] = [[_S00, _S11, _S01, _S10], [_S01 + _S10, _S00 + _S11],
                                             [_S00 + _S11, _S01 + _S10], [None]]
            self.cc_transforms = nn.ModuleList(
                nn.Sequential(nn.Conv2d(2 * M + sum(s[:i]), s[i], 5, padding=2), nn.GELU(),
                              nn.Conv2d(s[i], s[i], 5, padding=2), nn.GELU(),
                              nn.Conv2d(s[i], 2 * s[i], 3, padding=1)) for i in range(4))
            self.sc_transform_1 = MultistageMaskedConv2d(s[0], 2 * s[0], 3, "A")
            self.sc_transform_2 = MultistageMaskedConv2d(s[0], 2 * s[0], 5, "B")
            self.sc_transform_3 = MultistageMaskedConv2d(s[0], 2 * s[0], 5, "C")
            self.sc_transform_4 = MultistageMaskedConv2d(s[1], 2 * s[1], 5, "B")
            self.sc_transform_5 = MultistageMaskedConv2d(s[2], 2 * s[2], 5, "B")
            for j in range(3):
                o = 2 * s[j]
                setattr(self, f"entropy_parameters_{j + 1}", _ep(2 * M + 2 * o, (o * 10 // 6, o * 8 // 6, o)))
            o = 2 * s[3]
            self.entropy_parameters_4 = _ep(2 * M + o, (o, o, o))
            self._sc = {(0, 1): "sc_transform_1", (0, 2): "sc_transform_2", (0, 3): "sc_transform_3",
                        (1, 1): "sc_transform_4", (2, 1): "sc_transform_5"}
        elif context == "spatial4":
            self.slices = [M]
            self.steps = [[_S00, _S11, _S01, _S10]]
            self.context_prediction_1 = MultistageMaskedConv2d(M, 2 * M, 3, "A")
            self.context_prediction_2 = MultistageMaskedConv2d(M, 2 * M, 3, "B")
            self.context_prediction_3 = MultistageMaskedConv2d(M, 2 * M, 3, "D")
            if v1_entropy_parameters == "code":
                self.entropy_parameters = _ep(8 * M, (6 * M, 4 * M, 2 * M))
            elif v1_entropy_parameters == "supplement":
                self.entropy_parameters = _ep(4 * M, (10 * M // 3, 8 * M // 3, 2 * M))
            else:
                raise ValueError(f"unknown v1_entropy_parameters {v1_entropy_parameters!r}")
            self.v1_entropy_parameters = v1_entropy_parameters
        else:
            raise ValueError(f"unknown context {context!r}")
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------------------ transforms
    def g_a(self, x):
        for i in range(8):
            x = getattr(self, f"g_a{i}")(x)
        return x

    def h_a(self, y):
        for i in range(4):
            y = getattr(self, f"h_a{i}")(y)
        return y

    def h_s(self, z):
        for i in range(4):
            z = getattr(self, f"h_s{i}")(z)
        return z

    def g_s(self, y):
        for i in range(8):
            y = getattr(self, f"g_s{i}")(y)
        return y

    # ------------------------------------------------------------------------------ context model
    def _entropy_params(self, i: int, s: int, psi, cc, y_hat, mask):
        """(scales, means) of slice i, step s, over the whole map (valid at the step's positions)."""
        if self.context == "mcm":
            if i == 3:
                params = self.entropy_parameters_4(torch.cat([psi, cc], 1))
            else:
                name = self._sc.get((i, s))
                sc = (getattr(self, name)(y_hat) * mask if name is not None
                      else y_hat.new_zeros(y_hat.shape[0], 2 * y_hat.shape[1], *y_hat.shape[2:]))
                params = getattr(self, f"entropy_parameters_{i + 1}")(torch.cat([psi, sc, cc], 1))
        else:
            B, C, H, W = y_hat.shape
            n_ctx = 3 if self.v1_entropy_parameters == "code" else 1
            ctx = [y_hat.new_zeros(B, 2 * C, H, W) for _ in range(n_ctx)]
            if s > 0:
                ctx[min(s, n_ctx) - 1] = getattr(self, f"context_prediction_{s}")(y_hat) * mask
            params = self.entropy_parameters(torch.cat([psi, *ctx], 1))
        scales, means = params.chunk(2, 1)
        return scales, means

    StepFn = Callable[[int, Group, torch.Tensor, torch.Tensor], torch.Tensor]

    def _code_y(self, psi: torch.Tensor, step: StepFn):
        """Walk the stages; ``step(slice, groups, scales, means)`` returns ŷ of the slice (valid at
        ``groups``). Returns per slice: ŷ, scales, means (each step's values at its positions)."""
        B, _, H, W = psi.shape
        y_hats, scales_out, means_out = [], [], []
        for i, ch in enumerate(self.slices):
            cc = (self.cc_transforms[i](torch.cat([psi, *y_hats], 1)) if self.context == "mcm" else None)
            y_hat = psi.new_zeros(B, ch, H, W)
            sc_all, mu_all = torch.zeros_like(y_hat), torch.zeros_like(y_hat)
            for s, groups in enumerate(self.steps[i]):
                mask = _group_mask(groups, H, W, psi.device)
                scales, means = self._entropy_params(i, s, psi, cc, y_hat, mask)
                vals = step(i, groups, scales, means)
                y_hat = torch.where(mask, vals, y_hat)
                sc_all = torch.where(mask, scales, sc_all)
                mu_all = torch.where(mask, means, mu_all)
            y_hats.append(y_hat)
            scales_out.append(sc_all)
            means_out.append(mu_all)
        return y_hats, scales_out, means_out

    # ------------------------------------------------------------------------------ API
    def forward(self, x):
        y = self.g_a(x)
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        med = self.entropy_bottleneck._get_medians()
        z_hat = round_ste(z - med) + med
        psi = self.h_s(z_hat)
        ys = y.split(self.slices, 1)
        y_hats, scales, means = self._code_y(psi, lambda i, g, sc, mu: round_ste(ys[i] - mu) + mu)
        y_lik = [self.gaussian_conditional(ys[i], scales[i], means=means[i])[1] for i in range(len(ys))]
        x_hat = self.g_s(torch.cat(y_hats, 1))
        return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(y_lik, 1), "z": z_likelihoods}}

    @staticmethod
    def _groups_of(t: torch.Tensor, b: int, groups: Group) -> list[torch.Tensor]:
        if groups is None:
            return [t[b]]
        return [t[b, :, py::2, px::2] for py, px in groups]

    def bitstream_shape(self, height: int, width: int) -> tuple[int, ...]:
        """The ``shape`` :meth:`compress` stores for a ``height`` x ``width`` (RGB, padded) input: z's size."""
        return (-(-height // 64), -(-width // 64))

    def _cdf_args(self):
        """The GaussianConditional's CDF tables in the form of the selected coder path."""
        return coder(self.entropy_coder_name).tables(self.gaussian_conditional)

    @torch.no_grad()
    def compress(self, x):
        out = self._compress(x)
        return {"strings": out["strings"], "shape": out["shape"]}

    def _compress(self, x):
        """compress + the ŷ the decoder will reconstruct (used by the MSR encoder)."""
        y = self.g_a(x)
        z = self.h_a(y)
        rc = coder(self.entropy_coder_name)
        z_strings = rc.eb_compress(self.entropy_bottleneck, z)
        z_hat = rc.eb_decompress(self.entropy_bottleneck, z_strings, z.size()[-2:])
        psi = self.h_s(z_hat)
        ys = y.split(self.slices, 1)
        B = x.shape[0]
        symbols: list[list[torch.Tensor]] = [[] for _ in range(B)]
        indexes: list[list[torch.Tensor]] = [[] for _ in range(B)]

        def step(i, groups, scales, means):
            q = torch.round(ys[i] - means)
            idx = scale_indexes(self.gaussian_conditional, scales)
            for b in range(B):
                symbols[b] += [t.reshape(-1) for t in self._groups_of(q, b, groups)]
                indexes[b] += [t.reshape(-1) for t in self._groups_of(idx, b, groups)]
            return q + means

        y_hats, _, _ = self._code_y(psi, step)
        tables = self._cdf_args()
        y_strings = []
        for b in range(B):
            enc = rc.encoder()
            enc.encode(torch.cat(symbols[b]).int(), torch.cat(indexes[b]).int(), tables)
            y_strings.append(enc.flush())
        return {"strings": [y_strings, z_strings], "shape": tuple(int(s) for s in z.size()[-2:]),
                "y_hat": torch.cat(y_hats, 1)}

    @torch.no_grad()
    def decompress(self, strings, shape):
        return {"x_hat": self.g_s(self._decompress_y(strings, shape)).clamp_(0, 1)}

    def _decompress_y(self, strings, shape) -> torch.Tensor:
        """Decode ŷ (all slices, concatenated) from ``strings = [[y], [z]]``."""
        rc = coder(self.entropy_coder_name)
        z_hat = rc.eb_decompress(self.entropy_bottleneck, strings[1], tuple(shape))
        psi = self.h_s(z_hat)
        B = z_hat.shape[0]
        tables = self._cdf_args()
        decoders = [rc.decoder(strings[0][b]) for b in range(B)]

        def step(i, groups, scales, means):
            idx = scale_indexes(self.gaussian_conditional, scales)
            vals = means.clone()
            for b in range(B):
                for gi, (ix, mu) in enumerate(zip(self._groups_of(idx, b, groups), self._groups_of(means, b, groups))):
                    q = decoders[b].decode(ix.int(), tables).to(dtype=mu.dtype, device=mu.device).reshape(mu.shape)
                    if groups is None:
                        vals[b] = q + mu
                    else:
                        py, px = groups[gi]
                        vals[b, :, py::2, px::2] = q + mu
            return vals

        y_hats, _, _ = self._code_y(psi, step)
        return torch.cat(y_hats, 1)


def convert_official_state_dict(sd: dict) -> dict:
    """An official lumingzzz/TinyLIC checkpoint → this model's keys.

    Accepts a raw state_dict or ``{"state_dict": ...}``; strips ``module.``; renames the
    EntropyBottleneck's ``_matrix{i}``/``_bias{i}``/``_factor{i}`` to compressai 1.2.8's
    ``matrices.i``/``biases.i``/``factors.i``; drops v1 Swin ``attn_mask`` buffers (recomputed here).
    Load the result with ``model.load_state_dict(...)`` (which resizes the CDF buffers), then call
    ``model.update(force=True)`` if the checkpoint's CDF tables are absent.
    """
    import re

    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    out = {}
    for k, v in sd.items():
        if k.startswith("module."):
            k = k[len("module."):]
        if k.endswith(".attn_mask"):
            continue
        k = re.sub(r"entropy_bottleneck\._(matrix|bias|factor)(\d+)$",
                   lambda m: f"entropy_bottleneck.{ {'matrix': 'matrices', 'bias': 'biases', 'factor': 'factors'}[m.group(1)] }.{m.group(2)}",
                   k)
        out[k] = v
    return out


# ------------------------------------------------------------------------------------ registry
V1 = dict(block="rstb", context="spatial4", depths=(2, 4, 6, 2, 2, 2), num_heads=(8, 8, 8, 16, 16, 16),
          kernel_size=8, hyper_kernel_size=4)


#: CompressAI's eight MSE λ (qualities 1-8), the released v3 set
LAMBDAS = (0.0018, 0.0035, 0.0067, 0.0130, 0.0250, 0.0483, 0.0932, 0.1800)


@register("lu2022-tinylic-v3", description="TinyLIC v3 (released): RNAB (neighborhood attention) "
          "transforms, multistage channel/spatial context model", citation=CITATION, pad_multiple=64,
          official=OfficialRelease(convert_official_state_dict, "v3: 8 MSE λ (qualities 1-8, 0.0018–0.18) "
                                   "and MS-SSIM models; NJU Box, linked from lumingzzz/TinyLIC's README "
                                   "(https://box.nju.edu.cn/d/d5e8243f5e4b44848769/)", LAMBDAS,
                                   # the fork's eval_model: centred zeros to 256 (not the model's 64)
                                   eval_script="lumingzzz/TinyLIC@b9081f7:compressai/utils/eval_model/__main__.py",
                                   eval_pad_multiple=256),
          N=128, M=320)
def tinylic_v3(N: int = 128, M: int = 320, **kwargs) -> TinyLIC:
    return TinyLIC(N, M, **kwargs)


def _v1(N: int, M: int, **kwargs) -> TinyLIC:
    cfg = {**V1, "channels": (N, N, N, M), "hyper_channels": N, **kwargs}
    return TinyLIC(N, M, **cfg)


@register("lu2022-tinylic-low", description="TinyLIC v1 / supplement Table 1 (low rate): Swin RSTB "
          "transforms, 4-step spatial context model", citation=CITATION, pad_multiple=256, N=128, M=192)
def tinylic_low(N: int = 128, M: int = 192, **kwargs) -> TinyLIC:
    return _v1(N, M, **kwargs)


@register("lu2022-tinylic-high", description="TinyLIC v1 / supplement Table 2 (high rate): Swin RSTB "
          "transforms, 4-step spatial context model", citation=CITATION, pad_multiple=256, N=192, M=320)
def tinylic_high(N: int = 192, M: int = 320, **kwargs) -> TinyLIC:
    return _v1(N, M, **kwargs)

