"""Building blocks of the papers' tables and figures, read only from result files.

* :func:`bd` — one BD-rate cell between two of our curves (NaN plus a reason when it cannot be computed or
  when the curves are not comparable, :func:`lic.bdrate.comparability`);
* :func:`complexity_of` — the params / kMACs record of a model in ``results/complexity.json`` for a profile;
* :func:`visual_comparison` — crops of decoded images (kept by evaluation for ``evaluate.visual_images``)
  labelled with the bpp and PSNR of their result files;
* :func:`paper_table` — a transcribed table of ``data/reference/tables`` as a DataFrame.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lic import paths, reference
from lic.bdrate import bd_rate, comparability
from lic.results import reconstruction_path, result_path


def bd(curves: dict, key: str, anchor: str, metric: str = "psnr-rgb", method: str = "pchip") -> tuple[float, str]:
    """BD-rate (%) of ``curves[key]`` against ``curves[anchor]``; ``(nan, reason)`` when impossible."""
    for k in (key, anchor):
        if k not in curves:
            return math.nan, f"no result for {k}"
        if metric not in curves[k]["results"]:
            return math.nan, f"{k} has no {metric}"
    a, b = curves[anchor]["results"], curves[key]["results"]
    try:
        value = bd_rate(a["bpp"], a[metric], b["bpp"], b[metric], method=method)
        why = comparability(a["bpp"], a[metric], b["bpp"], b[metric])
    except ValueError as exc:
        return math.nan, str(exc)
    return (math.nan, why) if why else (value, "")


def load_complexity() -> list[dict]:
    path = paths.RESULTS / "complexity.json"
    return json.loads(path.read_text())["models"] if path.exists() else []


def complexity_of(records: list[dict], key: str, profile: str = "paper") -> dict:
    """The complexity record of ``key`` with the kwargs of ``profile`` (``{}`` when not measured)."""
    for r in records:
        if r.get("model") == key and r.get("profile") == profile:
            return r
    return {}


def paper_table(name: str) -> pd.DataFrame:
    t = reference.load_table(name)
    return pd.DataFrame(t["rows"])


def _per_image(key: str, dataset: str, quality, image: str) -> dict:
    path = result_path(dataset, key)
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    for row in doc.get("per_image", []):
        if row["image"] == image and row["quality"] == quality:
            return row
    return {}


def visual_comparison(dataset: str, image: str, entries: list[tuple[str, object]], crop: tuple[int, int, int, int] | None = None,
                      out: str | Path | None = None, title: str | None = None):
    """Original and decoded crops side by side: ``entries`` = [(key, quality), ...].

    ``crop`` = (top, left, height, width) in pixels (default: the centre quarter). Decoded images come from
    ``results/<key>/recon/<dataset>/q<quality>/<image>.png`` (written by evaluation / the anchors for the
    images of ``evaluate.visual_images``); each label shows bpp (file bytes) and PSNR of the result file.
    An entry without a decoded image is drawn as a grey panel saying so.
    """
    import matplotlib.pyplot as plt
    from PIL import Image

    from lic.data.prepare import load_manifest

    files = {f.stem: f for f in load_manifest(dataset)}
    if image not in files:
        raise KeyError(f"{image!r} is not in the manifest of {dataset!r} ({', '.join(sorted(files))})")
    with Image.open(files[image]) as im:
        original = np.asarray(im.convert("RGB"))
    h, w = original.shape[:2]
    top, left, ch, cw = crop or (h // 4, w // 4, h // 2, w // 2)
    panels = [("original", original, "")]
    for key, q in entries:
        path = reconstruction_path(key, dataset, q, image)
        row = _per_image(key, dataset, q, image)
        if path.exists():
            with Image.open(path) as im:
                rec = np.asarray(im.convert("RGB"))
            label = f"{row.get('bpp', math.nan):.3f} bpp, {row.get('psnr-rgb', math.nan):.2f} dB" if row else ""
            panels.append((f"{key} q{q}", rec, label))
        else:
            panels.append((f"{key} q{q}", None, "not evaluated"))
    # each panel as tall as its crop (no blank band above a landscape crop); constrained layout leaves room
    # for the two-line panel titles and the figure title
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2 * ch / cw + 0.9), squeeze=False,
                             layout="constrained")
    for ax, (name, img, label) in zip(axes[0], panels):
        if img is None:
            ax.imshow(np.full((ch, cw, 3), 200, np.uint8))
        else:
            ax.imshow(img[top:top + ch, left:left + cw])
        ax.set_title(f"{name}\n{label}", fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120, bbox_inches="tight")
    return fig


def closest_quality(key: str, dataset: str, image: str, bpp: float) -> object | None:
    """The quality of ``key`` whose file for ``image`` is closest to ``bpp`` (for matched-rate figures)."""
    path = result_path(dataset, key)
    if not path.exists():
        return None
    rows = [r for r in json.loads(path.read_text()).get("per_image", []) if r["image"] == image]
    return min(rows, key=lambda r: abs(r["bpp"] - bpp))["quality"] if rows else None
