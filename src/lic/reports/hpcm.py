"""HPCM (Li et al., ICCV 2025): the supplement's Tables A, C, D, E and the fidelity table, from result files.

Every function takes what the pipeline wrote (``results/complexity.json``, ``results/bench/*.json`` and
``data/bench/*.json``, ``results/<key>/<dataset>.json``) and the transcribed paper tables
(``data/reference/tables/hpcm-suppl-table-*.json``) and puts the paper's number beside ours.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from lic.reports.common import bd, complexity_of, paper_table

BASE, LARGE = "li2025-hpcm-base", "li2025-hpcm-large"
STAGES = {1: "li2025-hpcm-base-stages1", 2: "li2025-hpcm-base-stages2", 3: BASE, 4: "li2025-hpcm-base-stages4"}
NONSHARED = "li2025-hpcm-base-nonshared"
PHI = "li2025-hpcm-base-phicontext"
MSSSIM = "li2025-hpcm-base-msssim"
TCM = "liu2023-tcm-large"  # the TCM of Tables A and C (1823.58 kMACs/px = TCM-large)

#: Fidelity targets of DESIGN.md / the spec (params exact, kMACs/px at 256x256).
TARGETS = {
    BASE: {"params": 68_505_299, "kmacs_per_pixel": 918.57},
    LARGE: {"params": 89_718_803, "kmacs_per_pixel": 1261.29},
    STAGES[1]: {"params": None, "kmacs_per_pixel": 1107.48},
    STAGES[2]: {"params": None, "kmacs_per_pixel": 954.17},
    STAGES[4]: {"params": None, "kmacs_per_pixel": 911.44},
    NONSHARED: {"params": 189_990_000, "kmacs_per_pixel": 918.57},
    PHI: {"params": 63_580_000, "kmacs_per_pixel": None},
}

PAPER_NAMES = {"HPCM-Base": BASE, "HPCM-Large": LARGE, "TCM": TCM}


def _pct(ours, target) -> float:
    if ours is None or target is None or (isinstance(ours, float) and math.isnan(ours)):
        return math.nan
    return (ours / target - 1) * 100


def fidelity_table(records: list[dict]) -> pd.DataFrame:
    """Params and kMACs/pixel of the paper-size models (``profile: paper`` kwargs) against the targets."""
    rows = []
    for key, target in TARGETS.items():
        r = complexity_of(records, key, "paper")
        rows.append({"model": key, "params": r.get("params"), "params_target": target["params"],
                     "params_diff_pct": _pct(r.get("params"), target["params"]),
                     "kmacs_per_pixel": r.get("kmacs_per_pixel"), "kmacs_target": target["kmacs_per_pixel"],
                     "kmacs_diff_pct": _pct(r.get("kmacs_per_pixel"), target["kmacs_per_pixel"])})
    return pd.DataFrame(rows).set_index("model")


def table_d(curves: dict, records: list[dict], metric: str = "psnr-rgb") -> pd.DataFrame:
    """Table D: number of hierarchical stages — kMACs/px (paper kwargs) and BD-rate vs the 3-stage model."""
    paper = paper_table("hpcm-suppl-table-d").set_index("stages")
    rows = []
    for n, key in STAGES.items():
        rate, why = bd(curves, key, BASE, metric)
        rows.append({"stages": n, "model": key,
                     "kmacs_per_pixel": complexity_of(records, key, "paper").get("kmacs_per_pixel"),
                     "kmacs_paper": paper.loc[n, "kmacs_per_pixel"],
                     "bd_rate_pct": rate, "bd_rate_paper_pct": paper.loc[n, "bd_rate_pct"], "note": why})
    return pd.DataFrame(rows).set_index("stages")


def table_e(curves: dict, records: list[dict], metric: str = "psnr-rgb") -> pd.DataFrame:
    """Table E: shared vs non-shared context parameters — kMACs, params, BD-rate vs HPCM-Base."""
    paper = paper_table("hpcm-suppl-table-e").set_index("model")
    rows = []
    for key, name in ((BASE, "HPCM-Base"), (NONSHARED, "w/o shared params")):
        rec = complexity_of(records, key, "paper")
        rate, why = bd(curves, key, BASE, metric)
        rows.append({"variant": name, "model": key, "kmacs_per_pixel": rec.get("kmacs_per_pixel"),
                     "kmacs_paper": paper.loc[name, "kmacs_per_pixel"],
                     "params_m": rec["params"] / 1e6 if rec.get("params") else math.nan,
                     "params_paper_m": paper.loc[name, "params_m"], "bd_rate_pct": rate,
                     "bd_rate_paper_pct": paper.loc[name, "bd_rate_pct"], "note": why})
    return pd.DataFrame(rows).set_index("variant")


def _bench_rows(docs: list[dict]):
    for doc in docs:
        device = doc.get("device_name") or "unknown"
        column = f"{device} [{doc.get('profile', '?')}]"
        for rec in doc.get("models", []):
            yield column, rec


def table_a(docs: list[dict]) -> pd.DataFrame:
    """Table A: training steps/s at batch 8, 256² (paper) — the paper's RTX 3090 column and one column per
    measured device (with the profile whose kwargs/patch were used), plus the HPCM-Base/TCM ratio."""
    paper = paper_table("hpcm-suppl-table-a").set_index("model")["train_steps_per_s"]
    table = pd.DataFrame({"paper (RTX 3090, batch 8, 256²)": paper})
    for column, rec in _bench_rows(docs):
        name = next((n for n, k in PAPER_NAMES.items() if k == rec["model"]), rec["model"])
        table.loc[name, column] = rec["training"].get("steps_per_s", math.nan)  # NaN: the measurement died
    ratio = {}
    for col in table.columns:
        b, t = table[col].get("HPCM-Base"), table[col].get("TCM")
        ratio[col] = b / t if b is not None and t is not None and not (pd.isna(b) or pd.isna(t)) else math.nan
    table.loc["ratio HPCM-Base / TCM"] = pd.Series(ratio)
    table.index.name = "model"
    return table


def training_options_table(docs: list[dict]) -> pd.DataFrame:
    """Training speed-ups (issue: GPU speed-ups as options, each measured): per measured device and model,
    steps/s with each option of ``bench.<profile>.train_options`` and its ratio to the plain run, or the
    error that option raised there."""
    rows = []
    for column, rec in _bench_rows(docs):
        name = next((n for n, k in PAPER_NAMES.items() if k == rec["model"]), rec["model"])
        for opt in rec.get("training_options", []):
            rows.append({"device": column, "model": name, "option": opt["option"],
                         "baseline_steps_per_s": rec["training"].get("steps_per_s", math.nan),
                         "steps_per_s": opt.get("steps_per_s", math.nan), "speedup": math.nan if opt.get("speedup") is None else opt["speedup"],
                         "peak_gpu_mb": opt.get("peak_gpu_mb"), "error": opt.get("error", "")})
    cols = ["baseline_steps_per_s", "steps_per_s", "speedup", "peak_gpu_mb", "error"]
    if not rows:
        return pd.DataFrame(columns=cols, index=pd.MultiIndex.from_tuples([], names=["device", "model", "option"]))
    return pd.DataFrame(rows).set_index(["device", "model", "option"])[cols]


def cross_device_table(docs: list[dict]) -> pd.DataFrame:
    """Cross-device decoding (lic.bench.cross_device): per measured device file, model and (encode, decode)
    device pair, how many images decoded to the encoder's exact reconstruction, the worst pixel difference
    and the first decoder error; ``same_stream``: every device's encoder wrote the same bytes."""
    rows = []
    for column, rec in _bench_rows(docs):
        cd = rec.get("cross_device")
        if not cd:
            continue
        name = next((n for n, k in PAPER_NAMES.items() if k == rec["model"]), rec["model"])
        pairs: dict[tuple[str, str], list[dict]] = {}
        for p in cd["pairs"]:
            pairs.setdefault((p["encode"], p["decode"]), []).append(p)
        for (enc, dec), ps in pairs.items():
            diffs = [p["max_abs_diff"] for p in ps if "max_abs_diff" in p]
            rows.append({"file": column, "model": name, "encode": enc, "decode": dec,
                         "identical": f"{sum(p['identical'] for p in ps)}/{len(ps)}",
                         "max_abs_diff": max(diffs) if diffs else math.nan,
                         "error": next((p["error"] for p in ps if p.get("error")), ""),
                         "same_stream": cd["same_stream"]})
    cols = ["identical", "max_abs_diff", "error", "same_stream"]
    if not rows:
        return pd.DataFrame(columns=cols, index=pd.MultiIndex.from_tuples([], names=["file", "model", "encode", "decode"]))
    return pd.DataFrame(rows).set_index(["file", "model", "encode", "decode"])[cols]


