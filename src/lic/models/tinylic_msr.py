"""TinyLIC with the adaptive in-loop filter MSR (TinyLIC supplement §3; Ding et al., TCSVT 2021).

Multi-hypothesis sample refinement (D. Ding et al., "Neural adaptive loop filtering for video
coding", TCSVT 2021; supplement Fig. 4 / eq. 1–2 / Table 5): a small network maps the decoded image
to K distortion hypotheses d_k; the encoder solves the superposition coefficients a_k by least
squares against the original and signals them; the decoder adds Σ a_k d_k.

::

    x ─ TinyLIC encoder ─ strings ─ TinyLIC decoder ─ x̂ = clamp(g_s(ŷ), 0, 1)
                                                     │
           MSR: x̂ ─ conv3×3 128 ─ GELU ─ [RNAB] ─ conv3×3 128 ─ GELU ─ [RNAB] ─ conv3×3 3K ─ d_1..d_K
                                                     │
    encoder: a = argmin ‖x − x̂ − Σ a_k d_k‖² per colour channel  →  q = round(a·2^F)  (int16)
             on  ⇔ MSE(clamp(x̂ + Σ q_k/2^F d_k)) < MSE(x̂)        (else "off": x̃ = x̂)
    x̃ = clamp(x̂ + Σ_k (q_k / 2^F) d_k, 0, 1)

Bitstream (``extra``, counted in the file): per image 1 flag byte (0 off / 1 on), then, when on,
K·C int16 coefficients (big endian) — 13 bytes for K = 2 hypotheses × 3 channels.

Forward (training): the coefficients are solved in-graph per image without gradient (at the least-
squares optimum ∂MSE/∂a = 0, so detaching them is exact for the distortion) and unquantized; the
gradient reaches the MSR network through d_k. In eval mode the forward uses exactly the encoder's
quantized coefficients and on/off decision, so it equals ``decompress`` bit for bit. The side
information appears as a ``likelihoods["msr"]`` entry (1/256 per signalled byte), so the codec's
estimated bits include it.

Training recipe: load a trained base with :meth:`TinyLICMSR.load_base_state_dict`, keep
``freeze_base=True`` (the base codec's parameters have ``requires_grad=False``, except the entropy
bottleneck quantiles of the aux loss, and its modules stay in eval mode under ``model.train()``,
so the filter sees the decoder's exact reconstructions) and train with the ordinary RD loss (its
rate term is then constant, i.e. λ·MSE of the filtered image).

Deviations / assumptions (parameter in brackets):

* Activations (GELU), the position of the transformer stages and their number are not given;
  "RSTB is set the same as in main paper" and "1.7 M parameters" → two RNAB stages of 6 blocks
  (NA kernel 7, head dim 16) after the first two convs: 1.76 M parameters [``msr_depths``,
  ``msr_width``, ``msr_kernel_size``]. ``msr_depths=()`` gives the plain 3-conv CNN (158 k).
* Residual form x̃ = x̂ + Σ a_k d_k, one coefficient set per colour channel [``per_channel``],
  fixed-point coefficients with ``coef_frac_bits`` (10) fractional bits in int16.
* The solve and the on/off decision use the whole coded (padded) tensor; with the codec's edge
  padding the decision is therefore made on a slightly different set of pixels than the cropped
  image (pass the unpadded size as ``valid_hw`` to ``compress_with_size`` for an exact decision).
"""

from __future__ import annotations

import struct

import torch
import torch.nn as nn

from lic.models.registry import register
from lic.models.tinylic import CITATION, TinyLIC
from lic.models.tinylic_blocks import rnab


