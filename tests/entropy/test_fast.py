"""The fast rANS path against CompressAI 1.2.8's coder: same bytes, cross-decoding, robustness."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from compressai.ans import BufferedRansEncoder, RansDecoder, RansEncoder
from compressai.entropy_models import EntropyBottleneck, GaussianConditional

from lic.entropy import fast

SRC = str(Path(fast.__file__).resolve().parents[2])


def _gc(lo=0.11, hi=256.0, levels=64) -> GaussianConditional:
    gc = GaussianConditional(None)
    gc.update_scale_table(torch.exp(torch.linspace(math.log(lo), math.log(hi), levels)), force=True)
    return gc


@pytest.fixture(scope="module")
def gc():
    return _gc()


@pytest.fixture(scope="module")
def tables(gc):
    return fast.tables_from(gc)


def _lists(tables):
    return [t.tolist() for t in tables]


def _symbols(gc, tables, n, seed, escapes=True):
    """Gaussian symbols with realistic indexes (log-normal scales), plus escapes of every size."""
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.normal(math.log(0.6), 1.3, n)).astype(np.float32)
    idx = gc.build_indexes(torch.from_numpy(scales)).numpy().astype(np.int32)
    sym = np.round(rng.normal(0.0, 1.0, n) * scales).astype(np.int32)
    if escapes and n >= 64:
        pos = rng.choice(n, 64, replace=False)
        offs, lens = tables.offsets[idx[pos]], tables.cdf_lengths[idx[pos]]
        max_value = lens - 2
        edge = np.stack([offs + max_value - 1,          # last regular value
                         offs + max_value,              # escape with raw value 0
                         offs - 1, offs - 2,            # just below the range
                         offs + max_value + 15, offs + max_value + 16])
        big = rng.choice(np.array([1, -1]), 64) * rng.integers(1, 2**26, 64)
        sym[pos[:48]] = edge[np.arange(48) % 6, np.arange(48)]
        sym[pos[48:]] = big[48:]
        # the largest escapes CompressAI's encoder handles: 7 bypass groups (raw value < 2**28)
        sym[pos[62]] = offs[62] + max_value[62] + (2**27 - 1)   # raw 2**28 - 2
        sym[pos[63]] = offs[63] - 2**27                          # raw 2**28 - 1
    return sym, idx


# ---------------------------------------------------------------------- encoder bytes
# (CompressAI's encoder itself corrupts its heap for a single symbol: its output buffer holds one
# word per coded symbol and the final state needs two; so n >= 2 here, and n == 1 below)
@pytest.mark.parametrize("n,seed", [(2, 0), (7, 1), (5000, 2), (120_000, 3)])
def test_encoder_bytes_equal_compressai(gc, tables, n, seed):
    sym, idx = _symbols(gc, tables, n, seed)
    ref = RansEncoder().encode_with_indexes(sym.tolist(), idx.tolist(), *_lists(tables))
    ours = fast.encode_with_indexes(sym, idx, *tables)
    assert ours == ref
    assert fast.FastEncoder().encode_with_indexes(sym, idx, *tables) == ref
    enc = fast.FastBufferedEncoder()
    enc.encode_with_indexes(torch.from_numpy(sym), torch.from_numpy(idx), *tables)  # tensors too
    assert enc.flush() == ref


def test_escapes_are_exercised(gc, tables):
    sym, idx = _symbols(gc, tables, 5000, 2)
    value = sym - tables.offsets[idx]
    max_value = tables.cdf_lengths[idx] - 2
    assert (value < 0).sum() > 10 and (value > max_value).sum() > 10 and (value == max_value).any()
    with_escapes = fast.encode_with_indexes(sym, idx, *tables)
    clamped = np.clip(value, 0, max_value - 1) + tables.offsets[idx]
    assert len(with_escapes) > len(fast.encode_with_indexes(clamped, idx, *tables)) + 40


def test_escape_heavy_and_many_small_steps_equal_compressai(gc, tables):
    """Steps made only of escapes (the buffer grows inside a call) and 400 steps of 1-5 symbols."""
    rng = np.random.default_rng(8)
    ref_enc, ours = BufferedRansEncoder(), fast.FastBufferedEncoder()
    for n in (3000, 10, 5000):
        idx = rng.integers(0, tables.cdfs.shape[0], n).astype(np.int32)
        far = rng.integers(2**20, 2**27 - 1, n) * rng.choice(np.array([1, -1]), n)
        sym = (tables.offsets[idx] + np.where(far > 0, tables.cdf_lengths[idx] - 2 + far, far)).astype(np.int32)
        ref_enc.encode_with_indexes(sym.tolist(), idx.tolist(), *_lists(tables))
        ours.encode_with_indexes(sym, idx, *tables)
    for k in range(400):
        sym, idx = _symbols(gc, tables, 1 + k % 5, 100 + k)
        ref_enc.encode_with_indexes(sym.tolist(), idx.tolist(), *_lists(tables))
        ours.encode_with_indexes(sym, idx, *tables)
    assert ours.flush() == ref_enc.flush()


def test_escapes_beyond_compressais_encoder_decode_on_both_sides(tables):
    """CompressAI's encoder loops forever on an escape needing 8 bypass groups (raw value >= 2**28:
    its group count shifts a uint32 by 32); its decoder reads them fine. Ours encodes them up to
    raw < 2**31 and both decoders give them back."""
    i, off, mv = 20, int(tables.offsets[20]), int(tables.cdf_lengths[20]) - 2
    sym = np.array([0, off + mv + 2**27, off - 2**27 - 1, off + mv + 2**30 - 1, off - 2**30, 1], np.int32)
    idx = np.full(sym.shape, i, np.int32)
    data = fast.encode_with_indexes(sym, idx, *tables)
    np.testing.assert_array_equal(fast.decode_with_indexes(data, idx, *tables), sym)
    assert RansDecoder().decode_with_indexes(data, idx.tolist(), *_lists(tables)) == sym.tolist()


def test_buffered_steps_into_one_stream_equal_compressai(gc, tables):
    """Several steps, with different tables (a second GaussianConditional and an EntropyBottleneck),
    one of them empty, into one stream; then flush resets the buffer as CompressAI's does."""
    gc2 = _gc(0.2, 20.0, 16)
    t2 = fast.tables_from(gc2)
    eb = EntropyBottleneck(8)
    eb.update(force=True)
    teb = fast.tables_from(eb)
    rng = np.random.default_rng(5)
    steps = []
    for k, (g, t) in enumerate([(gc, tables), (gc2, t2), (gc, tables), (None, teb), (gc, tables)]):
        if g is None:
            idx = rng.integers(0, 8, 3000).astype(np.int32)
            sym = rng.integers(-40, 40, 3000).astype(np.int32)
        else:
            sym, idx = _symbols(g, t, [20_000, 3000, 0, 0, 777][k], 10 + k)
        steps.append((sym, idx, t))
    ref_enc, ours = BufferedRansEncoder(), fast.FastBufferedEncoder()
    for sym, idx, t in steps:
        ref_enc.encode_with_indexes(sym.tolist(), idx.tolist(), *_lists(t))
        ours.encode_with_indexes(sym, idx, *t)
    ref = ref_enc.flush()
    assert ours.flush() == ref
    # after flush both start over
    sym, idx, t = steps[0]
    ref_enc.encode_with_indexes(sym[:100].tolist(), idx[:100].tolist(), *_lists(t))
    ours.encode_with_indexes(sym[:100], idx[:100], *t)
    assert ours.flush() == ref_enc.flush()


