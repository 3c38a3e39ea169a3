"""Every dataset the project knows, with its published URLs and checksums.

Sources of every URL, size and sha256: ``docs/datasets.md`` (Kodak per-file sha256 verified against
the SHA-1 of NeuralCompression; DIV2K and CLIC from tensorflow/datasets' ``url_checksums``).

A dataset is either a list of remote files (``Remote``), optionally archives to unpack and filter,
or images that ship inside an installed package (``sample``/``sample-train``: scikit-image's
photographs), which need no network at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KODAK_SHA256 = {
    "kodim01.png": "a56e27cbf5f843c048b6af1d6e090760e9c92fadba88b7dee0205918a37523bd",
    "kodim02.png": "4f4b74a79237e311d72cad958237b5f7088d8bce1c82305ebefe1a70e3022dfd",
    "kodim03.png": "e25ca1ff2f0c0cb5fdfd5f9b0a0bb21ac4c3de3c84a67f35b09a85d3306249db",
    "kodim04.png": "e3b946107c5d3441c022f678d0c3caf1e224d81b1604ba840a4f88e562de61aa",
    "kodim05.png": "10349e963c5c813d327852f82c1795fa4148d69fedffc4c589bee458e3ac3d53",
    "kodim06.png": "363510303b715d4cbc384e1ce227e466b613a09e1b71ae985882bf8e7fbd9b18",
    "kodim07.png": "b77d3f006f42414bb242222e0482e750c0fb9e5ee8d4bed2f6f11c5605fe54a4",
    "kodim08.png": "ba23983c76b4832ee0e8af0592664756841a16779acd69f792e268fb6d13d6e7",
    "kodim09.png": "6a4361c2fc194feb4edaa9f9a4a0620fb9943e460ac7fdf037fb0f6dd6607a7d",
    "kodim10.png": "9dfb70f5867c29ff9ed6313683f19b3d867849e40fbc0c4c54a4a89df341cf23",
    "kodim11.png": "7936814b58b5387fce2e4e2488b4ec830dadd95fa9520f358ddb30990b50f2b6",
    "kodim12.png": "d78c37c2f04f23761ed2367dd77e2db584ddd4c3950833fecf89f199a8126980",
    "kodim13.png": "bc34a3ce58dea09dce1704c997171602de90cb34d0c8503a988b77f473d39b08",
    "kodim14.png": "55a94550ff18f3246c4074fd32b77b0c74447c26b6ad274d564d999c0450ba6e",
    "kodim15.png": "7538cbb80cb9103606c48b806eae57d56c885c7f90b9b3be70a41160f9cbb683",
    "kodim16.png": "a89c7268ccd4718ba424a99fc4643c572cf692ca6eae887185ceb4e9f11d2e54",
    "kodim17.png": "37afcc89fbdcb76d9518e04b2fc011027e2f4cd14b3b2f83cefd721641a47c5b",
    "kodim18.png": "1a9258c365988961d87a0598725b609139c303ad48a5aad6c503c3b1a87849aa",
    "kodim19.png": "b7450b264b1b0a411390d8931b112c27905a992520fc90569dc4b920aa32bbdc",
    "kodim20.png": "3b46c71e3b92a563820ba32936be8330c586c41f938efd94be938386aae4328a",
    "kodim21.png": "ac958597c82073f6bb65129c68f72b651db5b9efd82e11547d07350214bc268b",
    "kodim22.png": "1cee58eb1f2d9c7ebb254d208a03c783ce6cf2c4d8c2cf45e235dd23b4ce1b29",
    "kodim23.png": "e3111a2fd4da24af15d6459ef9eacfe54106b38e27b4a21821b75c3f5d2d5baf",
    "kodim24.png": "1071c68372cc5a01435c2c225a5cf7d4bb803846ec08bb6b3d6721b156d7cb96",
}
KODAK_SIZE_BYTES = {
    "kodim01.png": 736501, "kodim02.png": 617995, "kodim03.png": 502888, "kodim04.png": 637432,
    "kodim05.png": 785610, "kodim06.png": 618959, "kodim07.png": 566322, "kodim08.png": 788470,
    "kodim09.png": 582899, "kodim10.png": 593463, "kodim11.png": 621023, "kodim12.png": 531024,
    "kodim13.png": 822712, "kodim14.png": 692201, "kodim15.png": 612582, "kodim16.png": 534247,
    "kodim17.png": 602078, "kodim18.png": 780947, "kodim19.png": 671476, "kodim20.png": 492462,
    "kodim21.png": 637051, "kodim22.png": 701970, "kodim23.png": 557596, "kodim24.png": 706397,
}
KODAK_URL = "http://r0k.us/graphics/kodak/kodak/{name}"


@dataclass(frozen=True)
class RemoteFile:
    """One file to download. ``sha256=None``: none is published; it is recorded on first download."""

    url: str
    name: str
    sha256: str | None
    size: int | None = None
    extract: bool = False  # a zip archive to unpack


@dataclass(frozen=True)
class Dataset:
    """A named image set.

    Args:
        name: registry key, used as the DVC stage name suffix and in result file names.
        files: remote files (empty for package datasets).
        members: glob, relative to the unpacked tree, selecting the images that make the set.
        exclude: path components whose files are dropped (``__MACOSX`` AppleDouble files).
        downscale: extra bicubic copies, e.g. ``(0.5,)`` adds every image at half size.
        package_images: for package datasets, the scikit-image ``skimage.data`` names.
        package_scale: package images are stored at this fraction of their size (bicubic).
        license: the terms a user must respect.
    """

    name: str
    description: str
    files: tuple[RemoteFile, ...] = ()
    members: str = "*.png"
    exclude: tuple[str, ...] = ("__MACOSX",)
    downscale: tuple[float, ...] = ()
    package_images: tuple[str, ...] = ()
    package_scale: float = 1.0
    expected_count: int | None = None
    license: str = ""
    citation: str = ""

    @property
    def needs_network(self) -> bool:
        return bool(self.files)


_ETH = "https://data.vision.ee.ethz.ch/cvl"

DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            name="kodak",
            description="Kodak PhotoCD PCD0992, 24 images 768x512 / 512x768",
            files=tuple(RemoteFile(KODAK_URL.format(name=n), n, s, KODAK_SIZE_BYTES[n])
                        for n, s in KODAK_SHA256.items()),
            members="kodim*.png",
            expected_count=24,
            license="Eastman Kodak, released for unrestricted use",
            citation="Kodak Lossless True Color Image Suite, http://r0k.us/graphics/kodak/",
        ),
        Dataset(
            name="clic2020-professional-valid",
            description="CLIC 2020 professional validation set, 41 PNGs",
            files=(RemoteFile(f"{_ETH}/clic/professional_valid_2020.zip", "professional_valid_2020.zip",
                              "00be38092ade2ab5163b65f7f6523d46c7bca147007f559adbb02c0afc236b7d",
                              134834429, extract=True),),
            members="valid/*.png",
            expected_count=41,
            license="CLIC challenge terms (Unsplash licence)",
            citation="Challenge on Learned Image Compression 2020, http://compression.cc",
        ),
        Dataset(
            name="div2k-train",
            description="DIV2K train HR, 800 PNGs, plus the bicubic x0.5 copies the CGOO paper trains on",
            files=(RemoteFile(f"{_ETH}/DIV2K/DIV2K_train_HR.zip", "DIV2K_train_HR.zip",
                              "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
                              3530603713, extract=True),),
            members="DIV2K_train_HR/*.png",
            downscale=(0.5,),
            expected_count=800,
            license="DIV2K: academic research use",
            citation="Agustsson & Timofte, NTIRE 2017 challenge on single image super-resolution, CVPRW 2017",
        ),
        Dataset(
            name="div2k-valid",
            description="DIV2K valid HR, 100 PNGs",
            files=(RemoteFile(f"{_ETH}/DIV2K/DIV2K_valid_HR.zip", "DIV2K_valid_HR.zip",
                              "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
                              448993893, extract=True),),
            members="DIV2K_valid_HR/*.png",
            expected_count=100,
            license="DIV2K: academic research use",
            citation="Agustsson & Timofte, CVPRW 2017",
        ),
        Dataset(
            name="tecnick",
            description="Tecnick TESTIMAGES SAMPLING, RGB_OR_1200x1200 (100 images 1200x1200)",
            files=(RemoteFile("https://sourceforge.net/projects/testimages/files/OLD/OLD_SAMPLING/testimages.zip",
                              "testimages.zip", None, extract=True),),
            members="**/RGB_OR_1200x1200/RGB_OR_1200x1200_*.png",
            expected_count=100,
            license="CC BY-NC-SA 3.0 (TESTIMAGES v1.0.000)",
            citation="Asuni & Giachetti, TESTIMAGES: a large-scale archive for testing visual devices "
                     "and basic image processing algorithms, STAG 2014",
        ),
        Dataset(
            name="sample",
            description="Evaluation photographs shipped inside scikit-image (no network), at half size",
            package_images=("astronaut", "coffee", "chelsea", "rocket"),
            # half size (256x256, 300x200, 225x150, 320x213): the default profile's evaluation encodes every
            # image 4 qualities x ~25 models with real bitstreams on 2 CPU cores; a quarter of the pixels
            # is a quarter of its time; odd sizes stay odd (padding is the model's job)
            package_scale=0.5,
            expected_count=4,
            license="public domain / CC0 (see skimage.data docstrings)",
            citation="van der Walt et al., scikit-image, PeerJ 2014",
        ),
        Dataset(
            name="sample-train",
            description="Training images shipped inside scikit-image, disjoint from `sample` "
                        "(grey ones replicated to RGB)",
            package_images=("immunohistochemistry", "hubble_deep_field", "retina", "colorwheel", "logo",
                            "camera", "grass", "gravel", "brick", "moon", "coins", "clock"),
            license="public domain / CC0 (see skimage.data docstrings)",
            citation="van der Walt et al., scikit-image, PeerJ 2014",
        ),
    ]
}


def get(name: str) -> Dataset:
    """The dataset called ``name``; an unknown name lists the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None
