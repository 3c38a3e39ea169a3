"""Classical codec anchors: JPEG, WebP, AVIF, JPEG XL, HEVC intra 4:4:4 (x265), and BPG / VTM when present.

Every anchor runs the real tool on a real file: the 8-bit RGB image is written as a PNG, the encoder
writes its bitstream file, the decoder writes the reconstruction, and

    bpp = (size of the bitstream file in bytes) * 8 / (H * W)

of that file exactly as the tool wrote it (container included for WebP/AVIF/JPEG XL/BPG/JPEG; for
HEVC and VTM the raw Annex-B elementary stream, no container). Nothing is estimated.

Each codec of :data:`CODECS` (keys ``jpeg``, ``webp``, ``avif``, ``jpegxl``, ``hevc-x265-444``,
``bpg``, ``vtm``) has ``available()``, ``version()``, ``encode(png, quality, out)``,
``decode(bitstream, out_png)`` and :meth:`Codec.roundtrip`. ``quality`` is the tool's own knob:
JPEG/WebP/JPEG XL quality (higher = better) or AVIF quantizer / HEVC, BPG, VTM QP (lower = better;
``higher_is_better`` says which). The sweeps live in params.yaml (``anchors.sweeps``).

A codec whose binary is missing is unavailable: :func:`available_codecs` leaves it out and
:func:`evaluate_codec` raises a :class:`CodecUnavailable` naming the binary and the Debian package
(``make system-deps`` installs them). Nothing is ever faked or substituted.

HEVC and VTM code YCbCr 4:4:4, 8 bit, which this module computes itself from RGB with the full-range
BT.601 (JFIF) matrix -- the conversion ``bpgenc -c ycbcr`` uses by default -- and inverts after
decoding (round to nearest, clip to 0..255). Doing it here, in float64, instead of in ffmpeg's
swscale keeps the high-quality end of the curve free of conversion loss beyond the 8-bit rounding
(about 50+ dB PSNR). Encoding / decoding times are ``time.perf_counter`` around ``encode`` /
``decode``: each reads a PNG and writes a file, like the command-line tools.

    python -m lic.anchors list
    python -m lic.anchors evaluate jpeg kodak
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lic import metrics, results, runinfo
from lic.data.prepare import load_manifest

#: Where each external binary comes from on Debian/Ubuntu (``make system-deps`` installs these).
DEBIAN_PACKAGES = {
    "ffmpeg": "ffmpeg",
    "cwebp": "webp", "dwebp": "webp",
    "avifenc": "libavif-bin", "avifdec": "libavif-bin",
    "cjxl": "libjxl-tools", "djxl": "libjxl-tools",
}
#: Binaries that no Debian package provides: where to build them from.
NOT_PACKAGED = {
    "bpgenc": "not packaged by Debian; build libbpg from https://bellard.org/bpg/ and put bpgenc on PATH",
    "bpgdec": "not packaged by Debian; build libbpg from https://bellard.org/bpg/ and put bpgdec on PATH",
    "EncoderApp": "not packaged by Debian; build VTM from "
                  "https://vcgit.hhi.fraunhofer.de/jvet/VVCSoftware_VTM and put EncoderApp on PATH",
    "DecoderApp": "not packaged by Debian; build VTM from "
                  "https://vcgit.hhi.fraunhofer.de/jvet/VVCSoftware_VTM and put DecoderApp on PATH",
}
SUBPROCESS_TIMEOUT_S = 3600


class CodecUnavailable(RuntimeError):
    """The codec's binary (or library support) is missing on this machine."""


class CodecFailed(RuntimeError):
    """The codec's tool exited with an error (the message carries its stderr)."""


def _where(binary: str) -> str:
    if binary in DEBIAN_PACKAGES:
        return f"Debian package {DEBIAN_PACKAGES[binary]!r} (`make system-deps` or " \
               f"`apt-get install {DEBIAN_PACKAGES[binary]}`)"
    return NOT_PACKAGED.get(binary, "see docs/anchors.md")


def _fmt_quality(q) -> str:
    q = float(q)
    return str(int(q)) if q.is_integer() else repr(q)