# ---------------------------------------------------------------------- decoding
def test_cross_decoding_both_ways(gc, tables):
    sym, idx = _symbols(gc, tables, 60_000, 7)
    ref = RansEncoder().encode_with_indexes(sym.tolist(), idx.tolist(), *_lists(tables))
    ours = fast.encode_with_indexes(sym, idx, *tables)
    np.testing.assert_array_equal(fast.decode_with_indexes(ref, idx, *tables), sym)
    back = RansDecoder().decode_with_indexes(ours, idx.tolist(), *_lists(tables))
    np.testing.assert_array_equal(np.array(back, dtype=np.int32), sym)


def test_decoder_lookup_is_kept_with_the_table_and_is_only_a_hint(gc):
    """The decoder's per-row lookup of a make_tables table is built on first use and kept for later
    streams; garbage in it (a stale or torn entry) costs a full-row search, never a wrong symbol."""
    from lic.entropy import rans_kernels as k

    tables = fast.make_tables(gc._quantized_cdf, gc._cdf_length, gc._offset)
    sym, idx = _symbols(gc, tables, 40_000, 11)
    data = fast.encode_with_indexes(sym, idx, *tables)
    lut, uses = fast._lookup_state(tables.cdfs)
    assert not (uses < 0).any()
    np.testing.assert_array_equal(fast.decode_with_indexes(data, idx, *tables), sym)
    built = uses < 0
    assert built.sum() > 10 and fast._lookup_state(tables.cdfs)[0] is lut   # kept, not rebuilt
    np.testing.assert_array_equal(fast.decode_with_indexes(data, idx, *tables), sym)
    assert (lut[built] >= k.LUT_DIRECT).mean() > 0.5                       # mostly direct entries
    good = lut.copy()
    rng = np.random.default_rng(0)
    for garbage in (rng.integers(0, tables.cdfs.shape[1] + 50, lut.shape),  # brackets, even out of the rows
                    rng.integers(0, 2**63 - 1, lut.shape),                   # direct entries of nonsense
                    np.roll(good, 1, axis=0)):                                # another row's entries
        lut[:] = garbage
        np.testing.assert_array_equal(fast.decode_with_indexes(data, idx, *tables), sym)
    other = np.array(tables.cdfs)                                             # not a make_tables array
    lut2, uses2 = fast._lookup_state(other)
    assert lut2 is not lut and not (uses2 < 0).any()
    small_lut, small_uses = k.new_lut(3)                                      # too small for the table
    out = np.empty(idx.shape[0], np.int32)
    state = np.array([int.from_bytes(data[:8], "little"), 2], np.int64)
    words = np.frombuffer(data, "<u4").astype(np.uint32)
    assert k.rans_decode(words, state, idx, *tables, out, small_lut, small_uses)[0] == k.ERR_CDF


