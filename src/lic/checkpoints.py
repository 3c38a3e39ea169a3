"""Reading lic checkpoint files without running code from them.

A ``.pt`` file is a zip archive around a pickle, and a pickle can call any Python function while it is read.
Every lic checkpoint (``model.pt``, ``last.pt``, imported weights) is therefore read with
``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which rebuilds tensors and plain data
(dict, list, tuple, str, bytes, numbers, None) and refuses any other global unless it is allow-listed.

What the project writes needs no allow-list, with one exception: the resumable training state
(``last.pt``) written before this module stored numpy's RNG state as an ``ndarray``; :func:`load` with
``numpy_rng=True`` (train's resume only) admits exactly the four numpy globals that rebuild a
``uint32`` array (:data:`NUMPY_ARRAY_GLOBALS`). :func:`lic.train._rng_state` now stores that state as a
list, so new files need none.

A refused file is a one-line :class:`CheckpointError` naming the globals that would have been called;
a file that is not a checkpoint at all (text, image, empty, truncated) is a one-line error too.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, unsafe or not a lic checkpoint."""


#: numpy.ndarray rebuilt from its pickle (numpy's RNG state in ``last.pt`` files written before the list form)
NUMPY_ARRAY_GLOBALS = (np.core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32)))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0]}" if text else type(e).__name__


def load(path: str | Path, map_location="cpu", *, numpy_rng: bool = False, mmap: bool = False,
         what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)`` with one-line errors. ``numpy_rng``: also admit numpy's
    ``uint32`` arrays (the RNG state of ``last.pt`` files written before it was stored as a list)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder, not a file")
    if not zipfile.is_zipfile(path):  # every file torch.save writes is a zip archive
        size = path.stat().st_size
        kind = "empty file" if size == 0 else f"{size} bytes, not a complete zip archive: truncated, or no checkpoint"
        raise CheckpointError(f"cannot read {what} {path}: not a PyTorch checkpoint ({kind})")
    allowed = list(NUMPY_ARRAY_GLOBALS) if numpy_rng else []
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:
        unsafe = _unsafe_globals(path, allowed)
        if unsafe:
            raise CheckpointError(
                f"refused to load {what} {path}: its pickle would call {', '.join(unsafe[:5])}"
                f"{' …' if len(unsafe) > 5 else ''}, which can run arbitrary code; lic checkpoints hold only "
                f"tensors and plain data. Use only checkpoints from a source you trust") from None
        raise CheckpointError(f"cannot read {what} {path}: {_first_line(e)}") from e


def _unsafe_globals(path: Path, allowed: list) -> list[str]:
    """The globals the file's pickle names that the restricted unpickler refuses (read without running it)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # a damaged archive: reported as unreadable
        return []
    ok = {f"{g.__module__}.{g.__qualname__}" for g in allowed}
    return [n for n in names if n not in ok]
