"""``lic launch --plan``: what the training stages cost, in GPU-hours, before anything runs.

Each training stage's steps come from its recipe (:func:`lic.train.recipe` for the chosen profile; 0 for a
quality the profile does not train). Its speed is a measured steps/s when a benchmark record exists for that
model with the profile's batch and patch on a GPU (``results/bench/*.json``, ``data/bench/**/*.json``, written
by ``lic bench``), else the HPCM supplement's Table A (one RTX 3090, batch 8, 256²). Every row names its
source; a model Table A does not list is priced at the row of its closest relative, marked "assumed".
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lic import paths

TABLE_A = "hpcm-suppl-table-a"
#: registry-key prefix -> (Table A row, why that row); first match wins
TABLE_A_ROWS = (
    ("li2025-hpcm-large", "HPCM-Large", ""),
    ("li2025-hpcm-", "HPCM-Base", ""),
    ("liu2023-tcm-", "TCM", ""),
    ("kuang2025-cgoo", "TCM", "assumed: CGOO trains the TCM network plus its own modules"),
    ("lu2022-tinylic-", "STF", "assumed: TinyLIC is not in Table A; STF, a windowed-attention transformer"),
    ("minnen2018-", "ELIC", "assumed: minnen2018 is not in Table A; ELIC, its fastest CNN"),
)
_CMD = re.compile(r"^lic train (\S+) (?:--base|--quality (\d+))")


def stage_run(cmd: str) -> tuple[str, int | str] | None:
    """``(model, quality)`` of a ``lic train`` stage command (quality ``"base"`` for ``--base``)."""
    m = _CMD.match(cmd)
    if not m:
        return None
    return m.group(1), (int(m.group(2)) if m.group(2) else "base")


def steps_of(params: dict, key: str, quality: int | str) -> tuple[int, int, int]:
    """``(steps, batch, patch)`` of one training run (steps 0: the profile does not train it)."""
    from lic.train import is_active, recipe

    if not is_active(params, quality):
        return 0, 0, 0
    t = recipe(params, key, quality)["train"]
    steps = sum(int(v) for v in t["stages"].values()) if t["stages"] else int(t["steps"])
    return steps, int(t["batch_size"]), int(t["patch_size"])


def measured(profile: str, roots: list[Path] | None = None) -> dict[tuple[str, int, int], tuple[float, str]]:
    """``(model, batch, patch) -> (steps/s, source)`` from benchmark records of this profile on a GPU
    (the newest record wins)."""
    roots = roots if roots is not None else [paths.ROOT / "results" / "bench", paths.ROOT / "data" / "bench"]
    found: dict[tuple[str, int, int], tuple[str, float, str]] = {}
    for root in roots:
        for f in sorted(Path(root).rglob("*.json")) if Path(root).is_dir() else []:
            try:
                doc = json.loads(f.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError, OSError):
                continue
            if not isinstance(doc, dict) or doc.get("profile") != profile:
                continue
            if not str(doc.get("torch_device", "")).startswith("cuda"):
                continue
            for rec in doc.get("models", []):
                tr = rec.get("training") or {}
                if not tr.get("steps_per_s"):
                    continue
                k = (rec.get("model"), int(tr.get("batch", 0)), int(tr.get("patch", 0)))
                date = str(doc.get("date", ""))
                rel = f.relative_to(paths.ROOT) if f.is_relative_to(paths.ROOT) else f
                if k not in found or date > found[k][0]:
                    found[k] = (date, float(tr["steps_per_s"]), f"measured on {doc.get('device_name')} ({rel})")
    return {k: (v[1], v[2]) for k, v in found.items()}


def table_a() -> dict[str, float]:
    from lic.reference import load_table

    return {r["model"]: float(r["train_steps_per_s"]) for r in load_table(TABLE_A)["rows"]}


def paper_speed(key: str, table: dict[str, float]) -> tuple[float, str] | None:
    for prefix, row, why in TABLE_A_ROWS:
        if key.startswith(prefix) and row in table:
            src = f"Table A {row} (RTX 3090)" + (f"; {why}" if why else "")
            return table[row], src
    return None


def plan(stages, params: dict, bench_roots: list[Path] | None = None) -> tuple[list[dict], float]:
    """One row per training stage among ``stages`` (``lic.launch.graph.Stage``) and the total GPU-hours."""
    meas, table = measured(params["profile"], bench_roots), table_a()
    rows, total = [], 0.0
    for st in stages:
        run = stage_run(st.cmd)
        if run is None:
            continue
        key, q = run
        steps, batch, patch = steps_of(params, key, q)
        row = {"stage": st.address, "model": key, "quality": q, "steps": steps, "steps_per_s": None,
               "gpu_hours": 0.0, "source": "not trained by this profile" if not steps else ""}
        if steps:
            speed = meas.get((key, batch, patch)) or paper_speed(key, table)
            if speed is None:
                row["source"] = "no measured or published speed: not priced"
            else:
                row["steps_per_s"], row["source"] = speed
                row["gpu_hours"] = steps / speed[0] / 3600
                total += row["gpu_hours"]
        rows.append(row)
    return rows, total


def render(rows: list[dict], total: float, profile: str) -> str:
    w = max([len(r["stage"]) for r in rows] + [5])
    lines = [f"{'stage':{w}s} {'steps':>9s} {'steps/s':>8s} {'GPU-h':>8s}  speed source  [profile {profile}]"]
    for r in rows:
        sps = f"{r['steps_per_s']:.2f}" if r["steps_per_s"] else "-"
        lines.append(f"{r['stage']:{w}s} {r['steps']:9d} {sps:>8s} {r['gpu_hours']:8.2f}  {r['source']}")
    lines.append(f"total: {total:.0f} GPU-hours" if total >= 10 else f"total: {total:.2f} GPU-hours")
    return "\n".join(lines)
