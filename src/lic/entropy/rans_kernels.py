"""numba kernels of the fast rANS path (see :mod:`lic.entropy.fast` for the API and the format).

The coder is the one of CompressAI 1.2.8 (``cpp_exts/rans/rans_interface.cpp`` on top of ryg's
``rans64.h``), re-implemented so that the bytes are identical:

* state ``x`` in ``[L, L << 32)`` with ``L = 2**31`` (it always fits a signed int64, so the kernels
  use int64 and never mix signed and unsigned types), 32-bit renormalisation words, 16-bit
  probabilities;
* per symbol ``v = symbol - offset[index]`` against the CDF row ``index`` of length ``n``; the last
  coded value ``n - 2`` is the escape: values outside ``[0, n - 2)`` code the escape symbol, then
  in 4-bit bypass "symbols" the number of 4-bit groups of ``raw`` (with 15-continuation) and the
  groups of ``raw`` least significant first, where ``raw = -2 v - 1`` below the range and
  ``raw = 2 (v - (n - 2))`` above it;
* the encoder first lists every (start, freq) / bypass value in coding order (one ``uint32`` each:
  ``start | freq << 16``, ``freq == 0`` marking a 4-bit bypass value held in ``start``), then runs
  rANS over that list backwards, writing words downwards; the stream is the two final state words
  (low, high) followed by the renormalisation words, little-endian ``uint32``.

Every kernel reports bad input through a status code instead of trusting it: indexes out of the
table, CDF rows whose lengths or frequencies are impossible, reads past the end of the stream
(truncation) and bypass counts no encoder writes (corruption). Array accesses stay in bounds for
any input, and every loop is bounded by the input sizes, so a damaged stream cannot crash or hang.
"""

from __future__ import annotations

import warnings

import numpy as np
from numba import njit

# status codes (mapped to messages by lic.entropy.fast)
OK = 0
ERR_INDEX = 1       # an index outside [0, num_cdfs)
ERR_CDF = 2         # a CDF row with an impossible length or frequency
ERR_RANGE = 3       # a symbol too far out of range for the 32-bit escape code
ERR_TRUNCATED = 4   # the decoder needed a word past the end of the stream
ERR_CORRUPT = 5     # the stream holds a bypass count no encoder writes
NEED_ROOM = 6       # not an error: the encoder's buffer is full, grow it and continue

PRECISION = 16
BYPASS_PRECISION = 4
MAX_BYPASS_VAL = (1 << BYPASS_PRECISION) - 1
RANS64_L = 1 << 31
LUT_SHIFT = 8                          # decoder lookup: 2**16 >> 8 = 256 buckets per CDF row
LUT_SIZE = 1 << (PRECISION - LUT_SHIFT)
LUT_DIRECT = 1 << 62                   # flag of a lookup entry that is the symbol itself
LUT_FIELD = (1 << 20) - 1              # value / start / freq / bracket fields of an entry
LUT_AFTER = 16                         # ... built for a row once it has decoded this many symbols
#: at most this many 4-bit groups: the escape's raw value is kept below 2**31
MAX_BYPASS_GROUPS = 8


def _jit(fn):
    """``njit(cache=True)``; without a writable cache location (read-only install, read-only home),
    numba refuses ``cache=True`` at decoration time, so compile without the cache then (slower start,
    same code)."""
    opts = dict(nogil=True, error_model="numpy")
    try:
        return njit(cache=True, **opts)(fn)
    except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
        warnings.warn(f"lic.entropy: numba cannot cache {fn.__name__} ({exc}); compiling per process",
                      RuntimeWarning, stacklevel=2)
        return njit(cache=False, **opts)(fn)


@_jit
def prepare_symbols(symbols, indexes, cdfs, cdf_lengths, offsets, buf, pos, first):
    """Append the coding-order list of ``symbols[first:]`` to ``buf`` from ``buf[pos]`` on.

    Returns ``(new_pos, status, i)``: ``OK`` when all are appended; ``NEED_ROOM`` when ``buf`` is
    full before symbol ``i`` (grow it and call again with ``pos=new_pos, first=i``); an error status
    at the offending symbol ``i`` otherwise.
    """
    n = symbols.shape[0]
    num_cdfs = cdfs.shape[0]
    width = cdfs.shape[1]
    k = pos
    room = buf.shape[0] - (2 + MAX_BYPASS_GROUPS)  # the worst case of one symbol fits below it
    for i in range(first, n):
        if k > room:
            return k, NEED_ROOM, i
        idx = indexes[i]
        if idx < 0 or idx >= num_cdfs:
            return k, ERR_INDEX, i
        length = cdf_lengths[idx]
        if length < 2 or length > width:
            return k, ERR_CDF, i
        max_value = length - 2
        value = np.int64(symbols[i]) - np.int64(offsets[idx])
        escape = value < 0 or value >= max_value
        raw = np.int64(0)
        if escape:
            raw = -2 * value - 1 if value < 0 else 2 * (value - max_value)
            if raw >= RANS64_L:  # the C++ decoder's int32 arithmetic would not give it back
                return k, ERR_RANGE, i
            value = max_value
        start = np.int64(cdfs[idx, value])
        freq = np.int64(cdfs[idx, value + 1]) - start
        if start < 0 or start > 0xFFFF or freq < 1 or freq > 0xFFFF:
            return k, ERR_CDF, i
        buf[k] = np.uint32(start | (freq << 16))
        k += 1
        if escape:
            n_bypass = 0
            while (raw >> (n_bypass * BYPASS_PRECISION)) != 0:
                n_bypass += 1
            # n_bypass <= 8 < MAX_BYPASS_VAL: the count is always a single group
            buf[k] = np.uint32(n_bypass)
            k += 1
            for j in range(n_bypass):
                buf[k] = np.uint32((raw >> (j * BYPASS_PRECISION)) & MAX_BYPASS_VAL)
                k += 1
    return k, OK, n


