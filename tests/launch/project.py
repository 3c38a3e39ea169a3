"""A throw-away copy of this checkout (tracked and new files, no outputs) for the launch tests, with the
reference model's default-profile recipe shrunk so its stages take seconds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from lic import paths

#: the reference model's per-quality schedule in params.yaml, and what the tests train instead: a 40-step
#: base (checkpointed every 5 steps, so a job can be stopped between checkpoints) and 10 steps per quality
SCHEDULE = "      train: {steps: 150, milestones: [110]}"
SHRUNK = "      train: {base_steps: 40, steps: 10, milestones: [8], batch_size: 4, checkpoint_every: 5}"
ACTIVE = "    active_qualities: [1, 2, 4, 6]"


def clone(dest: Path) -> Path:
    """Copy the checkout's files (``git ls-files``: tracked and untracked-but-not-ignored) to ``dest``,
    shrink the reference recipe, two active qualities, and commit it as a new git repository."""
    files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=paths.ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = paths.ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    shutil.copytree(paths.ROOT / ".dvc", dest / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"),
                    dirs_exist_ok=True)
    text = (dest / "params.yaml").read_text()
    assert text.count(SCHEDULE) == 1 and text.count(ACTIVE) == 1, "params.yaml changed: update tests/launch/project.py"
    (dest / "params.yaml").write_text(text.replace(SCHEDULE, SHRUNK).replace(ACTIVE, "    active_qualities: [1, 6]"))
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run(git + ["init", "-q"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-qm", "test copy"], cwd=dest, check=True)
    return dest


def env(root: Path, extra: dict | None = None) -> dict:
    """The environment of a command run in the copy: its ``lic`` is this checkout's code (PYTHONPATH),
    its project root the copy (LIC_ROOT), this interpreter's scripts first on PATH."""
    e = dict(os.environ)
    e.pop("LIC_WARM", None)
    e.update(LIC_ROOT=str(root), PYTHONPATH=str(paths.ROOT / "src"), PYTHONHASHSEED="0",
             PATH=f"{Path(sys.executable).parent}:{e.get('PATH', '')}", OMP_NUM_THREADS="1")
    e.update(extra or {})
    return e


def run(cmd: list[str], root: Path, extra: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=root, env=env(root, extra), capture_output=True, text=True, timeout=timeout)
