"""The bitstream container: one file format for every model.

Version 2 (written since the hardening of issue 15 / the compact header of issue 17; all integers
unsigned, ``varint`` = LEB128, multi-byte fixed fields big-endian)::

    magic        4 bytes   b"LICB"
    version      1 byte    2
    coder        1 byte    bit 7: centred padding follows | entropy-coder path (bits 4-6; 0: CompressAI-compatible
                           rANS) | channels (low nibble)
    model id     2 bytes   :func:`model_id` of the registry key (first 16 bits of its sha256)
    quality      1 byte
    fingerprint  4 bytes   first 4 bytes of the sha256 of the checkpoint's weights
    [padding]    1 byte    only when bit 7 is set: log2 of the multiple the image was padded to with centred
                           zeros (the authors' evaluation protocol); absent: edge replication, right and bottom,
                           to the model's own multiple (the pipeline's)
    height       varint    original image height (before padding)
    width        varint    original image width
    streams      varint group count; per group: varint count; per stream: varint length + CRC-32 (4 bytes)
    extra        varint length + bytes: model side information (e.g. filter coefficients)
    header crc   4 bytes   CRC-32 of everything above
    payload      the streams' bytes, in order

One checksum layout: the header has one CRC-32 and every stream has its own, so a damaged stream is
named and caught even where the rest of the file is intact, and no byte reaches a model's decoder
unchecked. The latent shape is not stored: it is what the model derives from the image size
(``lic.entropy.layout``), so a header cannot ask for an impossible one.

Version 1 (still read, and written on request for tests)::

    magic, version 1, coder (1 byte), key (1 byte length + UTF-8), quality, fingerprint (8 bytes),
    height, width (varints), channels (1 byte), shape (1 byte count + varints),
    streams (varint groups; per group: varint count; per string: varint length + bytes),
    extra (varint length + bytes), crc32 (4 bytes, over everything above)

Every failure to parse raises :class:`BitstreamError` with what is wrong (not a lic file, unsupported
version, truncated at which field, checksum mismatch, a count beyond the container's limits).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"LICB"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
CODER_COMPRESSAI_RANS = 0
MAX_GROUPS = 16            # no model writes more than 4 stream groups
MAX_STREAMS_PER_GROUP = 64  # one stream per image (batch 1) in every model today
MAX_PAD_MULTIPLE = 4096     # the authors' scripts pad to 128 or 256


class BitstreamError(ValueError):
    """The bytes are not a valid lic bitstream (or not one this decoder can read)."""


def model_id(key: str) -> int:
    """The 16-bit id a version-2 header stores for a registry key: the first two bytes of the key's
    sha256 (stable as long as the key is; the registry refuses a key whose id is taken)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:2], "big")


