"""CDF-table indexes of predicted scales in one pass, equal to CompressAI's ``build_indexes``.

A Gaussian (or GGM) conditional codes each symbol with the CDF row of its scale: CompressAI's
``GaussianConditional.build_indexes`` bounds the scales from below, then counts, with one comparison
pass *per entry of the scale table*, the table entries the scale does not exceed::

    index = (L - 1) - #{t in table[:-1] : scale <= t}  =  #{t in table[:-1] : t < scale}

That is 63 passes over the step's scales for CompressAI's default table, 59 for HPCM's. It runs in every
coding step of every model, on the encoder and the decoder, and on a GPU each pass is a kernel launch.
:func:`scale_indexes` gives the same int32 indexes from one ``torch.bucketize`` (a binary search
per scale, which returns exactly ``#{t < scale}`` for an ascending table). Only comparisons are
involved, so the indexes are identical bit for bit, NaN and infinities included (NaN gets the last row
both ways); ``tests/entropy/test_indexes.py`` checks it against ``build_indexes`` at and around every
table entry. CompressAI only builds ascending tables; one that is not strictly ascending (a buffer set
by hand) falls back to ``build_indexes`` itself.
"""

from __future__ import annotations

import torch


def scale_indexes(conditional, scales: torch.Tensor) -> torch.Tensor:
    """``conditional.build_indexes(scales)`` (a CompressAI ``GaussianConditional`` or subclass), in one
    pass: int32 indexes of the same shape and device as ``scales``."""
    table = conditional.scale_table
    if table.numel() == 0:
        raise RuntimeError("the conditional has no scale table: call update_scale_table() (model.update(force=True))")
    if table.numel() > 1 and not bool((table[1:] > table[:-1]).all()):  # 60-odd entries: checked every call
        return conditional.build_indexes(scales)
    bounded = conditional.lower_bound_scale(scales)
    return torch.bucketize(bounded, table[:-1].to(bounded.dtype), out_int32=True)
