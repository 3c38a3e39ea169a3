"""Li, Zhang, Li & Liu, *Learned Image Compression with Hierarchical Progressive Context
Modeling*, ICCV 2025 (HPCM; arXiv 2507.19125; official code lyq133/LIC-HPCM@c271cfe2, MIT),
re-implemented from the project's specification ``shared/specs/hpcm.md`` (no code copied).

::

    x ─ g_a ─ y ─ h_a ─ z ─ Q ─ ẑ  [factorized GGM: means_hyper, scales_hyper]
                │               └ h_s ─ (scales | means) hyperprior at y's size
                └─ 11 coding steps over 3 scales (S1 = y/4, S2 = y/2, S3 = y), context C (2M ch):
                     S1: step 1 from the hyperprior; step 2: ψ = g_ep¹²(A(C ⊕ ŷ<), e); C = PCF(ψ, C)
                     Merge: scatter C, ŷ to S2; C += h_s at new positions; C = context_net[0](C)
                     S2: steps 3–5 (g_ep¹², attn_s2);  Merge → S3;  S3: steps 6–11 (g_ep³, attn_s3)
                     every step codes round(y − μ) with GGM(β=1.5, σ) from ψ = (σ | μ)
                ŷ ─ g_s ─ x̂

Registered keys and measured sizes (kMACs/px: one forward at 256×256, ``lic.complexity``):

=============================  ==================  =============================================
key                            params              what
=============================  ==================  =============================================
li2025-hpcm-base               68,505,299          HPCM-Base: 918.56 kMACs/px (paper 68.50 M, 918.57)
li2025-hpcm-large              89,718,803          HPCM-Large: 1261.32 (paper 89.71 M, 1261.29)
li2025-hpcm-base-stages1       68,505,299          Table D, 1 stage: 1098.10 kMACs (paper 1107.48)
li2025-hpcm-base-stages2       69,224,659          Table D, 2 stages: 970.69 (paper 954.17)
li2025-hpcm-base-stages4       73,327,059          Table D, 4 stages: 926.50 (paper 911.44)
li2025-hpcm-base-nonshared     189,961,939         Table E (189.99 M): one g_ep per step, no adaptors
li2025-hpcm-base-phicontext    63,582,419          progressive context C_{i+1} = ψ_i (no PCF)
=============================  ==================  =============================================

**One coding loop.** :meth:`HPCM._code_hierarchy` walks the stages and steps, computing the
entropy parameters of each step only from the hyperprior and already coded latents, and calls a
per-step callback; ``forward`` (STE rounding for the decoder path, additive noise for the rate in
training, rounding in eval), ``compress`` (rANS encoding of all steps into one buffered stream) and
``decompress`` only differ in that callback, so ``decompress(compress(x))`` equals the eval-mode
``forward`` reconstruction (clamped to [0, 1]) exactly on the same machine.

**Input size.** The attention windows need S1 (y/4) divisible by 4 and S2, S3 by 8, so inputs are
padded (edge replication, right/bottom) inside ``forward``/``compress`` to ``size_multiple`` (256
for the official windows; smaller windows give smaller multiples) and the original size is kept in
``shape = (z_h, z_w, H, W)``. The registry's ``pad_multiple`` is 256 for every key.

Args (defaults = HPCM-Base):
    M, N: latent (320) and hyper-latent (256) channels; M must be divisible by 8 (groups).
    g_channels: g_a/g_s widths (96, 192, 384). g_blocks: PConvRBs per stage [L1, L2, L3] (2, 2, 4).
    h_blocks: [L4, L5] = (1, 3). partial_ratio, mlp_ratio: PConvRB (4, 4).
    ep_blocks: DWConvRBs [N1, N2] of g_ep¹² and g_ep³ ((2, 1), (3, 2)). ep_mlp_ratio: 2.
    num_heads: PCF heads (32). num_stages: 1, 2, 3 or 4 (the schedule, see :data:`SCHEDULES`).
    schedule: explicit ((kind, map_level, run_level, window), ...), overrides num_stages.
    windows: per-stage attention windows, overriding the schedule's.
    shared_context: share g_ep across the steps of a scale (True) or one g_ep per step (False).
    step_adaptors: per-step 1×1 adaptors before g_ep (default: = shared_context; Table E's
        189.99 M non-shared count has none, its 918.57 kMACs would need them: docs/hpcm.md).
    context: "attention" (PCF, the paper) or "phi" (C_{i+1} = ψ_i, the PhiContext model).
    official_s2_hyper: reproduce quirk Q2 (needed for the released weights; 3-stage schedule only).
    stream_crc: prefix each rANS string with a CRC-32 (truncation is an error, not garbage).
    entropy_coder: rANS path of y and z, "fast" (:mod:`lic.entropy.fast`, numba on arrays) or
        "compressai" (``compressai.ans``, lists); the same bytes either way.

Deviations: see ``docs/hpcm.md`` (replicate padding instead of centred zero padding; CRC-32
prefixes; raster symbol order of the masked positions instead of the official packed order;
ablation schedules chosen by us; CompressAI 1.2.8's rANS format, coded by default by
:mod:`lic.entropy.fast`, instead of the official numpy-interface copy).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from compressai.models import CompressionModel
from torch import nn

from lic.entropy.fast import check_coder, coder
from lic.entropy.indexes import scale_indexes
from lic.models.hpcm_entropy import (KINDS, GGMConditional, extract, get_scale_table,
                                     official_s2_hyper, scatter, seal, step_map, unseal)
from lic.models.hpcm_layers import (CrossAttentionCell, EntropyParameters, analysis_transform,
                                    conv1x1, hyper_analysis, hyper_synthesis, synthesis_transform)
from lic.models.registry import OfficialRelease, register

__all__ = ["HPCM", "SCHEDULES", "HPCM_PARAMS", "convert_official_state_dict"]

CITATION = ("Y. Li, H. Zhang, L. Li, D. Liu, Learned Image Compression with Hierarchical Progressive "
            "Context Modeling, ICCV 2025 (arXiv 2507.19125; code: lyq133/LIC-HPCM)")

#: Exact parameter counts of the official models (spec §1.5).
HPCM_PARAMS = {"base": 68_505_299, "large": 89_718_803, "phicontext": 63_582_419}

#: (kind, map_level, run_level, window) per stage. 3 = the official model; 1, 2, 4 = our reading of
#: supplement Table D (only its kMACs are published): see docs/hpcm.md.
SCHEDULES = {
    1: (("checker2", 2, 0, 4), ("phase3", 1, 0, 8), ("eight6", 0, 0, 8)),
    2: (("eight8", 1, 1, 8), ("eight6", 0, 0, 8)),
    3: (("checker2", 2, 2, 4), ("phase3", 1, 1, 8), ("eight6", 0, 0, 8)),
    4: (("checker2", 3, 3, 2), ("phase3", 2, 2, 4), ("phase3", 1, 1, 8), ("eight6", 0, 0, 8)),
}

# code(step, y_r or None, scales·mask, means·mask, mask) -> (y_res, y_q) on the run grid
StepFn = Callable[[int, "torch.Tensor | None", torch.Tensor, torch.Tensor, torch.Tensor],
                  tuple[torch.Tensor, torch.Tensor]]


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return (torch.round(x) - x).detach() + x


class HPCM(CompressionModel):
    """HPCM; see the module docstring for the arguments, the schedule and the deviations."""

    def __init__(self, M: int = 320, N: int = 256, g_channels: Sequence[int] = (96, 192, 384),
                 g_blocks: Sequence[int] = (2, 2, 4), h_blocks: Sequence[int] = (1, 3),
                 partial_ratio: int = 4, mlp_ratio: int = 4,
                 ep_blocks: Sequence[Sequence[int]] = ((2, 1), (3, 2)), ep_mlp_ratio: int = 2,
                 num_heads: int = 32, num_stages: int = 3, schedule=None,
                 windows: Sequence[int] | None = None, shared_context: bool = True,
                 step_adaptors: bool | None = None, context: str = "attention",
                 official_s2_hyper: bool = True,
                 stream_crc: bool = True, groups: int = 8, entropy_coder: str = "fast"):
        super().__init__()
        self.entropy_coder_name = check_coder(entropy_coder)  # "fast" | "compressai": same bytes
        if M % groups:
            raise ValueError(f"M={M} must be divisible by {groups} channel groups")
        if context not in ("attention", "phi"):
            raise ValueError(f"context must be 'attention' or 'phi', got {context!r}")
        if schedule is None:
            if num_stages not in SCHEDULES:
                raise ValueError(f"num_stages must be one of {sorted(SCHEDULES)}, got {num_stages}")
            schedule = SCHEDULES[num_stages]
        schedule = [tuple(s) for s in schedule]
        if windows is not None:
            if len(windows) != len(schedule):
                raise ValueError(f"{len(windows)} windows for {len(schedule)} stages")
            schedule = [(k, m, r, int(w)) for (k, m, r, _), w in zip(schedule, windows)]
        runs = [s[2] for s in schedule]
        if runs[-1] != 0 or any(r > m for _, m, r, _ in schedule) or \
                any(b not in (a, a - 1) for a, b in zip(runs, runs[1:])):
            raise ValueError(f"run levels must not exceed map levels, decrease by ≤1 and end at 0: "
                             f"{schedule}")
        self.schedule = tuple(schedule)
        self.M, self.N, self.groups = M, N, groups
        self.shared_context, self.context = shared_context, context
        self.stream_crc = stream_crc
        self.official_s2_hyper = (official_s2_hyper and
                                  [s[:3] for s in self.schedule] == [s[:3] for s in SCHEDULES[3]])
        top = self.schedule[0][1]
        self.size_multiple = math.lcm(16 << top, *(16 * (w << r) for _, _, r, w in self.schedule))
        self._plans: dict = {}

        pr, mr = partial_ratio, mlp_ratio
        self.g_a = analysis_transform(M, g_channels, g_blocks, pr, mr)
        self.g_s = synthesis_transform(M, g_channels, g_blocks, pr, mr)
        self.h_a = hyper_analysis(M, N, h_blocks, pr, mr)
        self.h_s = hyper_synthesis(M, N, h_blocks, pr, mr)
        self.means_hyper = nn.Parameter(torch.zeros(1, N, 1, 1))
        self.scales_hyper = nn.Parameter(torch.ones(1, N, 1, 1))
        self.entropy_estimation = GGMConditional()     # y: conditional, table = scale table
        self.entropy_estimation_z = GGMConditional()   # z: one table per channel (scales_hyper)

        # steps with a g_ep (all but the first step of the first stage), per stage
        n_ep = [KINDS[k] - (1 if s == 0 else 0) for s, (k, *_) in enumerate(self.schedule)]
        self._n_ep = n_ep
        last = len(self.schedule) - 1
        big = lambda s: s == last  # noqa: E731  (the finest stage uses g_ep³)
        (n1a, n2a), (n1b, n2b) = ep_blocks
        self.step_adaptors = shared_context if step_adaptors is None else bool(step_adaptors)
        if self.step_adaptors:
            for s, n in enumerate(n_ep):
                setattr(self, f"y_spatial_prior_adaptor_list_s{s + 1}",
                        nn.ModuleList(conv1x1(3 * M, 3 * M) for _ in range(n)))
        if shared_context:
            self.y_spatial_prior_s1_s2 = EntropyParameters(M, n1a, n2a, ep_mlp_ratio)
            self.y_spatial_prior_s3 = EntropyParameters(M, n1b, n2b, ep_mlp_ratio)
        else:
            self.y_spatial_prior_steps = nn.ModuleList(
                EntropyParameters(M, *((n1b, n2b) if big(s) else (n1a, n2a)), ep_mlp_ratio)
                for s, n in enumerate(n_ep) for _ in range(n))
        self.adaptive_params_list = nn.ParameterList(
            nn.Parameter(torch.ones(1, 3 * M, 1, 1)) for _ in range(sum(n_ep)))
        if context == "attention":
            for s, (_, _, _, w) in enumerate(self.schedule):
                setattr(self, f"attn_s{s + 1}", CrossAttentionCell(2 * M, w, num_heads))
        self.context_net = nn.ModuleList(conv1x1(2 * M, 2 * M) for _ in range(last))

    # ------------------------------------------------------------------ schedule plumbing
    def _plan(self, H: int, W: int, device, dtype) -> list[dict]:
        """Per stage: run level, step masks (1, M, h, w) and the not-yet-coded mask, cached."""
        key = (H, W, str(device), dtype)
        if key not in self._plans:
            kinds = [s[0] for s in self.schedule]
            smap = step_map(kinds, [s[1] for s in self.schedule], H, W, self.groups)
            smap = smap.repeat_interleave(self.M // self.groups, 0)[None].to(device)
            plan, start = [], 0
            for kind, _, r, _ in self.schedule:
                m = extract(smap, r, self.groups)
                n = KINDS[kind]
                plan.append({"level": r, "new": (m >= start).to(dtype),
                             "masks": [(m == start + t).to(dtype) for t in range(n)]})
                start += n
            self._plans[key] = plan
        return self._plans[key]

    def _g_ep(self, stage: int, i: int, k: int, x: torch.Tensor) -> torch.Tensor:
        """ψ for g_ep-step i of `stage` (k: global g_ep-step index). Adaptor index (i−1) mod n
        (quirk Q1: the official loops index the adaptor lists with i−1)."""
        emb = self.adaptive_params_list[k]
        if self.step_adaptors:
            adaptors = getattr(self, f"y_spatial_prior_adaptor_list_s{stage + 1}")
            x = adaptors[(i - 1) % len(adaptors)](x)
        if not self.shared_context:
            return self.y_spatial_prior_steps[k](x, emb)
        net = self.y_spatial_prior_s3 if stage == len(self.schedule) - 1 else self.y_spatial_prior_s1_s2
        return net(x, emb)

    def _code_hierarchy(self, hyper: torch.Tensor, code: StepFn, y: torch.Tensor | None = None):
        """The coding loop shared by forward, compress and decompress.

        ``hyper`` = h_s(ẑ) (B, 2M, H, W). For every step, the entropy parameters come from the
        hyperprior and the latents coded so far; ``code`` quantizes/codes the step's positions.
        Returns (ŷ, accumulated y residual, accumulated scales), all (B, M, H, W).
        """
        B, _, H, W = hyper.shape
        G = self.groups
        scales_all, means_all = hyper.chunk(2, 1)
        plan = self._plan(H, W, hyper.device, hyper.dtype)
        k = 0  # global g_ep-step index (step embedding)
        prev = None
        for s, stage in enumerate(plan):
            r = stage["level"]
            if s == 0:
                C = torch.cat([extract(scales_all, r, G), extract(means_all, r, G)], 1)
                y_hat = res = sc = hyper.new_zeros(B, self.M, H >> r, W >> r)
            else:
                if r < prev:  # Merge: up-scale, add the hyperprior at the new positions, 1x1
                    y_hat, res, sc = (scatter(t, prev, G) for t in (y_hat, res, sc))
                    C = torch.cat([scatter(t, prev, G) for t in C.chunk(2, 1)], 1)
                    if self.official_s2_hyper and s == 1:
                        new = [official_s2_hyper(t, G) for t in (scales_all, means_all)]
                    else:
                        new = [extract(t, r, G) * stage["new"] for t in (scales_all, means_all)]
                    C = C + torch.cat(new, 1)
                C = self.context_net[s - 1](C)
            y_r = None if y is None else extract(y, r, G)
            for i, mask in enumerate(stage["masks"]):
                if s == 0 and i == 0:
                    scales, means = C.chunk(2, 1)  # the hyperprior alone
                else:
                    psi = self._g_ep(s, i, k, torch.cat([C, y_hat], 1))
                    k += 1
                    C = getattr(self, f"attn_s{s + 1}")(psi, C) if self.context == "attention" else psi
                    scales, means = psi.chunk(2, 1)
                scales_m, means_m = scales * mask, means * mask
                y_res, y_q = code(k, y_r, scales_m, means_m, mask)
                y_hat = y_hat + y_q + means_m
                res = res + y_res
                sc = sc + scales_m
            prev = r
        return y_hat, res, sc

    def bitstream_shape(self, height: int, width: int) -> tuple[int, ...]:
        """The ``shape`` :meth:`compress` stores for a ``height`` x ``width`` input: (z_h, z_w, H, W)."""
        m = self.size_multiple
        return (-(-height // m) * m // 64, -(-width // m) * m // 64, height, width)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.size_multiple
        ph, pw = -(-h // m) * m - h, -(-w // m) * m - w
        return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x

    # ------------------------------------------------------------------ training / estimation
    def forward(self, x: torch.Tensor) -> dict:
        h, w = x.shape[-2:]
        y = self.g_a(self._pad(x))
        z = self.h_a(y)
        z_res = z - self.means_hyper
        z_q = _ste_round(z_res) if self.training else torch.round(z_res)
        _, z_likelihoods = self.entropy_estimation_z(z_res, self.scales_hyper)  # noise / rounding
        hyper = self.h_s(z_q + self.means_hyper)

        def code(_k, y_r, scales_m, means_m, mask):
            y_res = (y_r - means_m) * mask
            return y_res, (_ste_round(y_res) if self.training else torch.round(y_res))

        y_hat, y_res, scales = self._code_hierarchy(hyper, code, y)
        _, y_likelihoods = self.entropy_estimation(y_res, scales)
        x_hat = self.g_s(y_hat)[..., :h, :w]
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    # ------------------------------------------------------------------ bitstreams
    def update(self, scale_table=None, force: bool = False, update_quantiles: bool = False) -> bool:
        """Build the CDF tables: y from the scale table (default exp(linspace(ln .12, ln 64, 60))),
        z from ``scales_hyper`` (one table per channel). Returns True if anything was rebuilt."""
        if scale_table is None:
            scale_table = get_scale_table()
        done = self.entropy_estimation.update_scale_table(scale_table, force=force)
        z_table = self.scales_hyper.detach().view(-1).clamp_min(0.12).tolist()
        done |= self.entropy_estimation_z.update_scale_table(z_table, force=force)
        return done

    def _y_tables(self):
        em = self.entropy_estimation
        if em._quantized_cdf.numel() == 0 or self.entropy_estimation_z._quantized_cdf.numel() == 0:
            raise RuntimeError("call model.update(force=True) before compress/decompress")
        return coder(self.entropy_coder_name).tables(em)

    def _z_indexes(self, shape) -> torch.Tensor:
        return torch.arange(self.N, dtype=torch.int32, device=self.means_hyper.device).view(
            1, -1, 1, 1).expand(*shape).contiguous()

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        """One image → ``{"strings": [[y_string], [z_string]], "shape": (z_h, z_w, H, W)}``."""
        if x.size(0) != 1:
            raise ValueError(f"HPCM.compress codes one image at a time (batch 1), got {x.size(0)}")
        h, w = x.shape[-2:]
        tables = self._y_tables()
        y = self.g_a(self._pad(x))
        z = self.h_a(y)
        z_res = z - self.means_hyper
        rc = coder(self.entropy_coder_name)  # z: the bytes of GGMConditional.compress, on rc's path
        z_string = rc.encode(torch.round(z_res).int(), self._z_indexes(z.shape),
                             rc.tables(self.entropy_estimation_z))
        hyper = self.h_s(torch.round(z_res) + self.means_hyper)
        em, encoder = self.entropy_estimation, rc.encoder()

        def code(_k, y_r, scales_m, means_m, mask):
            y_q = torch.round((y_r - means_m) * mask)
            sel = mask.bool().expand_as(y_q)
            encoder.encode(y_q[sel].int(), scale_indexes(em, scales_m[sel]), tables)
            return y_q, y_q

        self._code_hierarchy(hyper, code, y)
        wrap = seal if self.stream_crc else bytes
        return {"strings": [[wrap(encoder.flush())], [wrap(z_string)]],
                "shape": (int(z.shape[-2]), int(z.shape[-1]), int(h), int(w))}

    @torch.no_grad()
    def decompress(self, strings, shape) -> dict:
        """Inverse of :meth:`compress`; ``shape`` = (z_h, z_w[, H, W]). Output clamped to [0, 1]."""
        if len(strings) != 2 or len(strings[0]) != 1 or len(strings[1]) != 1:
            raise ValueError("HPCM.decompress expects [[y_string], [z_string]] for one image")
        shape = [int(s) for s in shape]
        y_str, z_str = strings[0][0], strings[1][0]
        if self.stream_crc:
            y_str, z_str = unseal(y_str, "y"), unseal(z_str, "z")
        tables = self._y_tables()
        zi = self._z_indexes((1, self.N, shape[0], shape[1]))
        rc = coder(self.entropy_coder_name)
        z_res = rc.decode(z_str, zi, rc.tables(self.entropy_estimation_z)).reshape(zi.shape).to(
            dtype=self.means_hyper.dtype, device=self.means_hyper.device)
        hyper = self.h_s(z_res + self.means_hyper)
        em, decoder = self.entropy_estimation, rc.decoder(y_str)

        def code(_k, _y, scales_m, means_m, mask):
            sel = mask.bool().expand_as(scales_m)
            values = decoder.decode(scale_indexes(em, scales_m[sel]), tables)
            y_q = torch.zeros_like(scales_m)
            y_q[sel] = values.to(dtype=y_q.dtype, device=y_q.device)
            return y_q, y_q

        y_hat, _, _ = self._code_hierarchy(hyper, code)
        x_hat = self.g_s(y_hat).clamp_(0, 1)
        if len(shape) >= 4:
            x_hat = x_hat[..., : shape[2], : shape[3]]
        return {"x_hat": x_hat}


# ---------------------------------------------------------------------- checkpoints
def convert_official_state_dict(sd: Mapping, *, add_step_embeddings: bool = True) -> dict:
    """A released LIC-HPCM checkpoint (bare state_dict, or a dict holding one under
    ``state_dict``) → this model's keys, for ``HPCM(official_s2_hyper=True)`` (the default).

    * strips every leading ``module.`` (DataParallel);
    * adds ``adaptive_params_list.{k}`` = ones(1, 3M, 1, 1) when absent (quirk Q3: the released
      Base/Large checkpoints predate their registration, so they were constant 1.0);
    * maps the entropy-model buffers: ``scale_table``/``quantized_cdf_y``/``cdf_length_y``/
      ``offset_y`` → ``entropy_estimation.*``, ``*_z`` → ``entropy_estimation_z.*``,
      ``entropy_estimation.scale_lower_bound`` → ``entropy_estimation.lower_bound_scale`` and adds
      the buffers CompressAI's class has and the official one lacks. Empty tables stay empty: call
      ``model.update(force=True)`` after loading.
    """
    if "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    src = {}
    for key, value in sd.items():
        while key.startswith("module."):
            key = key[len("module."):]
        src[key] = value
    out, ee = {}, "entropy_estimation"
    rename = {"scale_table": f"{ee}.scale_table", "quantized_cdf_y": f"{ee}._quantized_cdf",
              "cdf_length_y": f"{ee}._cdf_length", "offset_y": f"{ee}._offset",
              "quantized_cdf_z": f"{ee}_z._quantized_cdf", "cdf_length_z": f"{ee}_z._cdf_length",
              "offset_z": f"{ee}_z._offset", f"{ee}.scale_lower_bound.bound": f"{ee}.lower_bound_scale.bound"}
    for key, value in src.items():
        out[rename.get(key, key)] = value
    bound = out.get(f"{ee}.lower_bound_scale.bound", torch.tensor([0.12]))
    out.setdefault(f"{ee}.scale_bound", bound.clone().reshape(1))
    for name in ("beta", "lower_bound_scale.bound", "likelihood_lower_bound.bound", "scale_bound"):
        out.setdefault(f"{ee}_z.{name}", out[f"{ee}.{name}"].clone())
    zt = out.get(f"{ee}_z._quantized_cdf")
    out.setdefault(f"{ee}_z.scale_table", torch.empty(0) if zt is None or zt.numel() == 0 else
                   out["scales_hyper"].detach().reshape(-1).clamp_min(0.12).float())
    for name in ("_quantized_cdf", "_cdf_length", "_offset"):
        out.setdefault(f"{ee}_z.{name}", torch.empty(0, dtype=torch.int32))
    if add_step_embeddings and not any(k.startswith("adaptive_params_list.") for k in out):
        three_m = out["y_spatial_prior_adaptor_list_s1.0.weight"].shape[0]
        n = sum(1 for k in out if k.startswith("y_spatial_prior_adaptor_list_s") and k.endswith(".weight"))
        for k in range(n):
            out[f"adaptive_params_list.{k}"] = torch.ones(1, three_m, 1, 1)
    return out


# ---------------------------------------------------------------------- registry
def _build(**kwargs) -> HPCM:
    return HPCM(**kwargs)


_LARGE = {"g_blocks": (2, 2, 8), "ep_blocks": ((2, 2), (4, 3))}
_DRIVE = "Google Drive, linked from lyq133/LIC-HPCM's README (spec §6)"
#: the authors' evaluation: test.py pads to 256 with centred zeros and counts the coded strings' bytes
_EVAL = {"eval_script": "lyq133/LIC-HPCM@c271cfe:test.py", "eval_pad_multiple": 256}
#: The released weights (spec §6) and the keys they load into; λ lists: params.yaml's of each key.
_RELEASES = {
    "li2025-hpcm-base": OfficialRelease(convert_official_state_dict, f"HPCM-Base, 6 MSE λ (0.0018–0.0483); {_DRIVE}",
                                        **_EVAL),
    "li2025-hpcm-large": OfficialRelease(convert_official_state_dict, f"HPCM-Large, 6 MSE λ (0.0018–0.0483); {_DRIVE}",
                                         **_EVAL),
    "li2025-hpcm-base-msssim": OfficialRelease(convert_official_state_dict,
                                               f"HPCM-Base, 6 MS-SSIM λ; {_DRIVE}", **_EVAL),
    # HPCM_Base_PhiContext.py (lyq133/LIC-HPCM@3ea1a47) has Base's modules and names without the attn_s*
    # cells, and its step embeddings are a plain list (no keys, Q3); not checked against the released file
    "li2025-hpcm-base-phicontext": OfficialRelease(convert_official_state_dict,
                                                   f"HPCM_Phi_Context, MSE λ = 0.013 only; {_DRIVE}", **_EVAL),
}
for _key, _desc, _kw in (
        ("li2025-hpcm-base", "HPCM-Base (68.51 M params, 3 scales, 11 steps)", {}),
        ("li2025-hpcm-large", "HPCM-Large (89.72 M params; L3 = 8, g_ep [2,2] / [4,3])", _LARGE),
        ("li2025-hpcm-base-stages1", "HPCM-Base ablation: 1 stage (11 steps at full resolution)",
         {"num_stages": 1}),
        ("li2025-hpcm-base-stages2", "HPCM-Base ablation: 2 stages (8 steps at y/2, 6 at y)",
         {"num_stages": 2}),
        ("li2025-hpcm-base-stages4", "HPCM-Base ablation: 4 stages (2+3+3+6 steps, y/8..y)",
         {"num_stages": 4}),
        ("li2025-hpcm-base-nonshared", "HPCM-Base ablation: one g_ep per coding step (≈190 M)",
         {"shared_context": False}),
        ("li2025-hpcm-base-phicontext", "HPCM-Base with C_{i+1} = ψ_i (no cross-attention, 63.58 M)",
         {"context": "phi"}),
        # the same model trained for MS-SSIM (params.yaml: metric ms-ssim, the README's six MS-SSIM λ)
        ("li2025-hpcm-base-msssim", "HPCM-Base optimised for MS-SSIM (Figure B)", {})):
    register(_key, description=_desc, citation=CITATION, pad_multiple=256, official=_RELEASES.get(_key),
             **_kw)(_build)
