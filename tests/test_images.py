"""lic.images: the pixel cap before decoding (bombs), 16-bit, EXIF orientation and animated inputs."""

import struct
import subprocess
import sys
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from lic import cli
from lic.images import ImageError, read_image
from lic.limits import DEFAULT_MAX_PIXELS, LimitError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, *, bit_depth: int = 8, colour: int = 0, rows=None,
              complete: bool = True) -> bytes:
    """A PNG written by hand: ``rows(y)`` gives the raw samples of row y (zeros by default). ``complete=False``:
    only the first rows' data (a file that declares its size but holds almost nothing)."""
    channels = {0: 1, 2: 3, 6: 4}[colour]
    row_bytes = width * channels * bit_depth // 8
    z = zlib.compressobj(9)
    idat = []
    zero = b"\0" * (row_bytes + 1)
    for y in range(height if complete else min(height, 4)):
        idat.append(z.compress(b"\0" + rows(y) if rows else zero))
    idat.append(z.flush())
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0))
            + _chunk(b"IDAT", b"".join(idat)) + _chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def big_png(tmp_path_factory):
    """A valid 140 KB grey PNG of 12000 x 12000 (144 M pixels, 432 MB once decoded to RGB)."""
    path = tmp_path_factory.mktemp("big") / "big.png"
    path.write_bytes(png_bytes(12000, 12000))
    return path