@_jit
def rans_encode(syms, n):
    """rANS over ``syms[:n]`` backwards (last pushed, first coded); returns the stream as uint32 words."""
    out = np.empty(n + 2, np.uint32)  # each put renormalises at most once
    p = n + 2
    x = np.int64(RANS64_L)
    bypass_max = np.int64(((RANS64_L >> PRECISION) << 32) << (PRECISION - BYPASS_PRECISION))
    for k in range(n - 1, -1, -1):
        s = np.int64(syms[k])
        start = s & 0xFFFF
        freq = s >> 16
        if freq != 0:
            if x >= (((RANS64_L >> PRECISION) << 32) * freq):
                p -= 1
                out[p] = np.uint32(x & 0xFFFFFFFF)
                x >>= 32
            q = np.int64(np.uint64(x) // np.uint64(freq))
            x = (q << PRECISION) + (x - q * freq) + start
        else:
            if x >= bypass_max:
                p -= 1
                out[p] = np.uint32(x & 0xFFFFFFFF)
                x >>= 32
            x = (x << BYPASS_PRECISION) | start
    p -= 2
    out[p] = np.uint32(x & 0xFFFFFFFF)
    out[p + 1] = np.uint32(x >> 32)
    return out[p:]


def new_lut(num_cdfs: int) -> tuple[np.ndarray, np.ndarray]:
    """The decoder's lookup state for a table of ``num_cdfs`` rows: ``(lut, uses)`` for
    :func:`rans_decode`. Kept with a table, each row is built once for every later call."""
    return np.zeros((num_cdfs, LUT_SIZE), np.int64), np.zeros(num_cdfs, np.int32)


@_jit
def rans_decode(words, state, indexes, cdfs, cdf_lengths, offsets, out, lut, uses):
    """Decode ``len(indexes)`` symbols into ``out``, continuing from ``state = [x, word position]``
    (updated in place). Returns ``(status, i)``: on error ``i`` is the symbol that failed.

    ``lut`` (num_cdfs x 256, int64) and ``uses`` (num_cdfs) are the lookup state of :func:`new_lut`.
    A row's lookup is built once the row has decoded LUT_AFTER symbols (rows and calls with few
    symbols do not pay for it), ``uses[r] = -1`` marking it built. Entry ``b`` covers the cumulative
    frequencies ``[b << 8, (b + 1) << 8)``: when one value ``s`` holds all of them the entry is
    *direct*, ``LUT_DIRECT | s << 40 | start << 20 | freq`` (the symbol without touching the row: one
    load on the decoder's critical path instead of two); otherwise it brackets the search,
    ``lo | (hi << 20)``. The caller may keep the state with its table across calls; it is only a
    hint: a direct entry is checked against the row and the cum, a bracket that does not hold the
    value falls back to searching the whole row, so a stale or torn entry never changes a result."""
    n_words = words.shape[0]
    num_cdfs = cdfs.shape[0]
    width = cdfs.shape[1]
    x = state[0]
    p = state[1]
    mask = np.int64((1 << PRECISION) - 1)
    n = indexes.shape[0]
    if lut.shape[0] < num_cdfs or lut.shape[1] != LUT_SIZE or uses.shape[0] < num_cdfs:
        return ERR_CDF, 0
    use_lut = width <= LUT_FIELD  # values and brackets must fit their 20-bit fields
    for i in range(n):
        idx = np.int64(indexes[i])
        if idx < 0 or idx >= num_cdfs:
            return ERR_INDEX, i
        length = np.int64(cdf_lengths[idx])
        if length < 2 or length > width:
            return ERR_CDF, i
        max_value = length - 2
        if use_lut and uses[idx] >= 0:
            uses[idx] += 1
            if uses[idx] >= LUT_AFTER:
                s = np.int64(0)  # the last value with cdf[s] <= the bucket's first cum
                for b in range(LUT_SIZE):
                    c = np.int64(b) << LUT_SHIFT
                    while s < max_value and np.int64(cdfs[idx, s + 1]) <= c:
                        s += 1
                    t = s  # ... and with cdf[t] <= its last cum
                    while t < max_value and np.int64(cdfs[idx, t + 1]) <= c + (1 << LUT_SHIFT) - 1:
                        t += 1
                    if t == s:
                        st = np.int64(cdfs[idx, s])
                        fr = np.int64(cdfs[idx, s + 1]) - st
                        lut[idx, b] = LUT_DIRECT | (s << 40) | ((st & LUT_FIELD) << 20) | (fr & LUT_FIELD)
                    else:
                        lut[idx, b] = s | ((t + 1) << 20)
                uses[idx] = -1
        cum = x & mask
        # the value s with cdf[s] <= cum < cdf[s + 1] (CompressAI: first entry > cum, minus one;
        # the same for the non-decreasing rows of a valid table): a direct lookup entry, or a search
        # in the entry's bracket, or in the whole row
        lo = np.int64(0)
        hi = length - 1
        found = False
        start = np.int64(0)
        freq = np.int64(0)
        value = np.int64(0)
        if uses[idx] < 0:
            e = lut[idx, cum >> LUT_SHIFT]
            if e >= LUT_DIRECT:
                value = (e >> 40) & LUT_FIELD
                start = (e >> 20) & LUT_FIELD
                freq = e & LUT_FIELD
                found = (value <= max_value and start <= cum and cum < start + freq
                         and np.int64(cdfs[idx, value]) == start and np.int64(cdfs[idx, value + 1]) == start + freq)
            else:
                lo = min(e & LUT_FIELD, length - 2)
                hi = min((e >> 20) & LUT_FIELD, length - 1)
        if not found:
            if np.int64(cdfs[idx, lo]) > cum or np.int64(cdfs[idx, hi]) <= cum:
                # a bracket that does not hold cum (a row that does not rise, a stale entry): the whole row
                lo = np.int64(0)
                hi = length - 1
                if np.int64(cdfs[idx, lo]) > cum or np.int64(cdfs[idx, hi]) <= cum:
                    return ERR_CDF, i
            while hi - lo > 1:
                mid = (lo + hi) >> 1
                if np.int64(cdfs[idx, mid]) <= cum:
                    lo = mid
                else:
                    hi = mid
            start = np.int64(cdfs[idx, lo])
            freq = np.int64(cdfs[idx, lo + 1]) - start
            value = lo
        x = freq * (x >> PRECISION) + cum - start
        if x < RANS64_L:
            if p >= n_words:
                state[0] = x
                state[1] = p
                return ERR_TRUNCATED, i
            x = (x << 32) | np.int64(words[p])
            p += 1
        if value == max_value:
            # bypass groups: the count (15 = "15 more and continue"), then the raw value's groups
            n_bypass = np.int64(0)
            j = np.int64(0)
            n_groups = np.int64(-1)  # -1 while reading the count
            raw = np.int64(0)
            while True:
                if n_groups >= 0 and j >= n_groups:
                    break
                val = x & MAX_BYPASS_VAL
                x >>= BYPASS_PRECISION
                if x < RANS64_L:
                    if p >= n_words:
                        state[0] = x
                        state[1] = p
                        return ERR_TRUNCATED, i
                    x = (x << 32) | np.int64(words[p])
                    p += 1
                if n_groups < 0:
                    n_bypass += val
                    if n_bypass > MAX_BYPASS_GROUPS:
                        return ERR_CORRUPT, i
                    if val != MAX_BYPASS_VAL:
                        n_groups = n_bypass
                else:
                    raw |= val << (j * BYPASS_PRECISION)
                    j += 1
            if raw >= RANS64_L:
                return ERR_CORRUPT, i
            value = raw >> 1
            if raw & 1:
                value = -value - 1
            else:
                value += max_value
        out[i] = np.int32(value + np.int64(offsets[idx]))
    state[0] = x
    state[1] = p
    return OK, n


@_jit
def check_tables(cdfs, cdf_lengths, offsets):
    """Full validation of a CDF table: ``(status, row)``; rows must start at 0, end at 2**16 at their
    length, strictly increase (every value codable), and have a length in ``[3, width]``."""
    num_cdfs = cdfs.shape[0]
    width = cdfs.shape[1]
    if cdf_lengths.shape[0] != num_cdfs or offsets.shape[0] != num_cdfs:
        return ERR_CDF, -1
    for r in range(num_cdfs):
        length = np.int64(cdf_lengths[r])
        if length < 3 or length > width:
            return ERR_CDF, r
        if cdfs[r, 0] != 0 or np.int64(cdfs[r, length - 1]) != (1 << PRECISION):
            return ERR_CDF, r
        for j in range(length - 1):
            if cdfs[r, j + 1] <= cdfs[r, j]:
                return ERR_CDF, r
    return OK, num_cdfs
