"""Minnen, Ballé & Toderici, *Joint Autoregressive and Hierarchical Priors for Learned Image
Compression*, NeurIPS 2018 — the mean-scale hyperprior without the autoregressive context
(CompressAI's ``mbt2018-mean``), used as the project's reference learned model.

::

    x ─ g_a ─ y ─ h_a ─ z ─ [EB] ─ z_hat ─ h_s ─ (scales_hat, means_hat)
                  │                                   │
                  └──────────── [GC(scales, means)] ──┴─ y_hat ─ g_s ─ x_hat

CompressAI's implementation (``compressai.models.MeanScaleHyperprior``) is used as is: it is a
pinned dependency, never vendored; its forward/compress/decompress share its entropy models.

Args:
    N: channels of the transforms (128 in CompressAI's qualities 1-5, 192 above).
    M: channels of the latent y (192; 320 above quality 5).

Deviations: the default profile trains N=48, M=64 on CPU (params.yaml ``models.minnen2018-mean``).
"""

from __future__ import annotations

from compressai.models import MeanScaleHyperprior

from lic.models.registry import register


@register("minnen2018-mean", description="mean-scale hyperprior (CompressAI mbt2018-mean)",
          citation="Minnen, Ballé, Toderici, NeurIPS 2018", pad_multiple=64, N=128, M=192)
def mean_scale_hyperprior(N: int = 128, M: int = 192) -> MeanScaleHyperprior:
    return MeanScaleHyperprior(N=N, M=M)