def _run(tool: str, argv: list[str], *, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``argv``; raise :class:`CodecFailed` with the tool's stderr when it fails."""
    try:
        proc = subprocess.run(argv, capture_output=True, cwd=cwd, timeout=SUBPROCESS_TIMEOUT_S,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise CodecUnavailable(f"{tool}: {argv[0]} is not on PATH ({_where(argv[0])})") from e
    except subprocess.TimeoutExpired as e:
        raise CodecFailed(f"{tool}: `{shlex.join(argv)}` timed out after {e.timeout} s") from e
    if proc.returncode != 0:
        err = (proc.stderr or b"").decode(errors="replace").strip() or \
              (proc.stdout or b"").decode(errors="replace").strip()
        raise CodecFailed(f"{tool}: `{shlex.join(argv)}` failed with exit status {proc.returncode}:\n{err}")
    return proc


def _join(argv) -> str:
    """A command line for the record: like shlex.join, but ``{placeholders}`` stay unquoted."""
    return " ".join(a if re.fullmatch(r"[\w{}./:=,+@%-]+", a) else shlex.quote(a) for a in argv)


def _first_line(argv: list[str], pattern: str = r"\S") -> str:
    """First line of a tool's output (stdout then stderr) matching ``pattern``, whatever its exit code."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (proc.stdout or b"").decode(errors="replace") + "\n" + (proc.stderr or b"").decode(errors="replace")
    for line in text.splitlines():
        if re.search(pattern, line):
            return line.strip()
    return "unknown"


# --- colour conversion (HEVC, VTM) ------------------------------------------------------------------

def rgb_to_ycbcr(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, H, W) uint8 planar Y, Cb, Cr; full-range BT.601 (JFIF)."""
    x = img.astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128.0 + (b - y) / 1.772
    cr = 128.0 + (r - y) / 1.402
    return np.clip(np.rint(np.stack([y, cb, cr])), 0, 255).astype(np.uint8)


def ycbcr_to_rgb(planes: np.ndarray) -> np.ndarray:
    """(3, H, W) uint8 planar full-range BT.601 YCbCr -> (H, W, 3) uint8 RGB (rounded, clipped)."""
    y, cb, cr = (p.astype(np.float64) for p in planes)
    cb -= 128.0
    cr -= 128.0
    r = y + 1.402 * cr
    b = y + 1.772 * cb
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def read_png(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB."""
    with Image.open(path) as im:
        if im.mode in ("I;16", "I;16B", "I") or im.mode.startswith("RGB;16"):
            raise ValueError(f"{path}: expected an 8-bit image, got mode {im.mode}")
        return np.array(im.convert("RGB"))


def write_png(img: np.ndarray, path: str | Path) -> None:
    Image.fromarray(np.ascontiguousarray(img), "RGB").save(path, compress_level=1)


def _read_y4m_444(path: Path) -> np.ndarray:
    """The first frame of an 8-bit 4:4:4 YUV4MPEG2 file as (3, H, W) uint8."""
    data = path.read_bytes()
    end = data.index(b"\n")
    fields = data[:end].split()
    if not fields or fields[0] != b"YUV4MPEG2":
        raise CodecFailed(f"{path}: not a YUV4MPEG2 file")
    w = h = None
    chroma = b"420"
    for f in fields[1:]:
        if f.startswith(b"W"):
            w = int(f[1:])
        elif f.startswith(b"H"):
            h = int(f[1:])
        elif f.startswith(b"C"):
            chroma = f[1:]
    if chroma != b"444":
        raise CodecFailed(f"{path}: expected 8-bit 4:4:4 frames, got C{chroma.decode()}")
    frame = data.index(b"\n", end + 1) + 1  # skip the FRAME header line
    n = 3 * w * h
    planes = np.frombuffer(data, np.uint8, count=n, offset=frame)
    return planes.reshape(3, h, w)


# --- codecs ------------------------------------------------------------------------------------------

@dataclass
class Measurement:
    """One encode + decode: the bitstream file, its size, the reconstruction and the timings."""

    bitstream: Path
    bytes: int
    reconstruction: np.ndarray
    encoding_time: float
    decoding_time: float

    @property
    def bpp(self) -> float:
        h, w = self.reconstruction.shape[:2]
        return self.bytes * 8 / (h * w)


class Codec:
    """Base class: one classical codec driven through files."""

    name: str = ""
    label: str = ""               # human-readable, for the result file's description
    suffix: str = ".bin"          # bitstream file extension
    binaries: tuple[str, ...] = ()
    higher_is_better: bool = True  # does a higher ``quality`` value mean more bits / better quality?

    def unavailable_reason(self) -> str | None:
        missing = [b for b in self.binaries if shutil.which(b) is None]
        if missing:
            return "; ".join(f"{b} is not on PATH ({_where(b)})" for b in missing)
        return None

    def available(self) -> bool:
        return self.unavailable_reason() is None

    def require(self) -> None:
        reason = self.unavailable_reason()
        if reason:
            raise CodecUnavailable(f"anchor {self.name!r} is unavailable: {reason}")

    def version(self) -> str:
        raise NotImplementedError

    def command(self) -> str:
        """The encode and decode command lines, ``{quality}``/``{input}``/``{output}`` as placeholders."""
        raise NotImplementedError

    def encode(self, png_path: str | Path, quality, out_path: str | Path) -> None:
        raise NotImplementedError

    def decode(self, bitstream_path: str | Path, out_png_path: str | Path, *,
               size: tuple[int, int] | None = None) -> None:
        """Decode to an 8-bit RGB PNG. ``size`` (W, H) is needed only by decoders that write raw YUV."""
        raise NotImplementedError

    def measure(self, img: np.ndarray, quality, workdir: str | Path) -> Measurement:
        """Encode and decode ``img`` ((H, W, 3) uint8) at ``quality`` through files in ``workdir``.

        Writes ``workdir/input.png``, ``workdir/bitstream<suffix>`` and ``workdir/decoded.png``
        (overwriting them); the bitstream file stays there for inspection.
        """
        img = np.asarray(img)
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {img.dtype} {img.shape}")
        workdir = Path(workdir)
        src, bitstream, rec = workdir / "input.png", workdir / f"bitstream{self.suffix}", workdir / "decoded.png"
        for f in (bitstream, rec):
            f.unlink(missing_ok=True)
        write_png(img, src)
        t0 = time.perf_counter()
        self.encode(src, quality, bitstream)
        t1 = time.perf_counter()
        if not bitstream.is_file():
            raise CodecFailed(f"{self.name}: the encoder wrote no bitstream at {bitstream}")
        nbytes = bitstream.stat().st_size
        h, w = img.shape[:2]
        t2 = time.perf_counter()
        self.decode(bitstream, rec, size=(w, h))
        t3 = time.perf_counter()
        if not rec.is_file():
            raise CodecFailed(f"{self.name}: the decoder wrote no image at {rec}")
        out = read_png(rec)
        if out.shape != img.shape:
            raise CodecFailed(f"{self.name}: decoded image is {out.shape[1]}x{out.shape[0]}, "
                              f"expected {w}x{h}")
        return Measurement(bitstream, nbytes, out, t1 - t0, t3 - t2)

    def roundtrip(self, img: np.ndarray, quality, workdir: str | Path) -> tuple[int, np.ndarray]:
        """(bitstream file size in bytes, reconstruction (H, W, 3) uint8); see :meth:`measure`."""
        m = self.measure(img, quality, workdir)
        return m.bytes, m.reconstruction


class CliCodec(Codec):
    """A codec run as two command lines; ``{quality}``, ``{input}``, ``{output}`` are filled in."""

    encode_argv: tuple[str, ...] = ()
    decode_argv: tuple[str, ...] = ()

    def _argv(self, template, **values) -> list[str]:
        return [a.format(**values) for a in template]

    def command(self) -> str:
        return f"{_join(self.encode_argv)} && {_join(self.decode_argv)}"

    def encode(self, png_path, quality, out_path) -> None:
        self.require()
        _run(self.name, self._argv(self.encode_argv, quality=_fmt_quality(quality),
                                   input=str(png_path), output=str(out_path)))

    def decode(self, bitstream_path, out_png_path, *, size=None) -> None:
        self.require()
        _run(self.name, self._argv(self.decode_argv, input=str(bitstream_path), output=str(out_png_path)))


class Jpeg(Codec):
    """JPEG (baseline, libjpeg through Pillow), Pillow's defaults like CompressAI's Pillow JPEG anchor.

    Tool: Pillow ``Image.save(out, "JPEG", quality=Q, subsampling="4:2:0", optimize=False,
    progressive=False)`` -- i.e. Pillow's defaults: standard IJG tables scaled by Q, 4:2:0 chroma
    subsampling, JFIF full-range BT.601 YCbCr, no Huffman optimisation. Decoding: ``Image.open(bs)
    .convert("RGB")``. Version: ``PIL.__version__`` and ``PIL.features.version("jpg")`` (libjpeg).
    Quality: 1..95, higher = better.
    """

    name, label, suffix = "jpeg", "JPEG (Pillow/libjpeg, 4:2:0)", ".jpg"

    def unavailable_reason(self):
        from PIL import features
        return None if features.check("jpg") else "this Pillow was built without JPEG support (libjpeg)"

    def version(self) -> str:
        import PIL
        from PIL import features
        return f"Pillow {PIL.__version__}, libjpeg {features.version('jpg')}"

    def command(self) -> str:
        return ('PIL.Image.open({input}).convert("RGB").save({output}, "JPEG", quality={quality}, '
                'subsampling="4:2:0", optimize=False, progressive=False) && '
                'PIL.Image.open({input}).convert("RGB").save({output})')

    def encode(self, png_path, quality, out_path) -> None:
        self.require()
        with Image.open(png_path) as im:
            im.convert("RGB").save(out_path, "JPEG", quality=int(quality), subsampling="4:2:0",
                                   optimize=False, progressive=False)

    def decode(self, bitstream_path, out_png_path, *, size=None) -> None:
        with Image.open(bitstream_path) as im:
            write_png(np.asarray(im.convert("RGB")), out_png_path)


class WebP(CliCodec):
    """WebP lossy (libwebp, VP8 intra, always 4:2:0) through cwebp / dwebp.

    Encode: ``cwebp -quiet -metadata none -m 6 -q Q input.png -o out.webp`` (method 6: slowest,
    best compression; libwebp's own RGB->YUV conversion). Decode: ``dwebp -quiet in.webp -o out.png``.
    Version: ``cwebp -version``. Quality: 0..100, higher = better. bpp counts the whole RIFF file.
    """

    name, label, suffix = "webp", "WebP (libwebp cwebp -m 6)", ".webp"
    binaries = ("cwebp", "dwebp")
    encode_argv = ("cwebp", "-quiet", "-metadata", "none", "-m", "6", "-q", "{quality}",
                   "{input}", "-o", "{output}")
    decode_argv = ("dwebp", "-quiet", "{input}", "-o", "{output}")

    def version(self) -> str:
        return f"libwebp cwebp {_first_line(['cwebp', '-version'])}"


class Avif(CliCodec):
    """AVIF (AV1 intra, libaom) through libavif's avifenc / avifdec, 4:4:4, 8 bit.

    Encode: ``avifenc --jobs 1 --codec aom --speed 4 --depth 8 --yuv 444 --range full
    --cicp 1/13/6 --min Q --max Q input.png out.avif`` (constant quantizer Q on libavif's 0..63
    scale, lower = better; speed 4 of 0 (slowest) .. 10; CICP: BT.709 primaries, sRGB transfer,
    BT.601 matrix, full range). Decode: ``avifdec --depth 8 in.avif out.png``. Version:
    ``avifenc --version`` (libavif and its AV1 codecs). bpp counts the whole HEIF/AVIF file.
    """

    name, label, suffix = "avif", "AVIF (libavif avifenc, aom, 4:4:4, speed 4)", ".avif"
    binaries = ("avifenc", "avifdec")
    higher_is_better = False
    encode_argv = ("avifenc", "--jobs", "1", "--codec", "aom", "--speed", "4", "--depth", "8",
                   "--yuv", "444", "--range", "full", "--cicp", "1/13/6", "--min", "{quality}",
                   "--max", "{quality}", "{input}", "{output}")
    decode_argv = ("avifdec", "--depth", "8", "{input}", "{output}")

    def version(self) -> str:
        return f"avifenc {_first_line(['avifenc', '--version'], 'Version')}"


class JpegXl(CliCodec):
    """JPEG XL (libjxl, VarDCT) through cjxl / djxl.

    Encode: ``cjxl input.png out.jxl -q Q -e 7`` (quality mapped by cjxl to a butteraugli
    distance, effort 7 = libjxl's default; the encoder works in XYB internally). Decode:
    ``djxl in.jxl out.png --bits_per_sample=8``. Version: ``cjxl --version``. Quality: higher =
    better (100 = lossless). bpp counts the whole .jxl file.
    """

    name, label, suffix = "jpegxl", "JPEG XL (libjxl cjxl -e 7)", ".jxl"
    binaries = ("cjxl", "djxl")
    encode_argv = ("cjxl", "{input}", "{output}", "-q", "{quality}", "-e", "7")
    decode_argv = ("djxl", "{input}", "{output}", "--bits_per_sample=8")

    def version(self) -> str:
        return _first_line(["cjxl", "--version"], "cjxl")


class HevcX265(Codec):
    """HEVC intra, Main 4:4:4 8 bit, x265 through ffmpeg's libx265; raw Annex-B stream, no container.

    RGB -> YCbCr 4:4:4 8 bit with full-range BT.601 (JFIF; :func:`rgb_to_ycbcr`), the default of
    ``bpgenc -c ycbcr``, written as raw planar yuv444p. Encode::

        ffmpeg -nostdin -hide_banner -loglevel error -y -f rawvideo -pix_fmt yuv444p -s WxH
               -color_range pc -i in.yuv -frames:v 1 -c:v libx265 -preset veryslow -tune psnr
               -x265-params qp=Q:keyint=1:info=0:log-level=error -color_range pc -colorspace bt470bg
               -f hevc out.hevc

    (one all-intra frame at constant QP Q, 0..51, lower = better; ``info=0`` drops x265's
    settings SEI; ``-tune psnr`` turns off psycho-visual tuning; full range and the BT.601 matrix
    are signalled in the VUI). Decode with ffmpeg's HEVC decoder to raw 4:4:4, no conversion::

        ffmpeg -nostdin -hide_banner -loglevel error -y -f hevc -i in.hevc -frames:v 1
               -pix_fmt yuv444p -f yuv4mpegpipe out.y4m

    then :func:`ycbcr_to_rgb`. Version: ``ffmpeg -version`` and x265's banner. bpp counts the
    .hevc file (VPS, SPS, PPS and the slice NAL units).
    """

    name, label, suffix = "hevc-x265-444", "HEVC intra 4:4:4 (x265 veryslow, ffmpeg)", ".hevc"
    binaries = ("ffmpeg",)
    higher_is_better = False
    preset = "veryslow"

    def _encode_argv(self, yuv: str, w: int, h: int, quality: str, out: str) -> list[str]:
        return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", "yuv444p", "-s", f"{w}x{h}", "-color_range", "pc",
                "-i", yuv, "-frames:v", "1", "-c:v", "libx265", "-preset", self.preset, "-tune", "psnr",
                "-x265-params", f"qp={quality}:keyint=1:info=0:log-level=error",
                "-color_range", "pc", "-colorspace", "bt470bg", "-f", "hevc", out]

    def _decode_argv(self, bitstream: str, out: str) -> list[str]:
        return ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "hevc",
                "-i", bitstream, "-frames:v", "1", "-pix_fmt", "yuv444p", "-f", "yuv4mpegpipe", out]

    def unavailable_reason(self):
        reason = super().unavailable_reason()
        if reason:
            return reason
        enc = _first_line(["ffmpeg", "-hide_banner", "-encoders"], r"\blibx265\b")
        if "libx265" not in enc:
            return "ffmpeg on PATH was built without libx265 (Debian's package 'ffmpeg' has it)"
        return None

    def version(self) -> str:
        ff = _first_line(["ffmpeg", "-version"], "ffmpeg version")
        ff = " ".join(ff.split()[:3])
        x265 = _first_line(["ffmpeg", "-hide_banner", "-nostdin", "-f", "lavfi", "-i",
                            "color=black:s=64x64", "-frames:v", "1", "-c:v", "libx265", "-f", "null", "-"],
                           "HEVC encoder version")
        m = re.search(r"HEVC encoder version (\S+)", x265)
        return f"{ff}; x265 {m.group(1) if m else 'unknown'}"

    def command(self) -> str:
        return ("RGB->YCbCr full-range BT.601 (numpy) && "
                + _join(self._encode_argv("{input}.yuv", "{W}", "{H}", "{quality}", "{output}"))
                + " && "
                + _join(self._decode_argv("{input}", "{output}.y4m"))
                + " && YCbCr->RGB full-range BT.601 (numpy)")

    def encode(self, png_path, quality, out_path) -> None:
        self.require()
        img = read_png(png_path)
        h, w = img.shape[:2]
        out_path = Path(out_path)
        yuv = out_path.with_name(out_path.name + ".src.yuv")
        try:
            yuv.write_bytes(rgb_to_ycbcr(img).tobytes())
            _run(self.name, self._encode_argv(str(yuv), w, h, _fmt_quality(quality), str(out_path)))
        finally:
            yuv.unlink(missing_ok=True)

    def decode(self, bitstream_path, out_png_path, *, size=None) -> None:
        self.require()
        out_png_path = Path(out_png_path)
        y4m = out_png_path.with_name(out_png_path.name + ".y4m")
        try:
            _run(self.name, self._decode_argv(str(bitstream_path), str(y4m)))
            write_png(ycbcr_to_rgb(_read_y4m_444(y4m)), out_png_path)
        finally:
            y4m.unlink(missing_ok=True)


class Bpg(CliCodec):
    """BPG (Bellard's HEVC-based format, libbpg), only when ``bpgenc``/``bpgdec`` are on PATH.

    Encode: ``bpgenc -f 444 -e x265 -c ycbcr -b 8 -q QP -o out.bpg input.png`` (4:4:4, x265
    back end, full-range BT.601 YCbCr, 8 bit, QP 0..51, lower = better; default effort ``-m 8``).
    Decode: ``bpgdec -o out.png in.bpg``. Version: the first line of ``bpgenc -h``. No Debian
    package: build https://bellard.org/bpg/ (see docs/anchors.md).
    """

    name, label, suffix = "bpg", "BPG (bpgenc, x265, 4:4:4)", ".bpg"
    binaries = ("bpgenc", "bpgdec")
    higher_is_better = False
    encode_argv = ("bpgenc", "-f", "444", "-e", "x265", "-c", "ycbcr", "-b", "8", "-q", "{quality}",
                   "-o", "{output}", "{input}")
    decode_argv = ("bpgdec", "-o", "{output}", "{input}")

    def version(self) -> str:
        return _first_line(["bpgenc", "-h"], r"(?i)version")


class Vtm(Codec):
    """VVC intra with the reference software VTM, only when EncoderApp/DecoderApp are on PATH and
    ``$LIC_VTM_CFG`` names the encoder configuration (normally VTM's ``cfg/encoder_intra_vtm.cfg``).

    RGB -> YCbCr 4:4:4 8 bit full-range BT.601 (:func:`rgb_to_ycbcr`), raw planar. Encode::

        EncoderApp -c $LIC_VTM_CFG -i in.yuv -b out.vvc -o rec.yuv -wdt W -hgt H -fr 1 -f 1 -q QP
                   --InputBitDepth=8 --OutputBitDepth=8 --InputChromaFormat=444
                   --ChromaFormatIDC=444 --ConformanceWindowMode=1

    (QP 0..63, lower = better; internal bit depth from the cfg; ``rec.yuv`` is deleted). Decode::

        DecoderApp -b in.vvc -o out.yuv -d 8

    then :func:`ycbcr_to_rgb`. Version: the banner line of ``EncoderApp --help``. bpp counts the
    .vvc Annex-B file.
    """

    name, label, suffix = "vtm", "VVC intra (VTM, 4:4:4)", ".vvc"
    binaries = ("EncoderApp", "DecoderApp")
    higher_is_better = False
    cfg_env = "LIC_VTM_CFG"

    def cfg(self) -> str | None:
        return os.environ.get(self.cfg_env) or None

    def unavailable_reason(self):
        reason = super().unavailable_reason()
        if reason:
            return reason
        cfg = self.cfg()
        if cfg is None:
            return f"${self.cfg_env} is not set (point it at VTM's cfg/encoder_intra_vtm.cfg)"
        if not Path(cfg).is_file():
            return f"${self.cfg_env}={cfg} is not a file"
        return None

    def _encode_argv(self, yuv, bitstream, recon, w, h, quality) -> list[str]:
        return ["EncoderApp", "-c", str(self.cfg()), "-i", yuv, "-b", bitstream, "-o", recon,
                "-wdt", str(w), "-hgt", str(h), "-fr", "1", "-f", "1", "-q", quality,
                "--InputBitDepth=8", "--OutputBitDepth=8", "--InputChromaFormat=444",
                "--ChromaFormatIDC=444", "--ConformanceWindowMode=1"]

    def _decode_argv(self, bitstream, out) -> list[str]:
        return ["DecoderApp", "-b", bitstream, "-o", out, "-d", "8"]

    def version(self) -> str:
        return _first_line(["EncoderApp", "--help"], r"(?i)VTM.*version|version.*VTM")

    def command(self) -> str:
        return ("RGB->YCbCr full-range BT.601 (numpy) && "
                + _join(self._encode_argv("{input}.yuv", "{output}", "{output}.rec.yuv", "{W}", "{H}",
                                               "{quality}"))
                + " && " + _join(self._decode_argv("{input}", "{output}.yuv"))
                + " && YCbCr->RGB full-range BT.601 (numpy)")

    def encode(self, png_path, quality, out_path) -> None:
        self.require()
        img = read_png(png_path)
        h, w = img.shape[:2]
        out_path = Path(out_path)
        yuv = out_path.with_name(out_path.name + ".src.yuv")
        recon = out_path.with_name(out_path.name + ".rec.yuv")
        try:
            yuv.write_bytes(rgb_to_ycbcr(img).tobytes())
            _run(self.name, self._encode_argv(str(yuv), str(out_path), str(recon), w, h,
                                              _fmt_quality(quality)), cwd=out_path.parent)
        finally:
            yuv.unlink(missing_ok=True)
            recon.unlink(missing_ok=True)

    def decode(self, bitstream_path, out_png_path, *, size=None) -> None:
        self.require()
        if size is None:
            raise ValueError("vtm: DecoderApp writes raw YUV; pass size=(W, H)")
        w, h = size
        out_png_path = Path(out_png_path)
        yuv = out_png_path.with_name(out_png_path.name + ".yuv")
        try:
            _run(self.name, self._decode_argv(str(bitstream_path), str(yuv)), cwd=out_png_path.parent)
            data = np.fromfile(yuv, np.uint8)
            if data.size < 3 * w * h:
                raise CodecFailed(f"vtm: DecoderApp wrote {data.size} bytes, expected {3 * w * h} "
                                  f"for one {w}x{h} 8-bit 4:4:4 frame")
            write_png(ycbcr_to_rgb(data[:3 * w * h].reshape(3, h, w)), out_png_path)
        finally:
            yuv.unlink(missing_ok=True)


#: The registry, in params.yaml's order.
CODECS: dict[str, Codec] = {c.name: c for c in (Jpeg(), WebP(), Avif(), JpegXl(), HevcX265(), Bpg(), Vtm())}


def get(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise KeyError(f"unknown anchor codec {name!r}; known: {', '.join(CODECS)}") from None


def available_codecs(params: dict) -> list[str]:
    """The codecs of ``params["anchors"]["codecs"]`` that can run on this machine."""
    return [n for n in params["anchors"]["codecs"] if get(n).available()]


def sweep(name: str, params: dict) -> list:
    sweeps = params["anchors"]["sweeps"]
    if name not in sweeps:
        raise KeyError(f"params.yaml anchors.sweeps has no entry for {name!r}")
    return list(sweeps[name])


def evaluate_codec(name: str, dataset: str, params: dict, workdir: str | Path | None = None,
                   progress: bool = True) -> Path:
    """Run ``name`` over its whole sweep on every image of ``dataset``; write and return the result file.

    Temporary files live in a fresh temporary directory (inside ``workdir`` if given) that is
    removed afterwards, whatever happens.
    """
    codec = get(name)
    codec.require()
    qualities = sweep(name, params)
    visual = set(params.get("evaluate", {}).get("visual_images", []))  # decoded images kept for figures
    files = load_manifest(dataset)
    if not files:
        raise FileNotFoundError(f"dataset {dataset!r} has no images")
    if workdir is not None:
        Path(workdir).mkdir(parents=True, exist_ok=True)
    version = codec.version()
    workers = max(1, int(params["anchors"].get("workers", 1)))

    def one_quality(job: tuple[int, object]) -> list[dict]:
        qi, q = job
        t_start = time.perf_counter()
        qdir = Path(tmp) / f"q{qi}"  # each quality's files apart: qualities run side by side
        qdir.mkdir()
        qrows = []
        for f in files:
            with Image.open(f) as im:
                img = np.array(im.convert("RGB"))
            m = codec.measure(img, q, qdir)
            if Path(f).stem in visual:
                results.save_reconstruction(name, dataset, q, Path(f).stem, m.reconstruction)
            h, w = img.shape[:2]
            qrows.append({"image": Path(f).stem, "quality": q, "bytes": m.bytes, "pixels": h * w,
                          "bpp": m.bytes * 8 / (h * w), "bpp_estimated": None,
                          **metrics.image_metrics(img, m.reconstruction),
                          "encoding_time": m.encoding_time, "decoding_time": m.decoding_time})
        if progress:
            bpp = sum(r["bpp"] for r in qrows) / len(qrows)
            ps = [r["psnr-rgb"] for r in qrows if math.isfinite(r["psnr-rgb"])]
            print(f"[anchors] {name} on {dataset}: quality {q} ({qi + 1}/{len(qualities)}): "
                  f"bpp {bpp:.4f}, PSNR {sum(ps) / max(len(ps), 1):.2f} dB, "
                  f"{len(files)} images in {time.perf_counter() - t_start:.1f} s", file=sys.stderr,
                  flush=True)
        return qrows

    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix=f"lic-anchor-{name}-", dir=workdir) as tmp:
        # the codecs are external processes (or Pillow, which releases the GIL): threads run anchors.workers
        # qualities at once; rows keep the sweep's order
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for qrows in pool.map(one_quality, list(enumerate(qualities))):
                rows.extend(qrows)
    description = (f"{codec.label}; quality = the tool's {'quality' if codec.higher_is_better else 'QP/quantizer'}"
                   f" ({'higher' if codec.higher_is_better else 'lower'} = better); bpp from the bitstream "
                   f"file size")
    return results.write_results(dataset, name, rows, description=description,
                                 meta={"codec_version": version, "command": codec.command()},
                                 run=runinfo.run_info(params={"anchors": params["anchors"]}))


def main(argv: list[str] | None = None) -> int:
    import argparse

    from lic.config import load_params

    ap = argparse.ArgumentParser(prog="python -m lic.anchors", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the anchors of params.yaml, availability and versions")
    ev = sub.add_parser("evaluate", help="run one anchor's sweep on one dataset")
    ev.add_argument("codec")
    ev.add_argument("dataset")
    args = ap.parse_args(argv)
    params = load_params()
    if args.cmd == "list":
        for n in params["anchors"]["codecs"]:
            c = get(n)
            reason = c.unavailable_reason()
            print(f"{n:15s} {'available: ' + c.version() if reason is None else 'unavailable: ' + reason}")
        return 0
    print(evaluate_codec(args.codec, args.dataset, params))
    return 0


if __name__ == "__main__":
    sys.exit(main())
