"""Tables and figures comparing our results with published ones, rendered from result files only.

Inputs are our result files (:mod:`lic.results`; located with its ``result_path``) and the
transcribed references ``data/reference/<dataset>/<key>.json`` (:mod:`lic.reference`). Nothing is
recomputed from images or models here.

A curve (one entry of :func:`load_curves`) is ``{"key", "name", "origin": "ours"|"reference",
"kind": "ours"|"anchor"|"learned", "meta", "results": {"bpp": [...], <metric>: [...]}}`` with
``None`` values turned into NaN. When a curve has linear ``ms-ssim-rgb`` but no ``ms-ssim-db-rgb``,
the dB list is derived as ``-10 log10(1 - MS-SSIM)`` point by point (of the averaged value).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from lic import paths, reference
from lic import results as results_io
from lic.bdrate import bd_rate, comparability, short_reason

METRIC_LABELS = {"psnr-rgb": "PSNR (RGB) [dB]", "ms-ssim-db-rgb": "MS-SSIM (RGB) [dB]",
                 "ms-ssim-rgb": "MS-SSIM (RGB)"}
PUBLISHED_SUFFIX = "-published"


def _floats(values: Iterable) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _with_db(results: dict) -> dict:
    out = {k: _floats(v) for k, v in results.items() if isinstance(v, list)
           and all(x is None or isinstance(x, (int, float)) for x in v)}
    if "ms-ssim-rgb" in out and "ms-ssim-db-rgb" not in out:
        out["ms-ssim-db-rgb"] = [math.nan if math.isnan(m) else math.inf if m >= 1
                                 else -10 * math.log10(1 - m) for m in out["ms-ssim-rgb"]]
    return out


def _result_files(dataset: str) -> dict[str, Path]:
    """Our result files for ``dataset``, keyed by model key, wherever :func:`lic.results.result_path`
    puts them (the layout is defined there, e.g. ``results/<key>/<dataset>.json``)."""
    root = Path(paths.RESULTS)
    pattern = results_io.result_path(dataset, "*").relative_to(root)
    idx = next(i for i, part in enumerate(pattern.parts) if "*" in part)
    prefix, suffix = pattern.parts[idx].split("*", 1)
    found = {}
    for path in sorted(root.glob(pattern.as_posix())):
        part = path.relative_to(root).parts[idx]
        found[part[len(prefix):len(part) - len(suffix)]] = path
    return found


def _our_curves(dataset: str) -> dict[str, dict]:
    curves = {}
    for key, path in _result_files(dataset).items():
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc}); re-run the stage that writes it") from exc
        if "results" not in doc or "bpp" not in doc["results"]:
            raise ValueError(f"{path}: no results.bpp; not a lic.results file")
        curves[key] = curve_from_results(key, doc)
    return curves


def curve_from_results(key: str, doc: dict) -> dict:
    """One of our result documents (:mod:`lic.results`) as a curve of :func:`load_curves`."""
    meta = doc.get("meta", {})
    # classical codecs we ran ourselves are anchors (grey in figures), learned models are "ours"
    kind = meta.get("kind") or ("anchor" if "codec_version" in meta else "ours")
    return {"key": key, "name": doc.get("name", key), "origin": "ours",
            "kind": kind, "meta": meta, "results": _with_db(doc["results"])}


def load_curves(dataset: str, ours: bool = True, references: bool = True) -> dict[str, dict]:
    """Our curves on ``dataset`` followed by the published ones, keyed by registry key.

    When one of our keys equals a reference key (e.g. our ``minnen2018-mean`` run and the paper
    curve), ours keeps the key and the reference is renamed ``<key>-published``.
    """
    curves = _our_curves(dataset) if ours else {}
    if references and (Path(paths.REFERENCE) / dataset).is_dir():
        for row in reference.list_references(dataset):
            doc = reference.load_reference(dataset, row["key"])
            key = row["key"] if row["key"] not in curves else row["key"] + PUBLISHED_SUFFIX
            curves[key] = {"key": key, "name": doc.get("name", key), "origin": "reference",
                           "kind": doc.get("meta", {}).get("kind", "learned"),
                           "meta": doc.get("meta", {}), "results": _with_db(doc["results"])}
    return curves


def _curve_points(curve: dict, metric: str) -> tuple[list[float], list[float]] | str:
    res = curve["results"]
    if metric not in res:
        return f"no {metric!r} values"
    return res["bpp"], res[metric]


def bd_rate_table(curves: dict[str, dict], anchors: Sequence[str] = ("vtm", "bpg444"),
                  metric: str = "psnr-rgb", method: str = "pchip", with_notes: bool = False,
                  comparable_only: bool = False) -> pd.DataFrame:
    """BD-rate (%, negative = fewer bits) of every curve against each anchor.

    Rows: every curve that has ``metric`` (index = key); columns: the anchors. A cell that cannot
    be computed (anchor missing, too few points, no overlap, ...) is NaN, and the reason is kept in
    ``df.attrs["reasons"][key][anchor]`` (and, in a few words, in a ``notes`` column when ``with_notes``:
    ``anchor: reason; ...``, which :func:`lic.report.readable` puts into the cells). An
    anchor's own row is 0. ``comparable_only``: a pair of curves that :func:`lic.bdrate.comparability`
    rejects (barely overlapping, unrelated rates) is NaN with that reason too.
    """
    anchors = tuple(anchors)
    reasons: dict[str, dict[str, str]] = {}
    table: dict[str, dict[str, float]] = {}
    for key, curve in curves.items():
        pts = _curve_points(curve, metric)
        if isinstance(pts, str):
            continue  # curve of another metric (e.g. PSNR-only paper curve in an MS-SSIM table)
        row = {}
        for anchor in anchors:
            why = None
            if anchor == key:
                row[anchor] = 0.0
                continue
            if anchor not in curves:
                why = f"anchor {anchor!r} not available for this dataset"
            else:
                apts = _curve_points(curves[anchor], metric)
                if isinstance(apts, str):
                    why = f"anchor {anchor!r} has {apts}"
                else:
                    try:
                        row[anchor] = bd_rate(apts[0], apts[1], pts[0], pts[1], method=method)
                        if comparable_only:
                            why = comparability(apts[0], apts[1], pts[0], pts[1])
                    except ValueError as exc:
                        why = str(exc)
            if why is not None:
                row[anchor] = math.nan
                reasons.setdefault(key, {})[anchor] = why
        table[key] = row
    df = pd.DataFrame.from_dict(table, orient="index", columns=list(anchors))
    df.index.name = "method"
    df.columns.name = f"BD-rate % ({metric}, {method})"
    if with_notes:
        df["notes"] = ["; ".join(f"{a}: {short_reason(r)}" for a, r in reasons.get(k, {}).items()) for k in df.index]
    df.attrs["reasons"] = reasons
    df.attrs["metric"], df.attrs["method"] = metric, method
    return df


def rd_figure(curves: dict[str, dict], metric: str = "psnr-rgb", ax=None, keys: Sequence[str] | None = None,
              title: str | None = None):
    """RD plot: x = bpp, y = ``metric``. Ours solid with markers, published dashed, anchors grey.

    Curves without ``metric`` are skipped. Returns the matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 5))
    else:
        fig = ax.figure
    selected = [k for k in (curves if keys is None else keys) if metric in curves[k]["results"]]
    learned = [k for k in selected if curves[k]["kind"] != "anchor"]
    colours = dict(zip(learned, sns.color_palette("tab10" if len(learned) <= 10 else "husl", len(learned))))
    greys = ["0.45", "0.65", "0.3", "0.55", "0.75"]
    n_anchor = n_ours = 0
    for key in selected:
        curve = curves[key]
        bpp, val = curve["results"]["bpp"], curve["results"][metric]
        pts = sorted((b, v) for b, v in zip(bpp, val) if not (math.isnan(b) or math.isnan(v)))
        if not pts:
            continue
        xs, ys = zip(*pts)
        label = curve["name"] if curve["name"].startswith(key) else f"{curve['name']} [{key}]"
        if curve["kind"] == "anchor":
            ax.plot(xs, ys, linestyle="--", color=greys[n_anchor % len(greys)], linewidth=1.3, label=label,
                    marker="svD^x+"[n_anchor % 6], markersize=3.5)
            n_anchor += 1
        elif curve["origin"] == "ours":
            # a marker shape of its own, and each curve a little thinner than the one before: two models with
            # the same points (e.g. CGOO and its no-MSC ablation when the encoder picks no MSC) both stay visible
            ax.plot(xs, ys, linestyle="-", marker="osD^vPX*"[n_ours % 8], markersize=5, linewidth=max(1.0, 2.6 - 0.3 * n_ours),
                    color=colours[key], label=f"{label} (ours)")
            n_ours += 1
        else:
            ax.plot(xs, ys, linestyle="--", marker=".", linewidth=1.2, color=colours[key], label=label)
    ax.set_xlabel("bpp")
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    handles = ax.get_legend_handles_labels()[0]
    if len(handles) > 6:  # many curves: the legend under the plot, not over it (save with bbox_inches="tight")
        ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, borderaxespad=0.0)
    elif handles:
        ax.legend(fontsize="small")
    return fig


