"""Placeholder outputs of train stages whose quality the active profile does not train.

DVC's matrix axis (``train.qualities``) is the same for both profiles, but the default profile trains only
``train.default.active_qualities``. The stage of any other quality still has to produce its declared
outputs; it writes these small JSON files instead of checkpoints, without importing torch (so the stage takes
a fraction of a second). Every reader of checkpoints recognises them with :func:`is_placeholder`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MAGIC = b'{"lic_placeholder"'


def is_placeholder(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def write_inactive(out_dir: Path, key: str, quality: int, profile: str, active: list[int]) -> Path:
    """``model.pt``, ``run.json``, ``dvclive/`` (and ``last.pt`` unless a real one exists) of an untrained quality."""
    out_dir.mkdir(parents=True, exist_ok=True)
    note = {"lic_placeholder": True, "inactive": True, "model": key, "quality": quality, "profile": profile,
            "active_qualities": active}
    text = json.dumps(note) + "\n"
    for name in ("model.pt", "last.pt"):
        path = out_dir / name
        if name == "last.pt" and path.exists() and not is_placeholder(path):
            continue  # the resumable state of an earlier real run (another profile) is kept
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    (out_dir / "dvclive").mkdir(exist_ok=True)
    (out_dir / "run.json").write_text(json.dumps(note, indent=1) + "\n")
    return out_dir / "model.pt"


class InactiveQuality(ValueError):
    """``lic train --out DIR`` for a quality the profile does not train (a one-line error)."""


def skip(key: str, quality: int, profile: str, active: list[int], out_dir: str | Path | None = None) -> Path:
    """What ``lic train`` does for a quality the profile does not train: the placeholders in the run's
    folder (``checkpoints/<key>/q<quality>``) and one line saying so. Used by the CLI (which then never
    imports torch) and by :func:`lic.train.main`.

    ``out_dir`` (``lic train --out DIR``, a run outside the pipeline) raises :class:`InactiveQuality`
    instead: such a run exists to produce weights in DIR, a placeholder there would be a model.pt that
    no command can load, and one in the pipeline's folder would be written where the user did not ask."""
    from lic import paths

    if out_dir is not None:
        raise InactiveQuality(f"{key} q{quality} is not trained by profile {profile!r} (active qualities "
                              f"{list(active)}): nothing written to {out_dir}; use a profile that trains it "
                              f"(--profile paper) or add {quality} to train.{profile}.active_qualities")
    path = write_inactive(paths.CHECKPOINTS / key / f"q{quality}", key, quality, profile, active)
    print(f"[train] {key} q{quality}: not trained by profile {profile!r} (active qualities {list(active)}); "
          f"placeholder {path}")
    return path
