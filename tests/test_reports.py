"""The papers' table builders (lic.reports) on hand-made curves: paper numbers beside ours, BD-rate cells."""

import math

import numpy as np
import pytest

from lic.reports import cgoo, common, hpcm, tinylic


def _curve(scale: float, n: int = 4, shift_db: float = 0.0) -> dict:
    bpp = list(np.geomspace(0.1, 1.2, n) * scale)
    psnr = [30 + 4 * math.log2(b / 0.1) + shift_db for b in np.geomspace(0.1, 1.2, n)]
    return {"results": {"bpp": bpp, "psnr-rgb": psnr, "psnr-y": psnr, "psnr-yuv420": psnr}, "kind": "ours",
            "origin": "ours", "name": "x", "meta": {}}


def test_bd_cell_and_reason():
    curves = {"a": _curve(1.0), "b": _curve(0.9)}
    rate, why = common.bd(curves, "b", "a")
    assert rate == pytest.approx(-10.0, abs=0.01) and why == ""
    rate, why = common.bd(curves, "missing", "a")
    assert math.isnan(rate) and "no result for missing" in why


def test_hpcm_table_d_puts_the_paper_beside_ours():
    curves = {k: _curve(1.0 + 0.01 * n) for n, k in hpcm.STAGES.items()}
    records = [{"model": k, "profile": "paper", "kmacs_per_pixel": 900.0 + n, "params": 1} for n, k in hpcm.STAGES.items()]
    t = hpcm.table_d(curves, records)
    assert list(t.index) == [1, 2, 3, 4]
    assert t.loc[3, "bd_rate_pct"] == 0.0 and t.loc[1, "kmacs_paper"] == 1107.48
    assert t.loc[4, "bd_rate_pct"] == pytest.approx((1.04 / 1.03 - 1) * 100, abs=1e-6) and t.loc[4, "kmacs_per_pixel"] == 904.0


def test_hpcm_tables_a_and_c_take_one_column_per_device():
    docs = [{"device_name": "GPU-X", "profile": "paper", "models": [
        {"model": hpcm.BASE, "training": {"steps_per_s": 6.0},
         "coding": {k: 1.0 for k in ("enc_net_ms", "enc_ac_ms", "enc_total_ms", "dec_net_ms", "dec_ac_ms", "dec_total_ms")}},
        {"model": hpcm.TCM, "training": {"steps_per_s": 2.0},
         "coding": {k: 2.0 for k in ("enc_net_ms", "enc_ac_ms", "enc_total_ms", "dec_net_ms", "dec_ac_ms", "dec_total_ms")}}]}]
    ta = hpcm.table_a(docs)
    assert ta.loc["HPCM-Base", "GPU-X [paper]"] == 6.0
    assert ta.loc["ratio HPCM-Base / TCM", "GPU-X [paper]"] == pytest.approx(3.0)
    assert ta.loc["ratio HPCM-Base / TCM", "paper (RTX 3090, batch 8, 256²)"] == pytest.approx(3.67 / 1.28)
    tc = hpcm.table_c(docs, [])
    assert tc.loc[("paper (RTX 3090)", "HPCM-Base"), "enc_ac_ms"] == 25
    assert tc.loc[("GPU-X [paper]", "HPCM-Base"), "enc_ac_ms"] == 1.0


def test_hpcm_training_options_table():
    docs = [{"device_name": "GPU-X", "profile": "paper", "models": [
        {"model": hpcm.BASE, "training": {"steps_per_s": 4.0},
         "training_options": [{"option": "bf16", "steps_per_s": 6.0, "speedup": 1.5},
                              {"option": "compile", "error": "RuntimeError: no compiler"}]}]}]
    t = hpcm.training_options_table(docs)
    assert t.loc[("GPU-X [paper]", "HPCM-Base", "bf16"), "speedup"] == 1.5
    assert t.loc[("GPU-X [paper]", "HPCM-Base", "compile"), "error"] == "RuntimeError: no compiler"
    assert hpcm.training_options_table([]).empty