def complexity_table(records: Iterable[dict]) -> pd.DataFrame:
    """Records of :func:`lic.complexity.complexity_record` as a table indexed by key.

    Columns: ``params``, ``params_m`` (millions), ``kmacs_per_pixel``, ``input``, ``path``, ``tool``
    (plus any other scalar fields of the records).
    """
    rows = [{k: v for k, v in r.items() if not isinstance(v, (dict, list))} for r in records]
    if not rows:
        return pd.DataFrame(columns=["params", "params_m", "kmacs_per_pixel", "input", "path", "tool"],
                            index=pd.Index([], name="key"))
    missing = [i for i, r in enumerate(rows) if "key" not in r]
    if missing:
        raise ValueError(f"complexity records {missing} have no 'key'")
    df = pd.DataFrame(rows).set_index("key")
    if "params" in df:
        df.insert(df.columns.get_loc("params") + 1, "params_m", df["params"] / 1e6)
    first = [c for c in ("params", "params_m", "kmacs_per_pixel", "input", "path", "tool") if c in df]
    return df[first + [c for c in df.columns if c not in first]]


MAX_CURVES = 8  # per panel: more than this and nobody can tell them apart
#: the gap in points between the bottom of an RD panel and the top of its legend: the tick labels and the
#: axis label fit in it (a fraction of the axes would shrink with tight_layout and cover the label)
LEGEND_OFFSET_PT = 40
ANCHOR_ORDER = ("vtm", "bpg444", "bpg", "hevc-x265-444", "avif", "jpegxl", "webp", "jpeg", "bpg420")


