"""HPCM's entropy model and hierarchical coding schedule (spec ``shared/specs/hpcm.md`` §2–§3).

* :class:`GGMConditional` — CompressAI's ``GaussianConditional`` with the generalized Gaussian
  (GGM, fixed β = 1.5) instead of the Gaussian: the same noise/rounding quantization, the same
  scale-table indexing (``#{table[:-1] < s}``) and the same CDF-table builder (``update()``), fed
  with the GGM CDF ``½(1 + sign(u)·P(1/β, |u|^β))`` (P: regularized lower incomplete gamma) and the
  ``scipy.stats.gennorm`` quantile. Scale bound 0.12, likelihood bound 1e-9, tail mass 1e-6 (the
  official values). Its gradient is the analytic density (no gradient w.r.t. β), as officially.
* Partition helpers: the per-channel-group phase selection that maps y to the coarser scales
  (:func:`extract`, :func:`scatter`), the full-resolution *step map* (:func:`step_map`) that says at
  which coding step every latent is coded (paper Fig. 2 / supplement Fig. E for the 3-stage model),
  and the official code's misplaced S2 hyperprior (:func:`official_s2_hyper`, quirk Q2).

::

    y (B, 8 groups × M/8, H, W) ──extract(level 1)──▶ S2 grid (H/2) ──extract(level 2)──▶ S1 grid (H/4)
      group g takes phase PHASE_A[g mod 4] of the 2×2 cell (y → S2), PHASE_B[g // 2] (S2 → S1)
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence

import scipy.stats
import torch
from compressai.entropy_models import GaussianConditional

__all__ = ["GGMConditional", "get_scale_table", "seal", "unseal", "extract", "scatter", "step_map",
           "official_s2_hyper", "KINDS", "PHASE_A", "PHASE_B"]

# ------------------------------------------------------------------------------ GGM entropy model


class _GGMCdf(torch.autograd.Function):
    """CDF of the unit generalized Gaussian; backward = its density (β is a constant)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, beta: float) -> torch.Tensor:
        t = u.abs().pow(beta)
        a = torch.full_like(t, 1.0 / beta)
        ctx.save_for_backward(t)
        ctx.beta = beta
        # gammaincc for u < 0 keeps precision in the lower tail
        return torch.where(u < 0, 0.5 * torch.special.gammaincc(a, t),
                           0.5 + 0.5 * torch.special.gammainc(a, t))

    @staticmethod
    def backward(ctx, grad):
        (t,) = ctx.saved_tensors
        beta = ctx.beta
        density = torch.exp(-t - math.lgamma(1.0 / beta)) * (beta / 2.0)
        return grad * density, None


