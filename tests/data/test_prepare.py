import hashlib
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from lic.data import prepare as prep
from lic.data import registry
from lic.data.download import ChecksumError


def _png(w, h, seed):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def clic_like(http_server, monkeypatch):
    """A CLIC-like zip (valid/*.png plus __MACOSX AppleDouble files) served on 127.0.0.1."""
    archive = _zip({"valid/b.png": _png(40, 30, 1), "valid/a.png": _png(33, 17, 2),
                    "valid/notes.txt": b"x", "__MACOSX/valid/._a.png": b"apple", "valid/._b.png": b"apple"})
    http_server.files["valid.zip"] = archive
    ds = registry.Dataset(name="toy-clic", description="toy", members="valid/*.png", expected_count=2,
                          downscale=(0.5,),
                          files=(registry.RemoteFile(http_server.url("valid.zip"), "valid.zip",
                                                     hashlib.sha256(archive).hexdigest(), len(archive),
                                                     extract=True),))
    monkeypatch.setitem(registry.DATASETS, ds.name, ds)
    return ds


def _params(train="sample-train", eval_=("sample",)):
    return {"profile": "default", "data": {"datasets": [], "train": train, "eval": list(eval_),
                                           "download": {"retries": 0, "timeout_s": 5}}}


def test_zip_dataset_is_filtered_sorted_and_downscaled(project_root, clic_like):
    manifest = prep.stage("toy-clic", _params(eval_=["toy-clic"]), progress=False)
    files = [e["file"] for e in manifest["images"]]
    assert files == sorted(files)
    names = [f.rsplit("/", 1)[1] for f in files]
    assert names == ["a.png", "a_x0.5.png", "b.png", "b_x0.5.png"]  # no __MACOSX, no ._*, no txt
    by_name = {e["file"].rsplit("/", 1)[1]: e for e in manifest["images"]}
    assert (by_name["b.png"]["width"], by_name["b.png"]["height"]) == (40, 30)
    assert (by_name["b_x0.5.png"]["width"], by_name["b_x0.5.png"]["height"]) == (20, 15)
    on_disk = json.loads(prep.manifest_path("toy-clic").read_text())
    assert on_disk["count"] == 4 and on_disk["used"] is True
    assert [p.name for p in prep.load_manifest("toy-clic", check=True)] == names
    info = json.loads(prep.run_info_path("toy-clic").read_text())
    assert info["dataset"] == "toy-clic" and info["versions"]["torch"] and "device" in info