@dataclass
class Bitstream:
    key: str | None             # registry key (version 1 stores it; version 2 stores model_id only)
    quality: int
    fingerprint: bytes          # 8 bytes (version 1) or 4 (version 2; the first 4 of the 8)
    height: int
    width: int
    shape: tuple[int, ...]      # latent shape; version 2 files do not store it (empty after parse)
    streams: list[list[bytes]]
    channels: int = 3
    extra: bytes = b""
    coder: int = CODER_COMPRESSAI_RANS
    version: int = FORMAT_VERSION
    model_id: int | None = None  # filled from key when None
    pad_multiple: int = 0       # 0: edge padding to the model's multiple; else centred zeros to this power of 2
    _payload_bytes: int = field(default=0, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.model_id is None and self.key is not None:
            self.model_id = model_id(self.key)

    def to_bytes(self) -> bytes:
        if self.version == 1:
            return self._to_bytes_v1()
        if self.version != 2:
            raise ValueError(f"cannot write container version {self.version}")
        if not (0 <= self.coder < 8 and 0 <= self.channels < 16):
            raise ValueError("coder and channels must fit in 3 and 4 bits")
        centred = self.pad_multiple != 0
        if centred and not (1 <= self.pad_multiple <= MAX_PAD_MULTIPLE
                            and self.pad_multiple & (self.pad_multiple - 1) == 0):
            raise ValueError(f"padding multiple must be a power of 2 up to {MAX_PAD_MULTIPLE}, not {self.pad_multiple}")
        if self.model_id is None or not 0 <= self.model_id < 1 << 16:
            raise ValueError("model id must be a 16-bit number")
        if len(self.fingerprint) not in (4, 8):
            raise ValueError("fingerprint must be 4 or 8 bytes")
        out = bytearray(MAGIC)
        out += bytes([2, centred << 7 | self.coder << 4 | self.channels]) + struct.pack(">H", self.model_id)
        out += bytes([_byte(self.quality, "quality")]) + bytes(self.fingerprint[:4])
        if centred:
            out += bytes([self.pad_multiple.bit_length() - 1])
        out += _varint(self.height) + _varint(self.width) + _varint(len(self.streams))
        for group in self.streams:
            out += _varint(len(group))
            for s in group:
                out += _varint(len(s)) + struct.pack(">I", zlib.crc32(s))
        out += _varint(len(self.extra)) + self.extra
        out += struct.pack(">I", zlib.crc32(out))
        return bytes(out) + b"".join(s for g in self.streams for s in g)

    def _to_bytes_v1(self) -> bytes:
        if self.key is None:
            raise ValueError("a version-1 container needs the model key")
        if self.pad_multiple:
            raise ValueError("a version-1 container cannot record centred padding")
        out = bytearray(MAGIC)
        out += bytes([1, self.coder])
        key = self.key.encode()
        if len(key) > 255:
            raise ValueError("model key longer than 255 bytes")
        out += bytes([len(key)]) + key + bytes([_byte(self.quality, "quality")])
        if len(self.fingerprint) != 8:
            raise ValueError("fingerprint must be 8 bytes")
        out += self.fingerprint
        out += _varint(self.height) + _varint(self.width) + bytes([self.channels])
        out += bytes([len(self.shape)]) + b"".join(_varint(s) for s in self.shape)
        out += _varint(len(self.streams))
        for group in self.streams:
            out += _varint(len(group))
            for s in group:
                out += _varint(len(s)) + s
        out += _varint(len(self.extra)) + self.extra
        out += struct.pack(">I", zlib.crc32(out))
        return bytes(out)

    @property
    def stream_bytes(self) -> int:
        return sum(len(s) for g in self.streams for s in g)

    @property
    def payload_bytes(self) -> int:
        """What the model coded: its streams and extra bytes (the file minus this container's fields)."""
        return self.stream_bytes + len(self.extra)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise BitstreamError(f"truncated bitstream: {what} needs {n} bytes at offset {self.pos}, "
                                 f"only {len(self.data) - self.pos} left")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str) -> int:
        value, shift = 0, 0
        while True:
            b = self.byte(what)
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise BitstreamError(f"corrupted bitstream: {what} is not a valid integer")

    def count(self, what: str, limit: int) -> int:
        n = self.varint(what)
        if n > limit:
            raise BitstreamError(f"corrupted bitstream: {n} {what} (at most {limit})")
        return n


def parse(data: bytes) -> Bitstream:
    """Parse and verify a container (any version in :data:`READ_VERSIONS`); raise :class:`BitstreamError`
    on anything wrong. Checks only what the container itself knows; ``lic.entropy.layout`` checks the
    fields against the model that will decode them."""
    if len(data) < len(MAGIC) or data[:4] != MAGIC:
        raise BitstreamError("not a lic bitstream (bad magic bytes); was it written by `lic compress`?")
    if len(data) < 4 + 2 + 4:
        raise BitstreamError(f"truncated bitstream: {len(data)} bytes")
    version = data[4]
    if version == 1:
        return _parse_v1(data)
    if version == 2:
        return _parse_v2(data)
    raise BitstreamError(f"bitstream format version {version} is not supported by this decoder "
                         f"(it reads versions {', '.join(map(str, READ_VERSIONS))})")


