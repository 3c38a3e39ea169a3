"""The data stage: fetch (or verify) a dataset's raw files, lay out its images, write its manifest.

    data/raw/<name>/          downloads, verified by sha256 (a DVC output, persisted, not cached)
    data/datasets/<name>/     the images, ready to use (unpacked, filtered, converted, rescaled)
    data/manifests/<name>.json sorted list of images with sha256, bytes, width, height

Everything downstream (training, evaluation) reads the manifest, never whatever lies on disk.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from PIL import Image

from lic import paths
from lic.data import registry
from lic.data.download import ChecksumError, download, sha256sum, verify

MANIFEST_VERSION = 1
#: a mirror of the datasets' files (a lab's file server, a test's 127.0.0.1 server): ``<url>/<dataset>/<file>``,
#: with the mirror's own checksums in ``<url>/<dataset>/SHA256SUMS`` (``sha256sum`` format). Its files may be
#: repackaged or a subset (a miniature): they are verified against the mirror's list, not the published sums,
#: and the set's published image count is not required. The manifest records the mirror.
MIRROR_ENV = "LIC_DATA_MIRROR"


def mirror() -> str | None:
    return os.environ.get(MIRROR_ENV) or None


def _mirror_sums(base: str, ds: registry.Dataset, retries: int, timeout_s: float) -> dict[str, str]:
    from lic.data.download import DownloadError

    dest = raw_dir(ds.name) / "SHA256SUMS.mirror"
    if dest.exists():
        dest.unlink()  # the mirror's current list, every run
    download(f"{base.rstrip('/')}/{ds.name}/SHA256SUMS", dest, None, progress=False, retries=retries,
             timeout_s=timeout_s)
    sums = {}
    for line in dest.read_text().splitlines():
        if line.strip():
            digest, _, name = line.strip().partition(" ")
            sums[name.strip().lstrip("*")] = digest.lower()
    missing = [f.name for f in ds.files if f.name not in sums]
    if missing:
        raise DownloadError(f"mirror {base}: {ds.name}/SHA256SUMS lists no checksum for {', '.join(missing)}")
    return sums


def raw_dir(name: str) -> Path:
    return paths.DATA / "raw" / name


def dataset_dir(name: str) -> Path:
    return paths.DATA / "datasets" / name


def manifest_path(name: str) -> Path:
    return paths.DATA / "manifests" / f"{name}.json"


def recorded_sha256_path(name: str, file: registry.RemoteFile) -> Path:
    return raw_dir(name) / f"{file.name}.sha256"


def fetch(ds: registry.Dataset, *, progress: bool = True, retries: int = 3,
          timeout_s: float = 30.0) -> list[Path]:
    """Download (or verify what is there) every raw file of ``ds``; return their paths.

    Files with no published checksum are pinned on first download: the sha256 is written next to
    the file and every later run verifies against it (trust on first use, stated in the log). The first
    download is a whole one: :func:`~lic.data.download.download` promotes such a file only once the server
    has stated its length and every byte of it arrived (a file found in place without a pin is completed
    or confirmed by the server first).
    """
    out = []
    base = mirror()
    sums = _mirror_sums(base, ds, retries, timeout_s) if base else {}
    for f in ds.files:
        dest = raw_dir(ds.name) / f.name
        if base:  # the mirror's file, verified against the mirror's list
            download(f"{base.rstrip('/')}/{ds.name}/{f.name}", dest, sums[f.name], None, progress=progress,
                     retries=retries, timeout_s=timeout_s)
            out.append(dest)
            continue
        expected = f.sha256
        pin = recorded_sha256_path(ds.name, f)
        if expected is None and pin.exists():
            expected = pin.read_text().split()[0]
        download(f.url, dest, expected, f.size, progress=progress, retries=retries, timeout_s=timeout_s)
        if f.sha256 is None and not pin.exists():
            digest = sha256sum(dest)
            tmp = pin.with_name(pin.name + ".tmp")
            tmp.write_text(f"{digest}  {f.name}\n")
            os.replace(tmp, pin)
            print(f"[data] {ds.name}: no published checksum for {f.name}; recorded sha256 {digest} "
                  f"in {pin.relative_to(paths.ROOT)}")
        out.append(dest)
    return out


def _member_selected(member: str, ds: registry.Dataset) -> bool:
    parts = PurePosixPath(member).parts
    if any(p in ds.exclude for p in parts) or parts[-1].startswith("._"):
        return False
    return fnmatch.fnmatch(member, ds.members) or PurePosixPath(member).match(ds.members)


def _lay_out_remote(ds: registry.Dataset, raws: list[Path], staging: Path) -> None:
    for f, raw in zip(ds.files, raws):
        if f.extract:
            try:
                zf = zipfile.ZipFile(raw)
            except zipfile.BadZipFile as e:
                raise ChecksumError(f"{raw}: not a valid zip archive ({e}); delete it and run again") from e
            with zf:
                for info in zf.infolist():
                    if info.is_dir() or not _member_selected(info.filename, ds):
                        continue
                    target = staging / PurePosixPath(info.filename).name
                    with zf.open(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        elif _member_selected(f.name, ds):
            shutil.copy2(raw, staging / f.name)


def _lay_out_package(ds: registry.Dataset, staging: Path) -> None:
    import numpy as np
    import skimage
    from skimage import data as skdata

    for name in ds.package_images:
        try:
            array = getattr(skdata, name)()
        except Exception as e:  # pooch-fetched images need the network
            raise RuntimeError(f"scikit-image {skimage.__version__} cannot load its image {name!r} "
                               f"offline ({e}); pick another in lic/data/registry.py") from e
        array = np.asarray(array)
        if array.dtype != np.uint8:
            array = (np.clip(array.astype(np.float64), 0, 1) * 255 + 0.5).astype(np.uint8) \
                if array.dtype.kind == "f" else array.astype(np.uint8)
        img = Image.fromarray(array).convert("RGB")
        if ds.package_scale != 1.0:
            # rounded down: 451 x 300 -> 225 x 150, an odd width stays odd
            size = (max(1, int(img.width * ds.package_scale)), max(1, int(img.height * ds.package_scale)))
            img = img.resize(size, Image.Resampling.BICUBIC)
        img.save(staging / f"{name}.png", optimize=False)


def _add_downscaled(ds: registry.Dataset, staging: Path) -> None:
    for factor in ds.downscale:
        for png in sorted(staging.glob("*.png")):
            if "_x" in png.stem:
                continue
            with Image.open(png) as im:
                size = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
                im.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(
                    staging / f"{png.stem}_x{factor:g}.png")


def write_manifest(name: str, root: Path | None = None) -> dict:
    """Describe every image under ``data/datasets/<name>`` in a sorted manifest and return it."""
    root = root or dataset_dir(name)
    images = []
    for png in sorted(root.glob("*.png")):
        with Image.open(png) as im:
            w, h = im.size
        images.append({"file": png.relative_to(paths.ROOT).as_posix(), "sha256": sha256sum(png),
                       "bytes": png.stat().st_size, "width": w, "height": h})
    ds = registry.get(name)
    manifest = {"version": MANIFEST_VERSION, "dataset": name, "used": True, "description": ds.description,
                "license": ds.license, "citation": ds.citation, "count": len(images), "images": images}
    if mirror() and ds.needs_network:
        manifest["mirror"] = mirror()
    out = manifest_path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    tmp.replace(out)
    return manifest


def prepare(name: str, *, progress: bool = True, retries: int = 3, timeout_s: float = 30.0) -> dict:
    """Run the whole data stage for ``name`` and return its manifest."""
    ds = registry.get(name)
    raw_dir(name).mkdir(parents=True, exist_ok=True)
    raws = fetch(ds, progress=progress, retries=retries, timeout_s=timeout_s) if ds.needs_network else []
    if not ds.needs_network:
        import skimage
        (raw_dir(name) / "SOURCE.txt").write_text(
            f"images from skimage.data {', '.join(ds.package_images)} (scikit-image {skimage.__version__})\n")

    final = dataset_dir(name)
    final.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=final.parent, prefix=f".{name}-") as tmp:
        staging = Path(tmp)
        if ds.needs_network:
            _lay_out_remote(ds, raws, staging)
        else:
            _lay_out_package(ds, staging)
        n_orig = len(list(staging.glob("*.png")))
        if n_orig == 0 or (ds.expected_count is not None and n_orig != ds.expected_count and not mirror()):
            raise RuntimeError(f"{name}: found {n_orig} images, expected {ds.expected_count or 'some'}; "
                               f"the archive layout is not the published one")
        _add_downscaled(ds, staging)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        Path(tmp).mkdir()  # let TemporaryDirectory clean up an empty folder
    return write_manifest(name)


def run_info_path(name: str) -> Path:
    return paths.DATA / "manifests" / f"{name}.run.json"


def stage(name: str, params: dict, *, progress: bool = True) -> dict:
    """The DVC stage ``data@<name>``: prepare ``name`` if the active profile uses it.

    A dataset the profile does not use gets an empty manifest marked ``"used": false`` and nothing
    is downloaded, so the default profile runs offline while the stage list stays the same for both
    profiles (``dvc exp run -S profile=paper`` re-runs exactly these stages for real).
    """
    from lic.runinfo import write_run_info

    used = name == params["data"]["train"] or name in params["data"]["eval"]
    registry.get(name)
    if used:
        dl = params["data"]["download"]
        manifest = prepare(name, progress=progress, retries=dl["retries"], timeout_s=dl["timeout_s"])
    else:
        final = dataset_dir(name)
        if final.exists():
            shutil.rmtree(final)
        final.mkdir(parents=True)
        note = f"Dataset {name!r} is not used by profile {params['profile']!r}; nothing was downloaded.\n"
        (final / "NOT_USED.txt").write_text(note)
        raw_dir(name).mkdir(parents=True, exist_ok=True)
        if not any(raw_dir(name).iterdir()):
            (raw_dir(name) / "README.txt").write_text(
                f"Downloads of {name!r} go here (lic data prepare {name}); files placed here by hand "
                f"are verified against their sha256 and not downloaded again.\n")
        manifest = write_manifest(name)
        manifest["used"] = False
        manifest["note"] = f"not used by profile {params['profile']!r}; nothing was downloaded"
        manifest_path(name).write_text(json.dumps(manifest, indent=1) + "\n")
    write_run_info(run_info_path(name), params={"profile": params["profile"], "data": params["data"]},
                   dataset=name, used=used, count=manifest["count"])
    return manifest


def load_manifest(name: str, *, check: bool = False) -> list[Path]:
    """Absolute paths of the images of ``name``, in manifest order.

    Raises FileNotFoundError with the command to run when the data stage has not run. With
    ``check=True`` every file is verified against its recorded sha256.
    """
    path = manifest_path(name)
    if not path.exists():
        raise FileNotFoundError(f"no manifest for dataset {name!r} at {path}; "
                                f"run `dvc repro data@{name}` (or `lic data prepare {name}`) first")
    manifest = json.loads(path.read_text())
    if manifest.get("used") is False:
        raise FileNotFoundError(f"dataset {name!r} is {manifest['note']}; set `profile: paper` in "
                                f"params.yaml (or use it in data.<profile>.eval) and run `dvc repro`")
    files = []
    for entry in manifest["images"]:
        f = paths.ROOT / entry["file"]
        if not f.exists():
            raise FileNotFoundError(f"{f} is listed in {path} but missing; run `dvc repro data@{name}`")
        if check:
            verify(f, entry["sha256"], entry["bytes"])
        files.append(f)
    return files