def test_corrupting_one_byte_of_a_download_fails_the_stage_naming_it(project_root, clic_like, http_server):
    prep.stage("toy-clic", _params(eval_=["toy-clic"]), progress=False)
    raw = prep.raw_dir("toy-clic") / "valid.zip"
    data = bytearray(raw.read_bytes())
    data[len(data) // 2] ^= 0x01
    raw.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as e:
        prep.stage("toy-clic", _params(eval_=["toy-clic"]), progress=False)
    assert str(raw) in str(e.value)
    assert len(http_server.requests) == 1  # never silently re-downloaded


def test_wrong_image_count_is_an_error(project_root, clic_like, monkeypatch):
    import dataclasses

    monkeypatch.setitem(registry.DATASETS, "toy-clic", dataclasses.replace(clic_like, expected_count=41))
    with pytest.raises(RuntimeError, match="found 2 images, expected 41"):
        prep.stage("toy-clic", _params(eval_=["toy-clic"]), progress=False)


def test_unpublished_checksum_is_pinned_on_first_download(project_root, http_server, monkeypatch):
    http_server.files["k1.png"] = _png(8, 8, 3)
    ds = registry.Dataset(name="toy-tofu", description="toy",
                          files=(registry.RemoteFile(http_server.url("k1.png"), "k1.png", None),))
    monkeypatch.setitem(registry.DATASETS, ds.name, ds)
    prep.prepare("toy-tofu", progress=False)
    pin = prep.raw_dir("toy-tofu") / "k1.png.sha256"
    assert pin.read_text().split()[0] == hashlib.sha256(http_server.files["k1.png"]).hexdigest()
    (prep.raw_dir("toy-tofu") / "k1.png").write_bytes(_png(8, 8, 4))  # the file changes later
    with pytest.raises(ChecksumError, match="k1.png"):
        prep.prepare("toy-tofu", progress=False)


def test_unpublished_checksum_is_pinned_only_after_a_confirmed_length(project_root, http_server, monkeypatch):
    """Trust on first use needs a whole first download: a transfer cut off without Content-Length, or a
    truncated file already in data/raw, is never pinned; the pin is the sha256 of the server's whole file."""
    from lic.data.download import DownloadError

    body = _png(64, 64, 5)
    http_server.files["k1.png"] = body
    ds = registry.Dataset(name="toy-tofu", description="toy",
                          files=(registry.RemoteFile(http_server.url("k1.png"), "k1.png", None),))
    monkeypatch.setitem(registry.DATASETS, ds.name, ds)
    pin = prep.raw_dir("toy-tofu") / "k1.png.sha256"
    http_server.omit_length.add("k1.png")
    http_server.drop_after["k1.png"] = 100
    with pytest.raises(DownloadError, match="did not state the file's length"):
        prep.fetch(ds, progress=False, retries=0)
    assert not pin.exists() and not (prep.raw_dir("toy-tofu") / "k1.png").exists()
    http_server.omit_length.clear()
    (prep.raw_dir("toy-tofu") / "k1.png.part").rename(prep.raw_dir("toy-tofu") / "k1.png")  # truncated, in place
    prep.fetch(ds, progress=False, retries=0)
    assert pin.read_text().split()[0] == hashlib.sha256(body).hexdigest()
    assert (prep.raw_dir("toy-tofu") / "k1.png").read_bytes() == body


def test_sample_dataset_needs_no_network(project_root):
    manifest = prep.stage("sample", _params(), progress=False)
    assert manifest["count"] == registry.get("sample").expected_count == 4
    sizes = {e["file"].rsplit("/", 1)[1]: (e["width"], e["height"]) for e in manifest["images"]}
    # half size (registry: package_scale), rounded down: odd sizes are kept, padding is the model's job
    assert sizes["chelsea.png"] == (225, 150) and sizes["rocket.png"] == (320, 213)
    for path in prep.load_manifest("sample"):
        with Image.open(path) as im:
            assert im.mode == "RGB"


def test_sample_train_is_disjoint_from_sample():
    assert not set(registry.get("sample").package_images) & set(registry.get("sample-train").package_images)


def test_unused_dataset_downloads_nothing_and_cannot_be_loaded(project_root, clic_like, http_server):
    manifest = prep.stage("toy-clic", _params(), progress=False)
    assert manifest["used"] is False and manifest["count"] == 0
    assert http_server.requests == []
    with pytest.raises(FileNotFoundError, match="not used by profile 'default'"):
        prep.load_manifest("toy-clic")


def test_missing_manifest_says_which_stage_to_run(project_root):
    with pytest.raises(FileNotFoundError, match=r"dvc repro data@kodak"):
        prep.load_manifest("kodak")


def test_manifest_check_detects_a_modified_image(project_root):
    prep.stage("sample", _params(), progress=False)
    path = prep.load_manifest("sample")[0]
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=path.name):
        prep.load_manifest("sample", check=True)


def test_offline_kodak_names_url_and_where_to_put_it(project_root, closed_port, monkeypatch):
    import dataclasses

    kodak = registry.get("kodak")
    f0 = dataclasses.replace(kodak.files[0], url=f"http://127.0.0.1:{closed_port}/kodim01.png")
    monkeypatch.setitem(registry.DATASETS, "kodak", dataclasses.replace(kodak, files=(f0,)))
    from lic.data.download import OfflineError

    with pytest.raises(OfflineError) as e:
        prep.stage("kodak", _params(eval_=["kodak"]), progress=False)
    assert f0.url in str(e.value) and str(prep.raw_dir("kodak") / "kodim01.png") in str(e.value)


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(KeyError, match="known: .*kodak"):
        registry.get("kodac")


def test_mirror_serves_a_miniature_verified_by_its_own_checksums(project_root, http_server, monkeypatch):
    from miniature import files

    from lic.data.download import DownloadError

    http_server.files.update(files(["clic2020-professional-valid"]))
    monkeypatch.setenv(prep.MIRROR_ENV, http_server.url(""))
    manifest = prep.stage("clic2020-professional-valid", _params(eval_=["clic2020-professional-valid"]),
                          progress=False)
    assert manifest["count"] == 2 and manifest["mirror"] == http_server.url("")   # a subset of the 41
    assert ("clic2020-professional-valid/professional_valid_2020.zip", None) in http_server.requests
    # the mirror's checksum list is what the file is verified against
    sums = "clic2020-professional-valid/SHA256SUMS"
    http_server.files[sums] = b"0" * 64 + b"  professional_valid_2020.zip\n"
    with pytest.raises(ChecksumError):
        prep.fetch(registry.get("clic2020-professional-valid"), progress=False, retries=0)
    http_server.files[sums] = b""
    with pytest.raises(DownloadError, match="lists no checksum for professional_valid_2020.zip"):
        prep.fetch(registry.get("clic2020-professional-valid"), progress=False, retries=0)
