"""The fast arithmetic-coding path: CompressAI's rANS, one call per coding step on numpy arrays.

CompressAI's coder (``compressai.ans``) takes Python lists: a model converts every step's symbols,
indexes and the whole CDF table with ``.tolist()`` and pybind11 converts them back to vectors, which
costs most of the coding time (HPCM supplement, Table C: 82-119 ms per Kodak image against 25 ms for a
coder that exchanges arrays). This module codes the same streams from contiguous int32 arrays with
numba kernels (:mod:`lic.entropy.rans_kernels`):

* **Bit-compatible** with CompressAI 1.2.8's ``RansEncoder`` / ``BufferedRansEncoder`` /
  ``RansDecoder`` (64-bit state, 32-bit words, 16-bit precision, escape of out-of-range values in
  4-bit bypass groups, symbols buffered then coded backwards, same byte layout): the encoder writes
  the same bytes for the same inputs, and each decoder decodes the other's streams, so a model can
  switch without changing its stream format (tests/entropy/test_fast.py checks all of this).
* **Same shapes of API**: ``FastBufferedEncoder`` (``encode_with_indexes`` several times, then
  ``flush``), ``FastEncoder`` / :func:`encode_with_indexes` (one shot), ``FastDecoder``
  (``set_stream`` then incremental ``decode_stream``, or ``decode_with_indexes``) /
  :func:`decode_with_indexes`. Arguments are arrays (numpy or CPU/GPU torch tensors of an integer
  dtype; lists work too): ``symbols`` and ``indexes`` are flattened, ``cdfs`` is the padded
  ``num_cdfs x max_len`` table of an entropy model, ``cdf_lengths`` and ``offsets`` its per-row
  vectors. :func:`tables_from` gives those three, validated, from a CompressAI entropy model (cached
  per model until its tables change); pass them as ``*tables``.
* **Robust**: indexes out of the table, impossible CDF rows, symbols too far out of range, streams
  that are truncated, not a whole number of words or corrupted raise :class:`ValueError`
  (corrupted data may also just decode to wrong symbols); nothing reads out of bounds or loops
  without end.

Differences from CompressAI, all on inputs CompressAI does not handle: it asserts nothing in release
builds (bad indexes or tables read out of bounds, an empty encode writes before its buffer, a value
whose escape code needs 2**31 or more is not decoded back); here those raise ``ValueError``, and the
empty encode gives the 8-byte stream of the initial state.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

import numpy as np

from lic.entropy import rans_kernels as _k

__all__ = [
    "CODERS", "CdfTables", "FastBufferedEncoder", "FastDecoder", "FastEncoder", "RansCoder", "check_coder",
    "coder", "decode_with_indexes", "encode_with_indexes", "make_tables", "tables_from",
]

_MESSAGES = {
    _k.ERR_INDEX: "index outside the CDF table",
    _k.ERR_CDF: "invalid CDF row (length outside [2, table width] or a frequency outside [1, 65535])",
    _k.ERR_RANGE: "symbol too far outside its CDF's range for the escape code (2**30 or more beyond it)",
    _k.ERR_TRUNCATED: "stream truncated (a word past its end was needed)",
    _k.ERR_CORRUPT: "stream corrupted (invalid escape code)",
}


class CdfTables(NamedTuple):
    """The int32 tables of one entropy model: ``cdfs`` (num_cdfs x max_len, rows padded),
    ``cdf_lengths`` and ``offsets`` (num_cdfs,). Unpack it into the coding calls: ``*tables``."""

    cdfs: np.ndarray
    cdf_lengths: np.ndarray
    offsets: np.ndarray


# ---------------------------------------------------------------------- conversions
def _numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor (any device)
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _int32(a, name: str) -> np.ndarray:
    """``a`` as a writable C-contiguous int32 array (no copy when it already is one)."""
    a = _numpy(a)
    if a.dtype != np.int32:
        if a.size and not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
            raise TypeError(f"{name} must hold integers, got dtype {a.dtype}")
        b = a.astype(np.int32)
        if a.size and not np.array_equal(b, a):
            raise ValueError(f"{name} has values outside int32")
        a = b
    if not a.flags.c_contiguous or not a.flags.writeable:  # one numba specialisation only
        a = np.array(a, dtype=np.int32, order="C")
    return a


def _vector(a, name: str) -> np.ndarray:
    return _int32(a, name).reshape(-1)


def _table(cdfs) -> np.ndarray:
    if isinstance(cdfs, (list, tuple)) and cdfs and isinstance(cdfs[0], (list, tuple, np.ndarray)):
        rows = [np.asarray(r).reshape(-1) for r in cdfs]
        if len({len(r) for r in rows}) > 1:  # ragged Python lists: pad like the models' tables
            width = max(len(r) for r in rows)
            padded = np.zeros((len(rows), width), dtype=np.int64)
            for i, r in enumerate(rows):
                padded[i, : len(r)] = r
            cdfs = padded
    t = _int32(cdfs, "cdfs")
    if t.ndim == 1:
        t = t.reshape(1, -1)
    if t.ndim != 2:
        raise ValueError(f"cdfs must be a 2-D (num_cdfs x max_len) table, got shape {t.shape}")
    return t


def _args(cdfs, cdf_lengths, offsets) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    table = _table(cdfs)
    lengths, offs = _vector(cdf_lengths, "cdf_lengths"), _vector(offsets, "offsets")
    if lengths.shape[0] != table.shape[0] or offs.shape[0] != table.shape[0]:
        raise ValueError(f"{table.shape[0]} CDF rows but {lengths.shape[0]} lengths and {offs.shape[0]} offsets")
    return table, lengths, offs


def _fail(status: int, where: int, what: str) -> ValueError:
    return ValueError(f"{what}: {_MESSAGES.get(status, f'status {status}')} (at symbol {where})")


# ---------------------------------------------------------------------- tables
def make_tables(cdfs, cdf_lengths, offsets) -> CdfTables:
    """Copy, convert and fully validate a table (rows from 0 to 2**16 at their length, strictly
    increasing, length >= 3): what CompressAI only asserts in debug builds. The copy does not
    follow later changes of the source (a model's buffers)."""
    table, lengths, offs = (a.copy() for a in _args(cdfs, cdf_lengths, offsets))  # own the memory
    status, row = _k.check_tables(table, lengths, offs)
    if status != _k.OK:
        raise ValueError(f"invalid CDF table: row {row} (length {lengths[row] if row >= 0 else '?'}) "
                         "does not rise strictly from 0 to 65536 within the table width")
    _register_lookup(table)
    return CdfTables(table, lengths, offs)


_TABLE_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()

# the decoder's lookup state of each table made by make_tables (keyed by id of its cdfs array, which the
# entry's weak reference checks), built row by row as streams are decoded and kept for later calls
_LOOKUP: dict[int, tuple["weakref.ref", np.ndarray, np.ndarray]] = {}


def _register_lookup(table: np.ndarray) -> None:
    key = id(table)
    _LOOKUP[key] = (weakref.ref(table, lambda _ref, key=key: _LOOKUP.pop(key, None)), *_k.new_lut(table.shape[0]))


def _lookup_state(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The kept lookup state of a make_tables table, or a fresh one (this call only) for any other."""
    hit = _LOOKUP.get(id(table))
    if hit is not None and hit[0]() is table:
        return hit[1], hit[2]
    return _k.new_lut(table.shape[0])


def tables_from(entropy_model) -> CdfTables:
    """The validated :class:`CdfTables` of a CompressAI ``EntropyModel`` (``GaussianConditional``,
    ``EntropyBottleneck``, ...) after ``update()``: its ``_quantized_cdf``, ``_cdf_length`` and
    ``_offset``. Cached per model; rebuilt when one of those buffers is replaced (``update``) or
    modified in place (``load_state_dict``)."""
    tensors = (entropy_model._quantized_cdf, entropy_model._cdf_length, entropy_model._offset)
    if tensors[0].numel() == 0:
        raise RuntimeError("the entropy model has no CDF tables: call update() (or model.update(force=True))")
    versions = tuple(int(t._version) for t in tensors)
    hit = _TABLE_CACHE.get(entropy_model)
    if hit is not None and all(a is b for a, b in zip(hit[0], tensors)) and hit[1] == versions:
        return hit[2]
    tables = make_tables(*tensors)
    _TABLE_CACHE[entropy_model] = (tensors, versions, tables)  # holds the tensors: no id reuse
    return tables


# ---------------------------------------------------------------------- encoders
class FastBufferedEncoder:
    """Like ``compressai.ans.BufferedRansEncoder``: ``encode_with_indexes`` any number of times
    (each step's symbols are appended), then ``flush()`` returns the one stream and empties the
    buffer. Same bytes as CompressAI for the same calls."""

    def __init__(self) -> None:
        self._buf = np.empty(0, np.uint32)
        self._n = 0

    def encode_with_indexes(self, symbols, indexes, cdfs, cdf_lengths, offsets) -> None:
        sym, idx = _vector(symbols, "symbols"), _vector(indexes, "indexes")
        if sym.shape[0] != idx.shape[0]:
            raise ValueError(f"{sym.shape[0]} symbols but {idx.shape[0]} indexes")
        table, lengths, offs = _args(cdfs, cdf_lengths, offsets)
        need = self._n + sym.shape[0] + 16  # escapes may need more: NEED_ROOM below
        if self._buf.shape[0] < need:  # geometric growth: many small steps stay linear
            self._grow(max(need + sym.shape[0] // 8 + 64, 2 * self._buf.shape[0]), self._n)
        k, first = self._n, 0
        while True:
            k, status, where = _k.prepare_symbols(sym, idx, table, lengths, offs, self._buf, k, first)
            if status != _k.NEED_ROOM:
                break
            self._grow(2 * self._buf.shape[0] + 64, k)  # keep this call's progress
            first = where
        if status != _k.OK:  # self._n unchanged: nothing of this call is kept
            raise _fail(status, int(where), "encode_with_indexes")
        self._n = int(k)

    def _grow(self, size: int, keep: int) -> None:
        grown = np.empty(size, np.uint32)
        grown[:keep] = self._buf[:keep]
        self._buf = grown

    def flush(self) -> bytes:
        words = _k.rans_encode(self._buf, self._n)
        self._buf, self._n = np.empty(0, np.uint32), 0
        return words.astype("<u4", copy=False).tobytes()


# bound once: lic.bench's ACTimer replaces the public names to time the coder objects a model makes,
# and the one-shot helpers below must not be counted twice (FastEncoder -> FastBufferedEncoder)
_BufferedEncoder = FastBufferedEncoder


class FastEncoder:
    """Like ``compressai.ans.RansEncoder``: one call, one stream."""

    def encode_with_indexes(self, symbols, indexes, cdfs, cdf_lengths, offsets) -> bytes:
        return encode_with_indexes(symbols, indexes, cdfs, cdf_lengths, offsets)


def encode_with_indexes(symbols, indexes, cdfs, cdf_lengths, offsets) -> bytes:
    """Encode ``symbols`` (each with the CDF row of its index) into one stream (CompressAI's bytes)."""
    enc = _BufferedEncoder()
    enc.encode_with_indexes(symbols, indexes, cdfs, cdf_lengths, offsets)
    return enc.flush()


# ---------------------------------------------------------------------- decoders
class FastDecoder:
    """Like ``compressai.ans.RansDecoder``: ``set_stream`` once, then ``decode_stream`` step by step
    (each call continues where the previous one stopped), or one-shot ``decode_with_indexes``.

    After an error the stream is dropped (``set_stream`` again to decode another one).
    """

    def __init__(self) -> None:
        self._words: np.ndarray | None = None
        self._state = np.zeros(2, np.int64)  # [rANS state, next word]

    def set_stream(self, data) -> None:
        data = bytes(data)
        if len(data) % 4:
            raise ValueError(f"stream of {len(data)} bytes is not a whole number of 32-bit words "
                             "(truncated or not an rANS stream)")
        if len(data) < 8:
            raise ValueError(f"stream of {len(data)} bytes is shorter than the 8-byte rANS state")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        x = int(words[0]) | (int(words[1]) << 32)
        if not _k.RANS64_L <= x < _k.RANS64_L << 32:  # an encoder's final state always is
            raise ValueError(f"stream corrupted (initial rANS state {x:#x} outside [2**31, 2**63))")
        self._state[0] = x
        self._state[1] = 2
        self._words = words

    def decode_stream(self, indexes, cdfs, cdf_lengths, offsets) -> np.ndarray:
        """The next ``len(indexes)`` symbols of the stream, as a flat int32 array."""
        if self._words is None:
            raise ValueError("decode_stream: no stream (call set_stream first)")
        idx = _vector(indexes, "indexes")
        table, lengths, offs = _args(cdfs, cdf_lengths, offsets)
        out = np.empty(idx.shape[0], np.int32)
        lut, uses = _lookup_state(table)
        status, where = _k.rans_decode(self._words, self._state, idx, table, lengths, offs, out, lut, uses)
        if status != _k.OK:
            self._words = None
            raise _fail(status, int(where), "decode_stream")
        return out

    def decode_with_indexes(self, data, indexes, cdfs, cdf_lengths, offsets) -> np.ndarray:
        self.set_stream(data)
        return self.decode_stream(indexes, cdfs, cdf_lengths, offsets)

    @property
    def done(self) -> bool:
        """True when the stream has been decoded exactly to its end: every word read and the state
        back to the encoder's initial one (a cheap integrity check after the last step)."""
        return (self._words is not None and int(self._state[1]) == self._words.shape[0]
                and int(self._state[0]) == _k.RANS64_L)


def decode_with_indexes(data, indexes, cdfs, cdf_lengths, offsets) -> np.ndarray:
    """Decode a whole stream of ``len(indexes)`` symbols (flat int32 array)."""
    return _Decoder().decode_with_indexes(data, indexes, cdfs, cdf_lengths, offsets)


_Decoder = FastDecoder


# ---------------------------------------------------------------------- the models' switch
#: Values of the models' ``entropy_coder`` argument: this module's coder, or CompressAI's per-call
#: ``compressai.ans`` path (lists in, lists out). Both write the same bytes.
CODERS = ("fast", "compressai")


def check_coder(name: str) -> str:
    """``name`` if it is one of :data:`CODERS`, else ``ValueError``."""
    if name not in CODERS:
        raise ValueError(f"entropy_coder must be one of {CODERS}, got {name!r}")
    return name


def _as_list(a) -> list:
    """A flat Python list of ints (CompressAI's input): tensors and arrays are flattened."""
    if hasattr(a, "detach"):
        return a.detach().reshape(-1).to("cpu").int().tolist()
    if isinstance(a, np.ndarray):
        return a.reshape(-1).astype(np.int64).tolist()
    return list(a)


def _ans():
    # looked up per call (not bound at import): lic.bench's ACTimer replaces the class names in
    # compressai.ans, and the coder objects made here must be the timed ones
    import compressai.ans

    return compressai.ans


class _Encoder:
    """One buffered stream: ``encode(symbols, indexes, tables)`` per step, then ``flush() -> bytes``."""

    def __init__(self, fast: bool) -> None:
        self._fast = fast
        self._inner = FastBufferedEncoder() if fast else _ans().BufferedRansEncoder()

    def encode(self, symbols, indexes, tables) -> None:
        if self._fast:
            self._inner.encode_with_indexes(symbols, indexes, *tables)
        else:
            self._inner.encode_with_indexes(_as_list(symbols), _as_list(indexes), *tables)

    def flush(self) -> bytes:
        return self._inner.flush()


class _StreamDecoder:
    """One stream, decoded step by step: ``decode(indexes, tables)`` -> flat int32 CPU tensor."""

    def __init__(self, fast: bool, stream: bytes) -> None:
        self._fast = fast
        self._inner = FastDecoder() if fast else _ans().RansDecoder()
        self._inner.set_stream(stream)

    def decode(self, indexes, tables):
        import torch

        if self._fast:
            return torch.from_numpy(self._inner.decode_stream(indexes, *tables))
        return torch.tensor(self._inner.decode_stream(_as_list(indexes), *tables), dtype=torch.int32)


class RansCoder:
    """The models' one entry point to rANS coding, on either path (:func:`coder` gives it).

    * ``tables(entropy_model)`` / ``make_tables(cdfs, lengths, offsets)``: the CDF tables in the
      path's form (validated int32 arrays, cached per model, for ``"fast"``; the lists CompressAI's
      pybind11 interface takes, built once per call, for ``"compressai"``); pass them as they are.
    * ``encoder()`` -> ``.encode(symbols, indexes, tables)`` per step, ``.flush() -> bytes``;
      ``decoder(stream)`` -> ``.decode(indexes, tables)`` per step, a flat int32 CPU tensor.
    * ``encode(symbols, indexes, tables) -> bytes`` / ``decode(stream, indexes, tables)``: one shot.
    * ``eb_compress(bottleneck, x)`` / ``eb_decompress(bottleneck, strings, size)``: a CompressAI
      ``EntropyBottleneck``'s ``compress`` / ``decompress`` (its own call on ``"compressai"``, the same
      streams and values from the fast coder otherwise).

    ``symbols`` and ``indexes`` are integer tensors (any device, flattened) or arrays. The coder
    objects are made through the public class names (``FastBufferedEncoder``, ``FastDecoder``,
    ``FastEncoder`` here; ``compressai.ans``' classes otherwise) so that ``lic.bench``'s ACTimer counts
    them as T_AC; the list conversions of the CompressAI path stay outside (network time), as before.
    """

    def __init__(self, name: str) -> None:
        self.name = check_coder(name)
        self.fast = name == "fast"

    def __repr__(self) -> str:
        return f"RansCoder({self.name!r})"

    def tables(self, entropy_model):
        if self.fast:
            return tables_from(entropy_model)
        if entropy_model._quantized_cdf.numel() == 0:
            raise RuntimeError("the entropy model has no CDF tables: call update() (or model.update(force=True))")
        return (entropy_model._quantized_cdf.tolist(), entropy_model._cdf_length.reshape(-1).int().tolist(),
                entropy_model._offset.reshape(-1).int().tolist())

    def make_tables(self, cdfs, cdf_lengths, offsets):
        if self.fast:
            return make_tables(cdfs, cdf_lengths, offsets)
        return ([_as_list(r) for r in cdfs] if not hasattr(cdfs, "tolist") else cdfs.tolist(),
                _as_list(cdf_lengths), _as_list(offsets))

    def encoder(self) -> _Encoder:
        return _Encoder(self.fast)

    def decoder(self, stream: bytes) -> _StreamDecoder:
        return _StreamDecoder(self.fast, stream)

    def encode(self, symbols, indexes, tables) -> bytes:
        if self.fast:
            return FastEncoder().encode_with_indexes(symbols, indexes, *tables)
        return _ans().RansEncoder().encode_with_indexes(_as_list(symbols), _as_list(indexes), *tables)

    def decode(self, stream: bytes, indexes, tables):
        import torch

        if self.fast:
            return torch.from_numpy(FastDecoder().decode_with_indexes(stream, indexes, *tables))
        values = _ans().RansDecoder().decode_with_indexes(stream, _as_list(indexes), *tables)
        return torch.tensor(values, dtype=torch.int32)

    # EntropyBottleneck (z): CompressAI's compress/decompress, or the same streams on the fast path
    def eb_compress(self, bottleneck, x) -> list[bytes]:
        """``bottleneck.compress(x)`` (a CompressAI ``EntropyBottleneck``): one stream per batch item."""
        if not self.fast:
            return bottleneck.compress(x)
        indexes = bottleneck._build_indexes(x.size())
        medians = bottleneck._extend_ndims(bottleneck._get_medians().detach(), x.dim() - 2)
        medians = medians.expand(x.size(0), *([-1] * (x.dim() - 1)))
        symbols = bottleneck.quantize(x, "symbols", medians)
        tables = tables_from(bottleneck)
        return [FastEncoder().encode_with_indexes(symbols[i], indexes[i], *tables) for i in range(x.size(0))]

    def eb_decompress(self, bottleneck, strings, size):
        """``bottleneck.decompress(strings, size)``: the dequantized latents (around the medians)."""
        if not self.fast:
            return bottleneck.decompress(strings, size)
        import torch

        size = tuple(int(s) for s in size)
        indexes = bottleneck._build_indexes((len(strings), bottleneck._quantized_cdf.size(0), *size))
        medians = bottleneck._extend_ndims(bottleneck._get_medians().detach(), len(size))
        medians = medians.expand(len(strings), *([-1] * (len(size) + 1)))
        tables = tables_from(bottleneck)
        values = torch.stack([torch.from_numpy(FastDecoder().decode_with_indexes(s, indexes[i], *tables))
                              .reshape(indexes[i].shape) for i, s in enumerate(strings)])
        return bottleneck.dequantize(values.to(medians.device), medians)


_CODERS = {name: RansCoder(name) for name in CODERS}


def coder(name: str) -> RansCoder:
    """The shared :class:`RansCoder` of path ``name`` (``"fast"`` or ``"compressai"``)."""
    return _CODERS[check_coder(name)]