class GGMConditional(GaussianConditional):
    """Mean-removed conditional GGM entropy model (CompressAI ``GaussianConditional`` API).

    Args:
        beta: shape parameter (1.5: between Laplace, 1, and Gaussian, 2); a buffer, not learned.
        scale_bound: lower bound on the scales (0.12). Negative raw scales map to table index 0.
        likelihood_bound: lower bound on likelihoods (1e-9).
        tail_mass: probability mass left out of each CDF table (1e-6), coded by the rANS bypass.
        scale_table: the table of scales; ``update_scale_table`` fills it later.
    """

    def __init__(self, beta: float = 1.5, scale_bound: float = 0.12, likelihood_bound: float = 1e-9,
                 tail_mass: float = 1e-6, scale_table: Sequence[float] | None = None):
        super().__init__(None if scale_table is None else list(scale_table), scale_bound=scale_bound,
                         tail_mass=tail_mass, likelihood_bound=likelihood_bound)
        self.register_buffer("beta", torch.tensor([float(beta)]))

    def _standardized_cumulative(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dtype not in (torch.float32, torch.float64):  # gammainc: float32/64 only
            inputs = inputs.float()
        return _GGMCdf.apply(inputs, float(self.beta))

    def _standardized_quantile(self, quantile: float) -> float:  # noqa: D401 (instance method here)
        return float(scipy.stats.gennorm.ppf(quantile, float(self.beta)))


def get_scale_table(lo: float = 0.12, hi: float = 64.0, levels: int = 60) -> list[float]:
    """``exp(linspace(ln lo, ln hi, levels))`` — the official test.py's table (0.12, 64, 60)."""
    return torch.exp(torch.linspace(math.log(lo), math.log(hi), levels)).tolist()


def seal(payload: bytes) -> bytes:
    """Prefix a rANS string with its CRC-32 so truncation is detected before decoding."""
    return struct.pack(">I", zlib.crc32(payload)) + payload


def unseal(data: bytes, what: str) -> bytes:
    if len(data) < 4 or struct.unpack(">I", data[:4])[0] != zlib.crc32(data[4:]):
        raise ValueError(f"HPCM {what} stream is truncated or corrupted (CRC-32 mismatch, "
                         f"{len(data)} bytes); re-encode the image")
    return data[4:]


# ------------------------------------------------------------------------------ partition
#: 2×2 phase (row, col) taken by group g when going from level k to level k+1:
#: PHASE_A[g % 4] for even k (y → S2 in the official model), PHASE_B[g // 2 % 4] for odd k (S2 → S1).
PHASE_A = ((0, 0), (1, 1), (0, 1), (1, 0))
PHASE_B = ((0, 0), (0, 1), (1, 0), (1, 1))

#: The 8 base 4×4 patterns P0..P7 of the S3 eight-part masks, 2 cells each.
_PATTERNS = (((0, 0), (2, 2)), ((0, 2), (2, 0)), ((1, 1), (3, 3)), ((1, 3), (3, 1)),
             ((0, 1), (2, 3)), ((0, 3), (2, 1)), ((1, 0), (3, 2)), ((1, 2), (3, 0)))
#: pattern of part p for group g: _PART_TABLE[p][g] (parts 0, 1 = the S2 lattice).
_PART_TABLE = ((0, 2, 4, 6, 1, 3, 5, 7), (1, 3, 5, 7, 0, 2, 4, 6), (2, 4, 6, 0, 3, 5, 7, 1),
               (3, 5, 7, 1, 2, 4, 6, 0), (4, 6, 0, 2, 5, 7, 1, 3), (5, 7, 1, 3, 4, 6, 0, 2),
               (6, 0, 2, 4, 7, 1, 3, 5), (7, 1, 3, 5, 6, 0, 2, 4))

#: stage kinds → number of steps. "checker2"/"eight8" start the hierarchy, "phase3"/"eight6" refine it.
KINDS = {"checker2": 2, "eight8": 8, "phase3": 3, "eight6": 6}
_FIRST = ("checker2", "eight8")

#: The official code's (wrong) S1 positions in the 4×4 cell per group, used by quirk Q2.
_OFFICIAL_S1 = ((0, 0), (1, 1), (0, 1), (1, 0), (0, 2), (1, 3), (0, 3), (1, 2))


def phase(level: int, g: int) -> tuple[int, int]:
    return PHASE_A[g % 4] if level % 2 == 0 else PHASE_B[(g // 2) % 4]


def extract(t: torch.Tensor, level: int, groups: int = 8) -> torch.Tensor:
    """(B, C, H, W) at level 0 → (B, C, H/2^level, W/2^level): per channel group, the lattice of
    the coarser scale (raster order is kept, like the official masked selection)."""
    if level == 0:
        return t
    out = []
    for g, tg in enumerate(t.chunk(groups, 1)):
        for k in range(level):
            a, b = phase(k, g)
            tg = tg[..., a::2, b::2]
        out.append(tg)
    return torch.cat(out, 1)


def scatter(t: torch.Tensor, level: int, groups: int = 8) -> torch.Tensor:
    """Inverse of one level of :func:`extract`: level → level−1, zeros at the new positions."""
    B, C, h, w = t.shape
    out = t.new_zeros(B, C, 2 * h, 2 * w)
    cg = C // groups
    for g in range(groups):
        a, b = phase(level - 1, g)
        out[:, g * cg:(g + 1) * cg, a::2, b::2] = t[:, g * cg:(g + 1) * cg]
    return out


def _cell_parts(g: int) -> torch.Tensor:
    """(4, 4) part index of every cell position for group g (eight-part masks)."""
    cell = torch.empty(4, 4, dtype=torch.long)
    for p in range(8):
        for r, c in _PATTERNS[_PART_TABLE[p][g]]:
            cell[r, c] = p
    return cell


def _rule(kind: str, g: int, groups: int, h: int, w: int, lattice: tuple[int, int] | None) -> torch.Tensor:
    """Step index within a stage (0-based) for every position of a (h, w) grid of group g."""
    i = torch.arange(h).view(h, 1).expand(h, w)
    j = torch.arange(w).view(1, w).expand(h, w)
    if kind == "checker2":  # first half of the groups codes (i+j) even first, the second half odd
        return ((i + j) % 2) ^ int(g >= groups // 2)
    if kind == "phase3":  # steps: phase XOR 3, XOR 2, XOR 1 relative to the coarser lattice's phase
        d = (2 * (i % 2) + (j % 2)) ^ (2 * lattice[0] + lattice[1])
        return 3 - d
    parts = _cell_parts(g % 8)[i % 4, j % 4]
    if kind == "eight8":
        return parts
    if kind == "eight6":
        if lattice != PHASE_A[g % 4]:
            raise ValueError("eight6 refines the PHASE_A lattice only (parts 0, 1)")
        return parts - 2
    raise ValueError(f"unknown stage kind {kind!r}; choose from {sorted(KINDS)}")


def step_map(kinds: Sequence[str], map_levels: Sequence[int], H: int, W: int,
             groups: int = 8) -> torch.Tensor:
    """(groups, H, W) long tensor: the 0-based coding step of every latent position of y.

    ``kinds[s]`` is stage s's partition rule and ``map_levels[s]`` the level (grid H/2^level) on
    which its positions lie; levels decrease by one per stage and end at 0.
    """
    if kinds[0] not in _FIRST or any(k in _FIRST for k in kinds[1:]):
        raise ValueError(f"a schedule starts with one of {_FIRST} and then only refines: {kinds}")
    if list(map_levels) != list(range(len(kinds) - 1, -1, -1)):
        raise ValueError(f"map levels must be {len(kinds) - 1}..0, got {map_levels}")
    top = map_levels[0]
    if H % (1 << top) or W % (1 << top):
        raise ValueError(f"latent {H}×{W} is not divisible by 2^{top}")
    maps = []
    for g in range(groups):
        grid = _rule(kinds[0], g, groups, H >> top, W >> top, None)
        offset = KINDS[kinds[0]]
        for kind, level in zip(kinds[1:], map_levels[1:]):
            lat = phase(level, g)
            new = _rule(kind, g, groups, H >> level, W >> level, lat) + offset
            new[lat[0]::2, lat[1]::2] = grid
            grid, offset = new, offset + KINDS[kind]
        maps.append(grid)
    return torch.stack(maps)


def official_s2_hyper(hyper: torch.Tensor, groups: int = 8) -> torch.Tensor:
    """Quirk Q2: the official S2-grid hyperprior. (B, M, H, W) → (B, M, H/2, W/2).

    Per channel, takes the full-resolution values on (S2 lattice − the code's wrong "S1"
    positions) in raster order and writes them in raster order to the S2-grid positions that are
    not S1 positions. Only groups 0–1 land where they belong; the mapping depends on the size.
    """
    B, C, H, W = hyper.shape
    cg = C // groups
    src = torch.zeros(groups, H, W, dtype=torch.bool)
    dst = torch.ones(groups, H // 2, W // 2, dtype=torch.bool)
    for g in range(groups):
        a, b = PHASE_A[g % 4]
        src[g, a::2, b::2] = True
        r, c = _OFFICIAL_S1[g]
        src[g, r::4, c::4] = False
        a, b = PHASE_B[(g // 2) % 4]
        dst[g, a::2, b::2] = False
    src = src.repeat_interleave(cg, 0).to(hyper.device).expand(B, C, H, W)
    dst = dst.repeat_interleave(cg, 0).to(hyper.device).expand(B, C, H // 2, W // 2)
    out = hyper.new_zeros(B, C, H // 2, W // 2)
    out[dst] = hyper[src]
    return out