def test_bomb_above_the_default_cap_is_refused_in_one_line(tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bytes(30000, 30000, complete=False))  # 900 M pixels declared
    with pytest.raises(LimitError, match="bomb.png.*268,435,456 pixels"):
        read_image(bomb)
    # through the CLI: the image is read before the checkpoint (which does not exist here) is loaded
    assert cli.main(["compress", str(bomb), str(tmp_path / "x.lic"), "--checkpoint", str(tmp_path / "no.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lic: error:") and err.count("\n") == 1 and "--max-pixels" in err, err
    assert not (tmp_path / "x.lic").exists()
    assert Image.MAX_IMAGE_PIXELS != (DEFAULT_MAX_PIXELS + 1) // 2  # Pillow's global setting is restored


def test_the_cap_is_exact(tmp_path):
    path = tmp_path / "ten.png"
    path.write_bytes(png_bytes(10, 10, colour=2))
    assert read_image(path, max_pixels=100).shape == (10, 10, 3)
    with pytest.raises(LimitError, match="10x10 = 100 pixels exceeds the limit of 99"):
        read_image(path, max_pixels=99)


def test_cli_max_pixels_refuses_a_large_png(big_png, tmp_path, capsys):
    args = ["compress", str(big_png), str(tmp_path / "x.lic"), "--checkpoint", str(tmp_path / "no.pt")]
    assert cli.main([*args, "--max-pixels", "1000000"]) == 2
    err = capsys.readouterr().err
    assert "exceeds the limit of 1,000,000 pixels" in err and err.count("\n") == 1, err
    with pytest.raises(SystemExit):  # argparse: a cap must be a positive integer
        cli.main([*args, "--max-pixels", "0"])


PEAK_RSS = """
import resource, sys
from lic.images import read_image
from lic.limits import LimitError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_image(sys.argv[1], max_pixels=int(sys.argv[2]))
    print("read")
except LimitError:
    print("refused")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_refusal_allocates_nothing_like_the_declared_size(big_png):
    """Peak RSS of a fresh process: the 432 MB image is refused at a 1 M pixel cap with < 32 MB of growth."""
    r = subprocess.run([sys.executable, "-c", PEAK_RSS, str(big_png), str(10 ** 6)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    verdict, grown_mb = r.stdout.split()
    assert verdict == "refused" and int(grown_mb) < 32, r.stdout


def _rgb16(width=5, height=4):
    values = (np.arange(height * width * 3, dtype=np.uint32).reshape(height, width, 3) * 2741 % 65536)
    return values.astype(">u2")


def test_16_bit_rgb_png_is_converted_with_a_warning(tmp_path):
    values = _rgb16()
    path = tmp_path / "deep.png"
    path.write_bytes(png_bytes(5, 4, bit_depth=16, colour=2, rows=lambda y: values[y].tobytes()))
    with pytest.warns(UserWarning, match="deep.png: 16-bit RGB image converted to 8-bit RGB"):
        arr = read_image(path)
    assert arr.dtype == np.uint8 and np.array_equal(arr, (values >> 8).astype(np.uint8))


def test_16_bit_rgba_png_warns_about_depth_and_alpha(tmp_path):
    rgba = np.concatenate([_rgb16(), np.full((4, 5, 1), 1234, ">u2")], axis=2)
    path = tmp_path / "deep.png"
    path.write_bytes(png_bytes(5, 4, bit_depth=16, colour=6, rows=lambda y: rgba[y].tobytes()))
    with pytest.warns(UserWarning, match="16-bit RGBA image converted to 8-bit RGB \\(alpha dropped\\)"):
        assert read_image(path).shape == (4, 5, 3)


def _photo(h=24, w=40):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_exif_orientation_is_applied_with_a_warning(tmp_path):
    img = _photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: viewers rotate 90° clockwise
    Image.fromarray(img).save(tmp_path / "turned.png", exif=exif)
    with pytest.warns(UserWarning, match="EXIF orientation 6 applied"):
        arr = read_image(tmp_path / "turned.png")
    assert np.array_equal(arr, np.rot90(img, k=-1))


@pytest.mark.parametrize("fmt", ["png", "gif"])
def test_animated_image_warns_that_only_the_first_frame_is_coded(tmp_path, fmt):
    frames = [Image.fromarray(np.full((16, 16, 3), v, np.uint8)) for v in (10, 128, 250)]
    path = tmp_path / f"anim.{fmt}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        arr = read_image(path)
    messages = [str(w.message) for w in caught]
    assert any("3 frames" in m and "only the first frame is coded" in m for m in messages), messages
    assert arr.shape == (16, 16, 3) and abs(int(arr.mean()) - 10) <= 2


def test_plain_rgb_png_reads_without_any_warning(tmp_path):
    Image.fromarray(_photo()).save(tmp_path / "x.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(read_image(tmp_path / "x.png"), _photo())


def test_truncated_pixels_are_an_image_error(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(_photo(64, 64)).save(path)
    path.write_bytes(path.read_bytes()[:-2000])  # cut inside the pixel data
    with pytest.raises(ImageError, match="cut.png: not a readable image"):
        read_image(path)


def test_cli_prints_each_warning_as_one_line(in_tiny_project, tmp_path, capsys):
    root, _ = in_tiny_project
    ckpt = root / "checkpoints/minnen2018-mean/q6/model.pt"
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.fromarray(_photo()).convert("RGBA").save(tmp_path / "in.png", exif=exif)
    assert cli.main(["compress", str(tmp_path / "in.png"), str(tmp_path / "x.lic"), "--checkpoint", str(ckpt)]) == 0
    lines = capsys.readouterr().err.splitlines()
    warned = [line for line in lines if line.startswith("lic: warning:")]
    assert len(warned) == 2 and any("EXIF orientation 3" in w for w in warned) \
        and any("alpha dropped" in w for w in warned), lines


def test_gif_whose_first_frame_outgrows_its_screen_is_capped(tmp_path):
    """An 8x8 GIF screen with a 20000x20000 first frame: Pillow enlarges the image to the frame while reading
    the header; the cap sees that size, before any pixel is decoded."""
    gif = (b"GIF89a" + struct.pack("<HHBBB", 8, 8, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
           + b"\x2c" + struct.pack("<HHHHB", 0, 0, 20000, 20000, 0) + b"\x02\x02\x4c\x01\x00" + b"\x3b")
    (tmp_path / "wide.gif").write_bytes(gif)
    with pytest.raises(LimitError, match="wide.gif: image of 20000x20000 = 400,000,000 pixels"):
        read_image(tmp_path / "wide.gif")
