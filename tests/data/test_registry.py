import hashlib
from pathlib import Path

import pytest

from lic.data import registry

SHARED_KODAK = Path(__file__).resolve().parents[3] / "shared" / "data" / "kodak"


def test_kodak_has_24_pinned_files():
    kodak = registry.get("kodak")
    assert len(kodak.files) == 24
    assert sum(f.size for f in kodak.files) == 15_394_305  # published total
    assert all(len(f.sha256) == 64 and f.url.startswith("http://r0k.us/graphics/kodak/kodak/")
               for f in kodak.files)


def test_kodak_concatenated_sha1_matches_neuralcompression():
    """The per-file sha256 pins agree with the independent SHA-1 of all 24 files (when a copy is here)."""
    if not SHARED_KODAK.exists():
        pytest.skip("no local Kodak copy on this machine")
    h = hashlib.sha1()
    for f in registry.get("kodak").files:
        data = (SHARED_KODAK / f.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f.sha256
        h.update(data)
    assert h.hexdigest() == "076e2a5fd4515b5fda677f15fe63dd112d266bc5"


@pytest.mark.parametrize("name,sha", [
    ("div2k-train", "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335"),
    ("div2k-valid", "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc"),
    ("clic2020-professional-valid", "00be38092ade2ab5163b65f7f6523d46c7bca147007f559adbb02c0afc236b7d"),
])
def test_archives_are_pinned(name, sha):
    (f,) = registry.get(name).files
    assert f.sha256 == sha and f.extract and f.size > 10**8


def test_every_dataset_has_a_dvc_stage():
    import yaml

    from lic import paths

    params = yaml.safe_load(paths.PARAMS.read_text())
    assert sorted(params["data"]["datasets"]) == sorted(registry.DATASETS)