def coder_paths_table(docs: list[dict]) -> pd.DataFrame:
    """The arithmetic-coding step of one model with CompressAI's per-call path and the fast path, side by
    side on the same weights and image (``lic.bench_coding --model`` records, :func:`lic.bench.load_coding`).

    Per record: the weights (random init, or a checkpoint's steps and λ), image, bpp of the stream, T_AC of
    each path inside the coder objects and with each path's conversions (the models' ``RansCoder`` helper:
    arithmetic coding as the model sees it), ms, and the CompressAI / fast ratios of encode + decode."""
    rows = []
    for d in docs:
        w = d.get("weights_info") or {}
        if w.get("checkpoint"):
            weights = f"{w.get('steps')} steps, λ={w.get('lmbda')}"
        else:
            weights = "random init" if d.get("weights") == "random-init" else str(d.get("weights"))
        proto = d.get("protocol", {})
        c, f = d["paths"]["compressai"], d["paths"]["fast"]
        rows.append({
            "file": Path(d["file"]).name, "machine": d.get("device_name") or "unknown", "model": d["model"],
            "weights": weights,
            "image": Path(str(d["image"]["source"])).name, "omp_threads": proto.get("omp_num_threads") or "default",
            "bpp": d["bpp"],
            "compressai_enc_ac_ms": c["enc_ac_ms"], "compressai_dec_ac_ms": c["dec_ac_ms"],
            "fast_enc_ac_ms": f["enc_ac_ms"], "fast_dec_ac_ms": f["dec_ac_ms"],
            "ratio_ac": d["ratio"]["ac"],
            "compressai_enc_ac_conv_ms": c["enc_ac_conv_ms"], "compressai_dec_ac_conv_ms": c["dec_ac_conv_ms"],
            "fast_enc_ac_conv_ms": f["enc_ac_conv_ms"], "fast_dec_ac_conv_ms": f["dec_ac_conv_ms"],
            "ratio_ac_conv": d["ratio"]["ac_conv"],
            "identical_streams": d["identical_streams"]})
    cols = ["machine", "model", "weights", "image", "omp_threads", "bpp", "compressai_enc_ac_ms", "compressai_dec_ac_ms",
            "fast_enc_ac_ms", "fast_dec_ac_ms", "ratio_ac", "compressai_enc_ac_conv_ms", "compressai_dec_ac_conv_ms",
            "fast_enc_ac_conv_ms", "fast_dec_ac_conv_ms", "ratio_ac_conv", "identical_streams"]
    return pd.DataFrame(rows, columns=["file", *cols]).set_index("file")


def table_c(docs: list[dict], records: list[dict]) -> pd.DataFrame:
    """Table C: encode/decode time split into network (T_Net) and arithmetic coding (T_AC), ms, and
    kMACs/px — the paper's rows, then ours per measured device."""
    cols = ["enc_net_ms", "enc_ac_ms", "enc_total_ms", "dec_net_ms", "dec_ac_ms", "dec_total_ms"]
    paper = paper_table("hpcm-suppl-table-c")
    rows = [{"source": "paper (RTX 3090)", "model": r["model"], **{c: r[c] for c in cols},
             "kmacs_per_pixel": r["kmacs_per_pixel"]} for _, r in paper.iterrows()]
    for column, rec in _bench_rows(docs):
        name = next((n for n, k in PAPER_NAMES.items() if k == rec["model"]), rec["model"])
        cx = complexity_of(records, rec["model"], "paper")
        rows.append({"source": column, "model": name, **{c: rec["coding"].get(c, math.nan) for c in cols},
                     "kmacs_per_pixel": cx.get("kmacs_per_pixel"), "weights": rec.get("weights"),
                     "error": rec["coding"].get("error", "")})
    return pd.DataFrame(rows).set_index(["source", "model"])
