"""TinyLIC (Lu & Ma): the supplement's Tables 3, 4 and 5 and the YUV/Y results, from result files.

Inputs: our curves (``lic.compare.load_curves``: results of the evaluation and of the anchors, plus the
transcribed references) and the paper tables ``data/reference/tables/tinylic-suppl-table-*.json``.

"High" and "low" bitrate: the supplement does not say where it splits a curve. Here a curve with at least
six points is split into its four lowest-rate points (low) and its four highest-rate points (high), the
fewest a BD-rate needs; a shorter curve (the default profile trains four qualities) gets one BD-rate over
all its points, shown in both columns and marked ``whole curve``.
"""

from __future__ import annotations

import math

import pandas as pd

from lic.reports.common import bd, paper_table

V3, LOW, HIGH = "lu2022-tinylic-v3", "lu2022-tinylic-low", "lu2022-tinylic-high"
VR, MSR = "lu2022-tinylic-vr", "lu2022-tinylic-msr"
Y, YUV420 = "lu2022-tinylic-y", "lu2022-tinylic-yuv420"
MIN_POINTS = 4


def bpg_anchor(curves: dict) -> str | None:
    """BPG when it ran here, else HEVC intra 4:4:4 through x265 (the codec inside BPG), else the published BPG."""
    return next((a for a in ("bpg", "hevc-x265-444", "bpg444") if a in curves), None)


def _subset(curve: dict, which: str) -> dict:
    res = curve["results"]
    order = sorted(range(len(res["bpp"])), key=lambda i: res["bpp"][i])
    idx = order[:MIN_POINTS] if which == "low" else order[-MIN_POINTS:]
    return {**curve, "results": {k: [v[i] for i in idx] for k, v in res.items() if isinstance(v, list)
                                 and len(v) == len(order)}}


def split_bd(curves: dict, key: str, anchor: str | None, metric: str = "psnr-rgb") -> dict:
    """BD-rate of ``key`` vs ``anchor`` at low and high bitrate (see the module docstring)."""
    if anchor is None or key not in curves or anchor not in curves:
        why = f"no result for {key if key not in curves else anchor}"
        return {"bd_low": math.nan, "bd_high": math.nan, "split": "", "note": why}
    n = min(len(curves[key]["results"]["bpp"]), len(curves[anchor]["results"]["bpp"]))
    if n >= 6:
        out = {}
        for which in ("low", "high"):
            sub = {key: _subset(curves[key], which), anchor: _subset(curves[anchor], which)}
            out[f"bd_{which}"], why = bd(sub, key, anchor, metric)
        return {**out, "split": "4 lowest / 4 highest points", "note": why}
    rate, why = bd(curves, key, anchor, metric)
    return {"bd_low": rate, "bd_high": rate, "split": "whole curve", "note": why}


def table_3(curves: dict, dataset: str) -> pd.DataFrame:
    """Table 3: BD-rate vs BPG, low-rate (128/192) and high-rate (192/320) configurations; only class D
    (Kodak) of the NIC dataset is public, so our column is the evaluation set and the paper's class D*."""
    anchor = bpg_anchor(curves)
    paper = paper_table("tinylic-suppl-table-3")
    paper = paper[paper["model"] == "TinyLIC"].set_index("class")
    rows = []
    for key, col in ((LOW, "bd_rate_pct_low"), (HIGH, "bd_rate_pct_high"), (V3, None)):
        r = split_bd(curves, key, anchor)
        ours = r["bd_low"] if key == LOW else r["bd_high"] if key == HIGH else bd(curves, key, anchor)[0]
        rows.append({"model": key, "dataset": dataset, "anchor": anchor, "bd_rate_pct": ours,
                     "paper_class_D_pct": paper.loc["D*", col] if col else math.nan,
                     "paper_average_pct": paper.loc["Ave.", col] if col else math.nan, "note": r["note"]})
    return pd.DataFrame(rows).set_index("model")


def _vs(curves: dict, key: str, ref: str, table: str, dataset_label: str, metric: str = "psnr-rgb") -> pd.DataFrame:
    paper = paper_table(table)
    p = paper[paper["dataset"] == dataset_label]
    r = split_bd(curves, key, ref, metric)
    return pd.DataFrame([{"model": key, "against": ref, "bd_rate_low_pct": r["bd_low"], "bd_rate_high_pct": r["bd_high"],
                          "split": r["split"],
                          "paper_low_pct": p["bd_rate_pct_low"].iloc[0] if len(p) else math.nan,
                          "paper_high_pct": p["bd_rate_pct_high"].iloc[0] if len(p) else math.nan,
                          "paper_dataset": dataset_label if len(p) else "", "note": r["note"]}]).set_index("model")


PAPER_DATASET = {"kodak": "Kodak", "clic2020-professional-valid": "CLIC", "tecnick": "Tecnick"}


