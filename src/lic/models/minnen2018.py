"""Minnen, Ballé & Toderici, *Joint Autoregressive and Hierarchical Priors for Learned Image
Compression*, NeurIPS 2018 — the mean-scale hyperprior without the autoregressive context
(CompressAI's ``mbt2018-mean``), used as the project's reference learned model.

::

    x ─ g_a ─ y ─ h_a ─ z ─ [EB] ─ z_hat ─ h_s ─ (scales_hat, means_hat)
                  │                                   │
                  └──────────── [GC(scales, means)] ──┴─ y_hat ─ g_s ─ x_hat

CompressAI's implementation (``compressai.models.MeanScaleHyperprior``) is used as is (a pinned
dependency, never vendored; forward/compress share its entropy models), with one change: ``decompress``
decodes on the project's bounds-checked rANS path (:mod:`lic.entropy.fast`, the same symbols as
CompressAI's C++ decoder, whose release build reads past the end of a garbage stream), so a damaged
or hostile stream gives an error or a wrong image, never a crash.

Args:
    N: channels of the transforms (128 in CompressAI's qualities 1-5, 192 above).
    M: channels of the latent y (192; 320 above quality 5).

Deviations: the default profile trains N=48, M=64 on CPU (params.yaml ``models.minnen2018-mean``).
"""

from __future__ import annotations

import torch
from compressai.models import MeanScaleHyperprior

from lic.entropy.fast import coder
from lic.models.registry import register


class ReferenceHyperprior(MeanScaleHyperprior):
    """``MeanScaleHyperprior`` with a bounds-checked ``decompress`` and the container's layout hooks."""

    @torch.no_grad()
    def decompress(self, strings, shape) -> dict:
        if len(strings) != 2 or len(strings[0]) != len(strings[1]):
            raise ValueError("mean-scale hyperprior streams must be [y strings, z strings], one of each per image")
        rc = coder("fast")
        z_hat = rc.eb_decompress(self.entropy_bottleneck, strings[1], tuple(shape))
        gaussian_params = self.h_s(z_hat)
        scales_hat, means_hat = gaussian_params.chunk(2, 1)
        gc = self.gaussian_conditional
        indexes = gc.build_indexes(scales_hat)
        tables = rc.tables(gc)
        values = torch.stack([rc.decode(s, indexes[i], tables).reshape(indexes[i].shape)
                              for i, s in enumerate(strings[0])])
        y_hat = gc.dequantize(values.to(means_hat.device), means_hat)
        return {"x_hat": self.g_s(y_hat).clamp_(0, 1)}

    def bitstream_shape(self, height: int, width: int) -> tuple[int, ...]:
        """What ``compress`` stores as ``shape`` for a (padded) ``height`` x ``width`` input: z's size."""
        return (-(-height // 64), -(-width // 64))


@register("minnen2018-mean", description="mean-scale hyperprior (CompressAI mbt2018-mean)",
          citation="Minnen, Ballé, Toderici, NeurIPS 2018", pad_multiple=64, N=128, M=192)
def mean_scale_hyperprior(N: int = 128, M: int = 192) -> MeanScaleHyperprior:
    return ReferenceHyperprior(N=N, M=M)
