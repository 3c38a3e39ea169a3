"""Kuang, Yang, Guo & Liu, *Cross-Granularity Online Optimization with Masked Compensated
Information for Learned Image Compression*, ICCV 2025 (CGOO) — on the TCM backbone
(:mod:`lic.models.tcm`). No code is public and the main text was not available: the modules follow
the supplement's Tables 1-2; everything else is this project's reading, listed in ``docs/cgoo.md``
with the argument that controls it.

::

    x ─ g_a ─ y ─(online: y* = argmin λ·D + w·R, w<1)─ y* ─ h_a ─ z ─ [EB] ─ hyper ─ (μ, σ)
                                                       │
          ŷ = μ + Δ·round((y* − μ)/Δ)   [GC(σ/Δ)]  ─ LRP ─ ŷ          Δ = qp_steps[qp]   (extra byte 0)
          r = y* − ŷ ─ MSC enc ─ f ─ VQ(codebook) ─ k,  mask m (top gains)   [rANS: 0 | 1+k]
          ŷ' = ŷ + MSC dec(m·codebook[k])                (bias-free decoder: m=0 ⇒ no change)
    x ─ DDT enc ─ s (9) ─(online)─ [EB(9)] ─ ŝ ─ DDT dec ─ W (3×3)
          x_hat = g_s(ŷ') + W·g_s(ŷ')                    (residual colour transform)

Bitstream: ``strings = [[y], z, [ddt], [msc]]`` (the last two empty when the component is off),
``extra = bytes([qp_index, msc_p0])`` where ``msc_p0/256`` is the probability of "no compensation"
used to code the mask (0: no MSC stream), ``shape = (z_h, z_w, H, W)``. The decoder is the model's
fixed weights: every per-image choice travels in the stream.

Where the supplement's "C = 128" is read in TCM's paper notation (C = 2N): **TCM-small, N = 64**
(the default here). Training: :func:`cgoo_stage_setup` / :meth:`CGOO.stage_setup` (stages "tcm"
(only when no pretrained TCM is loaded with :meth:`CGOO.load_tcm_state_dict`), "ddt", "msc",
"codebook_warmup", "codebook"; :attr:`CGOO.training_stages` lists those with something to train).
Online optimisation: :mod:`lic.models.cgoo_online`, run by :meth:`CGOO.compress` itself, with the
λ stored in the checkpoint (buffer ``lmbda``).

Deviations / unknowns: every per-image and training detail beyond the supplement's two tables is
this project's choice (docs/cgoo.md, A1-A16). Parameters at the supplement's widths: MSC encoder
427,328, decoder 425,984, codebook 512×320 + 512 logits, DDT encoder 20,292, decoder 36,617, DDT
entropy bottleneck 549; with TCM-small 46,255,874 in all.

Args (besides every :class:`~lic.models.tcm.TCM` argument; widths are arguments so that a tiny
model can be trained on CPU):
    use_ddt, use_msc: build and use the DDT / MSC modules (ablations).
    ddt_syntax (9), ddt_channels ((32, 64)), ddt_hidden ((128, 256)), ddt_input ("x" | "residual").
    msc_hidden ((256, 512, 256)), codebook_size (512), msc_train_ratio (0.1: the share of latent
    positions that get compensation in training and the "no online" default), commitment (0.25).
    lmbda: the λ of this checkpoint (a buffer; set by :func:`cgoo_stage_setup`), used online.
    online_iters (50), online_lr (0.01), online_rate_weight (0.5: the relaxed rate weight),
    online_seed (0), qp_steps ((0.8, 0.9, 1.0, 1.1, 1.25, 1.4, 1.6)), msc_ratios
    ((0, 0.02, 0.05, 0.1, 0.2)), online_fallback (True: the unrefined latent is a candidate too).
    entropy_coder (TCM's): "fast" or "compressai" for every stream (y, z, DDT syntax, MSC indices).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai._CXX import pmf_to_quantized_cdf
from compressai.entropy_models import EntropyBottleneck
from compressai.ops import quantize_ste
from torch import nn

from lic.entropy.fast import coder
from lic.entropy.indexes import scale_indexes
from lic.models.registry import register
from lic.models.tcm import TCM

__all__ = ["CGOO", "DDTEncoder", "DDTDecoder", "MSCModule", "cgoo_stage_setup", "STAGES"]

CITATION = ("H. Kuang, W. Yang, Z. Guo, J. Liu, Cross-Granularity Online Optimization with Masked "
            "Compensated Information for Learned Image Compression, ICCV 2025")

STAGES = ("tcm", "ddt", "msc", "codebook_warmup", "codebook")
_PRECISION = 16


class DDTEncoder(nn.Module):
    """Supplement Table 2: conv3×3 3→32 s2, ReLU, conv3×3 32→64 s2, ReLU; global average pooling of
    the input, of the 32- and of the 64-channel maps; concat (99); conv1×1 99→9. (B, 9, 1, 1)."""

    def __init__(self, syntax: int = 9, channels: tuple[int, int] = (32, 64)):
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(3, c1, 3, 2, 1)
        self.conv2 = nn.Conv2d(c1, c2, 3, 2, 1)
        self.proj = nn.Conv2d(3 + c1 + c2, syntax, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = F.relu(self.conv1(x))
        d2 = F.relu(self.conv2(d1))
        pooled = [t.mean(dim=(2, 3), keepdim=True) for t in (x, d1, d2)]
        return self.proj(torch.cat(pooled, dim=1))


class DDTDecoder(nn.Module):
    """Supplement Table 2: FC 9→128, GELU, FC 128→256, GELU, FC 256→3·3·1·1, "with residual
    connection": the 9 outputs are a 3×3 colour matrix W applied as x + W·x (i.e. the 1×1 conv
    I + W). The last FC starts at zero, so an untrained DDT is the identity."""

    def __init__(self, syntax: int = 9, hidden: tuple[int, int] = (128, 256)):
        super().__init__()
        h1, h2 = hidden
        self.mlp = nn.Sequential(nn.Linear(syntax, h1), nn.GELU(), nn.Linear(h1, h2), nn.GELU(),
                                 nn.Linear(h2, 9))
        nn.init.zeros_(self.mlp[4].weight)
        nn.init.zeros_(self.mlp[4].bias)

    def forward(self, x_hat: torch.Tensor, s_hat: torch.Tensor) -> torch.Tensor:
        w = self.mlp(s_hat.flatten(1)).view(-1, 3, 3)
        return x_hat + torch.einsum("bij,bjhw->bihw", w, x_hat)


def _mlp1x1(dims: tuple[int, ...], bias: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        if i:
            layers.append(nn.GELU())
        layers.append(nn.Conv2d(a, b, 1, bias=bias))
    return nn.Sequential(*layers)


class MSCModule(nn.Module):
    """Mask-based selective compensation, supplement Table 1: encoder 1×1 convs M→256→512→256→M
    (GELU between), decoder the same **without bias**, plus a codebook (K × M) and learned logits
    of the codeword prior. The encoder input is the latent residual r = y − ŷ (ŷ after LRP)."""

    def __init__(self, M: int = 320, hidden: tuple[int, ...] = (256, 512, 256), codebook_size: int = 512):
        super().__init__()
        self.encoder = _mlp1x1((M, *hidden, M), bias=True)
        self.decoder = _mlp1x1((M, *hidden, M), bias=False)
        self.codebook = nn.Parameter(torch.randn(codebook_size, M) * 0.1)
        self.logits = nn.Parameter(torch.zeros(codebook_size))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def nearest(self, f: torch.Tensor) -> torch.Tensor:
        """(B, M, H, W) features → (B, H, W) indices of the nearest codewords (squared L2)."""
        flat = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
        d = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.codebook.t()
             + self.codebook.pow(2).sum(1)[None])
        return d.argmin(1).view(f.shape[0], *f.shape[2:])

    def lookup(self, k: torch.Tensor) -> torch.Tensor:
        """(B, H, W) indices → (B, M, H, W) codewords."""
        return self.codebook[k].permute(0, 3, 1, 2)

    def init_codebook(self, f: torch.Tensor) -> None:
        """Data initialisation (the warm-up's first batch): codewords = random feature vectors."""
        flat = f.detach().permute(0, 2, 3, 1).reshape(-1, f.shape[1])
        idx = torch.randint(flat.shape[0], (self.codebook.shape[0],), device=flat.device)
        with torch.no_grad():
            self.codebook.copy_(flat[idx])
            self.initialised.fill_(True)

    def index_pmf(self, p0: float) -> list[float]:
        """[p(no compensation), p(codeword 0..K-1)·(1-p0)] + a tiny tail mass, for the rANS CDF."""
        q = torch.softmax(self.logits.detach().double().cpu(), 0) * (1 - p0)
        return [p0] + q.tolist() + [1e-9]


def _gain(r: torch.Tensor, comp: torch.Tensor) -> torch.Tensor:
    """Per-position latent-domain error reduction ‖r‖² − ‖r − comp‖², (B, H, W)."""
    return r.pow(2).sum(1) - (r - comp).pow(2).sum(1)


def _top_mask(score: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B, H, W) float mask of the ``ratio`` share of positions with the largest positive score."""
    b, h, w = score.shape
    n = int(round(ratio * h * w))
    mask = torch.zeros_like(score)
    if n <= 0:
        return mask
    flat = score.reshape(b, -1)
    idx = flat.topk(n, dim=1).indices
    mask.view(b, -1).scatter_(1, idx, 1.0)
    return mask * (score > 0)


class CGOO(TCM):
    """CGOO on TCM (default N=64, TCM-small). See the module docstring for the arguments."""

    def __init__(self, *, N: int = 64, use_ddt: bool = True, use_msc: bool = True, ddt_syntax: int = 9,
                 ddt_channels=(32, 64), ddt_hidden=(128, 256), ddt_input: str = "x",
                 msc_hidden=(256, 512, 256), codebook_size: int = 512, msc_train_ratio: float = 0.1,
                 commitment: float = 0.25, lmbda: float = 0.013, online_iters: int = 50,
                 online_lr: float = 0.01, online_rate_weight: float = 0.5, online_seed: int = 0,
                 qp_steps=(0.8, 0.9, 1.0, 1.1, 1.25, 1.4, 1.6), msc_ratios=(0.0, 0.02, 0.05, 0.1, 0.2),
                 online_fallback: bool = True, **tcm_kwargs):
        super().__init__(N=N, **tcm_kwargs)
        if ddt_input not in ("x", "residual"):
            raise ValueError(f"ddt_input must be 'x' or 'residual', got {ddt_input!r}")
        qp_steps = tuple(float(q) for q in qp_steps)
        if not qp_steps or len(qp_steps) > 256 or min(qp_steps) <= 0:
            raise ValueError("qp_steps needs 1..256 positive quantisation steps")
        self.use_ddt, self.use_msc, self.ddt_input = use_ddt, use_msc, ddt_input
        self.msc_train_ratio, self.commitment = float(msc_train_ratio), float(commitment)
        self.online_iters, self.online_lr = int(online_iters), float(online_lr)
        self.online_rate_weight, self.online_seed = float(online_rate_weight), int(online_seed)
        self.qp_steps, self.msc_ratios = qp_steps, tuple(float(r) for r in msc_ratios)
        self.online_fallback = bool(online_fallback)
        self.register_buffer("lmbda", torch.tensor([float(lmbda)], dtype=torch.float64))
        if use_ddt:
            self.ddt_encoder = DDTEncoder(ddt_syntax, tuple(ddt_channels))
            self.ddt_decoder = DDTDecoder(ddt_syntax, tuple(ddt_hidden))
            self.ddt_bottleneck = EntropyBottleneck(ddt_syntax)
        if use_msc:
            self.msc = MSCModule(self.M, tuple(msc_hidden), codebook_size)
        self.train_stage = "codebook"  # what forward computes; set by cgoo_stage_setup

    @property
    def default_qp_index(self) -> int:
        """Index of the step closest to 1 (Δ = 1 is plain TCM quantisation)."""
        return min(range(len(self.qp_steps)), key=lambda i: abs(self.qp_steps[i] - 1.0))

    # ------------------------------------------------------------------ shared pieces
    def ddt_syntax(self, x_pad: torch.Tensor, x_hat: torch.Tensor | None = None) -> torch.Tensor:
        """The 9 DDT numbers before quantisation, from x (or x − x̂ with ``ddt_input='residual'``)."""
        return self.ddt_encoder(x_pad if self.ddt_input == "x" else x_pad - x_hat)

    def ddt_quantize_ste(self, s: torch.Tensor) -> torch.Tensor:
        med = self.ddt_bottleneck._get_medians().reshape(1, -1, 1, 1)
        return quantize_ste(s - med) + med

    def hyper(self, y: torch.Tensor, training: bool):
        """z, its likelihoods and the hyper outputs; STE rounding of z around the medians."""
        z = self.h_a(y)
        _, z_lik = self.entropy_bottleneck(z, training=training)
        med = self.entropy_bottleneck._get_medians()
        z_hat = quantize_ste(z - med) + med
        return z, z_lik, self._hyper_synthesis(z_hat)

    def latent_ste(self, y: torch.Tensor, training: bool) -> tuple[torch.Tensor, dict]:
        """The differentiable coding loop (Δ = 1): ŷ with STE rounding, likelihoods of y and z
        (additive noise when ``training``, rounding otherwise)."""
        _, z_lik, (lm, ls) = self.hyper(y, training)
        y_lik: list[torch.Tensor] = []

        def code(i, y_i, mu, sigma):
            _, lik = self.gaussian_conditional(y_i, sigma, mu, training=training)
            y_lik.append(lik)
            return quantize_ste(y_i - mu) + mu

        y_hat, _, _ = self._code_slices(lm, ls, code, y)
        return y_hat, {"y": torch.cat(y_lik, 1), "z": z_lik}

    def compensation(self, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSC decoder output for indices ``k`` and a 0/1 ``mask`` (B, H, W)."""
        return self.msc.decoder(self.msc.lookup(k) * mask[:, None])

    def synthesize(self, y_hat: torch.Tensor, s_hat: torch.Tensor | None) -> torch.Tensor:
        x_hat = self.g_s(y_hat)
        if self.use_ddt and s_hat is not None:
            x_hat = self.ddt_decoder(x_hat, s_hat)
        return x_hat

    # ------------------------------------------------------------------ training forward
    def forward(self, x: torch.Tensor) -> dict:
        """Training/estimation forward of the current ``train_stage`` (Δ = 1). Returns x_hat,
        likelihoods (y, z, and ddt / msc when active) and, for the codebook stages, ``vq`` =
        {"codebook", "commitment"} losses.

        MSC mask: in training, the ``msc_train_ratio`` share of positions. In eval mode it follows the
        encoder (:func:`lic.models.cgoo_online.online_encode`), so that the estimated rate describes the
        stream ``compress`` writes: ``msc_ratios``' one ratio when there is one (0: no MSC, no "msc"
        likelihoods); when there are several, the one of smallest λ·255²·MSE + estimated bpp, as the
        encoder picks the smallest real cost; the mask's probability coded as the encoder codes it
        (``p0`` in 1/256 steps). The estimate still differs from the stream by the encoder's other
        choices: online refinement and QP (Δ = 1 here)."""
        x = x.contiguous()  # a channels-last batch segfaults the backward on CPU (torch 2.14.1), as in TCM.forward
        h, w = x.shape[-2:]
        x_pad = self._pad(x)
        stage = self.train_stage
        y = self.g_a(x_pad)
        y_hat, lik = self.latent_ste(y, self.training)
        out: dict = {"likelihoods": lik}
        if self.use_msc and stage in ("msc", "codebook_warmup", "codebook"):
            r = (y - y_hat).detach()  # the backbone is frozen in these stages
            f = self.msc.encoder(r)
            if stage == "msc":  # continuous compensation (no codebook yet)
                comp = self.msc.decoder(f)
                mask = _top_mask(_gain(r, comp).detach(), self.msc_train_ratio)
                y_hat = y_hat + comp * mask[:, None]
            else:
                if self.training and not bool(self.msc.initialised):
                    self.msc.init_codebook(f)
                k = self.msc.nearest(f.detach())
                c = self.msc.lookup(k)
                out["vq"] = {"codebook": F.mse_loss(c, f.detach()), "commitment": F.mse_loss(f, c.detach())}
                f_q = f + (c - f).detach()  # straight-through
                comp = self.msc.decoder(f_q)
                gain = _gain(r, comp).detach()
                logp = torch.log_softmax(self.msc.logits, 0)[k]
                if self.training:
                    mask = _top_mask(gain, self.msc_train_ratio)
                    y_hat = y_hat + comp * mask[:, None]
                    p0 = 1.0 - self.msc_train_ratio
                    msc_lik = torch.where(mask > 0, (1 - p0) * logp.exp(), torch.full_like(logp, p0))
                    out["likelihoods"]["msc"] = msc_lik[:, None]
                else:
                    return self._eval_msc(x, x_pad, y_hat, comp, gain, logp, out)
        return self._synthesis_out(x_pad, y_hat, h, w, out)

    def _synthesis_out(self, x_pad: torch.Tensor, y_hat: torch.Tensor, h: int, w: int, out: dict) -> dict:
        """forward's tail: g_s, the DDT (its syntax's likelihoods), x_hat cropped."""
        x_hat = self.g_s(y_hat)
        if self.use_ddt and self.train_stage != "tcm":
            s = self.ddt_syntax(x_pad, x_hat.detach())
            _, s_lik = self.ddt_bottleneck(s, training=self.training)
            x_hat = self.ddt_decoder(x_hat, self.ddt_quantize_ste(s))
            out["likelihoods"]["ddt"] = s_lik
        out["x_hat"] = x_hat[..., :h, :w]
        return out

    def _eval_msc(self, x, x_pad, y_hat, comp, gain, logp, out: dict) -> dict:
        """The eval forward's MSC, as the encoder decides it (see :meth:`forward`)."""
        h, w = x.shape[-2:]
        best, best_cost = None, float("inf")
        for ratio in self.msc_ratios:
            cand = {**out, "likelihoods": dict(out["likelihoods"])}
            mask = _top_mask(gain, ratio)
            y_c = y_hat
            if mask.sum() > 0:  # as encode_latent: the mask's probability in 1/256 steps
                p0 = min(255, max(1, round(256 * (1 - float(mask.mean()))))) / 256
                y_c = y_hat + comp * mask[:, None]
                msc_lik = torch.where(mask > 0, (1 - p0) * logp.exp(), torch.full_like(logp, p0))
                cand["likelihoods"]["msc"] = msc_lik[:, None]
            cand = self._synthesis_out(x_pad, y_c, h, w, cand)
            if len(self.msc_ratios) == 1:
                return cand
            bits = sum(-torch.log2(lk).sum() for lk in cand["likelihoods"].values())
            cost = float(self.lmbda) * 255 ** 2 * float(F.mse_loss(cand["x_hat"].clamp(0, 1), x)) + \
                float(bits) / (h * w)
            if cost < best_cost:
                best, best_cost = cand, cost
        return best

    # ------------------------------------------------------------------ bitstreams
    def encode_latent(self, y: torch.Tensor, s: torch.Tensor | None, qp_index: int, msc_ratio: float,
                      size: tuple[int, int]) -> dict:
        """Real coding of a given latent y (and DDT syntax s) with step ``qp_steps[qp_index]`` and
        MSC on the ``msc_ratio`` share of positions. Returns the compress dict plus ``x_hat`` (the
        decoder's exact output, clamped and cropped) and ``n_bytes`` (all strings and extra)."""
        delta = self.qp_steps[qp_index]
        z = self.h_a(y)
        rc = coder(self.entropy_coder_name)
        z_strings = rc.eb_compress(self.entropy_bottleneck, z)
        z_hat = rc.eb_decompress(self.entropy_bottleneck, z_strings, z.shape[-2:])
        lm, ls = self._hyper_synthesis(z_hat)
        tables = self._gc_tables()
        gc = self.gaussian_conditional
        encoder = rc.encoder()

        def code(i, y_i, mu, sigma):
            indexes = scale_indexes(gc, sigma / delta)
            symbols = torch.round((y_i - mu) / delta).int()
            encoder.encode(symbols, indexes, tables)
            return symbols.to(mu.dtype) * delta + mu

        y_hat, _, _ = self._code_slices(lm, ls, code, y)
        strings = [[encoder.flush()], z_strings, [], []]
        p0_code = 0
        if self.use_msc and msc_ratio > 0:
            r = y - y_hat
            k = self.msc.nearest(self.msc.encoder(r))
            comp = self.msc.decoder(self.msc.lookup(k))
            mask = _top_mask(_gain(r, comp), msc_ratio)
            if mask.sum() > 0:
                p0_code = min(255, max(1, round(256 * (1 - float(mask.mean())))))
                symbols = torch.where(mask > 0, k + 1, torch.zeros_like(k))
                strings[3] = [self._msc_coder(p0_code, symbols)]
                y_hat = y_hat + self.compensation(k, mask)
        s_hat = None
        if self.use_ddt:
            strings[2] = rc.eb_compress(self.ddt_bottleneck, s)
            s_hat = rc.eb_decompress(self.ddt_bottleneck, strings[2], (1, 1))
        x_hat = self.synthesize(y_hat, s_hat).clamp_(0, 1)[..., : size[0], : size[1]]
        extra = bytes([qp_index, p0_code])
        n_bytes = sum(len(b) for g in strings for b in g) + len(extra)
        return {"strings": strings, "extra": extra, "x_hat": x_hat, "n_bytes": n_bytes,
                "shape": (int(z.shape[-2]), int(z.shape[-1]), int(size[0]), int(size[1]))}

    def _msc_coder(self, p0_code: int, symbols: torch.Tensor | None = None, string: bytes | None = None,
                   shape=None):
        """rANS coding of the MSC symbols (0 = no compensation, 1+k = codeword k), one CDF."""
        pmf = self.msc.index_pmf(p0_code / 256)
        cdf = pmf_to_quantized_cdf(pmf, _PRECISION)
        rc = coder(self.entropy_coder_name)
        tables = rc.make_tables([cdf], [len(cdf)], [0])
        if symbols is not None:
            flat = symbols.reshape(-1).int()
            return rc.encode(flat, torch.zeros_like(flat), tables)
        n = shape[0] * shape[1]
        values = rc.decode(string, torch.zeros(n, dtype=torch.int32), tables)
        return values.long().view(1, *shape)

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        """Encode one image, with the online optimisation of :mod:`lic.models.cgoo_online`
        (gradients are enabled inside it even under ``torch.no_grad``)."""
        from lic.models.cgoo_online import online_encode

        x = x.contiguous()  # the online refinement runs a backward pass: see forward

        if x.size(0) != 1:
            raise ValueError(f"CGOO.compress codes one image at a time (batch 1), got batch {x.size(0)}")
        enc = online_encode(self, x)
        # x_hat: the decoder's exact output for the chosen candidate (lic.codec.encode uses it as the
        # encoder's reconstruction instead of decoding the streams once more)
        return {"strings": enc["strings"], "shape": enc["shape"], "extra": enc["extra"], "x_hat": enc["x_hat"]}

    #: stream groups [y], [z], [ddt], [msc]: the last two hold one stream when the component is on, else none
    bitstream_groups = ((1, 1), (1, 1), (0, 1), (0, 1))

    @torch.no_grad()
    def decompress(self, strings, shape, extra: bytes = b"") -> dict:
        """Inverse of :meth:`compress` with the fixed decoder weights. Output clamped to [0, 1]."""
        if len(extra) != 2 or len(strings) != 4:
            raise ValueError("not a CGOO stream (needs 4 stream groups and 2 extra bytes)")
        qp_index, p0_code = extra[0], extra[1]
        if qp_index >= len(self.qp_steps):
            raise ValueError(f"QP index {qp_index} out of range for {len(self.qp_steps)} steps")
        delta = self.qp_steps[qp_index]
        shape = [int(s) for s in shape]
        rc = coder(self.entropy_coder_name)
        z_hat = rc.eb_decompress(self.entropy_bottleneck, strings[1], shape[:2])
        lm, ls = self._hyper_synthesis(z_hat)
        tables = self._gc_tables()
        gc = self.gaussian_conditional
        decoder = rc.decoder(strings[0][0])

        def code(i, _y_i, mu, sigma):
            indexes = scale_indexes(gc, sigma / delta)
            values = decoder.decode(indexes, tables).to(mu.device).reshape(mu.shape)
            return values.to(mu.dtype) * delta + mu

        y_hat, _, _ = self._code_slices(lm, ls, code)
        if p0_code:
            if not self.use_msc:
                raise ValueError("stream has MSC data but this model has no MSC module")
            sym = self._msc_coder(p0_code, string=strings[3][0], shape=y_hat.shape[-2:]).to(y_hat.device)
            mask = (sym > 0).to(y_hat.dtype)
            y_hat = y_hat + self.compensation((sym - 1).clamp(min=0), mask)
        s_hat = rc.eb_decompress(self.ddt_bottleneck, strings[2], (1, 1)) if self.use_ddt else None
        x_hat = self.synthesize(y_hat, s_hat).clamp_(0, 1)
        if len(shape) >= 4:
            x_hat = x_hat[..., : shape[2], : shape[3]]
        return {"x_hat": x_hat}

    @property
    def training_stages(self) -> list[str]:
        """The stages with something to train, in order ("tcm" first: skip it when a trained TCM
        is loaded with :meth:`load_tcm_state_dict`)."""
        return [st for st in STAGES if _stage_parameters(self, st)]

    #: every stage name :func:`cgoo_stage_setup` knows (``training_stages``: those with parameters)
    all_stages = STAGES

    def load_base_state_dict(self, state_dict) -> None:
        """Trainer hook (``train.init_from``): the trained TCM of the same quality, = :meth:`load_tcm_state_dict`."""
        self.load_tcm_state_dict(state_dict)

    def stage_setup(self, stage: str, lmbda: float | None = None):
        """Trainer hook, = :func:`cgoo_stage_setup` (self, stage, lmbda)."""
        return cgoo_stage_setup(self, stage, lmbda)

    def load_tcm_state_dict(self, state_dict) -> None:
        """Load a TCM checkpoint (same TCM kwargs) into the backbone; CGOO modules keep their weights."""
        from lic.models.tcm import convert_official_state_dict

        sd = convert_official_state_dict(state_dict)
        own = self.state_dict()
        missing = [k for k in own if k not in sd and not k.startswith(("ddt_", "msc.", "lmbda"))]
        if missing:
            raise KeyError(f"TCM state_dict lacks {len(missing)} backbone keys, e.g. {missing[:3]}")
        for k, v in sd.items():  # CDF tables sized by the incoming weights (this model's may be built already)
            if k in own and k.rsplit(".", 1)[-1] in _TABLE_BUFFERS and own[k].shape != v.shape:
                self.get_buffer(k).resize_(v.shape)
                own[k] = self.get_buffer(k)
        self.load_state_dict({**own, **{k: v for k, v in sd.items() if k in own}}, strict=True)


#: an entropy model's CDF-table buffers: their sizes follow the weights they were built from
_TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length")


# ---------------------------------------------------------------------- training stages
def _stage_parameters(model: CGOO, stage: str) -> list[nn.Parameter]:
    """The parameters a stage trains (empty when its modules are switched off)."""
    if stage == "tcm":
        return [p for name, m in model.named_children() if not name.startswith(("ddt_", "msc"))
                for p in m.parameters()]
    if stage == "ddt":
        mods = [model.ddt_encoder, model.ddt_decoder, model.ddt_bottleneck] if model.use_ddt else []
        return [p for m in mods for p in m.parameters()]
    if not model.use_msc:
        return []
    msc = model.msc
    if stage == "msc":
        return [*msc.encoder.parameters(), *msc.decoder.parameters()]
    if stage == "codebook_warmup":
        return [msc.codebook, msc.logits]
    return [*msc.encoder.parameters(), *msc.decoder.parameters(), msc.codebook, msc.logits]


def cgoo_stage_setup(model: CGOO, stage: str, lmbda: float | None = None):
    """Prepare ``model`` for one training stage; return ``(params_to_train, loss_fn)``.

    Freezes every parameter, unfreezes the stage's modules, sets ``model.train_stage`` (what
    ``forward`` computes) and, if given, the λ buffer used by the online optimisation.
    ``loss_fn(out, x) -> {"loss", "bpp", "mse"}`` takes the *whole* forward output.

    ======================  ==============================  ==============================================
    stage (epochs, paper)   trained                         loss
    ======================  ==============================  ==============================================
    tcm (pretrained TCM)    backbone (g_a, g_s, h_*, EM)     λ·255²·MSE + bpp(y, z)
    ddt (500)               DDT enc/dec + its EB(9)         λ·255²·MSE + bpp(y, z, ddt)
    msc (100)               MSC enc/dec (no codebook)       λ·255²·MSE + bpp(y, z, ddt)
    codebook_warmup (200)   codebook + prior logits         ‖sg(f) − c‖² + bpp(msc)
    codebook (1000)         MSC enc/dec, codebook, logits   λ·255²·MSE + bpp(all) + ‖sg(f)−c‖² + β‖f−sg(c)‖²
    ======================  ==============================  ==============================================

    A stage whose modules are absent (``use_ddt``/``use_msc`` off) returns no parameters: skip it.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown CGOO stage {stage!r}; stages: {', '.join(STAGES)}")
    for p in model.parameters():
        p.requires_grad_(False)
    params = _stage_parameters(model, stage)
    for p in params:
        p.requires_grad_(True)
    model.train_stage = stage
    if lmbda is not None:
        model.lmbda.fill_(float(lmbda))
    lam = float(model.lmbda) if lmbda is None else float(lmbda)

    def loss_fn(out: dict, x: torch.Tensor) -> dict:
        n, _, h, w = x.shape
        liks = out["likelihoods"]
        bpp = sum(torch.log(lk).sum() for lk in liks.values()) / (-torch.log(torch.tensor(2.0)) * n * h * w)
        mse = F.mse_loss(out["x_hat"], x)
        if stage == "codebook_warmup":
            loss = out["vq"]["codebook"]
            if "msc" in liks:
                loss = loss + torch.log(liks["msc"]).sum() / (-torch.log(torch.tensor(2.0)) * n * h * w)
        else:
            loss = lam * 255 ** 2 * mse + bpp
            if stage == "codebook" and "vq" in out:
                loss = loss + out["vq"]["codebook"] + model.commitment * out["vq"]["commitment"]
        return {"loss": loss, "bpp": bpp, "mse": mse}

    return params, loss_fn


# ---------------------------------------------------------------------- registry
def _build(**kwargs) -> CGOO:
    return CGOO(**kwargs)


_NO_ONLINE = dict(online_iters=0, qp_steps=(1.0,), msc_ratios=(0.1,))
for _suffix, _kw, _what in (
        ("", {}, "full model"),
        ("-noddt", {"use_ddt": False}, "without DDT"),
        ("-nomsc", {"use_msc": False}, "without MSC"),
        ("-noonline", _NO_ONLINE, "no per-image optimisation (same weights as the full model)"),
        ("-noqp", {"qp_steps": (1.0,), "online_rate_weight": 1.0},
         "latent refinement at the true λ, no adaptive QP (same weights as the full model)")):
    register(f"kuang2025-cgoo{_suffix}", description=f"CGOO on TCM-small (N=64), {_what}",
             citation=CITATION, pad_multiple=128, N=64, **_kw)(_build)
