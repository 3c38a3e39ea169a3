import struct
import zlib

import pytest

from lic.entropy.container import (FORMAT_VERSION, MAX_GROUPS, Bitstream, BitstreamError, header_bytes, model_id,
                                   parse)

# Written by the version-1 writer of commit 02b6f13 (before the compact header): files of that format
# must keep decoding.
V1_FIXTURE = bytes.fromhex(
    "4c49434201000f6d696e6e656e323031382d6d65616e030102030405060708c303ac020302080502010c1122334411223344"
    "112233440108556655665566556600799693e9")


def _bs(**kw):
    base = dict(key="minnen2018-mean", quality=3, fingerprint=b"\x01\x02\x03\x04", height=451, width=300,
                shape=(), streams=[[b"yyyy" * 50], [b"zz" * 20]], extra=b"side")
    base.update(kw)
    return Bitstream(**base)


def _same_fields(a: Bitstream, b: Bitstream) -> bool:
    fields = ("model_id", "quality", "fingerprint", "height", "width", "streams", "channels", "extra", "coder")
    return all(getattr(a, f) == getattr(b, f) for f in fields)


def test_round_trip_keeps_every_field():
    bs = _bs()
    back = parse(bs.to_bytes())
    assert _same_fields(back, bs)
    assert back.version == FORMAT_VERSION == 2
    assert back.model_id == model_id("minnen2018-mean") and back.key is None and back.shape == ()


def test_centred_padding_costs_one_byte_only_when_used():
    edge, centred = _bs().to_bytes(), _bs(pad_multiple=256).to_bytes()
    assert len(centred) == len(edge) + 1 and centred[5] & 0x80 and not edge[5] & 0x80
    assert parse(centred).pad_multiple == 256 and parse(edge).pad_multiple == 0
    assert _same_fields(parse(centred), _bs())
    for bad in (3, 96, 8192):
        with pytest.raises(ValueError, match="power of 2"):
            _bs(pad_multiple=bad).to_bytes()
    # a checksum-valid header announcing an absurd multiple is refused by the parser
    data = bytearray(centred)
    data[13] = 40  # log2 of the multiple (after magic, version, coder, model id, quality, fingerprint)
    end = len(centred) - parse(centred).stream_bytes - 4  # the header's CRC-32 sits before the streams
    data[end:end + 4] = struct.pack(">I", zlib.crc32(bytes(data[:end])))
    with pytest.raises(BitstreamError, match="padding multiple"):
        parse(bytes(data))


def test_eight_byte_fingerprint_is_stored_as_its_first_four():
    assert parse(_bs(fingerprint=bytes(range(8))).to_bytes()).fingerprint == bytes(range(4))


def test_version_1_fixture_still_parses():
    bs = parse(V1_FIXTURE)
    assert (bs.version, bs.key, bs.quality, bs.height, bs.width, bs.shape) == (1, "minnen2018-mean", 3, 451, 300,
                                                                                 (8, 5))
    assert bs.fingerprint == bytes(range(1, 9)) and bs.model_id == model_id("minnen2018-mean")
    assert bs.streams == [[b"\x11\x22\x33\x44" * 3], [b"\x55\x66" * 4]] and bs.extra == b""
    again = Bitstream(bs.key, bs.quality, bs.fingerprint, bs.height, bs.width, bs.shape, bs.streams, version=1)
    assert again.to_bytes() == V1_FIXTURE  # the v1 writer (kept for tests) writes the same bytes


def test_large_values_and_empty_streams():
    bs = _bs(height=70000, width=1, streams=[[], [b""]], extra=b"")
    assert _same_fields(parse(bs.to_bytes()), bs)


def test_compact_header_size():
    """A Kodak-sized file (768x512, a 4.9 KB y stream, a 100-byte z stream): 36 bytes of container
    (the version-1 header of the same file: 50, plus HPCM's two 4-byte in-stream CRCs)."""
    streams = [[b"y" * 4900], [b"z" * 100]]
    v2 = _bs(height=512, width=768, streams=streams, extra=b"")
    v1 = _bs(height=512, width=768, streams=streams, extra=b"", version=1, fingerprint=b"\x01" * 8, shape=(8, 12))
    assert len(v2.to_bytes()) - v2.stream_bytes == 36 == header_bytes(v2.to_bytes())
    assert len(v1.to_bytes()) - v1.stream_bytes == 50


@pytest.mark.parametrize("version", [1, 2])
def test_every_truncation_is_reported(version):
    data = _bs(version=version, fingerprint=b"\x01" * 8, shape=(8, 5)).to_bytes()
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            parse(data[:n])


@pytest.mark.parametrize("version", [1, 2])
def test_every_single_byte_corruption_is_detected(version):
    data = _bs(version=version, fingerprint=b"\x01" * 8, shape=(8, 5)).to_bytes()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x40
        with pytest.raises(BitstreamError):
            parse(bytes(bad))


def test_each_stream_has_its_own_checksum():
    bs = _bs(streams=[[b"a" * 30], [b"b" * 20]])
    data = bytearray(bs.to_bytes())
    data[-5] ^= 1  # inside the second stream
    with pytest.raises(BitstreamError, match="checksum mismatch in stream 0 of group 1"):
        parse(bytes(data))


def test_header_checksum_covers_the_stream_checksums():
    data = bytearray(_bs().to_bytes())
    pos = data.index(struct.pack(">I", zlib.crc32(b"yyyy" * 50)))
    data[pos] ^= 1
    with pytest.raises(BitstreamError, match="header checksum mismatch"):
        parse(bytes(data))


@pytest.mark.parametrize("data,msg", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a lic bitstream"),
    (b"", "not a lic bitstream"),
    (b"LICB\x09" + b"\0" * 40, "version 9 is not supported"),
])
def test_foreign_files(data, msg):
    with pytest.raises(BitstreamError, match=msg):
        parse(data)


@pytest.mark.parametrize("version", [1, 2])
def test_trailing_bytes_are_rejected(version):
    data = _bs(version=version, fingerprint=b"\x01" * 8).to_bytes()
    with pytest.raises(BitstreamError):
        parse(data[:-4] + b"junk" + data[-4:])
    with pytest.raises(BitstreamError):
        parse(data + b"junk")


def test_truncation_message_names_what_is_missing():
    data = _bs().to_bytes()
    with pytest.raises(BitstreamError, match="truncated bitstream: the header announces 240 bytes of streams, the file holds 230"):
        parse(data[:-10])
    with pytest.raises(BitstreamError, match="truncated bitstream: stream needs"):
        parse(_bs(version=1, fingerprint=b"\x01" * 8).to_bytes()[:70])


def test_absurd_counts_are_refused_before_reading_on():
    """A header announcing 2**40 stream groups is refused at once, not looped over."""
    bs = _bs(streams=[[]] * (MAX_GROUPS + 1))
    with pytest.raises(ValueError, match="stream groups"):
        parse(bs.to_bytes())


def test_model_ids_of_every_registered_key_are_distinct():
    from lic.models import registry

    keys = registry.keys()
    assert len({model_id(k) for k in keys}) == len(keys)
    assert all(registry.key_for_id(model_id(k)) == k for k in keys)
