"""Miniatures of the registered datasets, laid out like the real downloads (same file names, the same
archive folders), for a 127.0.0.1 mirror (``LIC_DATA_MIRROR``, lic.data.prepare)."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
from PIL import Image

from lic.data import registry


def png(w: int, h: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _member(pattern: str, i: int) -> str:
    return pattern.replace("**/", "x/").replace("*", f"{i:04d}")


def files(names: list[str], images: int = 2, size: int = 288) -> dict[str, bytes]:
    """``{"<dataset>/<file>": bytes}`` for every remote file of ``names`` plus each one's SHA256SUMS: an
    archive holds ``images`` PNGs of ``size``² at its real member path; a single-file set (Kodak) gets a small
    PNG under each of its names."""
    out: dict[str, bytes] = {}
    for name in names:
        ds = registry.get(name)
        sums = []
        for k, f in enumerate(ds.files):
            if f.extract:
                buf = io.BytesIO()
                with zipfile.ZipFile(buf, "w") as zf:
                    for i in range(images):
                        zf.writestr(_member(ds.members, i + 1), png(size, size, 100 * k + i))
                data = buf.getvalue()
            else:
                data = png(48, 32, k)
            out[f"{name}/{f.name}"] = data
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {f.name}")
        out[f"{name}/SHA256SUMS"] = ("\n".join(sums) + "\n").encode()
    return out