def test_tinylic_split_uses_four_points_per_half_when_the_curve_is_long():
    short = {"v": _curve(1.0), "m": _curve(0.95)}
    r = tinylic.split_bd(short, "m", "v")
    assert r["split"] == "whole curve" and r["bd_low"] == r["bd_high"] == pytest.approx(-5.0, abs=0.01)
    long = {"v": _curve(1.0, 6), "m": _curve(0.95, 6)}
    r = tinylic.split_bd(long, "m", "v")
    assert r["split"].startswith("4 lowest") and r["bd_low"] == pytest.approx(-5.0, abs=0.01)
    t5 = tinylic.table_5({tinylic.V3: _curve(1.0), tinylic.MSR: _curve(0.98)}, "kodak")
    assert t5.loc[tinylic.MSR, "paper_low_pct"] == -2.19 and t5.loc[tinylic.MSR, "bd_rate_low_pct"] < 0


def test_cgoo_table_3_and_ablations():
    curves = {"bpg444": _curve(1.0), cgoo.TCM: _curve(0.7), cgoo.CGOO: _curve(0.68)}
    t3 = cgoo.table_3(curves, "kodak")
    assert t3.loc["Ours", "paper_bd_rate_pct"] == -35.21
    assert t3.loc["Ours", "bd_rate_pct"] == pytest.approx(-32.0, abs=0.01)
    assert math.isnan(t3.loc["Zou (CVPR-22)", "bd_rate_pct"])
    ab = cgoo.ablation_table(curves)
    assert ab.loc[cgoo.CGOO, "bd_rate_vs_tcm_pct"] == pytest.approx(-2.857, abs=0.01)
    assert math.isnan(ab.loc["kuang2025-cgoo-noddt", "bd_rate_vs_tcm_pct"])


def test_tinylic_natten_table_summarises_each_check_record():
    rec = {"kind": "natten-check", "run_device": "cpu", "device": {"cpu": "Some CPU"},
           "versions": {"natten": "0.17.5", "torch": "2.14.1"}, "worst_float64_diff": 2e-14,
           "ops": [{"max_abs_diff_float32": 2e-6}, {"max_abs_diff_float32": 6e-6}],
           "model": {"max_abs_diff_x_hat": 4e-6, "identical_streams": True,
                     "decodes_to_encoder_image": {
                         "natten->natten": {"identical": True, "max_abs_diff": 0, "values_differing": 0},
                         "natten->torch": {"identical": False, "max_abs_diff": 1, "values_differing": 3},
                         "torch->natten": {"identical": False, "max_abs_diff": 1, "values_differing": 5},
                         "torch->torch": {"identical": True, "max_abs_diff": 0, "values_differing": 0}}},
           "time": [{"natten_over_torch": 12.4}, {"natten_over_torch": 30.2}], "file": "x.json"}
    t = tinylic.natten_table([rec, {**rec, "run_device": "cuda", "device": {"cuda_device": "GPU X"}}])
    assert list(t["device"]) == ["Some CPU", "GPU X"]
    row = t.iloc[0]
    assert row["op diff float32 (max)"] == 6e-6
    assert row["cross-path decode: max 8-bit diff"] == 1 and row["cross-path decode: values differing"] == 5
    assert row["natten / torch time"] == "12–30x"
    assert tinylic.natten_table([]).empty


def test_notebooks_display_the_readable_tables():
    """A table a notebook saves is shown as report.save_table returns it (missing values as "n/a"), never as the
    raw frame it passed in, whose NaNs the reader would see (02_tinylic's attention table once did)."""
    import ast
    import json
    from pathlib import Path

    raw = []
    for nb in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            if cell["cell_type"] != "code":
                continue
            body = ast.parse("".join(line for line in cell["source"] if not line.lstrip().startswith(("%", "!")))).body
            saved = {call.args[0].id for node in body for call in ast.walk(node)
                     if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                     and call.func.attr == "save_table" and call.args and isinstance(call.args[0], ast.Name)}
            last = body[-1] if body else None
            if isinstance(last, ast.Expr) and isinstance(last.value, ast.Name) and last.value.id in saved:
                raw.append(f"{nb.name} cell {i}: shows {last.value.id}")
            for call in (c for node in body for c in ast.walk(node) if isinstance(c, ast.Call)):
                if getattr(call.func, "id", None) == "display" and call.args and \
                        isinstance(call.args[0], ast.Name) and call.args[0].id in saved:
                    raw.append(f"{nb.name} cell {i}: display({call.args[0].id})")
    assert not raw, raw
