"""Header fields checked against the model before decoding (issue 15), for each model family."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lic import codec
from lic.config import load_params
from lic.entropy import layout
from lic.entropy.container import Bitstream, BitstreamError, model_id, parse
from lic.limits import LimitError
from lic.models import registry

KEYS = ("minnen2018-mean", "li2025-hpcm-base", "liu2023-tcm-small", "kuang2025-cgoo-noonline", "lu2022-tinylic-v3",
        "lu2022-tinylic-yuv420", "lu2022-tinylic-low")


def _loaded(key: str, **override) -> codec.LoadedModel:
    torch.manual_seed(0)
    model = registry.build(key, **{**load_params(profile="default")["models"][key]["kwargs"], **override}).eval()
    model.update(force=True)
    return codec.LoadedModel(model, key, 2, codec.state_fingerprint(model.state_dict()), {})


@pytest.fixture(scope="module", params=KEYS)
def coded(request):
    loaded = _loaded(request.param)
    img = (np.random.default_rng(1).random((40, 70, 3)) * 255).astype(np.uint8)
    return loaded, codec.encode(loaded, img, estimate=False)


def _refused(loaded, bs: Bitstream, match: str, error=BitstreamError):
    with pytest.raises(error, match=match):
        codec.decode(loaded, bs.to_bytes(), max_pixels=2 ** 20)


def test_round_trip_in_both_container_versions(coded):
    loaded, enc = coded
    assert np.array_equal(codec.decode(loaded, enc.data), enc.reconstruction)
    img = (np.random.default_rng(1).random((40, 70, 3)) * 255).astype(np.uint8)
    old = codec.encode(loaded, img, estimate=False, version=1)
    assert parse(old.data).version == 1 and len(old.data) > len(enc.data)
    assert np.array_equal(codec.decode(loaded, old.data), enc.reconstruction)


@pytest.mark.parametrize("h,w", [(1, 1), (64, 64), (65, 129), (300, 17)])
def test_bitstream_shape_is_what_compress_stores(h, w):
    for key in ("li2025-hpcm-base", "liu2023-tcm-small", "lu2022-tinylic-yuv420", "minnen2018-mean"):
        loaded = _loaded(key)
        x = codec.pad(torch.rand(1, 3, h, w), loaded.pad_multiple)
        if hasattr(loaded.model, "from_rgb"):
            x = loaded.model.from_rgb(x)
        with torch.no_grad():
            shape = tuple(int(s) for s in loaded.model.compress(x)["shape"])
        assert shape == layout.expected_shape(loaded.model, h, w), key


def test_impossible_headers_are_refused_before_decoding(coded, monkeypatch):
    loaded, enc = coded
    # nothing may reach the model's decoder: every case below must be refused by the checks
    monkeypatch.setattr(loaded.model, "decompress", lambda *a, **k: pytest.fail("decoder reached"))

    def bs(**changes):
        b = parse(enc.data)
        for k, v in changes.items():
            setattr(b, k, v)
        return b

    _refused(loaded, bs(model_id=model_id("li2025-hpcm-large")), "made by model 'li2025-hpcm-large'")
    _refused(loaded, bs(model_id=0xFFFF if model_id(loaded.key) != 0xFFFF else 0), "made by model")
    _refused(loaded, bs(fingerprint=b"\0\0\0\0"), "another checkpoint")
    _refused(loaded, bs(coder=3), "entropy coder 3")
    _refused(loaded, bs(channels=1), "declares 1 channels")
    _refused(loaded, bs(quality=7), "quality 7")
    _refused(loaded, bs(height=20000, width=100000), "exceeds the limit", LimitError)
    _refused(loaded, bs(height=0), "is empty", LimitError)
    _refused(loaded, bs(streams=[[]] + parse(enc.data).streams[1:]), "stream layout")
    _refused(loaded, bs(streams=parse(enc.data).streams + [[b""]]), "stream layout")
    _refused(loaded, bs(streams=[[s * 2 for s in g] for g in parse(enc.data).streams], width=1, height=1)
             if len(enc.data) > 64 + 32 * loaded.pad_multiple ** 2 else bs(extra=b"x" * 5000),
             "bytes of (streams|side information)")


def test_version_1_shape_must_be_the_models(coded, monkeypatch):
    loaded, enc = coded
    monkeypatch.setattr(loaded.model, "decompress", lambda *a, **k: pytest.fail("decoder reached"))
    v1 = parse(enc.data)
    v1.version, v1.key, v1.fingerprint = 1, loaded.key, loaded.fingerprint
    v1.shape = layout.expected_shape(loaded.model, v1.height, v1.width)
    for shape in [(1000, 1000), (4000, 4000, 5, 5), (), tuple(s + 1 for s in v1.shape)]:
        v1.shape = shape
        _refused(loaded, v1, "latent shape")


def test_garbage_streams_with_valid_checksums_stay_in_bounds(coded):
    """Random streams that pass their CRCs: a wrong image or a one-line error, never anything else."""
    loaded, enc = coded
    rnd = np.random.default_rng(2)
    for trial in range(6):
        b = parse(enc.data)
        b.streams = [[rnd.bytes(int(n)) for n in rnd.integers(0, 3 * len(s) + 9, len(g))] for g, s in
                     ((g, g[0] if g else b"") for g in b.streams)]
        try:
            img = codec.decode(loaded, b.to_bytes())
            assert img.shape == (40, 70, 3)
        except BitstreamError as e:
            assert "\n" not in str(e)


def test_decoding_never_uses_compressais_unchecked_decoder(monkeypatch):
    """A model built for CompressAI's coder path still decodes a file on the bounds-checked one."""
    from coding_helpers import forbid_compressai

    loaded = _loaded("liu2023-tcm-small", entropy_coder="compressai")
    ref = _loaded("minnen2018-mean")
    img = (np.random.default_rng(3).random((30, 40, 3)) * 255).astype(np.uint8)
    enc = codec.encode(loaded, img, estimate=False)
    forbid_compressai(monkeypatch, loaded.model)
    assert np.array_equal(codec.decode(loaded, enc.data), enc.reconstruction)
    assert loaded.model.entropy_coder_name == "compressai"  # restored afterwards
    enc = codec.encode(ref, img, estimate=False)  # CompressAI's own encoder
    forbid_compressai(monkeypatch, ref.model)
    assert np.array_equal(codec.decode(ref, enc.data), enc.reconstruction)


