"""Published reference data: RD curves and paper tables, transcribed into ``data/reference``.

``data/reference/<dataset>/<key>.json`` holds one published RD curve in a CompressAI-like schema
(``name``, ``key``, ``description``, ``meta`` with ``citation``/``source``/``kind``/``opt_metric``,
``results`` with parallel lists sorted by bpp); ``data/reference/tables/<name>.json`` holds one paper
table (``title``, ``citation``, ``source``, ``columns``, ``rows``). The numbers are transcribed facts;
``data/reference/README.md`` lists every file with its source and citation.
"""

from __future__ import annotations

import json
from pathlib import Path

from lic import paths

TABLES = "tables"
METRICS = ("psnr-rgb", "ms-ssim-rgb", "ms-ssim-db-rgb")


def _root() -> Path:
    return paths.REFERENCE


def datasets() -> list[str]:
    """Datasets that have reference curves (folder names under ``data/reference``)."""
    root = _root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != TABLES)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def load_reference(dataset: str, key: str) -> dict:
    """The reference curve ``key`` on ``dataset`` (the whole JSON document)."""
    path = _root() / dataset / f"{key}.json"
    if not path.is_file():
        have = [p.stem for p in sorted((_root() / dataset).glob("*.json"))]
        raise FileNotFoundError(f"no reference curve {key!r} for dataset {dataset!r} at {path}; "
                                f"available: {have or 'none'} (datasets: {datasets()})")
    return _read(path)


def list_references(dataset: str | None = None) -> list[dict]:
    """One summary row per reference curve (of ``dataset``, or of all datasets).

    Row fields: ``dataset``, ``key``, ``name``, ``kind`` (anchor/learned), ``opt_metric``,
    ``metrics`` (which of psnr-rgb / ms-ssim-rgb / ms-ssim-db-rgb it has), ``points``, ``bpp_min``,
    ``bpp_max``, ``citation``, ``source``.
    """
    names = [dataset] if dataset is not None else datasets()
    rows = []
    for ds in names:
        folder = _root() / ds
        if dataset is not None and not folder.is_dir():
            raise FileNotFoundError(f"no reference data for dataset {ds!r} under {_root()}; "
                                    f"available: {datasets()}")
        for path in sorted(folder.glob("*.json")):
            doc = _read(path)
            meta, res = doc.get("meta", {}), doc.get("results", {})
            bpp = res.get("bpp", [])
            rows.append({"dataset": ds, "key": path.stem, "name": doc.get("name", path.stem),
                         "kind": meta.get("kind"), "opt_metric": meta.get("opt_metric"),
                         "metrics": [m for m in METRICS if m in res], "points": len(bpp),
                         "bpp_min": min(bpp) if bpp else None, "bpp_max": max(bpp) if bpp else None,
                         "citation": meta.get("citation"), "source": meta.get("source")})
    return rows


def list_tables() -> list[str]:
    """Names of the transcribed paper tables."""
    return sorted(p.stem for p in (_root() / TABLES).glob("*.json"))


def load_table(name: str) -> dict:
    """The paper table ``name`` (``rows`` is a list of dicts, ready for ``pandas.DataFrame``)."""
    path = _root() / TABLES / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no reference table {name!r} at {path}; available: {list_tables()}")
    return _read(path)