def test_incremental_decoding_both_ways(gc, tables):
    """A stream of several steps (two tables) decoded step by step by the other side's decoder,
    with our decoder also splitting at boundaries the encoder never used."""
    gc2 = _gc(0.3, 8.0, 12)
    t2 = fast.tables_from(gc2)
    parts = [(*_symbols(gc, tables, 9000, 20), tables), (*_symbols(gc2, t2, 4000, 21), t2),
             (*_symbols(gc, tables, 1, 22), tables), (*_symbols(gc, tables, 6000, 23), tables)]
    ref_enc, our_enc = BufferedRansEncoder(), fast.FastBufferedEncoder()
    for sym, idx, t in parts:
        ref_enc.encode_with_indexes(sym.tolist(), idx.tolist(), *_lists(t))
        our_enc.encode_with_indexes(sym, idx, *t)
    ref, ours = ref_enc.flush(), our_enc.flush()
    assert ref == ours

    dec = fast.FastDecoder()
    dec.set_stream(ref)
    for sym, idx, t in parts:
        np.testing.assert_array_equal(dec.decode_stream(idx, *t), sym)
    assert dec.done

    rdec = RansDecoder()
    rdec.set_stream(ours)
    for sym, idx, t in parts:
        np.testing.assert_array_equal(np.array(rdec.decode_stream(idx.tolist(), *_lists(t)), np.int32), sym)

    # other split points within the first step (same table): still the same symbols
    sym, idx, t = parts[0]
    dec.set_stream(ours)
    got = [dec.decode_stream(idx[a:b], *t) for a, b in [(0, 1), (1, 2500), (2500, 2500), (2500, 9000)]]
    np.testing.assert_array_equal(np.concatenate(got), sym)
    assert not dec.done  # three steps left


