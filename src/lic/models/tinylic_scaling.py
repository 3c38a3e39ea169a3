"""Variable-rate TinyLIC with ScalingNet (TinyLIC supplement §2; Lin et al., MMSP 2020).

Lu & Ma, *High-Efficiency Lossy Image Coding Through Adaptive Neighborhood Information
Aggregation*, supplement §2 / Fig. 3b / Table 4 — ScalingNet from J. Lin et al., "Variable-rate
multi-frequency image compression using modulated generalized octave convolution", MMSP 2020.

::

    rate r ∈ [0,1]  (λ(r) = λ_min·(λ_max/λ_min)^r;  r is a 16-bit code in the bitstream)
       │
       ├─ SN_e,k(r) = exp(FC2(ReLU(FC1(r)))) ∈ R^{C_k}_+      k = 0..3 (one per g_a stage)
       └─ SN_d,k(r)                                            k = 0..3 (one per g_s stage)

    x ─[g_a0 g_a1]·SN_e0─[g_a2 g_a3]·SN_e1─[g_a4 g_a5]·SN_e2─[g_a6 g_a7]·SN_e3─ y ─ (hyper, MCM: shared) ─ ŷ
    ŷ ─·SN_d0─[g_s0 g_s1]─·SN_d1─[g_s2 g_s3]─·SN_d2─[g_s4 g_s5]─·SN_d3─[g_s6 g_s7]─ x̂

One model covers a continuous range of rates; any bitrate between its end points is reached by
choosing r (:func:`fit_rate` bisects r for a target bpp on a given image).

Bitstream: ``compress`` returns ``extra = b"\\x01" + uint16_be(code)`` (3 bytes, counted in the file
size); ``decompress(strings, shape, extra=...)`` reads the rate back. ``set_rate`` snaps r to the same
16-bit grid, so the forward, the encoder and the decoder always use the identical float.

Trainer hook (generic, duck-typed): before each step, ``lmbda = model.sample_lambda(generator)``
(draws r ~ U[0, 1], sets it, returns λ(r)); the loss uses that λ for the step. Evaluation at the
paper's λ's: ``model.set_lambda(λ)``.

Deviations / assumptions (the supplement's figure is not available; parameter in brackets):

* The λ encoding is the normalised log-λ scalar r, not a one-hot [``lambda_min``, ``lambda_max``];
  one model covers the whole range by default (0.0018–0.18, all 8 CompressAI λ's) instead of the
  supplement's four models (train four with narrower ranges to follow it).
* Layer widths follow the modulated autoencoder (FC 1→50→C, ReLU, exp) [``scaling_hidden``].
  Encoder modulation after each conv+RNAB unit; decoder modulation at the input of each
  RNAB+deconv unit (the MAE "demodulation before each layer"). FC2 starts near zero (scales ≈ 1).
* Hyper coder and context model are shared by all rates (their Gaussian parameters adapt via ψ).
"""

from __future__ import annotations

import math
import struct

import torch
import torch.nn as nn

from lic.models.registry import register
from lic.models.tinylic import CITATION, TinyLIC

RATE_BITS = 16
RATE_LEVELS = (1 << RATE_BITS) - 1
_EXTRA_VERSION = 1


