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
by hand) falls back to ``build_indexes`` itself. Whether a table ascends is checked once per table state
(a new buffer or an in-place write is checked again), not in every coding step.
"""

from __future__ import annotations

import weakref

import torch


#: conditional -> (weak reference to its scale table, (storage, version counter), strictly ascending)
_ASCENDING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _ascending(conditional, table: torch.Tensor) -> bool:
    """Whether ``table`` is strictly ascending, checked once per table state: the answer is kept (outside
    the module, which stays picklable) with a weak reference to the table (a replaced buffer never
    matches), its storage and its version counter (which every in-place write bumps), so a coding step
    does not pay a comparison (on a GPU, a synchronisation) for it."""
    cached = _ASCENDING.get(conditional)
    state = (table.data_ptr(), table._version)
    if cached is not None and cached[0]() is table and cached[1] == state:
        return cached[2]
    ok = table.numel() <= 1 or bool((table[1:] > table[:-1]).all())
    _ASCENDING[conditional] = (weakref.ref(table), state, ok)
    return ok


def scale_indexes(conditional, scales: torch.Tensor) -> torch.Tensor:
    """``conditional.build_indexes(scales)`` (a CompressAI ``GaussianConditional`` or subclass), in one
    pass: int32 indexes of the same shape and device as ``scales``."""
    table = conditional.scale_table
    if table.numel() == 0:
        raise RuntimeError("the conditional has no scale table: call update_scale_table() (model.update(force=True))")
    if not _ascending(conditional, table):
        return conditional.build_indexes(scales)
    bounded = conditional.lower_bound_scale(scales)
    return torch.bucketize(bounded, table[:-1].to(bounded.dtype), out_int32=True)
