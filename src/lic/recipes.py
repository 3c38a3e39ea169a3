"""Resolved training recipes as files: ``recipes/train/<model>/<base|q1..q6>.json``.

The stage ``recipes`` (``lic recipes``) resolves params.yaml for the active profile once and writes
one small JSON per training run: exactly what :func:`lic.train.recipe` returns (λ of that quality,
the model's kwargs, the merged train settings, the train dataset), or, for a quality the profile
does not train, only that fact. Each train stage depends on its own recipe file instead of on the
params keys it is made from, so

* a stage re-runs exactly when its own recipe changes (editing one model's section re-trains that
  model only; an unchanged file keeps its hash and its stage stays cached), and
* DVC reads params.yaml once per pipeline rather than once per training stage, and ``dvc.lock``
  records a file hash per run instead of a copy of the train section: with ~150 training stages
  this is most of the pipeline's bookkeeping time.

``lic train KEY --quality Q --recipe FILE`` trains from such a file; without ``--recipe`` the
recipe is resolved from params.yaml directly (the same function, the same hash, so a run started
one way resumes the other way).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lic import paths

BASE = "base"
#: the train sections that list models (one DVC stage family each)
MODEL_LISTS = ("reference_models", "hpcm_models", "tinylic_models", "tinylic_vr_models", "tinylic_msr_models",
               "tcm_models", "cgoo_models")


def root() -> Path:
    return paths.ROOT / "recipes"


def path(key: str, quality: int | str, out: Path | None = None) -> Path:
    """``recipes/train/<key>/base.json`` or ``.../q<quality>.json``."""
    return Path(out or root()) / "train" / key / (f"{BASE}.json" if quality == BASE else f"q{quality}.json")


def trained_models(params: dict) -> list[str]:
    keys: list[str] = []
    for lst in MODEL_LISTS:
        keys += [k for k in params["train"][lst] if k not in keys]
    return keys


def resolve(params: dict, key: str, quality: int | str) -> dict:
    """The content of one recipe file."""
    from lic.train import is_active, recipe

    active = is_active(params, quality)
    rec = {"model": key, "quality": quality, "profile": params["profile"], "active": active,
           "active_qualities": list(params["train"]["active_qualities"])}
    if active:
        rec["recipe"] = recipe(params, key, quality)
    return rec


def write_all(params: dict, out: Path | None = None) -> list[Path]:
    """Write every recipe file (all trained models × base and ``train.qualities``); remove stale ones."""
    out = Path(out or root())
    written = []
    for key in trained_models(params):
        for q in [BASE, *params["train"]["qualities"]]:
            p = path(key, q, out)
            text = json.dumps(resolve(params, key, q), indent=1, sort_keys=True) + "\n"
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists() or p.read_text() != text:  # unchanged files keep their mtime too
                tmp = p.with_suffix(".tmp")
                tmp.write_text(text)
                os.replace(tmp, p)
            written.append(p)
    keep = set(written)
    for p in sorted((out / "train").rglob("*.json")):
        if p not in keep:
            p.unlink()
    return written


def read(file: str | Path) -> dict:
    p = Path(file)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such recipe file (run `lic recipes`, the DVC stage `recipes`)")
    return json.loads(p.read_text())
