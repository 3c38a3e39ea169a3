import pytest

from lic.entropy.container import FORMAT_VERSION, Bitstream, BitstreamError, parse


def _bs(**kw):
    base = dict(key="minnen2018-mean", quality=3, fingerprint=b"\x01" * 8, height=451, width=300,
                shape=(5, 8), streams=[[b"yyyy" * 50], [b"zz" * 20]], extra=b"side")
    base.update(kw)
    return Bitstream(**base)


def test_round_trip_keeps_every_field():
    bs = _bs()
    back = parse(bs.to_bytes())
    assert back == bs
    assert back.version == FORMAT_VERSION


def test_large_values_and_empty_streams():
    bs = _bs(height=70000, width=1, shape=(), streams=[[], [b""]], extra=b"")
    assert parse(bs.to_bytes()) == bs


def test_header_overhead_is_small():
    bs = _bs(extra=b"")
    assert len(bs.to_bytes()) - bs.stream_bytes <= 64  # a 15-character key included


def test_every_truncation_is_reported():
    data = _bs().to_bytes()
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            parse(data[:n])


def test_every_single_byte_corruption_is_detected():
    data = _bs().to_bytes()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x40
        with pytest.raises(BitstreamError):
            parse(bytes(bad))


@pytest.mark.parametrize("data,msg", [
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not a lic bitstream"),
    (b"", "not a lic bitstream"),
    (b"LICB\x09" + b"\0" * 40, "version 9 is not supported"),
])
def test_foreign_files(data, msg):
    with pytest.raises(BitstreamError, match=msg):
        parse(data)


def test_trailing_bytes_are_rejected():
    data = _bs().to_bytes()
    with pytest.raises(BitstreamError):
        parse(data[:-4] + b"junk" + data[-4:])


def test_truncation_message_names_the_field():
    data = _bs().to_bytes()
    with pytest.raises(BitstreamError, match="truncated bitstream: stream needs"):
        parse(data[:70])
