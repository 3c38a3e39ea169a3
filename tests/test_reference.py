"""data/reference: structure of every transcribed file, spot values from the spec, and the loader."""

from __future__ import annotations

import json
import math
import re

import pytest

from lic import paths, reference

RD_FILES = sorted(p for p in paths.REFERENCE.glob("*/*.json") if p.parent.name != "tables")
TABLE_FILES = sorted((paths.REFERENCE / "tables").glob("*.json"))
SOURCE_RE = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+@[0-9a-f]{40}:\S.*$")
METRIC_RANGES = {"psnr-rgb": (15.0, 60.0), "ms-ssim-rgb": (0.5, 1.0), "ms-ssim-db-rgb": (5.0, 40.0)}


def _id(p):
    return f"{p.parent.name}/{p.stem}"


def test_there_is_reference_data():
    assert len(RD_FILES) >= 40 and len(TABLE_FILES) >= 6


@pytest.mark.parametrize("path", RD_FILES, ids=_id)
def test_rd_file_is_well_formed(path):
    doc = json.loads(path.read_text())
    assert doc["key"] == path.stem
    assert doc["name"] and doc["description"]
    meta = doc["meta"]
    assert meta["citation"].strip()
    assert SOURCE_RE.match(meta["source"]), meta["source"]
    assert meta["dataset"] == path.parent.name
    assert meta["kind"] in ("anchor", "learned")
    assert meta["opt_metric"] in ("mse", "ms-ssim")
    assert (meta["opt_metric"] == "ms-ssim") == path.stem.endswith("-msssim")
    res = doc["results"]
    metrics = [m for m in res if m != "bpp"]
    assert metrics and set(metrics) <= set(METRIC_RANGES), metrics
    n = len(res["bpp"])
    assert n >= 4
    assert all(len(res[m]) == n for m in metrics)
    bpp = res["bpp"]
    assert all(b > 0 for b in bpp) and all(b2 > b1 for b1, b2 in zip(bpp, bpp[1:]))
    for m in metrics:
        lo, hi = METRIC_RANGES[m]
        assert all(isinstance(v, (int, float)) and math.isfinite(v) and lo < v < hi for v in res[m]), m


@pytest.mark.parametrize("path", TABLE_FILES, ids=lambda p: p.stem)
def test_table_is_well_formed(path):
    doc = json.loads(path.read_text())
    assert doc["name"] == path.stem
    assert doc["title"] and doc["citation"].strip() and doc["source"].strip()
    assert doc["rows"] and all("model" in r for r in doc["rows"])
    assert all(set(r) <= set(doc["columns"]) for r in doc["rows"])


def test_readme_lists_every_file_and_says_transcribed():
    readme = (paths.REFERENCE / "README.md").read_text()
    assert "transcribed fact" in readme
    for p in RD_FILES + TABLE_FILES:
        assert f"`{p.relative_to(paths.REFERENCE).as_posix()}`" in readme, p


REQUIRED = {
    "kodak": ["vtm", "bpg444", "vtm18.0-lossyvae", "li2025-hpcm-base", "li2025-hpcm-large",
              "li2025-hpcm-base-msssim", "li2025-hpcm-large-msssim", "liu2023-tcm-large",
              "liu2023-tcm-middle", "liu2023-tcm-small", "lu2022-tinylic", "lu2022-tinylic-msssim",
              "jiang2023-mlicpp", "zou2022-stf", "he2022-elic", "minnen2018-mean"],
    "clic2020-professional-valid": ["li2025-hpcm-base", "li2025-hpcm-large", "li2025-hpcm-base-msssim",
                                    "liu2023-tcm-large", "lu2022-tinylic", "lu2022-tinylic-msssim",
                                    "jiang2023-mlicpp", "zou2022-stf"],
    "tecnick": ["vtm18.0-lossyvae", "li2025-hpcm-base", "li2025-hpcm-large-msssim", "liu2023-tcm-large",
                "lu2022-tinylic", "jiang2023-mlicpp"],
    "clic2022-test": ["vtm18.0-lossyvae"],
}


@pytest.mark.parametrize("dataset", REQUIRED)
def test_required_references_exist(dataset):
    keys = {r["key"] for r in reference.list_references(dataset)}
    assert set(REQUIRED[dataset]) <= keys, set(REQUIRED[dataset]) - keys