def _parse_v2(data: bytes) -> Bitstream:
    r = _Reader(data)
    r.take(5, "magic and version")
    try:
        packed = r.byte("coder")
        mid = struct.unpack(">H", r.take(2, "model id"))[0]
        quality = r.byte("quality")
        fingerprint = r.take(4, "fingerprint")
        pad_multiple = 0
        if packed & 0x80:
            log2 = r.byte("padding")
            if 1 << log2 > MAX_PAD_MULTIPLE:
                raise BitstreamError(f"corrupted bitstream: padding multiple 2^{log2} (at most {MAX_PAD_MULTIPLE})")
            pad_multiple = 1 << log2
        height, width = r.varint("height"), r.varint("width")
        layout = []
        for _ in range(r.count("stream groups", MAX_GROUPS)):
            layout.append([(r.varint("stream length"), struct.unpack(">I", r.take(4, "stream checksum"))[0])
                           for _ in range(r.count("streams in a group", MAX_STREAMS_PER_GROUP))])
        extra = r.take(r.varint("side information length"), "side information")
        header_end = r.pos
        crc = struct.unpack(">I", r.take(4, "header checksum"))[0]
    except BitstreamError as e:
        raise BitstreamError(f"{e} (the header is cut off or corrupted)") from e
    if zlib.crc32(data[:header_end]) != crc:
        raise BitstreamError("corrupted bitstream: header checksum mismatch")
    need = sum(n for g in layout for n, _ in g)
    have = len(data) - r.pos
    if have != need:
        what = "truncated bitstream" if have < need else "corrupted bitstream"
        raise BitstreamError(f"{what}: the header announces {need} bytes of streams, the file holds {have}")
    streams = []
    for gi, group in enumerate(layout):
        streams.append([])
        for si, (n, stream_crc) in enumerate(group):
            s = r.take(n, "stream")
            if zlib.crc32(s) != stream_crc:
                raise BitstreamError(f"corrupted bitstream: checksum mismatch in stream {si} of group {gi}")
            streams[-1].append(s)
    return Bitstream(None, quality, fingerprint, height, width, (), streams, packed & 0x0F, extra,
                     (packed >> 4) & 0x07, 2, mid, pad_multiple)


def _parse_v1(data: bytes) -> Bitstream:
    body, crc = data[:-4], struct.unpack(">I", data[-4:])[0]
    r = _Reader(body)
    r.take(5, "magic and version")
    # Fields are parsed before the checksum is checked so that a cut-off file is reported as truncated.
    try:
        coder = r.byte("coder")
        key = r.take(r.byte("key length"), "model key").decode()
        quality = r.byte("quality")
        fingerprint = r.take(8, "fingerprint")
        height, width = r.varint("height"), r.varint("width")
        channels = r.byte("channels")
        shape = tuple(r.varint("latent shape") for _ in range(r.byte("latent shape length")))
        streams = []
        for _ in range(r.count("stream groups", MAX_GROUPS)):
            streams.append([r.take(r.varint("stream length"), "stream")
                            for _ in range(r.count("streams in a group", MAX_STREAMS_PER_GROUP))])
        extra = r.take(r.varint("side information length"), "side information")
    except UnicodeDecodeError as e:
        raise BitstreamError("corrupted bitstream: model key is not text") from e
    except BitstreamError as e:
        if zlib.crc32(body) != crc:
            raise BitstreamError(f"{e} (and the checksum does not match: the file is truncated or corrupted)") from e
        raise
    if zlib.crc32(body) != crc:
        raise BitstreamError("corrupted bitstream: checksum mismatch")
    if r.pos != len(body):
        raise BitstreamError(f"corrupted bitstream: {len(body) - r.pos} unexpected bytes after the streams")
    return Bitstream(key, quality, fingerprint, height, width, shape, streams, channels, extra, coder, 1)


def header_bytes(data: bytes) -> int:
    """Bytes of a parsed-valid container that are not the model's payload (streams and extra)."""
    return len(data) - parse(data).payload_bytes


def _byte(value: int, what: str) -> int:
    if not 0 <= value <= 255:
        raise ValueError(f"{what} {value} does not fit in one byte")
    return value


def _varint(n: int) -> bytes:
    if n < 0:
        raise ValueError("varint must be >= 0")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)
