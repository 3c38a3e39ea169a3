"""Classical codec anchors (lic.anchors): real round trips, the result file, BPG/VTM detection and
command lines. Codecs whose binaries are missing here are skipped, naming the binary."""

from __future__ import annotations

import io
import json
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lic import anchors, metrics, paths, results
from lic.config import load_params
from lic.data import prepare

REAL = ["jpeg", "webp", "avif", "jpegxl", "hevc-x265-444"]
#: three settings per codec, from the lowest to the highest quality
LOW_TO_HIGH = {"jpeg": [10, 50, 90], "webp": [10, 50, 90], "avif": [50, 35, 15],
               "jpegxl": [10, 50, 90], "hevc-x265-444": [42, 32, 22]}


def _codec(name: str) -> anchors.Codec:
    c = anchors.get(name)
    reason = c.unavailable_reason()
    if reason:
        pytest.skip(f"{name}: {reason}")
    return c


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real photograph, 192x128 (W x H)."""
    return np.asarray(Image.fromarray(skdata.astronaut()).resize((192, 128), Image.Resampling.LANCZOS))


@pytest.fixture(scope="module")
def odd_photo() -> np.ndarray:
    """161x97: odd on both sides, not a multiple of any block size."""
    return np.ascontiguousarray(skdata.astronaut()[40:137, 170:331])


@pytest.fixture
def anchor_params() -> dict:
    return {"anchors": {"codecs": ["jpeg", "bpg"], "sweeps": {"jpeg": [20, 80], "bpg": [37, 27]}}}


# --- real round trips --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", REAL)
def test_roundtrip_rate_and_quality_grow_with_quality(name, photo, tmp_path):
    codec = _codec(name)
    qualities = LOW_TO_HIGH[name]
    assert (qualities == sorted(qualities)) == codec.higher_is_better
    bpps, psnrs = [], []
    for q in qualities:
        m = codec.measure(photo, q, tmp_path)
        assert m.reconstruction.shape == photo.shape and m.reconstruction.dtype == np.uint8
        assert m.bitstream.is_file() and m.bitstream.parent == tmp_path
        assert m.bytes == m.bitstream.stat().st_size > 0
        assert m.bpp == m.bitstream.stat().st_size * 8 / (128 * 192)
        assert m.encoding_time > 0 and m.decoding_time > 0
        bpps.append(m.bpp)
        psnrs.append(metrics.psnr(photo, m.reconstruction))
    assert bpps == sorted(bpps) and len(set(bpps)) == 3, bpps
    assert psnrs == sorted(psnrs) and len(set(psnrs)) == 3, psnrs
    assert psnrs[0] > 20 and psnrs[-1] > 30, psnrs  # a real reconstruction of the photo
    nbytes, rec = codec.roundtrip(photo, qualities[1], tmp_path)
    assert nbytes == (tmp_path / f"bitstream{codec.suffix}").stat().st_size
    assert rec.shape == photo.shape and rec.dtype == np.uint8


@pytest.mark.parametrize("name", REAL)
def test_odd_size_roundtrip(name, odd_photo, tmp_path):
    codec = _codec(name)
    m = codec.measure(odd_photo, LOW_TO_HIGH[name][1], tmp_path)
    assert m.reconstruction.shape == (97, 161, 3)
    assert m.bpp == m.bitstream.stat().st_size * 8 / (97 * 161)
    assert metrics.psnr(odd_photo, m.reconstruction) > 25


def test_jpeg_bitstream_is_pillows_default_jpeg(photo, tmp_path):
    codec = _codec("jpeg")
    m = codec.measure(photo, 50, tmp_path)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, "JPEG", quality=50)  # Pillow's defaults (4:2:0)
    assert m.bitstream.read_bytes() == buf.getvalue()


def test_hevc_writes_a_raw_annexb_stream_without_x265_info(photo, tmp_path):
    codec = _codec("hevc-x265-444")
    m = codec.measure(photo, 32, tmp_path)
    stream = m.bitstream.read_bytes()
    assert stream[:6] == bytes.fromhex("000000014001")  # start code + VPS NAL header, no container
    assert b"x265" not in stream                          # info=0: no settings SEI counted in the rate
    assert codec.version().startswith("ffmpeg version") and "x265 3" in codec.version()


def test_ycbcr_conversion_is_full_range_bt601_and_invertible(photo):
    px = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]]], np.uint8)
    ycc = anchors.rgb_to_ycbcr(px)
    assert ycc[:, 0, 0].tolist() == [255, 128, 128]
    assert ycc[:, 0, 1].tolist() == [0, 128, 128]
    assert ycc[:, 0, 2].tolist() == [76, 85, 255]   # Y = 0.299 * 255, Cb = 128 - 0.1687 * 255
    assert ycc[:, 0, 3].tolist() == [29, 255, 107]
    back = anchors.ycbcr_to_rgb(anchors.rgb_to_ycbcr(photo))
    assert np.abs(back.astype(int) - photo).max() <= 2
    assert metrics.psnr(photo, back) > 50


def test_versions_of_available_codecs():
    for name in REAL:
        c = anchors.get(name)
        if c.available():
            assert c.version() and "unknown" not in c.version(), name


# --- evaluate_codec ----------------------------------------------------------------------------------

def _tiny_dataset(project_root: Path, monkeypatch, photo) -> None:
    monkeypatch.setattr(paths, "RESULTS", project_root / "results")
    d = prepare.dataset_dir("sample")
    d.mkdir(parents=True)
    Image.fromarray(photo).save(d / "astro_small.png")
    Image.fromarray(skdata.astronaut()[:170, :180]).convert("RGBA").save(d / "astro_rgba.png")  # -> RGB
    prepare.write_manifest("sample")


def test_evaluate_codec_writes_per_image_rows_and_averages(project_root, monkeypatch, photo, anchor_params,
                                                           tmp_path):
    _tiny_dataset(project_root, monkeypatch, photo)
    work = tmp_path / "work"
    path = anchors.evaluate_codec("jpeg", "sample", anchor_params, workdir=work, progress=False)
    assert path == results.result_path("sample", "jpeg") and path.is_relative_to(project_root / "results")
    assert work.is_dir() and not any(work.iterdir())  # temporary files removed
    doc = json.loads(path.read_text())
    assert doc["name"] == "jpeg" and doc["meta"]["dataset"] == "sample"
    assert "Pillow" in doc["meta"]["codec_version"] and "quality={quality}" in doc["meta"]["command"]
    assert doc["run"]["params"] == {"anchors": anchor_params["anchors"]}
    rows = doc["per_image"]
    assert len(rows) == 4
    assert {(r["image"], r["quality"]) for r in rows} == {(i, q) for i in ("astro_small", "astro_rgba")
                                                          for q in (20, 80)}
    for r in rows:
        rgb = np.asarray(Image.open(project_root / "data/datasets/sample" / f"{r['image']}.png").convert("RGB"))
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=r["quality"])
        assert r["bytes"] == len(buf.getvalue())
        assert r["pixels"] == rgb.shape[0] * rgb.shape[1]
        assert r["bpp"] == r["bytes"] * 8 / r["pixels"]
        assert r["bpp_estimated"] is None
        rec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        assert r["psnr-rgb"] == pytest.approx(metrics.psnr(rgb, rec))
        assert r["encoding_time"] > 0 and r["decoding_time"] > 0
    small = [r for r in rows if r["image"] == "astro_small"]
    assert all(math.isnan(r["ms-ssim-rgb"]) for r in small)      # 128 px < 161: NaN, not made up
    big = [r for r in rows if r["image"] == "astro_rgba"]
    assert all(0 < r["ms-ssim-rgb"] < 1 for r in big)
    res = doc["results"]
    assert res["quality"] == [20, 80] and res["images"] == [2, 2]
    for i, q in enumerate(res["quality"]):
        qrows = [r for r in rows if r["quality"] == q]
        assert res["bpp"][i] == pytest.approx(sum(r["bpp"] for r in qrows) / 2)
        assert res["psnr-rgb"][i] == pytest.approx(sum(r["psnr-rgb"] for r in qrows) / 2)
    assert res["bpp"][0] < res["bpp"][1] and res["psnr-rgb"][0] < res["psnr-rgb"][1]


@pytest.mark.parametrize("name", ["webp", "hevc-x265-444"])
def test_evaluate_external_codec(name, project_root, monkeypatch, photo):
    _codec(name)
    _tiny_dataset(project_root, monkeypatch, photo)
    params = {"anchors": {"codecs": [name], "sweeps": {name: LOW_TO_HIGH[name][:2]}}}
    doc = json.loads(anchors.evaluate_codec(name, "sample", params, progress=False).read_text())
    assert len(doc["per_image"]) == 4 and doc["results"]["images"] == [2, 2]
    assert doc["meta"]["codec_version"] == anchors.get(name).version()
    bpp = dict(zip(doc["results"]["quality"], doc["results"]["bpp"]))
    assert bpp[LOW_TO_HIGH[name][0]] < bpp[LOW_TO_HIGH[name][1]]


def test_qualities_side_by_side_give_the_serial_rows(project_root, monkeypatch, photo):
    """anchors.workers: the sweep's qualities coded in threads give the same rows, in the sweep's order."""
    _codec("webp")
    _tiny_dataset(project_root, monkeypatch, photo)
    docs = []
    for workers in (1, 3):
        params = {"anchors": {"codecs": ["webp"], "sweeps": {"webp": [5, 50, 90]}, "workers": workers}}
        doc = json.loads(anchors.evaluate_codec("webp", "sample", params, progress=False).read_text())
        docs.append([{k: v for k, v in r.items() if not k.endswith("_time")} for r in doc["per_image"]])
    assert docs[0] == docs[1] and [r["quality"] for r in docs[0]] == [5, 5, 50, 50, 90, 90]


def test_evaluate_cleans_up_after_a_failure(project_root, monkeypatch, photo, anchor_params, tmp_path):
    _tiny_dataset(project_root, monkeypatch, photo)
    codec = anchors.get("jpeg")

    def broken(img, quality, workdir):
        (Path(workdir) / "partial.jpg").write_bytes(b"x")
        raise anchors.CodecFailed("jpeg: boom")

    monkeypatch.setattr(codec, "measure", broken)
    work = tmp_path / "work"
    with pytest.raises(RuntimeError, match="boom"):
        anchors.evaluate_codec("jpeg", "sample", anchor_params, workdir=work, progress=False)
    assert not any(work.iterdir())
    assert not results.result_path("sample", "jpeg").exists()


# --- detection, BPG and VTM --------------------------------------------------------------------------

def test_without_binaries_codecs_are_unavailable_and_evaluate_names_them(tmp_path, monkeypatch, anchor_params):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("LIC_VTM_CFG", raising=False)
    for name in ("webp", "avif", "jpegxl", "hevc-x265-444", "bpg", "vtm"):
        assert not anchors.get(name).available(), name
    params = {"anchors": {"codecs": list(anchors.CODECS), "sweeps": {n: [1] for n in anchors.CODECS}}}
    assert anchors.available_codecs(params) == ["jpeg"]
    with pytest.raises(RuntimeError, match="bpgenc is not on PATH.*bpgdec is not on PATH"):
        anchors.evaluate_codec("bpg", "sample", anchor_params)
    with pytest.raises(RuntimeError, match="EncoderApp is not on PATH"):
        anchors.evaluate_codec("vtm", "sample", params)
    with pytest.raises(RuntimeError, match="cwebp is not on PATH.*Debian package 'webp'"):
        anchors.evaluate_codec("webp", "sample", params)
    with pytest.raises(RuntimeError, match="avifenc is not on PATH.*'libavif-bin'"):
        anchors.evaluate_codec("avif", "sample", params)
    with pytest.raises(RuntimeError, match="cjxl is not on PATH.*'libjxl-tools'"):
        anchors.evaluate_codec("jpegxl", "sample", params)
    with pytest.raises(RuntimeError, match="ffmpeg is not on PATH.*'ffmpeg'"):
        anchors.evaluate_codec("hevc-x265-444", "sample", params)


FAKE_TOOL = """#!/bin/sh
# records its argv (one per line), then copies its input file (the last argument, or the one
# after {in_flag}) to the file after {out_flag}
printf '%s\\n' "$@" > "$FAKE_LOG/{name}.args"
if [ "$1" = "-h" ] || [ "$1" = "--help" ]; then echo "{banner}"; exit 1; fi
if [ -n "$FAKE_FAIL" ]; then echo "fake {name}: $FAKE_FAIL" >&2; exit 3; fi
out=""; in=""; last=""; prev=""
for a in "$@"; do
  [ "$prev" = "{out_flag}" ] && out="$a"
  [ "$prev" = "{in_flag}" ] && in="$a"
  prev="$a"; last="$a"