# (dataset, key, metric, index, bpp, value): numbers written in the specs
# (data-and-baselines.md §3.1/§3.2, hpcm.md §7.3, tinylic.md).
SPOT = [
    ("kodak", "vtm", "psnr-rgb", 2, 0.2458, 31.20),
    ("kodak", "vtm", "psnr-rgb", 0, 0.0482, 26.14),
    ("kodak", "bpg444", "psnr-rgb", 2, 0.3516, 31.59),
    ("kodak", "he2022-elic", "psnr-rgb", 0, 0.1235, 29.113),
    ("kodak", "li2025-hpcm-base", "psnr-rgb", 0, 0.1211, 29.4022),
    ("kodak", "li2025-hpcm-base", "psnr-rgb", 5, 0.8209, 37.7525),
    ("kodak", "li2025-hpcm-large-msssim", "ms-ssim-db-rgb", 0, 0.0943, 13.2098),
    ("kodak", "liu2023-tcm-large", "psnr-rgb", 0, 0.155, 30.07),
    ("kodak", "liu2023-tcm-large", "psnr-rgb", 5, 0.880, 38.07),
    ("kodak", "lu2022-tinylic", "psnr-rgb", 0, 0.124, 29.13),
    ("kodak", "lu2022-tinylic", "psnr-rgb", 7, 1.616, 41.30),
    ("clic2020-professional-valid", "li2025-hpcm-base", "psnr-rgb", 0, 0.0916, 31.2149),
    ("clic2020-professional-valid", "li2025-hpcm-large-msssim", "ms-ssim-db-rgb", 5, 0.4755, 21.4103),
    ("clic2020-professional-valid", "liu2023-tcm-large", "psnr-rgb", 0, 0.120, 31.84),
    ("tecnick", "li2025-hpcm-large", "psnr-rgb", 5, 0.5265, 38.4423),
    ("tecnick", "li2025-hpcm-base-msssim", "ms-ssim-db-rgb", 0, 0.0803, 14.9),
    ("tecnick", "liu2023-tcm-small", "psnr-rgb", 5, 0.610, 38.66),
]


@pytest.mark.parametrize("dataset, key, metric, i, bpp, value", SPOT)
def test_spot_values(dataset, key, metric, i, bpp, value):
    res = reference.load_reference(dataset, key)["results"]
    assert res["bpp"][i] == pytest.approx(bpp, abs=5e-5)
    assert res[metric][i] == pytest.approx(value, abs=5e-3)


def test_lossyvae_vtm_sorted_and_complete():
    res = reference.load_reference("kodak", "vtm18.0-lossyvae")["results"]
    assert len(res["bpp"]) == 36  # QP 15..50
    assert res["bpp"][0] == pytest.approx(0.0288374, abs=1e-6)  # QP 50 point, lowest rate
    assert res["psnr-rgb"][-1] == pytest.approx(44.5687, abs=1e-3)  # QP 15 point


SPOT_TABLES = [
    ("hpcm-table1", "HPCM-Base", {"kmacs_per_pixel": 918.57, "params_m": 68.50, "bd_rate_pct_kodak": -15.31,
                                  "bd_rate_pct_clic2020-professional-valid": -14.23, "bd_rate_pct_tecnick": -18.16,
                                  "enc_time_ms": 81.8, "dec_time_ms": 81.3}),
    ("hpcm-table1", "HPCM-Large", {"kmacs_per_pixel": 1261.29, "params_m": 89.71, "bd_rate_pct_kodak": -19.19}),
    ("hpcm-table1", "TCM", {"kmacs_per_pixel": 1823.58, "bd_rate_pct_clic2020-professional-valid": -8.32}),
    ("hpcm-table1", "FLIC", {"enc_time_ms": None, "kmacs_per_pixel": 1096.04}),
    ("hpcm-table1", "MambaVC", {"bd_rate_pct_tecnick": None, "bd_rate_pct_kodak": -8.72}),
    ("hpcm-suppl-table-a", "HPCM-Base", {"train_steps_per_s": 3.67}),
    ("hpcm-suppl-table-a", "MLIC++", {"train_steps_per_s": 1.24}),
    ("hpcm-suppl-table-c", "HPCM-Base", {"enc_net_ms": 58, "enc_ac_ms": 25, "dec_total_ms": 81}),
    ("hpcm-suppl-table-c", "TCM", {"enc_total_ms": 199, "kmacs_per_pixel": 1823.58}),
    ("hpcm-suppl-table-d", "4-stage", {"kmacs_per_pixel": 911.44, "bd_rate_pct": 0.18}),
    ("hpcm-suppl-table-d", "w/o hierarchical (1-stage)", {"kmacs_per_pixel": 1107.48, "bd_rate_pct": 1.07}),
    ("hpcm-suppl-table-e", "w/o shared params", {"params_m": 189.99, "bd_rate_pct": -0.15}),
    ("mlic-bd-table", "MLIC++", {"bd_rate_pct_kodak": -13.39, "bd_rate_pct_tecnick": -17.59,
                                 "bd_rate_pct_clic2020-professional-valid": -13.08}),
    ("mlic-bd-table", "ELIC", {"bd_rate_pct_kodak": -5.95, "bd_rate_pct_tecnick": None}),
    # tcm-cgoo.md §2.3 (CGOO supplement Table 3, Kodak vs BPG)
    ("cgoo-suppl-table-3", "Ours", {"bd_rate_pct_kodak": -35.21}),
    ("cgoo-suppl-table-3", "Liu (CVPR-23)", {"bd_rate_pct_kodak": -33.23}),
    ("cgoo-suppl-table-3", "Zou (CVPR-22)", {"bd_rate_pct_kodak": -36.84}),
    ("cgoo-suppl-table-3", "Cheng (CVPR-20)", {"bd_rate_pct_kodak": -25.76}),
]

