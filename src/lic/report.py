"""Tables and figures, rendered only from result files (manifests, result JSONs, run records).

Notebooks call these functions and display what they return; they compute nothing themselves.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lic import paths
from lic.config import load_params
from lic.data import registry


def dataset_table(profile: str | None = None) -> pd.DataFrame:
    """One row per registered dataset: its role in the profile, image count and pixels (from manifests)."""
    params = load_params(profile=profile)
    rows = []
    for name, ds in registry.DATASETS.items():
        role = "train" if name == params["data"]["train"] else "eval" if name in params["data"]["eval"] else "-"
        mpath = paths.DATA / "manifests" / f"{name}.json"
        manifest = json.loads(mpath.read_text()) if mpath.exists() else None
        images = manifest["images"] if manifest else []
        rows.append({
            "dataset": name,
            "role": role,
            "source": "network" if ds.needs_network else "scikit-image",
            "prepared": "no manifest" if manifest is None else ("yes" if manifest.get("used", True) else "unused"),
            "images": len(images),
            "megapixels": round(sum(e["width"] * e["height"] for e in images) / 1e6, 2),
            "license": ds.license,
        })
    return pd.DataFrame(rows).set_index("dataset")


def image_grid(name: str, max_images: int = 8, out: str | Path | None = None):
    """A figure with the images of dataset ``name`` (from its manifest), titled with their sizes."""
    import matplotlib.pyplot as plt
    from PIL import Image

    from lic.data.prepare import load_manifest

    files = load_manifest(name)[:max_images]
    fig, axes = plt.subplots(1, len(files), figsize=(3 * len(files), 3), squeeze=False)
    for ax, f in zip(axes[0], files):
        with Image.open(f) as im:
            ax.imshow(im.convert("RGB"))
            ax.set_title(f"{f.stem}\n{im.width}×{im.height}", fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120, bbox_inches="tight")
    return fig


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as a reader should see it: a BD-rate that could not be computed reads ``n/a: <a few words>``
    (from the row's ``note``/``notes``: ``column: reason`` pairs, or one reason shortened by
    :func:`lic.bdrate.short_reason`), any other missing value ``n/a``, and the notes shortened the same
    way. Numbers are left as they are."""
    from lic.bdrate import short_reason

    out = df.copy()
    note_cols = [c for c in out.columns if str(c) in ("note", "notes")]
    notes = list(out[note_cols[0]]) if note_cols else [""] * len(out)
    columns = {str(c) for c in out.columns}

    def pairs(text) -> dict[str, str]:
        parts = [p.split(": ", 1) for p in text.split("; ")] if isinstance(text, str) and text else []
        return {p[0]: p[1] for p in parts} if parts and all(len(p) == 2 and p[0] in columns for p in parts) else {}

    def short(text) -> str:
        if not isinstance(text, str) or not text:
            return ""
        per = pairs(text)
        return "; ".join(f"{k}: {short_reason(v)}" for k, v in per.items()) if per else short_reason(text)

    for c in out.columns:
        if str(c) in ("note", "notes") or not out[c].isna().any():
            continue
        col = out[c].astype(object)
        is_bd = "bd" in str(c).lower()
        for i, (v, n) in enumerate(zip(out[c], notes)):
            if v is None or (isinstance(v, float) and v != v):
                why = pairs(n).get(str(c)) or (n if is_bd and isinstance(n, str) else "")
                col.iloc[i] = f"n/a: {short_reason(why)}" if why else "n/a"
        out[c] = col
    for c in note_cols:
        out[c] = [short(n) for n in out[c]]
    return out


def save_table(df: pd.DataFrame, out_dir: str | Path | None, stem: str) -> pd.DataFrame:
    """Write ``df`` as CSV (the numbers, NaN where none) and Markdown (:func:`readable`) under ``out_dir``
    (nothing when out_dir is None); return the readable table, what a notebook displays."""
    shown = readable(df)
    if out_dir is None:
        return shown
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df.to_csv(out_dir / f"{stem}.csv")
    (out_dir / f"{stem}.md").write_text(shown.to_markdown() if _has_tabulate() else shown.to_string())
    return shown


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
        return True
    except ImportError:
        return False


def environment_table() -> pd.DataFrame:
    """Versions and hardware of this run, for the closing cell of every notebook."""
    from lic.runinfo import device_info, git_sha, package_versions

    rows = {**{f"version: {k}": v for k, v in package_versions().items()},
            **{f"device: {k}": v for k, v in device_info().items()}, "git sha": git_sha()}
    return pd.DataFrame({"value": rows})


def bitstream_check(models: list[str], datasets: list[str]) -> pd.DataFrame:
    """Per (model, dataset, quality): mean bpp of the files, of their coded payload (the file without the
    container header, whose share is ``header_percent``), mean estimated bpp, the gap between payload and
    estimate in percent (the estimate covers the coded symbols only; result files without payload sizes
    use the file bpp), and whether every image decoded to the encoder's reconstruction.

    ``estimate_is_the_encoder`` is False for encoders that optimise what they send per image (CGOO's online
    optimisation): their files are compared with the plain forward's estimate, which they are meant to beat."""
    from lic.results import result_path

    rows = []
    for key in models:
        for ds in datasets:
            path = result_path(ds, key)
            if not path.exists():
                raise FileNotFoundError(f"{path} missing; run `dvc repro evaluate@{key}`")
            doc = json.loads(path.read_text())
            res = doc["results"]
            for i, q in enumerate(res["quality"]):
                per = [r for r in doc["per_image"] if r["quality"] == q]
                payload = (res.get("bpp_payload") or [None] * len(res["quality"]))[i] or res["bpp"][i]
                rows.append({"model": key, "dataset": ds, "quality": q, "bpp": res["bpp"][i],
                             "bpp_payload": payload, "header_percent": 100 * (1 - payload / res["bpp"][i]),
                             "bpp_estimated": res["bpp_estimated"][i],
                             "gap_percent": 100 * (payload / res["bpp_estimated"][i] - 1),
                             "capped_percent": 100 * (res.get("bpp_estimated_capped", [float("nan")] * (i + 1))[i]
                                                      or 0.0) / res["bpp_estimated"][i],
                             "decoded_exactly": all(r.get("decoded_exactly", False) for r in per),
                             "estimate_is_the_encoder": doc.get("meta", {}).get("estimate_is_the_encoder", True),
                             "psnr-rgb": res["psnr-rgb"][i]})
    return pd.DataFrame(rows).set_index(["model", "dataset", "quality"])