class MSRNet(nn.Module):
    """x̂ (B, C, H, W) → K hypotheses (B, K, C, H, W)."""

    def __init__(self, channels: int = 3, hypotheses: int = 2, width: int = 128,
                 depths: tuple[int, ...] = (6, 6), kernel_size: int = 7, head_dim: int = 16,
                 attention_impl: str = "auto"):
        super().__init__()
        if len(depths) not in (0, 2):
            raise ValueError(f"msr_depths must have 0 or 2 entries, got {depths}")
        self.channels, self.hypotheses = channels, hypotheses
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, channels * hypotheses, 3, padding=1)
        self.act = nn.GELU()
        heads = max(1, width // head_dim)
        self.stage1 = (rnab(width, depths[0], heads, kernel_size, [0.0] * depths[0], attention_impl=attention_impl)
                       if depths else nn.Identity())
        self.stage2 = (rnab(width, depths[1], heads, kernel_size, [0.0] * depths[1], attention_impl=attention_impl)
                       if depths else nn.Identity())

    def forward(self, x):
        t = self.stage1(self.act(self.conv1(x)))
        t = self.stage2(self.act(self.conv2(t)))
        d = self.conv3(t)
        B, _, H, W = d.shape
        return d.reshape(B, self.hypotheses, self.channels, H, W)


def solve_coefficients(err: torch.Tensor, hyp: torch.Tensor, per_channel: bool = True,
                       eps: float = 1e-8) -> torch.Tensor:
    """Least squares a = argmin ‖err − Σ_k a_k hyp_k‖² per image (and per channel).

    err: (B, C, H, W); hyp: (B, K, C, H, W). Returns (B, C, K) (per channel) or (B, 1, K).
    Solved in float64 with a relative ridge ``eps``; degenerate hypotheses give a ≈ 0.
    """
    e = err.detach().double()
    d = hyp.detach().double()
    if per_channel:
        R = d.permute(0, 2, 3, 4, 1).flatten(2, 3)  # (B, C, P, K)
        e = e.flatten(2).unsqueeze(-1)  # (B, C, P, 1)
    else:
        R = d.permute(0, 2, 3, 4, 1).reshape(d.shape[0], 1, -1, d.shape[1])
        e = e.reshape(e.shape[0], 1, -1, 1)
    A = R.transpose(-1, -2) @ R  # (B, C', K, K)
    g = R.transpose(-1, -2) @ e
    ridge = eps * A.diagonal(dim1=-2, dim2=-1).mean(-1).clamp_min(1e-30)[..., None, None]
    a = torch.linalg.solve(A + ridge * torch.eye(A.shape[-1], dtype=A.dtype, device=A.device), g)
    return a.squeeze(-1).to(err.dtype)


def apply_coefficients(x_hat: torch.Tensor, hyp: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """x̂ + Σ_k a_k d_k; a: (B, C or 1, K)."""
    return x_hat + (hyp * a.permute(0, 2, 1)[..., None, None]).sum(1)


class TinyLICMSR(TinyLIC):
    """TinyLIC + MSR in-loop filter (see the module docstring).

    Args:
        hypotheses: number K of hypotheses (2). msr_width, msr_depths, msr_kernel_size: the MSR
            network. per_channel: one coefficient set per colour channel. coef_frac_bits: F.
        freeze_base: set ``requires_grad=False`` on the base codec (not the EB quantiles).
        *args, **kwargs: :class:`~lic.models.tinylic.TinyLIC` arguments.
    """

    def __init__(self, *args, hypotheses: int = 2, msr_width: int = 128, msr_depths: tuple[int, ...] = (6, 6),
                 msr_kernel_size: int = 7, per_channel: bool = True, coef_frac_bits: int = 10,
                 freeze_base: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.out_ch = self.g_s7.out_channels
        self.msr = MSRNet(self.out_ch, hypotheses, msr_width, tuple(msr_depths), msr_kernel_size,
                          attention_impl=kwargs.get("attention_impl", "auto"))
        self.per_channel, self.frac_bits = per_channel, int(coef_frac_bits)
        self.n_coef = (self.out_ch if per_channel else 1) * hypotheses
        self.freeze_base = bool(freeze_base)
        if freeze_base:
            for n, p in self.named_parameters():
                if not n.startswith("msr.") and not n.endswith("quantiles"):
                    p.requires_grad_(False)

    def train(self, mode: bool = True):
        """With ``freeze_base`` the base codec stays in eval mode (no stochastic depth, decoder-exact
        rounding), so the filter is trained on exactly the reconstructions it will see."""
        super().train(mode)
        if self.freeze_base and mode:
            for name, child in self.named_children():
                if name != "msr":
                    child.eval()
        return self

    def load_base_state_dict(self, state_dict: dict) -> None:
        """Load a trained base TinyLIC (same kwargs) strictly; the MSR network is kept."""
        own = {k: v for k, v in self.state_dict().items() if k.startswith("msr.")}
        self.load_state_dict({**state_dict, **own}, strict=True)

    # ------------------------------------------------------------------ encoder decision
    def _quantize(self, a: torch.Tensor) -> torch.Tensor:
        s = 2.0 ** self.frac_bits
        return torch.round(a * s).clamp(-32768, 32767)

    def _decide(self, x: torch.Tensor, x_hat: torch.Tensor, hyp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(on (B,) bool, q (B, C', K) int-valued): quantized LS coefficients and the on/off flag."""
        q = self._quantize(solve_coefficients(x - x_hat, hyp, self.per_channel))
        filt = apply_coefficients(x_hat, hyp, q / 2.0 ** self.frac_bits).clamp(0, 1)
        mse_on = (filt - x).square().flatten(1).mean(1)
        mse_off = (x_hat - x).square().flatten(1).mean(1)
        return mse_on < mse_off, q

    def _filtered(self, x_hat, hyp, on, q):
        a = q / 2.0 ** self.frac_bits * on[:, None, None].to(q.dtype)
        return torch.where(on[:, None, None, None], apply_coefficients(x_hat, hyp, a).clamp(0, 1), x_hat)

    def _side_likelihoods(self, on: torch.Tensor) -> torch.Tensor:
        """(B, 1 + 2·n_coef) 'likelihoods' whose −log2 sum is the side information in bits."""
        lk = torch.ones(on.shape[0], 1 + 2 * self.n_coef, device=on.device)
        lk[:, 0] = 1 / 256
        lk[on, 1:] = 1 / 256
        return lk

    # ------------------------------------------------------------------ API
    def forward(self, x):
        out = super().forward(x)
        if self.training:  # unquantized, always-on LS filter (see module docstring)
            x_hat = out["x_hat"].clamp(0, 1) if self.freeze_base else out["x_hat"]
            hyp = self.msr(x_hat)
            a = solve_coefficients(x - x_hat, hyp, self.per_channel)
            on = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
            out["x_hat"] = apply_coefficients(x_hat, hyp, a)
        else:  # exactly what the decoder outputs
            x_hat = out["x_hat"].clamp(0, 1)
            hyp = self.msr(x_hat)
            on, q = self._decide(x, x_hat, hyp)
            out["x_hat"] = self._filtered(x_hat, hyp, on, q)
            out["x_hat_unfiltered"] = x_hat
        out["likelihoods"]["msr"] = self._side_likelihoods(on)
        return out

    @torch.no_grad()
    def compress(self, x):
        return self.compress_with_size(x)

    @torch.no_grad()
    def compress_with_size(self, x, valid_hw: tuple[int, int] | None = None):
        """compress; the LS solve and the on/off decision use only the top-left ``valid_hw`` region."""
        enc = self._compress(x)
        x_hat = self.g_s(enc["y_hat"]).clamp_(0, 1)
        hyp = self.msr(x_hat)
        if valid_hw is None:
            on, q = self._decide(x, x_hat, hyp)
        else:
            h, w = valid_hw
            on, q = self._decide(x[..., :h, :w], x_hat[..., :h, :w], hyp[..., :h, :w])
        extra = b""
        for b in range(x.shape[0]):
            extra += struct.pack(">B", 1) + struct.pack(f">{self.n_coef}h", *q[b].reshape(-1).int().tolist()) \
                if bool(on[b]) else struct.pack(">B", 0)
        return {"strings": enc["strings"], "shape": enc["shape"], "extra": extra}

    def parse_extra(self, extra: bytes, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        on, qs, pos = [], [], 0
        shape = (self.out_ch if self.per_channel else 1, self.msr.hypotheses)
        for _ in range(batch):
            if pos >= len(extra) or extra[pos] not in (0, 1):
                raise ValueError("MSR side information is missing or corrupted")
            flag = extra[pos] == 1
            pos += 1
            vals = [0] * self.n_coef
            if flag:
                if pos + 2 * self.n_coef > len(extra):
                    raise ValueError("MSR side information is truncated")
                vals = list(struct.unpack_from(f">{self.n_coef}h", extra, pos))
                pos += 2 * self.n_coef
            on.append(flag)
            qs.append(torch.tensor(vals, dtype=torch.float32).reshape(shape))
        if pos != len(extra):
            raise ValueError(f"MSR side information has {len(extra) - pos} unexpected trailing bytes")
        return torch.tensor(on), torch.stack(qs)

    @torch.no_grad()
    def decompress(self, strings, shape, extra: bytes | None = None):
        if extra is None:
            raise ValueError("TinyLIC-MSR needs the MSR side information from compress() in `extra`")
        x_hat = self.g_s(self._decompress_y(strings, shape)).clamp_(0, 1)
        on, q = self.parse_extra(bytes(extra), x_hat.shape[0])
        on, q = on.to(x_hat.device), q.to(x_hat)
        hyp = self.msr(x_hat)
        return {"x_hat": self._filtered(x_hat, hyp, on, q)}


@register("lu2022-tinylic-msr", description="TinyLIC v3 + MSR adaptive in-loop filter (supplement §3): "
          "least-squares hypothesis weights signalled per image", citation=CITATION + "; MSR: Ding et al., "
          "TCSVT 2021", pad_multiple=64, N=128, M=320)
def tinylic_msr(N: int = 128, M: int = 320, **kwargs) -> TinyLICMSR:
    return TinyLICMSR(N, M, **kwargs)