# (table, row filter, cells): tables whose rows are not unique by model alone
# (tinylic.md §8.3 NIC table and §9/§10; tcm-cgoo.md §2.3 MSC/DDT layers).
SPOT_TABLE_ROWS = [
    ("tinylic-suppl-table-3", {"model": "TinyLIC", "class": "Ave."}, {"bd_rate_pct_high": -22.8, "bd_rate_pct_low": -27.0}),
    ("tinylic-suppl-table-3", {"model": "VVC Intra", "class": "C"}, {"bd_rate_pct_high": -22.4, "bd_rate_pct_low": -28.8}),
    ("tinylic-suppl-table-4", {"dataset": "Kodak"}, {"bd_rate_pct_high": 0.62, "bd_rate_pct_low": 0.87}),
    ("tinylic-suppl-table-5", {"dataset": "Kodak"}, {"bd_rate_pct_high": -1.73, "bd_rate_pct_low": -2.19}),
    ("cgoo-suppl-table-1", {"model": "MSC Decoder", "layer": 7}, {"in_ch": 256, "out_ch": 320, "flag": "nb"}),
    ("cgoo-suppl-table-2", {"model": "DDT Encoder", "layer": 7}, {"in_ch": 99, "out_ch": 9}),
    ("tinylic-suppl-table-1", {"model": "Context Prediction"}, {"layers": ["Masked: k3c384s1"] * 3}),
]


@pytest.mark.parametrize("name, where, cells", SPOT_TABLE_ROWS)
def test_table_row_spot_values(name, where, cells):
    rows = [r for r in reference.load_table(name)["rows"] if all(r.get(k) == v for k, v in where.items())]
    assert len(rows) == 1
    for col, value in cells.items():
        assert rows[0][col] == value, col


@pytest.mark.parametrize("name, model, cells", SPOT_TABLES)
def test_table_spot_values(name, model, cells):
    rows = [r for r in reference.load_table(name)["rows"] if r["model"] == model]
    assert len(rows) == 1
    for col, value in cells.items():
        assert rows[0][col] == value, col


def test_table_anchor_recorded():
    assert "VTM-22" in reference.load_table("hpcm-table1")["anchor"]
    assert "VTM-17" in reference.load_table("mlic-bd-table")["anchor"]
    assert "BPG" in reference.load_table("cgoo-suppl-table-3")["anchor"]
    assert reference.load_table("tinylic-suppl-table-3")["anchor"] == "BPG"


def test_list_references_rows():
    rows = reference.list_references("kodak")
    assert {r["dataset"] for r in rows} == {"kodak"}
    vtm = next(r for r in rows if r["key"] == "vtm")
    assert vtm["kind"] == "anchor" and vtm["points"] == 8
    assert vtm["metrics"] == ["psnr-rgb", "ms-ssim-rgb"]
    assert vtm["source"].startswith("InterDigitalInc/CompressAI@")
    everything = reference.list_references()
    assert {r["dataset"] for r in everything} == set(reference.datasets())
    assert "tables" not in reference.datasets()
    assert len(everything) == len(RD_FILES)


def test_missing_things_say_what_exists():
    with pytest.raises(FileNotFoundError, match="available: .*vtm"):
        reference.load_reference("kodak", "no-such-codec")
    with pytest.raises(FileNotFoundError, match="hpcm-table1"):
        reference.load_table("no-such-table")
    with pytest.raises(FileNotFoundError, match="kodak"):
        reference.list_references("no-such-dataset")


def test_reads_lic_paths_reference(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "x.json").write_text(json.dumps(
        {"name": "X", "meta": {"kind": "learned"}, "results": {"bpp": [0.1, 0.2], "psnr-rgb": [30, 31]}}))
    (tmp_path / "toy" / "bad.json").write_text("{not json")
    monkeypatch.setattr(paths, "REFERENCE", tmp_path)
    assert reference.datasets() == ["toy"]
    assert reference.load_reference("toy", "x")["name"] == "X"
    with pytest.raises(ValueError, match="not valid JSON"):
        reference.list_references("toy")
    assert reference.list_tables() == []
