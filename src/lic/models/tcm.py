"""Liu, Sun & Katto, *Learned Image Compression with Mixed Transformer-CNN Architectures*,
CVPR 2023 (TCM) — the official code's model (jmliu206/LIC_TCM@6c6d7a3, ``models/tcm.py``),
re-implemented from the project's specification ``shared/specs/tcm-cgoo.md`` §1 (no code copied).

::

    x ─ g_a ─ y ─ h_a ─ z ─ [EB] ─ z_hat ─┬─ h_mean_s ─ lat_means  ─┐
                │                         └─ h_scale_s ─ lat_scales ─┤
                └─ 5 slices of 64 ch: for slice i, with the decoded (LRP-corrected) slices 0..i-1:
                     ms = atten_mean[i](lat_means ⊕ ŷ_<i);  μ = cc_mean_transforms[i](ms)
                     ss = atten_scale[i](lat_scales ⊕ ŷ_<i); σ = cc_scale_transforms[i](ss)
                     ŷ_i = Q(y_i − μ) + μ   [GC(σ, μ)]
                     ŷ_i += 0.5·tanh(lrp_transforms[i](ms ⊕ ŷ_i))   (LRP takes the SWAtten output)
                ŷ ─ g_s ─ x_hat

Registered models (the official code's N is half the paper's C; M = 320, z has 192 channels):

=====================  ===  ========================  ==========================
key                    N    params (this code)        paper Table 1
=====================  ===  ========================  ==========================
liu2023-tcm-small      64   45,180,752  (45.18 M)     44.96 M
liu2023-tcm-middle     96   59,133,650  (59.13 M)     58.72 M
liu2023-tcm-large      128  76,568,148  (76.57 M)     75.89 M
=====================  ===  ========================  ==========================

The counts equal the spec's analytic count (§1.8), which also matches a third-party DeepSpeed
count; the paper's own numbers are lower (unexplained, probably the paper's original code).

**One coding loop.** :meth:`TCM._code_slices` walks the 5 slices and calls a per-slice callback;
``forward`` (noise likelihoods + STE rounding, the official mixed quantization), ``compress`` (rANS
encoding of round(y_i − μ) with CompressAI's GaussianConditional tables into *one* buffered
stream, as the official code's BufferedRansEncoder) and ``decompress`` (decoding the same symbols) only differ
in that callback. ``decompress(compress(x))`` therefore reproduces the eval-mode ``forward``
reconstruction bit for bit on the same machine (tested), apart from the final clamp to [0, 1].

**Input sizes.** Window attention needs every attention stage divisible by its window: g_a/g_s
at H/2..H/8 (window 8), h_a/h_s at H/32 (window 4) and SWAtten at H/16 (window 8), so H and W
must be multiples of 128 (registered ``pad_multiple=128``). The official SwinBlock's branch for
maps no larger than the window crashes, so the latent must be larger than 8, i.e. the input at
least 256 px per side. ``forward`` and ``compress`` therefore pad (edge replication, right and
bottom, like :func:`lic.codec.pad`) to a multiple of ``pad_multiple`` and at least ``min_size``
(256) per side, and crop the reconstruction back; ``compress`` records the unpadded size in
``shape = (z_h, z_w, H, W)`` so ``decompress`` crops too (a 2-int official shape also works and
returns the padded size). The likelihoods of ``forward`` cover the padded image. The official
``eval.py`` instead zero-pads centred; the codec's replicate padding is used here.
This SwinBlock has no such branch, so maps equal to the window work and small configurations may set
``min_size = pad_multiple`` (e.g. the CPU profile: ``window_size=4, hyper_window_size=2,
pad_multiple=64, min_size=64`` for 64-px patches).

Checkpoints: :func:`convert_official_state_dict` turns a released ``*.pth.tar`` (or its
``state_dict``) into this model's keys (which are the official ones): it strips ``module.``
prefixes and renames pre-1.2.6 CompressAI entropy-bottleneck parameters (``_matrix{k}`` →
``matrices.{k}``, ``_bias{k}`` → ``biases.{k}``, ``_factor{k}`` → ``factors.{k}``). Then
``model.load_state_dict(sd)`` (strict) resizes the CDF buffers (CompressAI's base class) and
``model.update(force=True)`` is needed only if the checkpoint was saved before ``update()``.

Constructor arguments and what they control (defaults = the official constructor and scripts):
``N`` (64/96/128), ``M`` (320, latent channels; also h_a's input, hard-coded 320 officially),
``z_channels`` (192, hard-coded officially), ``config`` (blocks per stage; even counts alternate
W/SW), ``head_dim`` (per stage: g_a 8/16/32, g_s 32/16/8), ``window_size`` (8), ``hyper_window_size``
(4), ``hyper_head_dim`` (32), ``num_slices`` (5), ``max_support_slices`` (5; −1 = all),
``atten_head_dim`` (16), ``atten_inter_dim`` (128), ``cc_hidden`` ((224, 128): the two hidden widths of the
cc_mean/cc_scale/LRP transforms, hard-coded officially), ``drop_path_rate`` (0; the official per-stage
``dpr`` offset is never advanced, so block j of every stage uses ``dpr[j]`` — reproduced),
``pad_multiple`` (128) and ``min_size`` (256): the internal padding described above (kept as
``size_multiple``; ``registry.build`` may overwrite ``pad_multiple``, which only the codec reads),
``entropy_coder`` ("fast": :mod:`lic.entropy.fast` for y and z; "compressai": CompressAI's per-call
``compressai.ans`` / ``EntropyBottleneck.compress``; the same bytes, see docs/entropy.md; kept as
``entropy_coder_name``, also used by CGOO).

Not reproduced: the official ``from_state_dict`` (broken, spec §1.6) and the unused
``_likelihood``/``_standardized_cumulative`` helpers. Weight initialisation is PyTorch's default
except the relative-position tables (truncated normal, std .02), as in the official modules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import ResidualBlockUpsample, ResidualBlockWithStride, conv3x3, subpel_conv3x3
from compressai.models import CompressionModel
from compressai.models.utils import conv
from compressai.ops import quantize_ste
from torch import nn

from lic.entropy.fast import check_coder, coder
from lic.entropy.indexes import scale_indexes
from lic.models.registry import OfficialRelease, register
from lic.models.tcm_layers import ConvTransBlock, SWAtten

__all__ = ["TCM", "convert_official_state_dict", "TCM_PARAMS"]

#: Exact parameter counts of the registered sizes (= spec §1.8's analytic count).
TCM_PARAMS = {64: 45_180_752, 96: 59_133_650, 128: 76_568_148}

CITATION = ("J. Liu, H. Sun, J. Katto, Learned Image Compression with Mixed Transformer-CNN "
            "Architectures, CVPR 2023 (code: jmliu206/LIC_TCM)")

# A per-slice callback: (slice index, y_i or None, mu, scale) -> quantized y_i (before LRP).
SliceFn = Callable[[int, "torch.Tensor | None", torch.Tensor, torch.Tensor], torch.Tensor]


def _cc_transform(cin: int, cout: int = 64, hidden: tuple[int, int] = (224, 128)) -> nn.Sequential:
    """conv3x3(cin→224), GELU, conv3x3(224→128), GELU, conv3x3(128→cout): keys {0,2,4}."""
    h1, h2 = hidden
    return nn.Sequential(conv(cin, h1, stride=1, kernel_size=3), nn.GELU(),
                         conv(h1, h2, stride=1, kernel_size=3), nn.GELU(),
                         conv(h2, cout, stride=1, kernel_size=3))


class TCM(CompressionModel):
    """TCM with the official code's constructor defaults (N=128: TCM-large). See the module
    docstring for the arguments, the input-size handling and the deviations."""

    def __init__(self, config=(2, 2, 2, 2, 2, 2), head_dim=(8, 16, 32, 32, 16, 8),
                 drop_path_rate: float = 0.0, N: int = 128, M: int = 320, num_slices: int = 5,
                 max_support_slices: int = 5, window_size: int = 8, hyper_window_size: int = 4,
                 hyper_head_dim: int = 32, z_channels: int = 192, atten_head_dim: int = 16,
                 atten_inter_dim: int = 128, cc_hidden=(224, 128), pad_multiple: int = 128,
                 min_size: int = 256, entropy_coder: str = "fast"):
        super().__init__()
        self.entropy_coder_name = check_coder(entropy_coder)  # "fast" | "compressai": same bytes
        config, head_dim = tuple(config), tuple(head_dim)
        if len(config) != 6 or len(head_dim) != 6:
            raise ValueError("config and head_dim need 6 entries (3 g_a stages, 3 g_s stages)")
        if M % num_slices:
            raise ValueError(f"M={M} is not divisible by num_slices={num_slices}")
        self.N, self.M, self.num_slices = N, M, num_slices
        self.max_support_slices = max_support_slices
        self.config, self.head_dim = config, head_dim
        self.window_size, self.hyper_window_size = window_size, hyper_window_size
        # size_multiple drives the internal padding; pad_multiple is what lic.codec pads to (and
        # registry.build overwrites it with the key's registered value)
        self.size_multiple, self.pad_multiple, self.min_size = pad_multiple, pad_multiple, min_size
        C = 2 * N
        slice_ch = M // num_slices
        n_dpr = sum(config)  # linspace(0, rate, n_dpr), in Python (also works on the meta device)
        dpr = [drop_path_rate * j / (n_dpr - 1) if n_dpr > 1 else 0.0 for j in range(n_dpr)]

        def stage(n_blocks: int, hd: int, win: int) -> list[nn.Module]:
            # W, SW, W, ... ; the official `begin` offset into dpr is never advanced (quirk kept).
            return [ConvTransBlock(N, N, hd, win, dpr[j], "W" if j % 2 == 0 else "SW")
                    for j in range(n_blocks)]

        self.g_a = nn.Sequential(
            ResidualBlockWithStride(3, C, 2), *stage(config[0], head_dim[0], window_size),
            ResidualBlockWithStride(C, C, 2), *stage(config[1], head_dim[1], window_size),
            ResidualBlockWithStride(C, C, 2), *stage(config[2], head_dim[2], window_size),
            conv3x3(C, M, stride=2))
        self.g_s = nn.Sequential(
            ResidualBlockUpsample(M, C, 2), *stage(config[3], head_dim[3], window_size),
            ResidualBlockUpsample(C, C, 2), *stage(config[4], head_dim[4], window_size),
            ResidualBlockUpsample(C, C, 2), *stage(config[5], head_dim[5], window_size),
            subpel_conv3x3(C, 3, 2))
        self.h_a = nn.Sequential(
            ResidualBlockWithStride(M, C, 2), *stage(config[0], hyper_head_dim, hyper_window_size),
            conv3x3(C, z_channels, stride=2))

        def h_s() -> nn.Sequential:
            return nn.Sequential(
                ResidualBlockUpsample(z_channels, C, 2),
                *stage(config[3], hyper_head_dim, hyper_window_size),
                subpel_conv3x3(C, M, 2))

        self.h_mean_s = h_s()
        self.h_scale_s = h_s()

        def support_ch(i: int) -> int:
            n = i if max_support_slices < 0 else min(i, max_support_slices)
            return M + slice_ch * n

        def atten(i: int) -> nn.Sequential:
            c = support_ch(i)
            return nn.Sequential(SWAtten(c, c, atten_head_dim, window_size, 0.0, atten_inter_dim))

        self.atten_mean = nn.ModuleList(atten(i) for i in range(num_slices))
        self.atten_scale = nn.ModuleList(atten(i) for i in range(num_slices))
        cc_hidden = tuple(cc_hidden)
        self.cc_mean_transforms = nn.ModuleList(_cc_transform(support_ch(i), slice_ch, cc_hidden)
                                                for i in range(num_slices))
        self.cc_scale_transforms = nn.ModuleList(_cc_transform(support_ch(i), slice_ch, cc_hidden)
                                                 for i in range(num_slices))
        self.lrp_transforms = nn.ModuleList(_cc_transform(support_ch(i) + slice_ch, slice_ch, cc_hidden)
                                            for i in range(num_slices))
        self.entropy_bottleneck = EntropyBottleneck(z_channels)
        self.gaussian_conditional = GaussianConditional(None)

    # ------------------------------------------------------------------ helpers
    def bitstream_shape(self, height: int, width: int) -> tuple[int, ...]:
        """The ``shape`` :meth:`compress` stores for a ``height`` x ``width`` input: (z_h, z_w, H, W)."""
        ph, pw = self._padded_size(height, width)
        return (-(-ph // 64), -(-pw // 64), height, width)

    def _padded_size(self, h: int, w: int) -> tuple[int, int]:
        m = self.size_multiple

        def one(s: int) -> int:
            return max(self.min_size, -(-s // m) * m)

        return one(h), one(w)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = self._padded_size(h, w)
        if (ph, pw) == (h, w):
            return x
        return F.pad(x, (0, pw - w, 0, ph - h), mode="replicate")

    def _hyper_synthesis(self, z_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.h_mean_s(z_hat), self.h_scale_s(z_hat)

    def _code_slices(self, latent_means: torch.Tensor, latent_scales: torch.Tensor, code: SliceFn,
                     y: torch.Tensor | None = None) -> tuple[torch.Tensor, list, list]:
        """The channel-wise autoregressive loop shared by forward, compress and decompress.

        For each slice, the SWAtten + cc transforms give (μ, σ) from the hyper outputs and the
        already decoded slices; ``code(i, y_i, μ, σ)`` returns the quantized slice (with y_i None
        when decoding); LRP is added and the slice becomes context for the next ones.
        Returns (ŷ, [μ_i], [σ_i]).
        """
        y_slices = y.chunk(self.num_slices, 1) if y is not None else [None] * self.num_slices
        yh, yw = latent_means.shape[-2:]
        decoded: list[torch.Tensor] = []
        mus, sigmas = [], []
        for i in range(self.num_slices):
            support = decoded if self.max_support_slices < 0 else decoded[: self.max_support_slices]
            ms = self.atten_mean[i](torch.cat([latent_means] + support, dim=1))
            mu = self.cc_mean_transforms[i](ms)[:, :, :yh, :yw]
            ss = self.atten_scale[i](torch.cat([latent_scales] + support, dim=1))
            sigma = self.cc_scale_transforms[i](ss)[:, :, :yh, :yw]
            y_hat_i = code(i, y_slices[i], mu, sigma)
            lrp = 0.5 * torch.tanh(self.lrp_transforms[i](torch.cat([ms, y_hat_i], dim=1)))
            decoded.append(y_hat_i + lrp)
            mus.append(mu)
            sigmas.append(sigma)
        return torch.cat(decoded, dim=1), mus, sigmas

    def _gc_tables(self):
        """The GaussianConditional's CDF tables in the form of the selected coder path."""
        gc = self.gaussian_conditional
        if gc._quantized_cdf.numel() == 0:
            raise RuntimeError("call model.update(force=True) before compress/decompress")
        return coder(self.entropy_coder_name).tables(gc)

    # ------------------------------------------------------------------ training / estimation
    def forward(self, x: torch.Tensor) -> dict:
        h, w = x.shape[-2:]
        # A channels-last input (e.g. a permuted HWC batch) makes the backward pass of this network segfault on
        # CPU with torch 2.14.1 (tests/test_model_tcm.py::test_channels_last_input_trains); contiguous is safe.
        x = x.contiguous()
        y = self.g_a(self._pad(x))
        z = self.h_a(y)
        _, z_likelihoods = self.entropy_bottleneck(z)
        z_offset = self.entropy_bottleneck._get_medians()
        z_hat = quantize_ste(z - z_offset) + z_offset
        latent_means, latent_scales = self._hyper_synthesis(z_hat)
        y_likelihoods: list[torch.Tensor] = []

        def code(i, y_i, mu, sigma):
            _, lik = self.gaussian_conditional(y_i, sigma, mu)  # noise in training, rounding in eval
            y_likelihoods.append(lik)
            return quantize_ste(y_i - mu) + mu                   # STE rounding for the distortion

        y_hat, mus, sigmas = self._code_slices(latent_means, latent_scales, code, y)
        x_hat = self.g_s(y_hat)[..., :h, :w]
        return {"x_hat": x_hat,
                "likelihoods": {"y": torch.cat(y_likelihoods, dim=1), "z": z_likelihoods},
                "para": {"means": torch.cat(mus, dim=1), "scales": torch.cat(sigmas, dim=1), "y": y}}

    # ------------------------------------------------------------------ bitstreams
    def update(self, scale_table=None, force: bool = False, update_quantiles: bool = False) -> bool:
        """Build the CDF tables (64 log-spaced scales 0.11..256 by default, as the official update)."""
        return super().update(scale_table=scale_table, force=force, update_quantiles=update_quantiles)

    @torch.no_grad()
    def compress(self, x: torch.Tensor) -> dict:
        """One image → ``{"strings": [[y_string], [z_string]], "shape": (z_h, z_w, H, W)}``."""
        if x.size(0) != 1:
            raise ValueError(f"TCM.compress codes one image at a time (batch 1), got batch {x.size(0)}")
        h, w = x.shape[-2:]
        y = self.g_a(self._pad(x))
        z = self.h_a(y)
        rc = coder(self.entropy_coder_name)
        z_strings = rc.eb_compress(self.entropy_bottleneck, z)
        z_hat = rc.eb_decompress(self.entropy_bottleneck, z_strings, z.shape[-2:])
        latent_means, latent_scales = self._hyper_synthesis(z_hat)
        tables = self._gc_tables()
        gc = self.gaussian_conditional
        encoder = rc.encoder()

        def code(i, y_i, mu, sigma):
            indexes = scale_indexes(gc, sigma)
            symbols = gc.quantize(y_i, "symbols", mu)
            encoder.encode(symbols, indexes, tables)
            return gc.dequantize(symbols, mu)

        self._code_slices(latent_means, latent_scales, code, y)
        y_string = encoder.flush()
        return {"strings": [[y_string], z_strings],
                "shape": (int(z.shape[-2]), int(z.shape[-1]), int(h), int(w))}

    @torch.no_grad()
    def decompress(self, strings, shape) -> dict:
        """Inverse of :meth:`compress`; ``shape`` is (z_h, z_w[, H, W]). Output clamped to [0, 1]."""
        if len(strings[0]) != 1:
            raise ValueError("TCM.decompress decodes one image at a time (batch 1)")
        shape = [int(s) for s in shape]
        rc = coder(self.entropy_coder_name)
        z_hat = rc.eb_decompress(self.entropy_bottleneck, strings[1], shape[:2])
        latent_means, latent_scales = self._hyper_synthesis(z_hat)
        tables = self._gc_tables()
        gc = self.gaussian_conditional
        decoder = rc.decoder(strings[0][0])

        def code(i, _y_i, mu, sigma):
            indexes = scale_indexes(gc, sigma)
            values = decoder.decode(indexes, tables).to(mu.device).reshape(mu.shape)
            return gc.dequantize(values, mu)

        y_hat, _, _ = self._code_slices(latent_means, latent_scales, code)
        x_hat = self.g_s(y_hat).clamp_(0, 1)
        if len(shape) >= 4:
            x_hat = x_hat[..., : shape[2], : shape[3]]
        return {"x_hat": x_hat}


