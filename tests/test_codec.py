import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from lic import codec
from lic.entropy.container import BitstreamError, model_id, parse
from lic.metrics import to_tensor, to_uint8


@pytest.fixture
def loaded(in_tiny_project):
    root, _ = in_tiny_project
    return codec.load_checkpoint(root / "checkpoints/minnen2018-mean/q6/model.pt")


def _photo(h=45, w=67):
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:100 + h, 150:150 + w])


@pytest.mark.parametrize("h,w", [(45, 67), (64, 64), (65, 129), (1, 1)])
def test_round_trip_equals_forward_reconstruction_at_any_size(loaded, h, w):
    img = _photo(h, w) if h > 1 else np.full((1, 1, 3), 77, np.uint8)
    enc = codec.encode(loaded, img)
    assert enc.reconstruction.shape == (h, w, 3)
    assert np.array_equal(codec.decode(loaded, enc.data), enc.reconstruction)
    with torch.no_grad():
        x_hat = loaded.model(codec.pad(to_tensor(img), loaded.pad_multiple))["x_hat"]
    forward = to_uint8(x_hat.clamp(0, 1)[..., :h, :w])
    assert np.abs(forward.astype(int) - enc.reconstruction.astype(int)).max() <= 1
    assert np.mean(forward == enc.reconstruction) > 0.99


def test_centred_zero_padding_round_trips_and_crops_where_the_image_is(loaded, in_tiny_project):
    """The authors' padding (lic evaluate --protocol authors): zeros centred around the image, the odd
    pixel right / bottom, as their scripts' F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2));
    the container records it, so a model loaded with the pipeline's padding (lic decompress) crops the same
    place."""
    img = _photo(45, 67)
    centre = codec.Padding("centre-zeros", 128)  # minnen2018's own multiple is 64
    x = codec.pad(to_tensor(img), loaded.pad_multiple, centre)
    assert x.shape[-2:] == (128, 128)
    top, left = (128 - 45) // 2, (128 - 67) // 2  # 41, 30
    assert centre.offsets(45, 67, loaded.pad_multiple) == (top, left)
    assert torch.equal(x[..., top:top + 45, left:left + 67], to_tensor(img))
    border = x.clone()
    border[..., top:top + 45, left:left + 67] = 0
    assert not border.any()
    loaded.padding = centre
    enc = codec.encode(loaded, img)
    assert np.array_equal(codec.decode(loaded, enc.data), enc.reconstruction)
    with torch.no_grad():
        x_hat = loaded.model(x)["x_hat"]
    forward = to_uint8(x_hat.clamp(0, 1)[..., top:top + 45, left:left + 67])
    assert np.abs(forward.astype(int) - enc.reconstruction.astype(int)).max() <= 1
    root, _ = in_tiny_project
    edge = codec.load_checkpoint(root / "checkpoints/minnen2018-mean/q6/model.pt")
    assert parse(enc.data).pad_multiple == 128
    assert np.array_equal(codec.decode(edge, enc.data), enc.reconstruction)
    with pytest.raises(ValueError, match="version-1 container cannot record centred padding"):
        codec.encode(loaded, img, version=1)
    # the same image with the pipeline's padding: other streams
    assert codec.encode(loaded, img, padding=codec.EDGE).data != enc.data
    with pytest.raises(ValueError, match="not a multiple of"):
        codec.encode(loaded, img, padding=codec.Padding("centre-zeros", 32))
    with pytest.raises(ValueError, match="power of 2"):
        codec.Padding("centre-zeros", 96)
    with pytest.raises(ValueError, match="edge padding"):
        codec.Padding("edge", 128)
    with pytest.raises(ValueError, match="padding mode"):
        codec.Padding("reflect")


def test_header_records_the_image_and_model(loaded):
    enc = codec.encode(loaded, _photo())
    bs = parse(enc.data)
    assert (bs.model_id, bs.quality, bs.height, bs.width) == (model_id("minnen2018-mean"), 6, 45, 67)
    assert bs.fingerprint == loaded.fingerprint[:4]


def test_real_bits_close_to_estimate(loaded):
    img = _photo(128, 192)
    enc = codec.encode(loaded, img)
    # a 6-step model codes many outliers with escape codes, so the gap is wider than for trained models
    assert len(enc.data) * 8 == pytest.approx(enc.bits_estimated, rel=0.25)
    assert 0 <= enc.bits_capped <= enc.bits_estimated


def test_capped_bits_count_symbols_at_the_likelihood_bound():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return {"likelihoods": {"y": torch.tensor([0.5, 0.25, 1e-9, 1e-9])}}

    bits, capped = codec.estimate_bits(Fixed(), torch.zeros(1))
    c = -np.log2(1e-9)
    assert bits == pytest.approx(1 + 2 + 2 * c, rel=1e-6) and capped == pytest.approx(2 * c, rel=1e-6)