def table_4(curves: dict, dataset: str) -> pd.DataFrame:
    """Table 4: the ScalingNet variable-rate model against the rate-specific models (v3)."""
    return _vs(curves, VR, V3, "tinylic-suppl-table-4", PAPER_DATASET.get(dataset, "Kodak"))


def table_5(curves: dict, dataset: str) -> pd.DataFrame:
    """Table 5: TinyLIC + MSR in-loop filter against plain TinyLIC (v3) — negative = the filter saves bits."""
    return _vs(curves, MSR, V3, "tinylic-suppl-table-5", PAPER_DATASET.get(dataset, "Kodak"))


def yuv_table(curves: dict) -> pd.DataFrame:
    """The Y and YUV 4:2:0 models against the RGB model (v3) on the metric each is made for."""
    rows = []
    for key, metric in ((Y, "psnr-y"), (YUV420, "psnr-yuv420"), (V3, "psnr-yuv420")):
        rate, why = bd(curves, key, V3, metric) if key != V3 else (0.0, "")
        res = curves.get(key, {}).get("results", {})
        rows.append({"model": key, "metric": metric, "bd_rate_vs_v3_pct": rate,
                     "bpp": res.get("bpp"), metric: res.get(metric), "note": why})
    return pd.DataFrame(rows).set_index("model")


def natten_table(records: list[dict]) -> pd.DataFrame:
    """One row per ``lic.bench_natten`` record: natten's kernels against the PyTorch neighborhood attention.

    Op differences are the largest over the record's cases (outputs with and without the bias; float64
    also the gradients of q, k, v and the bias). ``natten / torch time``: the range of the time ratio
    over the TinyLIC-sized inputs. The cross-decoding columns: a TinyLIC v3 stream written with one
    path and decoded with the other, against the encoder's own 8-bit image."""
    rows = []
    for r in records:
        dev = r.get("device") or {}
        run_dev = r.get("run_device", "cpu")
        ops, model, times = r.get("ops") or [], r.get("model") or {}, r.get("time") or []
        cross = model.get("decodes_to_encoder_image") or {}
        across = [cross[k] for k in ("natten->torch", "torch->natten") if k in cross]
        ratios = [t["natten_over_torch"] for t in times]
        rows.append({
            "device": dev.get("cuda_device") if run_dev == "cuda" else dev.get("cpu"),
            "natten": (r.get("versions") or {}).get("natten"),
            "torch": (r.get("versions") or {}).get("torch"),
            "op diff float64 (max, incl. grads)": r.get("worst_float64_diff"),
            "op diff float32 (max)": max((o["max_abs_diff_float32"] for o in ops), default=math.nan),
            "TinyLIC x̂ diff": model.get("max_abs_diff_x_hat", math.nan),
            "identical streams": model.get("identical_streams"),
            "cross-path decode: max 8-bit diff": max((c["max_abs_diff"] for c in across), default=math.nan),
            "cross-path decode: values differing": max((c["values_differing"] for c in across), default=math.nan),
            "natten / torch time": (f"{min(ratios):.0f}–{max(ratios):.0f}x" if ratios else None),
            "file": r.get("file"),
        })
    return pd.DataFrame(rows)


def attention_table(records: list[dict]) -> pd.DataFrame:
    """One row per case of each ``lic.bench_attention`` record: a paper-size TinyLIC v3 training step
    (``attention_impl`` = path) at the record's batch and crop size — peak RSS (the case's own subprocess),
    seconds per step and steps per second (the median of the steps after the first), the machine's load
    (1-min load average, the larger of start and end: a shared machine slows every step), and why a case
    did not run."""
    from lic.bench_attention import _steady_s

    rows = []
    for r in records:
        dev = r.get("device") or {}
        where = dev.get("cuda_device") if str(r.get("run_device", "cpu")).startswith("cuda") else dev.get("cpu")
        threads = (r.get("protocol") or {}).get("threads")
        size = ", ".join(f"{k}={v}" for k, v in (r.get("kwargs") or {}).items()) or "paper"
        for c in r.get("cases", []):
            steps, cpu = c.get("step_s") or [], c.get("step_cpu_s") or []
            rows.append({
                "path": c.get("impl"), "model size": size, "batch": c.get("batch"), "crop": f"{c.get('size')}²",
                "status": c.get("status"),
                "peak RSS (GiB)": c.get("peak_rss_gb", math.nan),
                "GPU memory (GiB)": c.get("cuda_max_allocated_gb", math.nan),
                "s / step": _steady_s(steps) if steps else math.nan,
                "steps / s": 1 / _steady_s(steps) if steps else math.nan,
                "CPU s / step": _steady_s(cpu) if cpu else math.nan,
                "load (1 min)": max(c.get("load_avg_1min") or [math.nan]),
                "note": c.get("reason") or c.get("error") or "",
                "device": f"{where} ({threads or 'default'} threads)", "file": r.get("file"),
            })
    return pd.DataFrame(rows)
