"""lic.entropy.indexes.scale_indexes gives CompressAI's build_indexes bit for bit, in one pass."""

from __future__ import annotations

import math

import pytest
import torch
from compressai.entropy_models import GaussianConditional

from lic.entropy.indexes import scale_indexes
from lic.models.hpcm_entropy import GGMConditional, get_scale_table


def _conditionals():
    default = GaussianConditional(None)  # CompressAI's default table: 64 levels, 0.11 .. 256
    default.update_scale_table(torch.exp(torch.linspace(math.log(0.11), math.log(256), 64)), force=True)
    ggm = GGMConditional()  # HPCM: 60 levels, 0.12 .. 64, scale bound 0.12
    ggm.update_scale_table(get_scale_table(), force=True)
    coarse = GaussianConditional([0.2, 0.5, 1.0, 4.0])
    return {"compressai-default": default, "hpcm-ggm": ggm, "coarse": coarse}


def _probe(table: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Every table entry, the floats just below and above it, out-of-range, special and random scales."""
    inf = torch.tensor(math.inf)
    edges = torch.cat([table, torch.nextafter(table, -inf), torch.nextafter(table, inf)])
    special = torch.tensor([0.0, -0.0, -1.0, 1e-30, 1e30, math.inf, -math.inf, math.nan])
    g = torch.Generator().manual_seed(seed)
    rand = torch.exp(torch.randn(20000, generator=g) * 2.0)
    return torch.cat([edges, special, rand, -rand[:100]])


@pytest.mark.parametrize("name", ["compressai-default", "hpcm-ggm", "coarse"])
def test_equals_build_indexes(name):
    cond = _conditionals()[name]
    x = _probe(cond.scale_table)
    ours, ref = scale_indexes(cond, x), cond.build_indexes(x)
    assert ours.dtype == ref.dtype == torch.int32
    assert torch.equal(ours, ref)
    # shape and layout of a coding step's (B, C, H, W) scales are kept
    s = torch.exp(torch.randn(2, 8, 5, 7)).transpose(2, 3)
    assert torch.equal(scale_indexes(cond, s), cond.build_indexes(s))
    assert scale_indexes(cond, s).shape == s.shape


def test_float64_scales_compare_like_build_indexes():
    cond = _conditionals()["compressai-default"]
    t = cond.scale_table.double()
    x = torch.cat([t, torch.nextafter(t, torch.tensor(0.0, dtype=torch.float64)),
                   torch.nextafter(t, torch.tensor(1e9, dtype=torch.float64))])
    assert torch.equal(scale_indexes(cond, x), cond.build_indexes(x))


def test_unsorted_table_falls_back():
    cond = GaussianConditional([0.2, 0.5, 1.0, 4.0])
    cond.scale_table = torch.tensor([0.5, 0.2, 1.0, 4.0])  # CompressAI checks only its own constructor's list
    x = _probe(cond.scale_table)
    assert torch.equal(scale_indexes(cond, x), cond.build_indexes(x))


def test_ascending_check_follows_every_change_of_the_table(monkeypatch):
    """The ascending check is cached per table state: an in-place write or a new buffer is re-checked,
    and an unchanged table is not compared again."""
    import compressai.entropy_models as em

    cond = GaussianConditional([0.2, 0.5, 1.0, 4.0])
    x = _probe(cond.scale_table)
    calls = []
    real = em.GaussianConditional.build_indexes
    monkeypatch.setattr(em.GaussianConditional, "build_indexes", lambda self, s: calls.append(1) or real(self, s))
    expected = real(cond, x)
    assert torch.equal(scale_indexes(cond, x), expected) and not calls  # ascending: the one-pass path
    assert torch.equal(scale_indexes(cond, x), expected) and not calls
    cond.scale_table[0] = 0.9  # in place: no longer ascending -> fallback
    assert torch.equal(scale_indexes(cond, x), real(cond, x)) and len(calls) == 1
    cond.scale_table = torch.tensor([0.2, 0.5, 1.0, 4.0])  # a new buffer: ascending again
    assert torch.equal(scale_indexes(cond, x), expected) and len(calls) == 1
    cond.scale_table = torch.tensor([0.5, 0.2, 1.0, 4.0])  # another new buffer, not ascending
    assert torch.equal(scale_indexes(cond, x), real(cond, x)) and len(calls) == 2


def test_missing_table_is_an_error():
    with pytest.raises(RuntimeError, match="no scale table"):
        scale_indexes(GaussianConditional(None), torch.ones(3))


def test_hpcm_steps_get_build_indexes_exactly(monkeypatch):
    """Inside a model: every coding step's indexes equal build_indexes, over many table rows, and the
    stream decodes (a tiny HPCM whose hyper-synthesis is scaled up, so the scales spread widely)."""
    import lic.models.hpcm as hpcm

    torch.manual_seed(0)
    m = hpcm.HPCM(M=32, N=32, g_channels=(16, 24, 32), g_blocks=(1, 1, 1), h_blocks=(1, 1),
                  ep_blocks=((1, 1), (1, 1)), num_heads=4, windows=(1, 2, 4)).eval()
    with torch.no_grad():
        for p in m.h_s.parameters():
            p.mul_(3)
        for n, p in m.named_parameters():
            if "y_spatial_prior" in n:
                p.mul_(2)
    m.update(force=True)
    calls = []

    def recording(cond, scales):
        ours = scale_indexes(cond, scales)
        calls.append((ours, cond.build_indexes(scales)))
        return ours

    monkeypatch.setattr(hpcm, "scale_indexes", recording)
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    enc = m.compress(x)
    assert len(calls) == 11  # one per coding step
    assert all(torch.equal(a, b) for a, b in calls)
    assert torch.cat([a for a, _ in calls]).unique().numel() >= 30  # most of the 60 rows are used
    out = m.decompress(enc["strings"], enc["shape"])["x_hat"]
    assert torch.equal(out, m(x)["x_hat"].clamp(0, 1))
    assert len(calls) == 22 and all(torch.equal(a, b) for a, b in calls)
