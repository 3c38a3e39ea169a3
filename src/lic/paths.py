"""Where things live. Notebooks, stages and tests take paths from here, never from the cwd.

``ROOT`` is the repository root: ``$LIC_ROOT`` if set, else the checkout this package was installed
from (editable install), else the first parent of the working directory holding ``params.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path


def _find_root() -> Path:
    if env := os.environ.get("LIC_ROOT"):
        return Path(env).resolve()
    source_tree = Path(__file__).resolve().parents[2]
    if (source_tree / "params.yaml").exists():
        return source_tree
    for parent in [Path.cwd(), *Path.cwd().parents]:
        if (parent / "params.yaml").exists():
            return parent
    raise FileNotFoundError("cannot find the lic-repro checkout (no params.yaml above the working "
                            "directory); set LIC_ROOT to the repository root")


ROOT = _find_root()
DATA = ROOT / "data"
REFERENCE = DATA / "reference"
PARAMS = ROOT / "params.yaml"
RESULTS = ROOT / "results"
CHECKPOINTS = ROOT / "checkpoints"
NOTEBOOKS = ROOT / "notebooks"