class ScalingNet(nn.Module):
    """r (B,) or scalar → positive channel scales (B, C, 1, 1): exp(FC2(ReLU(FC1(r))))."""

    def __init__(self, channels: int, hidden: int = 50):
        super().__init__()
        self.fc1 = nn.Linear(1, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        nn.init.normal_(self.fc2.weight, std=0.01)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.reshape(-1, 1)
        return torch.exp(self.fc2(torch.relu(self.fc1(r))))[:, :, None, None]


def quantize_rate(r: float) -> int:
    if not (0.0 <= r <= 1.0) or math.isnan(r):
        raise ValueError(f"rate must be in [0, 1], got {r}")
    return int(round(r * RATE_LEVELS))


class TinyLICVR(TinyLIC):
    """TinyLIC with ScalingNet modulation of every main-coder stage (see the module docstring).

    Args:
        lambda_min, lambda_max: the λ range covered; r = 0 ↔ λ_min, r = 1 ↔ λ_max (log-linear).
        scaling_hidden: hidden width of each ScalingNet.
        rate: initial rate parameter in [0, 1].
        *args, **kwargs: :class:`~lic.models.tinylic.TinyLIC` arguments (N, M, depths, ...).
    """

    def __init__(self, *args, lambda_min: float = 0.0018, lambda_max: float = 0.18,
                 scaling_hidden: int = 50, rate: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 < lambda_min < lambda_max:
            raise ValueError(f"need 0 < lambda_min < lambda_max, got {lambda_min}, {lambda_max}")
        self.lambda_min, self.lambda_max = float(lambda_min), float(lambda_max)
        enc = [self.g_a0.out_channels, self.g_a2.out_channels, self.g_a4.out_channels, self.g_a6.out_channels]
        self.scaling_enc = nn.ModuleList(ScalingNet(c, scaling_hidden) for c in enc)
        self.scaling_dec = nn.ModuleList(ScalingNet(c, scaling_hidden) for c in reversed(enc))
        self.set_rate(rate)

    # ------------------------------------------------------------------ rate parameter
    def set_rate(self, r: float) -> float:
        """Set the rate parameter (snapped to the 16-bit bitstream grid); returns the used value."""
        self._rate_code = quantize_rate(float(r))
        return self.rate

    @property
    def rate(self) -> float:
        return self._rate_code / RATE_LEVELS

    def lambda_of(self, r: float) -> float:
        return self.lambda_min * (self.lambda_max / self.lambda_min) ** r

    def rate_of(self, lmbda: float) -> float:
        r = math.log(lmbda / self.lambda_min) / math.log(self.lambda_max / self.lambda_min)
        if not -1e-9 <= r <= 1 + 1e-9:
            raise ValueError(f"λ={lmbda} is outside this model's range [{self.lambda_min}, {self.lambda_max}]")
        return min(max(r, 0.0), 1.0)

    def set_lambda(self, lmbda: float) -> float:
        """Set the rate for a training λ; returns the λ actually used (after snapping r)."""
        return self.lambda_of(self.set_rate(self.rate_of(lmbda)))

    def sample_lambda(self, generator: torch.Generator | None = None) -> float:
        """Trainer hook: draw r ~ U[0, 1], set it, return λ(r) for this step's loss."""
        r = float(torch.rand((), generator=generator))
        return self.lambda_of(self.set_rate(r))

    def _r(self, ref: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.rate], dtype=ref.dtype, device=ref.device)

    # ------------------------------------------------------------------ modulated transforms
    def g_a(self, x):
        r = self._r(x)
        for k in range(4):
            x = getattr(self, f"g_a{2 * k + 1}")(getattr(self, f"g_a{2 * k}")(x))
            x = x * self.scaling_enc[k](r)
        return x

    def g_s(self, y):
        r = self._r(y)
        for k in range(4):
            y = y * self.scaling_dec[k](r)
            y = getattr(self, f"g_s{2 * k + 1}")(getattr(self, f"g_s{2 * k}")(y))
        return y

    # ------------------------------------------------------------------ bitstream
    def compress(self, x):
        out = super().compress(x)
        out["extra"] = struct.pack(">BH", _EXTRA_VERSION, self._rate_code)
        return out

    def decompress(self, strings, shape, extra: bytes | None = None):
        if not extra or len(extra) != 3 or extra[0] != _EXTRA_VERSION:
            raise ValueError("variable-rate TinyLIC needs the 3-byte rate record from compress() in `extra`")
        code = struct.unpack(">H", bytes(extra[1:3]))[0]
        saved = self._rate_code
        try:
            self._rate_code = code
            return super().decompress(strings, shape)
        finally:
            self._rate_code = saved


def file_bpp(out: dict, num_pixels: int) -> float:
    """bits per pixel of a ``compress`` output: all strings plus ``extra`` (container overhead excluded)."""
    n = sum(len(s) for group in out["strings"] for s in group) + len(out.get("extra", b""))
    return 8.0 * n / num_pixels


@torch.no_grad()
def fit_rate(model: TinyLICVR, x: torch.Tensor, target_bpp: float, *, num_pixels: int | None = None,
             tol_bpp: float = 0.0, max_iter: int = 16) -> tuple[float, float]:
    """Bisect the 16-bit rate code so the real coded size of ``x`` is the largest not above
    ``target_bpp`` (assumes bpp increases with r, which training makes true on average).

    Returns (rate, bpp). If even r = 0 exceeds the target, returns r = 0 and its bpp. The model is
    left set to the returned rate. ``num_pixels`` defaults to x's H·W (pass the unpadded size).
    ``tol_bpp`` > 0 stops early once target − tol_bpp ≤ bpp ≤ target (each step is one compress).
    """
    num_pixels = num_pixels or x.shape[-2] * x.shape[-1]

    def bpp_at(code: int) -> float:
        model.set_rate(code / RATE_LEVELS)
        return file_bpp(model.compress(x), num_pixels)

    lo, hi = 0, RATE_LEVELS
    b_lo, b_hi = bpp_at(lo), bpp_at(hi)
    if b_hi <= target_bpp:
        return model.set_rate(1.0), b_hi
    if b_lo > target_bpp:
        return model.set_rate(0.0), b_lo
    for _ in range(max_iter):  # invariant: bpp(lo) <= target < bpp(hi)
        if hi - lo <= 1 or target_bpp - b_lo <= tol_bpp:
            break
        mid = (lo + hi) // 2
        b = bpp_at(mid)
        if b <= target_bpp:
            lo, b_lo = mid, b
        else:
            hi, b_hi = mid, b
    return model.set_rate(lo / RATE_LEVELS), b_lo


@register("lu2022-tinylic-vr", description="TinyLIC v3 with ScalingNet variable rate (supplement §2): "
          "one model, a continuous rate parameter in the bitstream", citation=CITATION + "; ScalingNet: "
          "Lin et al., MMSP 2020", pad_multiple=64, N=128, M=320)
def tinylic_vr(N: int = 128, M: int = 320, **kwargs) -> TinyLICVR:
    return TinyLICVR(N, M, **kwargs)