def training_note(key: str, root: Path | None = None) -> str:
    """How long ``key`` trained, from its checkpoints' run records: ``"1000 + 4×40 steps, 95 s"`` (base steps +
    quality runs × their steps; seconds from each run's start, ``run.json``'s ``created_utc``, to its
    ``model.pt``). ``""`` when it has no checkpoints here (a published curve, an encoder-side variant)."""
    import datetime as dt

    root = Path(root or paths.CHECKPOINTS) / key
    base, runs, seconds, origin = 0, [], 0.0, None
    for run in sorted(root.glob("*/run.json")) if root.is_dir() else []:
        model = run.parent / "model.pt"
        try:
            rec = json.loads(run.read_text())
            t = rec["params"]["train"]
            steps = sum(t["stages"].values()) if t.get("stages") else t["steps"]
            start = dt.datetime.fromisoformat(rec["created_utc"]).timestamp()
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
        if model.exists():
            seconds += max(0.0, model.stat().st_mtime - start)
        origin = rec["params"].get("base_from") or origin if run.parent.name != "base" else origin
        if run.parent.name == "base":
            base = steps
        else:
            runs.append(steps)
    if not runs and not base:
        return ""
    per = f"{len(runs)}×{runs[0]}" if runs and len(set(runs)) == 1 else " + ".join(map(str, runs))
    total = " + ".join(s for s in (str(base) if base else "", per) if s)
    start = f" on {origin}'s base" if origin else ""  # an ablation variant (train base_from)
    return f"{total} steps{start}, {seconds:.0f} s"


def rd_panels(curves: dict[str, dict], ours: Sequence[str], published: Sequence[str] = (), metric: str = "psnr-rgb",
              title: str | None = None, smoke: bool = True, anchors: int = 4):
    """Two panels side by side, each scaled to its own curves: the published curves of ``published`` (the
    papers' models on this dataset) with the anchors (up to ``anchors`` classical codecs, ours or published),
    and our learned curves ``ours``, each legend entry saying how long the model trained
    (:func:`training_note`). At most :data:`MAX_CURVES` curves per panel (a ValueError otherwise: split the
    group). ``smoke``: the second panel is titled a smoke check (the default profile) instead of a reproduction.
    """
    import matplotlib.pyplot as plt

    ours = [k for k in ours if k in curves and metric in curves[k]["results"]]
    anchor_keys = [k for k in ANCHOR_ORDER if k in curves and metric in curves[k]["results"]][:anchors]
    left = [k for k in published if k in curves and metric in curves[k]["results"]
            and curves[k]["origin"] == "reference"] + anchor_keys  # never one of our own curves
    for name, keys in (("published", left), ("ours", ours)):
        if len(keys) > MAX_CURVES:
            raise ValueError(f"{len(keys)} {name} curves in one panel (at most {MAX_CURVES}): split the group")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    rd_figure(curves, metric, ax=axes[0], keys=left,
              title="published curves and anchors" if any(curves[k]["origin"] == "reference" for k in left)
              else "anchors (classical codecs)")
    if not left:
        axes[0].text(0.5, 0.5, "no published curve for this dataset", ha="center", va="center",
                     transform=axes[0].transAxes)
    names = {k: curves[k]["name"] for k in ours}
    for k in ours:  # the legend says how long each model trained
        note = training_note(k)
        curves[k] = {**curves[k], "name": f"{k} ({note})" if note else names[k]}
    try:
        rd_figure(curves, metric, ax=axes[1], keys=ours,
                  title="ours: smoke check (minutes of CPU training)" if smoke else "ours")
    finally:
        for k in ours:
            curves[k] = {**curves[k], "name": names[k]}
    from matplotlib.transforms import offset_copy

    for ax in axes:  # legends under the plots, a fixed distance below the axis label: the curves stay visible
        if ax.get_legend_handles_labels()[0]:
            below = offset_copy(ax.transAxes, fig=fig, y=-LEGEND_OFFSET_PT, units="points")
            ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below,
                      ncol=1, borderaxespad=0.0)
    if not ours:
        axes[1].text(0.5, 0.5, "not evaluated in this run", ha="center", va="center", transform=axes[1].transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
