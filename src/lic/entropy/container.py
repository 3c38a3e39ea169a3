"""The bitstream container: one file format for every model.

Layout (all integers unsigned; ``varint`` = LEB128)::

    magic        4 bytes   b"LICB"
    version      1 byte    FORMAT_VERSION
    coder        1 byte    which entropy-coder path wrote the streams (0: CompressAI rANS, per call)
    key          1 byte length + UTF-8 model registry key
    quality      1 byte
    fingerprint  8 bytes   first 8 bytes of the sha256 of the checkpoint's weights
    height       varint    original image height (before padding)
    width        varint    original image width
    channels     1 byte    3 (RGB) or 1 (grey/Y)
    shape        1 byte count + varints: the latent shape ``decompress`` needs
    streams      varint groups; per group: varint count; per string: varint length + bytes
    extra        varint length + bytes: model side information (e.g. filter coefficients)
    crc32        4 bytes   over everything above

Every failure to parse raises :class:`BitstreamError` with what is wrong (not a lic file, unsupported
version, truncated at which field, checksum mismatch).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

MAGIC = b"LICB"
FORMAT_VERSION = 1
CODER_COMPRESSAI_RANS = 0


class BitstreamError(ValueError):
    """The bytes are not a valid lic bitstream (or not one this decoder can read)."""


@dataclass
class Bitstream:
    key: str
    quality: int
    fingerprint: bytes
    height: int
    width: int
    shape: tuple[int, ...]
    streams: list[list[bytes]]
    channels: int = 3
    extra: bytes = b""
    coder: int = CODER_COMPRESSAI_RANS
    version: int = FORMAT_VERSION
    _payload_bytes: int = field(default=0, repr=False, compare=False)

    def to_bytes(self) -> bytes:
        out = bytearray(MAGIC)
        out += bytes([self.version, self.coder])
        key = self.key.encode()
        if len(key) > 255:
            raise ValueError("model key longer than 255 bytes")
        out += bytes([len(key)]) + key
        if not 0 <= self.quality <= 255:
            raise ValueError(f"quality {self.quality} does not fit in one byte")
        out += bytes([self.quality])
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


def parse(data: bytes) -> Bitstream:
    """Parse and verify a container; raise :class:`BitstreamError` on anything wrong."""
    if len(data) < len(MAGIC) or data[:4] != MAGIC:
        raise BitstreamError("not a lic bitstream (bad magic bytes); was it written by `lic compress`?")
    if len(data) < 4 + 2 + 4:
        raise BitstreamError(f"truncated bitstream: {len(data)} bytes")
    body, crc = data[:-4], struct.unpack(">I", data[-4:])[0]
    r = _Reader(data)
    r.take(4, "magic")
    version = r.byte("version")
    if version != FORMAT_VERSION:
        raise BitstreamError(f"bitstream format version {version} is not supported by this decoder "
                             f"(it reads version {FORMAT_VERSION})")
    # Fields are parsed before the checksum is checked so that a cut-off file is reported as truncated.
    r.data = body
    try:
        coder = r.byte("coder")
        key = r.take(r.byte("key length"), "model key").decode()
        quality = r.byte("quality")
        fingerprint = r.take(8, "fingerprint")
        height, width = r.varint("height"), r.varint("width")
        channels = r.byte("channels")
        shape = tuple(r.varint("latent shape") for _ in range(r.byte("latent shape length")))
        streams = []
        for _ in range(r.varint("stream groups")):
            streams.append([r.take(r.varint("stream length"), "stream") for _ in range(r.varint("streams"))])
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
    return Bitstream(key, quality, fingerprint, height, width, shape, streams, channels, extra, coder, version)


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
