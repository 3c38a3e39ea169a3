"""The pipeline's stages and their dependencies, read from DVC's own graph (``Repo.index.graph``).

Nothing here knows a paper: a TinyLIC-MSR quality waits for the TinyLIC v3 of that quality because its
stage lists that model file as a dependency, exactly as ``dvc repro`` sees it.
"""

from __future__ import annotations

import fnmatch
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Stage:
    """One DVC stage: its address (``[dvcfile:]name``, what ``dvc commit``/``dvc status`` take), its
    command and working directory, and the addresses of the stages it depends on."""

    address: str
    name: str
    cmd: str
    wdir: str
    outs: tuple[str, ...] = ()
    persist: tuple[bool, ...] = ()
    upstream: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_training(self) -> bool:
        return self.cmd.startswith("lic train ")


@contextmanager
def in_root(root: str | Path):
    """DVC resolves stage addresses against the working directory: every DVC call runs from the root."""
    old = os.getcwd()
    os.chdir(root)
    try:
        yield
    finally:
        os.chdir(old)


def load(root: str | Path) -> dict[str, Stage]:
    """Every stage of the repository at ``root`` (all dvc.yaml files), by address (relative to ``root``)."""
    from dvc.repo import Repo

    with in_root(root), Repo(str(root)) as repo:
        graph = repo.index.graph
        out = {}
        for s in graph.nodes:
            if not getattr(s, "cmd", None):
                continue  # a .dvc data source: nothing to run
            up = frozenset(u.addressing for u in graph.successors(s) if getattr(u, "cmd", None))
            outs = tuple(str(o.def_path) for o in s.outs)
            out[s.addressing] = Stage(s.addressing, s.name, s.cmd if isinstance(s.cmd, str) else " && ".join(s.cmd),
                                      s.wdir, outs, tuple(bool(o.persist) for o in s.outs), up)
        return out


def select(stages: dict[str, Stage], targets: list[str]) -> list[str]:
    """Addresses matching ``targets``: stage names or globs (``'train_hpcm@*'``), matched against the
    name and the full address; a target that matches nothing is an error."""
    chosen: list[str] = []
    for t in targets:
        hits = [a for a, s in stages.items() if fnmatch.fnmatchcase(s.name, t) or fnmatch.fnmatchcase(a, t)]
        if not hits:
            raise ValueError(f"no stage matches {t!r} (list them with `dvc stage list --all`)")
        chosen += [a for a in sorted(hits) if a not in chosen]
    return chosen


def closure(stages: dict[str, Stage], chosen: list[str]) -> list[str]:
    """``chosen`` and everything upstream of it, upstream first (a topological order)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(a: str) -> None:
        if a in seen:
            return
        seen.add(a)
        for u in sorted(stages[a].upstream):
            visit(u)
        order.append(a)

    for a in chosen:
        visit(a)
    return order


def changed(root: str | Path, addresses: list[str]) -> set[str]:
    """The addresses among ``addresses`` that ``dvc status`` reports as changed (deps, outs, cmd or
    never run), each judged on its own, with the lock files as they are now."""
    from dvc.repo import Repo

    from lic.launch.state import retry_locked

    def run() -> set[str]:
        out = set()
        with in_root(root), Repo(str(root)) as repo:
            for a in addresses:
                if repo.status(targets=[a], with_deps=False):
                    out.add(a)
        return out

    return retry_locked(root, run)
