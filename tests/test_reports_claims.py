"""lic.reports.claims (pass/fail tables of method claims), lic.reports.scope (what a profile reproduces) and
the two-panel RD figure, on hand-made result files."""

import json
import math

import pandas as pd
import pytest

from lic import compare
from lic.reports import claims, scope


def _results(tmp_path, monkeypatch, docs: dict):
    def path(dataset, key):
        return tmp_path / key / f"{dataset}.json"

    for key, doc in docs.items():
        path("d", key).parent.mkdir(parents=True, exist_ok=True)
        path("d", key).write_text(json.dumps(doc))
    monkeypatch.setattr(claims, "result_path", path)


def _row(image, q, mse, bpp, psnr=None):
    return {"image": image, "quality": q, "mse-rgb": mse, "bpp": bpp,
            "psnr-rgb": psnr if psnr is not None else 10 * math.log10(255 ** 2 / mse)}


def test_online_lowers_rd_cost_fails_on_one_worse_image(tmp_path, monkeypatch):
    plain = [_row("a", 1, 10.0, 0.5), _row("b", 1, 10.0, 0.5), _row("a", 2, 5.0, 1.0)]
    online = [_row("a", 1, 9.0, 0.5), _row("b", 1, 10.0, 0.6), _row("a", 2, 4.0, 1.0)]
    _results(tmp_path, monkeypatch, {"kuang2025-cgoo-noonline": {"per_image": plain},
                                     "kuang2025-cgoo": {"per_image": online}})
    t = claims.online_lowers_rd_cost(["d"], [0.1, 0.1]).set_index("quality")
    assert t.loc[1, "images"] == 2 and t.loc[1, "lower_rd_cost"] == 1 and not t.loc[1, "pass"]
    assert t.loc[2, "pass"] and t.loc[2, "worst_change_pct"] == pytest.approx((0.4 + 1) / (0.5 + 1) * 100 - 100)
    assert claims.verdict(t, "x") == "x: FAIL (1/2 rows)"


def test_filter_never_worse_and_target_rates(tmp_path, monkeypatch):
    v3 = [_row("a", 1, 10.0, 0.5), _row("b", 1, 10.0, 0.5)]
    msr = [_row("a", 1, 9.0, 0.52), _row("b", 1, 10.0, 0.501)]
    targets = [{"target": "t1", "target_bpp": 0.5, "bpp": 0.49, "decoded_exactly": True},
               {"target": "t1", "target_bpp": 0.5, "bpp": 0.48, "decoded_exactly": True},
               {"target": "t2", "target_bpp": 1.0, "bpp": 1.01, "decoded_exactly": True}]
    _results(tmp_path, monkeypatch, {"lu2022-tinylic-v3": {"per_image": v3}, "lu2022-tinylic-msr": {"per_image": msr},
                                     "lu2022-tinylic-vr": {"targets": targets}})
    f = claims.filter_never_worse(["d"])
    assert f.loc[0, "pass"] and f.loc[0, "filter_used"] == 1 and f.loc[0, "added_bpp"] == pytest.approx(0.0105)
    h = claims.hits_target_rates(["d"]).set_index("target")
    assert h.loc["t1", "pass"] and h.loc["t1", "max_under_pct"] == pytest.approx(4.0)
    assert not h.loc["t2", "pass"]  # above its target
    assert claims.verdict(pd.DataFrame(), "y").startswith("y: nothing to check")