def test_hpcm_stream_crc_is_stored_once():
    """HPCM's in-stream CRC-32 prefix becomes the container's stream checksum (4 bytes a stream saved)."""
    loaded = _loaded("li2025-hpcm-base")
    img = (np.random.default_rng(4).random((40, 70, 3)) * 255).astype(np.uint8)
    v2 = codec.encode(loaded, img, estimate=False)
    v1 = codec.encode(loaded, img, estimate=False, version=1)
    assert parse(v1.data).stream_bytes - parse(v2.data).stream_bytes == 8
    b = parse(v2.data)
    data = bytearray(v2.data)
    data[len(data) - b.stream_bytes + 5] ^= 0x10  # inside the y stream, its checksum left as it was
    with pytest.raises(BitstreamError, match="checksum mismatch in stream 0 of group 0"):
        codec.decode(loaded, bytes(data))


def test_failed_decompress_leaves_no_file_behind(tmp_path, capsys):
    """`lic decompress` writes its PNG atomically: on any failure neither the output nor a temporary file
    exists afterwards, and the error is one line with exit status 2."""
    from lic import cli

    loaded = _loaded("minnen2018-mean")
    ckpt = tmp_path / "m.pt"
    torch.save({"model": loaded.key, "kwargs": load_params(profile="default")["models"][loaded.key]["kwargs"],
                "state_dict": loaded.model.state_dict(), "quality": 2, "updated": True}, ckpt)
    img = (np.random.default_rng(5).random((30, 40, 3)) * 255).astype(np.uint8)
    good = tmp_path / "x.lic"
    good.write_bytes(codec.encode(loaded, img, estimate=False).data)
    bad = tmp_path / "bad.lic"
    bad.write_bytes(good.read_bytes()[:-3])
    (tmp_path / "adir").mkdir()
    before = set(tmp_path.iterdir())
    for src, out, msg in [(bad, tmp_path / "o.png", "truncated"), (good, tmp_path / "adir", "extension"),
                          (good, tmp_path / "adir" / ".." / "adir.png" / "x.png", "No such file")]:
        assert cli.main(["decompress", str(src), str(out), "--checkpoint", str(ckpt)]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1, err
        assert set(tmp_path.iterdir()) == before and not list((tmp_path / "adir").iterdir())
    (tmp_path / "adir.png").mkdir()  # the output name is taken by a directory
    assert cli.main(["decompress", str(good), str(tmp_path / "adir.png"), "--checkpoint", str(ckpt)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert {p.name for p in tmp_path.iterdir()} == {p.name for p in before} | {"adir.png"}
    assert cli.main(["decompress", str(good), str(tmp_path / "o.png"), "--checkpoint", str(ckpt)]) == 0
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), codec.decode(loaded, good.read_bytes()))