def test_other_checkpoint_is_refused(in_tiny_project, loaded):
    root, _ = in_tiny_project
    other = codec.load_checkpoint(root / "checkpoints/minnen2018-mean/q1/model.pt")
    data = codec.encode(loaded, _photo()).data
    with pytest.raises(BitstreamError, match="another checkpoint"):
        codec.decode(other, data)


def test_other_model_key_is_refused(loaded):
    data = codec.encode(loaded, _photo()).data
    bs = parse(data)
    bs.model_id = model_id("li2025-hpcm-base")
    with pytest.raises(BitstreamError, match="made by model 'li2025-hpcm-base'"):
        codec.decode(loaded, bs.to_bytes())


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P", "CMYK"])
def test_non_rgb_inputs_are_converted_with_a_warning(tmp_path, mode):
    rgb = Image.fromarray(_photo())
    if mode == "I;16":
        im = Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257))
    else:
        im = rgb.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    im.save(path)
    with pytest.warns(UserWarning, match="converted"):
        arr = codec.read_image(path)
    assert arr.shape == (45, 67, 3) and arr.dtype == np.uint8
    if mode == "I;16":  # 16-bit white maps to 8-bit white, not to 255/65535
        assert arr.max() > 200


def test_rgb_png_reads_without_warning(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "x.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert codec.read_image(tmp_path / "x.png").shape == (45, 67, 3)


@pytest.mark.parametrize("content", [b"", b"not an image", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0"])
def test_unreadable_images(tmp_path, content):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(codec.ImageError, match="bad.png"):
        codec.read_image(path)


def test_missing_checkpoint_and_foreign_checkpoint(tmp_path):
    with pytest.raises(codec.CheckpointError, match="does not exist"):
        codec.load_checkpoint(tmp_path / "none.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(codec.CheckpointError, match="not a lic checkpoint"):
        codec.load_checkpoint(tmp_path / "foreign.pt")
    (tmp_path / "garbage.pt").write_bytes(b"garbage")
    with pytest.raises(codec.CheckpointError, match="cannot read"):
        codec.load_checkpoint(tmp_path / "garbage.pt")


def _lic(*args, root):
    import os

    env = {**os.environ, "LIC_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "lic.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)


def test_cli_round_trip_in_fresh_processes_is_exact(in_tiny_project, loaded, tmp_path):
    root, _ = in_tiny_project
    ckpt = root / "checkpoints/minnen2018-mean/q6/model.pt"
    src = tmp_path / "in.png"
    Image.fromarray(_photo(51, 77)).save(src)
    r = _lic("compress", src, tmp_path / "x.lic", "--checkpoint", ckpt, root=root)
    assert r.returncode == 0, r.stderr
    r = _lic("decompress", tmp_path / "x.lic", tmp_path / "out.png", "--checkpoint", ckpt, root=root)
    assert r.returncode == 0, r.stderr
    decoded = np.asarray(Image.open(tmp_path / "out.png"))
    expected = codec.encode(loaded, codec.read_image(src)).reconstruction
    assert decoded.shape == (51, 77, 3) and np.array_equal(decoded, expected)


def test_cli_errors_are_clean(in_tiny_project, tmp_path):
    root, _ = in_tiny_project
    ckpt = root / "checkpoints/minnen2018-mean/q6/model.pt"
    src = tmp_path / "in.png"
    Image.fromarray(_photo()).save(src)
    assert _lic("compress", src, tmp_path / "x.lic", "--checkpoint", ckpt, root=root).returncode == 0
    data = (tmp_path / "x.lic").read_bytes()
    (tmp_path / "trunc.lic").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[len(data) // 2] ^= 0xFF
    (tmp_path / "corrupt.lic").write_bytes(bytes(corrupt))
    (tmp_path / "bad.png").write_bytes(b"not an image")
    other = root / "checkpoints/minnen2018-mean/q1/model.pt"
    cases = [
        (("compress", tmp_path / "bad.png", tmp_path / "y.lic", "--checkpoint", ckpt), "not a readable image"),
        (("compress", tmp_path / "nope.png", tmp_path / "y.lic", "--checkpoint", ckpt), "no such file"),
        (("decompress", tmp_path / "trunc.lic", tmp_path / "o.png", "--checkpoint", ckpt), "truncated"),
        (("decompress", tmp_path / "corrupt.lic", tmp_path / "o.png", "--checkpoint", ckpt), "corrupted"),
        (("decompress", src, tmp_path / "o.png", "--checkpoint", ckpt), "not a lic bitstream"),
        (("decompress", tmp_path / "x.lic", tmp_path / "o.png", "--checkpoint", other), "another checkpoint"),
        (("compress", src, tmp_path / "y.lic", "--checkpoint", tmp_path / "none.pt"), "does not exist"),
    ]
    for args, msg in cases:
        r = _lic(*args, root=root)
        assert r.returncode != 0 and msg in r.stderr and "Traceback" not in r.stderr, (args, r.stderr)
    assert not (tmp_path / "o.png").exists()
