"""Result files: one JSON per (model or codec, dataset), per image and averaged per quality.

The file follows CompressAI's results schema (``name``, ``description``, ``meta``, and ``results``
with parallel lists, one entry per quality, averaged over the images) and adds our fields:

* ``results``: ``quality``, ``bpp`` (from file bytes), ``bpp_estimated`` (from likelihoods; null for
  classical codecs), ``psnr-rgb``, ``ms-ssim-rgb``, ``ms-ssim-db-rgb``, ``encoding_time``,
  ``decoding_time`` (seconds per image);
* ``per_image``: one row per (quality, image) with the same fields plus ``image``, ``bytes``, ``pixels``;
* ``run``: resolved params, git sha, versions and device (:mod:`lic.runinfo`).

Path: ``results/<key>/<dataset>.json`` (one DVC output folder per model or codec). Tables and figures are rendered only from these files.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from lic import paths

AVERAGED = ("bpp", "bpp_payload", "bpp_estimated", "bpp_estimated_capped", "psnr-rgb", "ms-ssim-rgb", "ms-ssim-db-rgb", "mse-rgb",
            "psnr-y", "psnr-yuv420", "encoding_time", "decoding_time")
ROW_REQUIRED = ("image", "quality", "bytes", "pixels", "bpp", "psnr-rgb", "ms-ssim-rgb",
                "encoding_time", "decoding_time")


def result_path(dataset: str, key: str, root: Path | None = None) -> Path:
    """``results/<key>/<dataset>.json`` (``root``: another folder than ``results/``, e.g. an evaluation
    of imported weights outside the pipeline)."""
    return Path(root or paths.RESULTS) / key / f"{dataset}.json"


def reconstruction_path(key: str, dataset: str, quality, image: str, root: Path | None = None) -> Path:
    """Where evaluation keeps the decoded image of one of ``evaluate.visual_images`` (for the figures)."""
    return Path(root or paths.RESULTS) / key / "recon" / dataset / f"q{quality}" / f"{image}.png"


def save_reconstruction(key: str, dataset: str, quality, image: str, recon, root: Path | None = None) -> Path:
    from PIL import Image

    path = reconstruction_path(key, dataset, quality, image, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(recon).save(path)
    return path


def _mean(values: list) -> float | None:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def summarise(rows: list[dict]) -> dict[str, list]:
    """Average the per-image rows per quality (sorted by quality) into CompressAI's parallel lists."""
    for r in rows:
        missing = [k for k in ROW_REQUIRED if k not in r]
        if missing:
            raise ValueError(f"result row for {r.get('image')!r} lacks {missing}")
    by_q: dict = defaultdict(list)
    for r in rows:
        by_q[r["quality"]].append(r)
    qualities = sorted(by_q)
    out: dict[str, list] = {"quality": qualities}
    for key in AVERAGED:
        out[key] = [_mean([r.get(key) for r in by_q[q]]) for q in qualities]
    out["images"] = [len(by_q[q]) for q in qualities]
    return out


def write_results(dataset: str, key: str, rows: list[dict], *, description: str = "",
                  meta: dict | None = None, run: dict | None = None, path: Path | None = None,
                  extra: dict | None = None) -> Path:
    """Write the result file of ``key`` on ``dataset`` (atomically, whole) and return its path."""
    path = path or result_path(dataset, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"name": key, "description": description,
           "meta": {"source": "lic-repro", "type": "image", "dataset": dataset, **(meta or {})},
           "results": summarise(rows), "per_image": rows, "run": run, **(extra or {})}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=_json_default, allow_nan=True) + "\n")
    tmp.replace(path)
    return path


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def read_results(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())