done
[ -z "$in" ] && in="$last"
cp "$in" "$out"
"""


def _fake(bindir: Path, name: str, out_flag: str, in_flag: str = "", banner: str = "") -> None:
    f = bindir / name
    f.write_text(FAKE_TOOL.format(name=name, out_flag=out_flag, in_flag=in_flag or "--none--",
                                  banner=banner))
    f.chmod(f.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


@pytest.fixture
def fake_bin(tmp_path, monkeypatch) -> tuple[Path, Path]:
    bindir, log = tmp_path / "fake-bin", tmp_path / "fake-log"
    bindir.mkdir()
    log.mkdir()
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_LOG", str(log))
    monkeypatch.delenv("FAKE_FAIL", raising=False)
    return bindir, log


def _args(log: Path, name: str) -> list[str]:
    return (log / f"{name}.args").read_text().splitlines()


def test_bpg_command_lines(fake_bin, photo, tmp_path, monkeypatch):
    bindir, log = fake_bin
    _fake(bindir, "bpgenc", "-o", banner="BPG Image Encoder version 0.9.8")
    codec = anchors.get("bpg")
    assert not codec.available()  # bpgdec still missing
    with pytest.raises(RuntimeError, match="bpgdec is not on PATH"):
        codec.require()
    _fake(bindir, "bpgdec", "-o")
    assert codec.available()
    work = tmp_path / "w"
    work.mkdir()
    m = codec.measure(photo, 28, work)
    assert _args(log, "bpgenc") == ["-f", "444", "-e", "x265", "-c", "ycbcr", "-b", "8", "-q", "28",
                                    "-o", str(work / "bitstream.bpg"), str(work / "input.png")]
    assert _args(log, "bpgdec") == ["-o", str(work / "decoded.png"), str(work / "bitstream.bpg")]
    assert m.bitstream == work / "bitstream.bpg"
    assert m.bytes == (work / "input.png").stat().st_size  # the fake "bitstream" is the PNG itself
    assert np.array_equal(m.reconstruction, photo)
    assert codec.version() == "BPG Image Encoder version 0.9.8"
    monkeypatch.setenv("FAKE_FAIL", "cannot encode")
    with pytest.raises(anchors.CodecFailed, match=r"exit status 3:\nfake bpgenc: cannot encode"):
        codec.measure(photo, 28, work)


def test_vtm_needs_its_cfg_and_builds_its_command_lines(fake_bin, photo, tmp_path, monkeypatch):
    bindir, log = fake_bin
    _fake(bindir, "EncoderApp", "-b", in_flag="-i", banner="VVCSoftware: VTM Encoder Version 23.0")
    _fake(bindir, "DecoderApp", "-o", in_flag="-b")
    codec = anchors.get("vtm")
    monkeypatch.delenv("LIC_VTM_CFG", raising=False)
    assert not codec.available() and "LIC_VTM_CFG" in codec.unavailable_reason()
    cfg = tmp_path / "encoder_intra_vtm.cfg"
    monkeypatch.setenv("LIC_VTM_CFG", str(cfg))
    assert not codec.available()  # not a file yet
    cfg.write_text("# intra cfg\n")
    assert codec.available()
    work = tmp_path / "w"
    work.mkdir()
    m = codec.measure(photo, 37, work)
    enc = _args(log, "EncoderApp")
    bs = str(work / "bitstream.vvc")
    assert enc == ["-c", str(cfg), "-i", bs + ".src.yuv", "-b", bs, "-o", bs + ".rec.yuv",
                   "-wdt", "192", "-hgt", "128", "-fr", "1", "-f", "1", "-q", "37",
                   "--InputBitDepth=8", "--OutputBitDepth=8", "--InputChromaFormat=444",
                   "--ChromaFormatIDC=444", "--ConformanceWindowMode=1"]
    dec = _args(log, "DecoderApp")
    assert dec == ["-b", bs, "-o", str(work / "decoded.png.yuv"), "-d", "8"]
    # the fake "bitstream" is the planar 4:4:4 YCbCr input: 3 bytes per pixel, decoded back exactly
    assert m.bytes == 3 * 192 * 128
    assert np.array_equal(m.reconstruction, anchors.ycbcr_to_rgb(anchors.rgb_to_ycbcr(photo)))
    assert sorted(p.name for p in work.iterdir()) == ["bitstream.vvc", "decoded.png", "input.png"]
    assert "VTM Encoder Version 23.0" in codec.version()


# --- params.yaml -------------------------------------------------------------------------------------

@pytest.mark.parametrize("profile", ["default", "paper"])
def test_params_sweeps_cover_every_codec(profile):
    a = load_params(profile=profile)["anchors"]
    assert a["codecs"] == list(anchors.CODECS)
    assert set(a["sweeps"]) == set(a["codecs"])
    for name in a["codecs"]:
        codec, sweep = anchors.get(name), a["sweeps"][name]
        assert 6 <= len(sweep) <= 8 and len(set(sweep)) == len(sweep), name
        # listed from the lowest to the highest rate
        assert sweep == sorted(sweep, reverse=not codec.higher_is_better), name
        assert codec.__doc__ and "Version" in codec.__doc__, name
