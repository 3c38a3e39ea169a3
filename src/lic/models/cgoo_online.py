"""Cross-granularity online optimisation of CGOO (Kuang et al., ICCV 2025) at encoding time.

The decoder is fixed (the model's weights); only what is sent changes, per image:

::

    coarse  1. latent refinement: y, s ← Adam on  λ·255²·MSE(x̂(y, s), x) + w·bpp(y, s)
               (w = ``online_rate_weight`` < 1: the relaxed rate constraint; noise for the rate,
               straight-through rounding for the reconstruction, as TCM trains; DDT syntax s too)
            2. adaptive QP: every (latent, Δ) in {refined, initial (``online_fallback``)} ×
               ``qp_steps`` is really coded; the smallest λ·255²·MSE + 8·bytes/pixels wins
    fine    3. MSC: with the chosen (latent, Δ), every mask ratio of ``msc_ratios`` is really coded
               (compensation on the positions of largest latent-domain gain); the cheapest wins

The RD costs of steps 2-3 use the exact decoder reconstruction and the real stream bytes (all
strings + the 2 extra bytes; the container's fixed header is the same for every candidate). With one
entry in ``qp_steps`` / ``msc_ratios`` there is no choice, and ``online_iters = 0`` skips step 1.
Unknown in the paper (see docs/cgoo.md): the optimiser, iterations, lr, rate weight, variables, QP
set and selection rule, mask rule.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["online_encode", "refine_latent", "rd_cost"]


def rd_cost(x_hat: torch.Tensor, x: torch.Tensor, n_bytes: int, lmbda: float) -> float:
    """λ·255²·MSE + bpp, bpp = 8·bytes / (H·W of the unpadded image)."""
    h, w = x.shape[-2:]
    return lmbda * 255 ** 2 * float(F.mse_loss(x_hat, x)) + 8 * n_bytes / (h * w)


def refine_latent(model, x: torch.Tensor, x_pad: torch.Tensor, y0: torch.Tensor,
                  s0: torch.Tensor | None, lmbda: float) -> tuple[torch.Tensor, torch.Tensor | None, list]:
    """Coarse step 1: ``model.online_iters`` Adam steps on (y, s) with the relaxed rate weight.
    Returns the refined (y, s) and the loss history. Model weights get no gradient."""
    h, w = x.shape[-2:]
    devices = [x.device.index or 0] if x.is_cuda else []
    history: list[float] = []
    with torch.enable_grad(), torch.random.fork_rng(devices=devices):
        torch.manual_seed(model.online_seed)  # the rate noise: reproducible, global RNG untouched
        y = y0.detach().clone().requires_grad_(True)
        variables = [y]
        s = None
        if s0 is not None:
            s = s0.detach().clone().requires_grad_(True)
            variables.append(s)
        opt = torch.optim.Adam(variables, lr=model.online_lr)
        for _ in range(model.online_iters):
            y_hat, lik = model.latent_ste(y, training=True)
            x_hat = model.g_s(y_hat)
            if s is not None:
                x_hat = model.ddt_decoder(x_hat, model.ddt_quantize_ste(s))
                _, lik["ddt"] = model.ddt_bottleneck(s, training=True)
            bpp = sum(torch.log(lk).sum() for lk in lik.values()) / (-math.log(2) * h * w)
            loss = lmbda * 255 ** 2 * F.mse_loss(x_hat[..., :h, :w], x) + model.online_rate_weight * bpp
            grads = torch.autograd.grad(loss, variables)
            for v, g in zip(variables, grads):
                v.grad = g
            opt.step()
            history.append(float(loss.detach()))
    return y.detach(), (s.detach() if s is not None else None), history


@torch.no_grad()
def online_encode(model, x: torch.Tensor) -> dict:
    """Encode one image (1, 3, H, W) with ``model`` (a :class:`~lic.models.cgoo.CGOO`).

    Returns :meth:`CGOO.encode_latent`'s dict of the chosen candidate, plus ``rd_cost``,
    ``choice`` = {"refined", "qp_index", "msc_ratio"} and ``history`` (refinement losses).
    """
    h, w = x.shape[-2:]
    lmbda = float(model.lmbda)
    x_pad = model._pad(x)
    y0 = model.g_a(x_pad)
    s0 = None
    if model.use_ddt:
        x_hat0 = model.g_s(model.latent_ste(y0, training=False)[0]) if model.ddt_input == "residual" else None
        s0 = model.ddt_syntax(x_pad, x_hat0)

    candidates = [(False, y0, s0)]
    history: list[float] = []
    if model.online_iters > 0:
        y1, s1, history = refine_latent(model, x, x_pad, y0, s0, lmbda)
        candidates = [(True, y1, s1)] + (candidates if model.online_fallback else [])

    fixed_ratio = model.msc_ratios[0] if len(model.msc_ratios) == 1 else 0.0
    best, best_cost, choice = None, math.inf, None
    for refined, y, s in candidates:  # coarse step 2: adaptive QP
        for q in range(len(model.qp_steps)):
            enc = model.encode_latent(y, s, q, fixed_ratio, (h, w))
            cost = rd_cost(enc["x_hat"], x, enc["n_bytes"], lmbda)
            if cost < best_cost:
                best, best_cost, choice = enc, cost, (refined, y, s, q)
    refined, y, s, q = choice
    ratio = fixed_ratio
    if model.use_msc and len(model.msc_ratios) > 1:  # fine step: MSC mask ratio
        for r in model.msc_ratios:
            if r == 0.0:
                continue  # already coded above
            enc = model.encode_latent(y, s, q, r, (h, w))
            cost = rd_cost(enc["x_hat"], x, enc["n_bytes"], lmbda)
            if cost < best_cost:
                best, best_cost, ratio = enc, cost, r
    best.update(rd_cost=best_cost, history=history,
                choice={"refined": refined, "qp_index": q, "msc_ratio": ratio})
    return best