def test_files_match_estimate_and_table_d_kmacs():
    idx = pd.MultiIndex.from_tuples([("m", "d", 1), ("m", "d", 2), ("c", "d", 1)], names=["model", "dataset", "quality"])
    check = pd.DataFrame({"gap_percent": [-3.0, 5.0, -20.0], "decoded_exactly": [True, True, True],
                          "estimate_is_the_encoder": [True, True, False]}, index=idx)
    t = claims.files_match_estimate(check, 4.0)
    assert not t.loc["m", "pass"] and t.loc["c", "pass"]  # CGOO's files may beat the plain estimate
    from lic.reports import hpcm

    paper = {1: 1107.48, 2: 954.17, 3: 918.57, 4: 911.44}
    records = [{"model": k, "profile": "paper", "kmacs_per_pixel": paper[n]} for n, k in hpcm.STAGES.items()]
    d = claims.stage_kmacs_as_table_d(records)
    assert d["pass"].all() and d.loc[1, "paper_vs_3_stages_pct"] == pytest.approx((1107.48 / 918.57 - 1) * 100)
    records[0]["kmacs_per_pixel"] = 1107.48 * 1.025  # 2.5 % off
    records[3]["kmacs_per_pixel"] = 911.44 * 1.019   # 1.9 % off: within Table D's 2 %
    d = claims.stage_kmacs_as_table_d(records)
    assert not d.loc[1, "pass"] and d.loc[4, "pass"] and d.loc[2, "pass"]


def test_scope_box_and_labels_follow_the_profile():
    default = scope.box_text("03_hpcm", "default")
    paper = scope.box_text("03_hpcm", "paper")
    assert "Profile `default`" in default and "smoke checks" in default and "918.57" in default
    assert "Profile `paper`" in paper and "smoke" not in paper and "-15.31" not in paper and "−15.31" in paper
    assert set(scope.CLAIMS) == {"00_overview", "01_cgoo", "02_tinylic", "03_hpcm"}
    assert "Smoke check" in scope.label("rd", "default").data and "paper profile" in scope.label("rd", "paper").data
    with pytest.raises(ValueError, match="unknown label"):
        scope.label("nonsense", "default")


def _curve(origin, kind, shift):
    return {"results": {"bpp": [0.1, 0.2, 0.4, 0.8], "psnr-rgb": [20 + shift, 22 + shift, 24 + shift, 26 + shift]},
            "origin": origin, "kind": kind, "name": "x", "meta": {}}


def test_rd_panels_split_published_and_ours_and_say_how_long_each_trained(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from lic import paths

    monkeypatch.setattr(paths, "CHECKPOINTS", tmp_path)
    for run, steps in (("base", 100), ("q1", 10), ("q2", 10)):
        (tmp_path / "m" / run).mkdir(parents=True)
        (tmp_path / "m" / run / "run.json").write_text(json.dumps(
            {"created_utc": "2020-01-01T00:00:00+00:00", "params": {"train": {"steps": steps, "stages": {}}}}))
    assert compare.training_note("m").startswith("100 + 2×10 steps, ")
    assert compare.training_note("never-trained") == ""
    curves = {"m": _curve("ours", "ours", 0), "m2": _curve("ours", "ours", 1),
              "pub": _curve("reference", "learned", 10), "jpeg": _curve("ours", "anchor", 5)}
    curves["m"]["name"] = "m"
    fig = compare.rd_panels(curves, ["m", "m2"], ["pub", "m2"])  # m2 is ours: never in the published panel
    left, right = fig.axes[:2]
    assert sorted(t.get_text() for t in left.get_legend().get_texts()) == ["x [jpeg]", "x [pub]"]
    assert right.get_legend().get_texts()[0].get_text() == "m (100 + 2×10 steps, 0 s) (ours)"
    assert right.get_ylim()[1] < 30 < left.get_ylim()[1]  # each panel scaled to its own curves
    assert curves["m"]["name"] == "m"  # the legend names do not leak into the curves
    empty = compare.rd_panels({"m": curves["m"]}, ["m"], [])  # no published curve, no anchor: an empty panel
    assert empty.axes[0].get_legend() is None and len(empty.axes[1].get_lines()) == 1
    many = {f"k{i}": _curve("ours", "ours", i) for i in range(9)}
    with pytest.raises(ValueError, match="at most 8"):
        compare.rd_panels(many, list(many))