def test_real_entropy_models_streams(gc, tables):
    """GaussianConditional.compress and EntropyBottleneck.compress (CompressAI's own calls) give the
    bytes of our encoder on the same symbols, and we decode them."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(1, 16, 12, 10, generator=g) * 4
    scales = torch.rand(1, 16, 12, 10, generator=g) * 6 + 0.05
    means = torch.randn(1, 16, 12, 10, generator=g)
    indexes = gc.build_indexes(scales)
    ref = gc.compress(y, indexes, means)[0]
    sym = gc.quantize(y, "symbols", means)
    assert fast.encode_with_indexes(sym, indexes, *tables) == ref
    np.testing.assert_array_equal(fast.decode_with_indexes(ref, indexes, *tables), sym.reshape(-1).numpy())

    eb = EntropyBottleneck(16)
    with torch.no_grad():
        eb.quantiles.data += torch.linspace(-1, 1, 16)[:, None, None]
    eb.update(force=True)
    teb = fast.tables_from(eb)
    z = torch.randn(1, 16, 5, 7, generator=g) * 3
    ref = eb.compress(z)[0]
    medians = eb._get_medians()
    zs = eb.quantize(z, "symbols", medians)
    zi = eb._build_indexes(z.size())
    assert fast.encode_with_indexes(zs, zi, *teb) == ref
    np.testing.assert_array_equal(fast.decode_with_indexes(ref, zi, *teb), zs.reshape(-1).numpy())


def test_tables_from_caches_until_the_tables_change():
    gc = _gc(0.11, 64.0, 32)
    a = fast.tables_from(gc)
    assert fast.tables_from(gc) is a
    assert a.cdfs.dtype == np.int32 and a.cdfs.shape == tuple(gc._quantized_cdf.shape)
    gc.update_scale_table(torch.exp(torch.linspace(math.log(0.2), math.log(32.0), 16)), force=True)
    b = fast.tables_from(gc)
    assert b is not a and b.cdfs.shape[0] == 16
    with torch.no_grad():
        gc._offset.add_(1)  # in place: a new version of the same buffer
    c = fast.tables_from(gc)
    assert c is not b and (c.offsets == b.offsets + 1).all()
    with pytest.raises(RuntimeError, match="update"):
        fast.tables_from(GaussianConditional(None))


def test_single_symbol_and_empty_streams(tables):
    one = fast.encode_with_indexes([3], [10], *tables)
    assert RansDecoder().decode_with_indexes(one, [10], *_lists(tables)) == [3]
    assert fast.decode_with_indexes(one, [10], *tables).tolist() == [3]
    empty = fast.encode_with_indexes(np.zeros(0, np.int32), np.zeros(0, np.int32), *tables)
    assert empty == (2**31).to_bytes(8, "little")  # the initial state only
    dec = fast.FastDecoder()
    dec.set_stream(empty)
    assert dec.decode_stream([], *tables).shape == (0,) and dec.done


def test_list_inputs_and_ragged_tables():
    # one ragged list table like cgoo's ([cdf], [len], [0]) and plain lists
    cdf = [0, 1000, 40000, 65000, 65536]
    ref = RansEncoder().encode_with_indexes([0, 1, 2, 3, -5, 9], [0] * 6, [cdf], [5], [0])
    assert fast.encode_with_indexes([0, 1, 2, 3, -5, 9], [0] * 6, [cdf], [5], [0]) == ref
    np.testing.assert_array_equal(fast.decode_with_indexes(ref, [0] * 6, [cdf], [5], [0]), [0, 1, 2, 3, -5, 9])
    ragged = [[0, 30000, 65536], cdf]
    ref = RansEncoder().encode_with_indexes([1, 0, 2, 7], [0, 1, 1, 0], ragged, [3, 5], [0, -1])
    assert fast.encode_with_indexes([1, 0, 2, 7], [0, 1, 1, 0], ragged, [3, 5], [0, -1]) == ref


# ---------------------------------------------------------------------- bad input
def test_bad_inputs_raise_and_leave_the_encoder_unchanged(gc, tables):
    sym, idx = _symbols(gc, tables, 1000, 30)
    enc = fast.FastBufferedEncoder()
    enc.encode_with_indexes(sym, idx, *tables)
    bad = idx.copy()
    bad[500] = tables.cdfs.shape[0]
    with pytest.raises(ValueError, match="index outside.*symbol 500"):
        enc.encode_with_indexes(sym, bad, *tables)
    bad[500] = -1
    with pytest.raises(ValueError, match="index outside"):
        enc.encode_with_indexes(sym, bad, *tables)
    far = sym.copy()
    far[3] = tables.offsets[idx[3]] - 2**30 - 1
    with pytest.raises(ValueError, match="too far"):
        enc.encode_with_indexes(far, idx, *tables)
    with pytest.raises(TypeError, match="integers"):
        enc.encode_with_indexes(sym.astype(np.float32), idx, *tables)
    with pytest.raises(ValueError, match="outside int32"):
        enc.encode_with_indexes(sym.astype(np.int64) + 2**33, idx, *tables)
    with pytest.raises(ValueError, match="indexes"):
        enc.encode_with_indexes(sym, idx[:-1], *tables)
    with pytest.raises(ValueError, match="lengths"):
        enc.encode_with_indexes(sym, idx, tables.cdfs, tables.cdf_lengths[:-1], tables.offsets)
    lengths = tables.cdf_lengths.copy()
    lengths[idx[0]] = tables.cdfs.shape[1] + 1
    with pytest.raises(ValueError, match="invalid CDF row"):
        enc.encode_with_indexes(sym, idx, tables.cdfs, lengths, tables.offsets)
    # the failed calls appended nothing
    assert enc.flush() == fast.encode_with_indexes(sym, idx, *tables)

    flat = tables.cdfs.copy()
    flat[0, 2] = flat[0, 1]  # a zero frequency
    with pytest.raises(ValueError, match="invalid CDF table: row 0"):
        fast.make_tables(flat, tables.cdf_lengths, tables.offsets)
    with pytest.raises(ValueError, match="invalid CDF row"):  # and the coder refuses that symbol
        fast.encode_with_indexes([tables.offsets[0] + 1], [0], flat, tables.cdf_lengths, tables.offsets)
    with pytest.raises(ValueError, match="set_stream"):
        fast.FastDecoder().decode_stream(idx, *tables)
    # decoding with rows that fall (an invalid table) or a wrong table: symbols or ValueError, no crash
    data = fast.encode_with_indexes(sym, idx, *tables)
    falling = tables.cdfs.copy()
    falling[:, 1:40] = falling[:, 1:40][:, ::-1]
    other = fast.tables_from(_gc(0.5, 4.0, tables.cdfs.shape[0]))
    for table in ((falling, tables.cdf_lengths, tables.offsets), other):
        try:
            out = fast.decode_with_indexes(data, idx, *table)
        except ValueError as exc:
            assert any(w in str(exc) for w in ("truncated", "corrupted", "invalid CDF row")), exc
        else:
            assert out.shape == sym.shape and not np.array_equal(out, sym)


def test_truncated_streams_raise(gc, tables):
    sym, idx = _symbols(gc, tables, 20_000, 40)
    data = fast.encode_with_indexes(sym, idx, *tables)
    for cut in (4, 8, 400, len(data) // 2, len(data) - 8):
        with pytest.raises(ValueError, match="truncated"):
            fast.decode_with_indexes(data[:-cut], idx, *tables)
    for short in (b"", data[:4], data[:3], data[:-1], data[:-6]):
        with pytest.raises(ValueError, match="whole number|shorter"):
            fast.decode_with_indexes(short, idx, *tables)
    for state in (bytes(8), b"\xff" * 8, (2**31 - 1).to_bytes(8, "little")):  # impossible final states
        with pytest.raises(ValueError, match="initial rANS state"):
            fast.decode_with_indexes(state + data[8:], idx, *tables)
    # asking for more symbols than were coded runs past the end too
    with pytest.raises(ValueError, match="truncated"):
        fast.decode_with_indexes(data, np.concatenate([idx, idx]), *tables)
    # incremental: the error comes at the step that needs the missing words, then the stream is dropped
    dec = fast.FastDecoder()
    dec.set_stream(data[:-4])
    np.testing.assert_array_equal(dec.decode_stream(idx[:10_000], *tables), sym[:10_000])
    with pytest.raises(ValueError, match="truncated"):
        dec.decode_stream(idx[10_000:], *tables)
    with pytest.raises(ValueError, match="set_stream"):
        dec.decode_stream(idx[10_000:], *tables)


_FUZZ = textwrap.dedent("""
    import sys, numpy as np
    from lic.entropy import fast
    d = np.load(sys.argv[1])
    tables = fast.make_tables(d["cdfs"], d["lengths"], d["offsets"])
    idx, data = d["idx"], d["data"].tobytes()
    rng = np.random.default_rng(0)
    outcomes = {"error": 0, "decoded": 0}
    for trial in range(300):
        b = bytearray(data)
        kind = trial % 4
        if kind == 0:      # bit flips
            for p in rng.integers(0, len(b), rng.integers(1, 8)):
                b[p] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:    # random bytes over a region
            a = int(rng.integers(0, len(b) - 16)); b[a:a + 16] = rng.bytes(16)
        elif kind == 2:    # all garbage, of a whole number of words
            b = bytearray(rng.bytes(4 * int(rng.integers(2, len(b) // 4))))
        else:              # state words set to extremes
            b[:8] = bytes([0xFF] * 8) if trial % 8 == 3 else bytes(8)
        try:
            out = fast.decode_with_indexes(bytes(b), idx, *tables)
        except ValueError:
            outcomes["error"] += 1
        else:
            assert out.dtype == np.int32 and out.shape == idx.shape
            outcomes["decoded"] += 1
    print(outcomes)
""")


def test_corrupted_streams_never_crash_or_hang(gc, tables, tmp_path):
    """300 damaged streams decoded in a child process: each raises ValueError or returns symbols;
    the child neither crashes (segfault) nor hangs (timeout)."""
    sym, idx = _symbols(gc, tables, 3000, 50)
    data = fast.encode_with_indexes(sym, idx, *tables)
    np.savez(tmp_path / "case.npz", cdfs=tables.cdfs, lengths=tables.cdf_lengths, offsets=tables.offsets,
             idx=idx, data=np.frombuffer(data, np.uint8))
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _FUZZ, str(tmp_path / "case.npz")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcomes = eval(proc.stdout.strip().splitlines()[-1])
    assert outcomes["error"] > 50 and outcomes["error"] + outcomes["decoded"] == 300


_NO_CACHE = textwrap.dedent("""
    import warnings, numpy as np
    import numba.core.caching as caching
    def refuse(self):
        raise PermissionError("read-only")
    caching._CacheLocator.ensure_cache_path = refuse   # no cache location is writable
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from lic.entropy import rans_kernels as k
    assert any("cannot cache" in str(w.message) for w in caught), [str(w.message) for w in caught]
    syms = np.array([5 | (100 << 16), 3, 70 | (1000 << 16)], np.uint32)
    print(k.rans_encode(syms, 3).tolist())
""")


def test_kernels_work_without_a_writable_cache(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "NUMBA_CACHE_DIR": str(tmp_path / "unused")}
    proc = subprocess.run([sys.executable, "-c", _NO_CACHE], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    from lic.entropy import rans_kernels as k
    syms = np.array([5 | (100 << 16), 3, 70 | (1000 << 16)], np.uint32)
    assert eval(proc.stdout.strip().splitlines()[-1]) == k.rans_encode(syms, 3).tolist()


def test_bench_coding_writes_a_record(tmp_path):
    """The benchmark's protocol on a tiny latent (its timings are not checked, only its record)."""
    import json

    from lic import bench_coding

    out = tmp_path / "coding_ac.json"
    threads = torch.get_num_threads()
    rec = bench_coding.main(["--out", str(out), "--channels", "4", "--height", "4", "--width", "6",
                             "--steps", "1", "3", "--warmup", "0", "--repeats", "1"])
    torch.set_num_threads(threads)
    assert json.loads(out.read_text()) == rec
    assert rec["symbols"]["count"] == 96 and {"cpu", "platform"} <= set(rec["device"])
    assert {"numba", "numpy", "torch", "compressai"} <= set(rec["versions"]) and rec["date"]
    for case in rec["cases"].values():
        assert case["identical_streams"] and case["roundtrip_ok"]
        assert case["fast"]["enc_ms"] > 0 and case["coder_only"]["compressai"]["dec_ms"] > 0