# ---------------------------------------------------------------------- checkpoints
_OLD_EB = re.compile(r"^(.*entropy_bottleneck\.)_(matrix|bias|factor)(\d+)$")
_OLD_EB_NEW = {"matrix": "matrices", "bias": "biases", "factor": "factors"}


def convert_official_state_dict(sd: Mapping) -> dict:
    """A released LIC_TCM checkpoint (the whole ``*.pth.tar`` dict or its ``state_dict``) → this
    model's state_dict keys: strips every leading ``module.`` (DataParallel/DDP) and renames
    CompressAI ≤1.2.5 entropy-bottleneck parameters to the ≥1.2.6 names. Values are kept as is
    (empty CDF buffers of a checkpoint saved before ``update()`` are resized by ``load_state_dict``).
    """
    if "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    out = {}
    for key, value in sd.items():
        while key.startswith("module."):
            key = key[len("module."):]
        m = _OLD_EB.match(key)
        if m:
            key = f"{m.group(1)}{_OLD_EB_NEW[m.group(2)]}.{m.group(3)}"
        out[key] = value
    return out


# ---------------------------------------------------------------------- registry
def _build(**kwargs) -> TCM:
    return TCM(**kwargs)


#: λ of qualities 1-6 (the README's checkpoint table); the released files by N (spec §1.7)
LAMBDAS = (0.0025, 0.0035, 0.0067, 0.013, 0.025, 0.05)
_RELEASED = {64: "N=64 at all six MSE λ (0.0025–0.05)", 128: "N=128 at MSE λ = 0.05 only"}
for _key, _n, _size in (("liu2023-tcm-small", 64, "small"), ("liu2023-tcm-middle", 96, "middle"),
                        ("liu2023-tcm-large", 128, "large")):
    _official = (OfficialRelease(convert_official_state_dict, f"{_RELEASED[_n]}; Google Drive, linked from "
                                 "jmliu206/LIC_TCM's README (e.g. mse_lambda_0.05.pth.tar)", LAMBDAS,
                                 # eval.py: centred zeros to p = 128, rate from the coded strings
                                 eval_script="jmliu206/LIC_TCM@6c6d7a3:eval.py", eval_pad_multiple=128)
                 if _n in _RELEASED else None)
    register(_key, description=(f"TCM-{_size} (official code N={_n}, paper C={2 * _n}, M=320, "
                                f"{TCM_PARAMS[_n] / 1e6:.2f} M params); inputs padded to ≥256"),
             citation=CITATION, pad_multiple=128, official=_official, N=_n)(_build)

