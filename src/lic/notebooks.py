"""Execute a notebook with papermill as a pipeline stage: ``lic notebook NAME``.

The source notebook (``notebooks/NAME.ipynb``, committed without outputs) is executed with
``out_dir=reports/NAME``; the executed copy and every figure/table it saves land there.
"""

from __future__ import annotations

from pathlib import Path

from lic import paths


def run(name: str, out_dir: str | Path | None = None, parameters: dict | None = None) -> Path:
    import papermill

    src = paths.NOTEBOOKS / f"{name}.ipynb"
    if not src.exists():
        known = ", ".join(sorted(p.stem for p in paths.NOTEBOOKS.glob("*.ipynb")))
        raise FileNotFoundError(f"no notebook {src}; known: {known}")
    out_dir = Path(out_dir or paths.ROOT / "reports" / name)
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / f"{name}.ipynb"
    papermill.execute_notebook(str(src), str(executed), kernel_name="python3", cwd=str(paths.NOTEBOOKS),
                               parameters={"out_dir": str(out_dir), **(parameters or {})},
                               progress_bar=False)
    return executed
