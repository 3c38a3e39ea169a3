"""lic.compare on small synthetic result and reference files written to tmp folders."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lic import compare, paths  # noqa: E402
from lic.results import write_results  # noqa: E402

RATES = [0.1, 0.2, 0.4, 0.8, 1.6]


def _line(rate, shift=0.0):
    """PSNR on the straight line 20 + 10 log10(R) (+ shift): BD values are known in closed form."""
    return 20 + 10 * math.log10(rate) + shift


def _rows(rates, psnrs, msssims=None):
    rows = []
    for q, (r, p) in enumerate(zip(rates, psnrs), start=1):
        rows.append({"image": "a.png", "quality": q, "bytes": int(r * 64 * 64 / 8), "pixels": 64 * 64,
                     "bpp": r, "psnr-rgb": p, "ms-ssim-rgb": msssims[q - 1] if msssims else None,
                     "ms-ssim-db-rgb": None, "encoding_time": 0.01, "decoding_time": 0.01})
    return rows


def _ref(root, dataset, key, results, kind="learned", name=None):
    path = root / dataset / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name or key, "key": key, "description": "",
                                "meta": {"citation": "c", "source": "o/r@" + "0" * 40 + ":p", "dataset": dataset,
                                         "opt_metric": "mse", "kind": kind, "note": ""},
                                "results": results}))


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    results, refs = tmp_path / "results", tmp_path / "reference"
    monkeypatch.setattr(paths, "RESULTS", results)
    monkeypatch.setattr(paths, "REFERENCE", refs)
    # published: a VTM-like anchor on the line, and a paper curve that our run shares a key with
    _ref(refs, "toy", "vtm", {"bpp": RATES, "psnr-rgb": [_line(r) for r in RATES],
                              "ms-ssim-rgb": [0.90, 0.93, 0.95, 0.97, 0.98]}, kind="anchor", name="VTM")
    _ref(refs, "toy", "minnen2018-mean", {"bpp": RATES, "psnr-rgb": [_line(r, 0.5) for r in RATES]},
         name="Mean-scale (paper)")
    # ours: 0.9x the anchor's rate at the same PSNR (-10 %), a 3-point curve, a run with the paper's key
    write_results("toy", "ours-good", _rows([0.9 * r for r in RATES], [_line(r) for r in RATES]))
    write_results("toy", "ours-short", _rows(RATES[:3], [_line(r) for r in RATES[:3]]))
    write_results("toy", "minnen2018-mean", _rows(RATES, [_line(r, 0.5) for r in RATES]))
    return results, refs


def test_load_curves_merges_ours_and_references(dirs):
    curves = compare.load_curves("toy")
    assert set(curves) == {"ours-good", "ours-short", "minnen2018-mean", "vtm", "minnen2018-mean-published"}
    assert curves["minnen2018-mean"]["origin"] == "ours"
    assert curves["minnen2018-mean-published"]["origin"] == "reference"
    assert curves["vtm"]["kind"] == "anchor" and curves["ours-good"]["kind"] == "ours"
    assert curves["ours-good"]["results"]["bpp"] == pytest.approx([0.9 * r for r in RATES])
    # our MS-SSIM was None (e.g. image too small): NaN, not a crash
    assert all(math.isnan(v) for v in curves["ours-good"]["results"]["ms-ssim-rgb"])
    # the reference's linear MS-SSIM gives a dB list: -10 log10(1 - 0.90) = 10 dB, 1 - 0.98 -> 16.9897 dB
    db = curves["vtm"]["results"]["ms-ssim-db-rgb"]
    assert db[0] == pytest.approx(10.0) and db[-1] == pytest.approx(16.9897, abs=1e-4)


def test_finds_files_where_lic_results_writes_them(dirs, monkeypatch):
    # whatever layout lic.results.result_path uses, load_curves follows it
    from lic import results as results_io

    monkeypatch.setattr(results_io, "result_path", lambda ds, key: paths.RESULTS / "flat" / f"{ds}--{key}.json")
    write_results("toy", "elsewhere", _rows(RATES, [_line(r) for r in RATES]))
    assert set(compare.load_curves("toy", references=False)) == {"elsewhere"}


def test_load_curves_options_and_empty_dataset(dirs):
    assert set(compare.load_curves("toy", references=False)) == {"ours-good", "ours-short", "minnen2018-mean"}
    assert set(compare.load_curves("toy", ours=False)) == {"vtm", "minnen2018-mean"}
    assert compare.load_curves("nothing-here") == {}


def test_bd_rate_table(dirs):
    df = compare.bd_rate_table(compare.load_curves("toy"))
    assert list(df.columns) == ["vtm", "bpg444"]
    assert df.loc["ours-good", "vtm"] == pytest.approx(-10.0, abs=1e-9)
    # +0.5 dB on a 10 dB/decade line: 10**-0.05 - 1 = -10.8749 %
    assert df.loc["minnen2018-mean", "vtm"] == pytest.approx(-10.8749062, abs=1e-6)
    assert df.loc["minnen2018-mean-published", "vtm"] == pytest.approx(-10.8749062, abs=1e-6)
    assert df.loc["vtm", "vtm"] == 0.0
    assert math.isnan(df.loc["ours-short", "vtm"])
    assert "at least 4" in df.attrs["reasons"]["ours-short"]["vtm"]
    assert df["bpg444"].isna().all()
    assert "not available" in df.attrs["reasons"]["ours-good"]["bpg444"]


def test_bd_rate_table_notes_methods_and_metrics(dirs):
    curves = compare.load_curves("toy")
    df = compare.bd_rate_table(curves, anchors=("vtm",), method="cubic", with_notes=True)
    assert df.loc["ours-good", "vtm"] == pytest.approx(-10.0, abs=1e-9)
    assert df.loc["ours-short", "notes"] == "vtm: too few points" and df.loc["ours-good", "notes"] == ""
    # MS-SSIM: only curves with MS-SSIM values are rows; ours are all-NaN -> reason, not a crash
    ms = compare.bd_rate_table(curves, anchors=("vtm",), metric="ms-ssim-db-rgb")
    assert "minnen2018-mean-published" not in ms.index
    assert ms.loc["vtm", "vtm"] == 0.0
    assert math.isnan(ms.loc["ours-good", "vtm"]) and "usable" in ms.attrs["reasons"]["ours-good"]["vtm"]


def test_bd_rate_table_with_real_references(tmp_path, monkeypatch):
    # Our file beside the shipped Kodak references: a curve at 0.9x CompressAI-VTM's rates.
    monkeypatch.setattr(paths, "RESULTS", tmp_path)
    from lic import reference

    vtm = reference.load_reference("kodak", "vtm")["results"]
    write_results("kodak", "ours", _rows([0.9 * r for r in vtm["bpp"]], vtm["psnr-rgb"]))
    df = compare.bd_rate_table(compare.load_curves("kodak"), anchors=("vtm", "vtm18.0-lossyvae"))
    assert df.loc["ours", "vtm"] == pytest.approx(-10.0, abs=1e-9)
    assert df.loc["li2025-hpcm-base", "vtm18.0-lossyvae"] == pytest.approx(-15.45, abs=0.02)  # spec §3.4


def test_rd_figure_styles(dirs):
    curves = compare.load_curves("toy")
    fig = compare.rd_figure(curves)
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    ours = [line for label, line in lines.items() if label.endswith("(ours)")]
    assert len(ours) >= 2 and all(line.get_linestyle() == "-" for line in ours)
    # each of our curves has its own marker, and each is drawn thinner than the one under it
    assert len({line.get_marker() for line in ours}) == len(ours)
    widths = [line.get_linewidth() for line in ours]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[-1]
    assert lines["VTM [vtm]"].get_linestyle() == "--"
    r, g, b, _ = matplotlib.colors.to_rgba(lines["VTM [vtm]"].get_color())
    assert r == g == b  # grey
    assert lines["Mean-scale (paper) [minnen2018-mean-published]"].get_linestyle() == "--"
    assert ax.get_xlabel() == "bpp" and "PSNR" in ax.get_ylabel()
    # MS-SSIM figure on a given axes: only curves with MS-SSIM values that are not all NaN get drawn
    import matplotlib.pyplot as plt

    fig2, ax2 = plt.subplots()
    assert compare.rd_figure(curves, metric="ms-ssim-db-rgb", ax=ax2) is fig2
    assert [line.get_label() for line in ax2.get_lines()] == ["VTM [vtm]"]
    assert "MS-SSIM" in ax2.get_ylabel()
    plt.close("all")


def test_complexity_table():
    records = [{"key": "a", "params": 7_028_003, "kmacs_per_pixel": 91.1, "input": "1x3x256x256",
                "path": "forward", "tool": "t", "kmacs_per_pixel_by_module": {"g_a": 42.2}},
               {"key": "b", "params": 1_000_000, "kmacs_per_pixel": 10.0, "input": "1x3x256x256",
                "path": "forward", "tool": "t"}]
    df = compare.complexity_table(records)
    assert list(df.index) == ["a", "b"]
    assert list(df.columns[:6]) == ["params", "params_m", "kmacs_per_pixel", "input", "path", "tool"]
    assert df.loc["a", "params_m"] == pytest.approx(7.028003)
    assert "kmacs_per_pixel_by_module" not in df.columns
    assert compare.complexity_table([]).empty
    with pytest.raises(ValueError, match="no 'key'"):
        compare.complexity_table([{"params": 1}])


def test_bad_result_file_is_reported(dirs):
    from lic.results import result_path

    bad = result_path("toy", "broken")
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("{oops")
    with pytest.raises(ValueError, match=f"{bad}: not valid JSON"):
        compare.load_curves("toy")


def test_readable_table_says_n_a_and_why_never_nan(dirs):
    from lic import report

    curves = compare.load_curves("toy")
    df = compare.bd_rate_table(curves, anchors=("vtm", "bpg444"), with_notes=True)
    shown = report.readable(df)
    assert shown.loc["ours-short", "vtm"] == "n/a: too few points"
    assert shown.loc["ours-good", "bpg444"] == "n/a: no anchor curve"
    assert shown.loc["vtm", "vtm"] == 0.0
    text = shown.to_string()
    assert "nan" not in text.lower().replace("n/a", "") and "\n" not in "".join(map(str, shown["notes"]))
    # a report table with one long reason in a `note` column: BD cells n/a + the reason's few words
    t = pd.DataFrame({"bd_rate_pct": [math.nan, 1.5], "paper_pct": [math.nan, 0.2],
                      "note": ["the metric ranges do not overlap (anchor 20-22, test 25-27); BD-rate is undefined", ""]})
    r = report.readable(t)
    assert list(r["bd_rate_pct"]) == ["n/a: curves do not overlap", 1.5]
    assert r.loc[0, "paper_pct"] == "n/a" and r.loc[0, "note"] == "curves do not overlap"


def test_comparable_only_hides_bd_between_unrelated_curves(dirs):
    curves = compare.load_curves("toy")
    good = curves["ours-good"]["results"]
    far = {**curves["ours-good"], "key": "far",
           "results": {**good, "bpp": [b * 50 for b in good["bpp"]]}}  # the same PSNRs at 50x the rate
    curves["far"] = far
    plain = compare.bd_rate_table(curves, anchors=("ours-good",))
    assert plain.loc["far", "ours-good"] > 1000  # a number, but noise
    strict = compare.bd_rate_table(curves, anchors=("ours-good",), comparable_only=True, with_notes=True)
    assert math.isnan(strict.loc["far", "ours-good"]) and strict.loc["far", "notes"] == "ours-good: rates not comparable"
    assert strict.loc["vtm", "ours-good"] == pytest.approx(plain.loc["vtm", "ours-good"])
