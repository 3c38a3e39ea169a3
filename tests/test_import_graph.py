"""src/lic has no import circles: the graph of `import lic...` statements (module level and inside
functions alike: a deferred import still ties the two modules together) has no strongly connected
component of more than one module, and no module imports itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(src: Path, package: str = "lic") -> dict[str, set[str]]:
    """module -> the package's modules it imports. ``from a.b import c`` is an edge to ``a.b.c`` when
    that is a module, else to ``a.b``; relative imports are resolved against the importing module."""
    files = {module_name(p, src): p for p in (src / package).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            for t in targets:
                while t and t not in files:  # `import lic.models.hpcm.x` style: the longest known prefix
                    t = t.rpartition(".")[0]
                if t and t.split(".")[0] == package:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, and modules importing themselves
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1 or node in graph[node]:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_circle(tmp_path):
    pkg = tmp_path / "lic"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("def f():\n    from lic.bench import g\n")
    (pkg / "bench.py").write_text("from lic import warm\n")
    (pkg / "warm.py").write_text("from lic.cli import f\n")
    (pkg / "models" / "base.py").write_text("from .variant import V\n")
    (pkg / "models" / "variant.py").write_text("from lic.models.base import B\n")
    (pkg / "solo.py").write_text("import lic.solo\n")
    (pkg / "fine.py").write_text("from lic.models import base\nimport lic.cli\n")
    found = cycles(import_graph(tmp_path))
    assert sorted(found) == [["lic.bench", "lic.cli", "lic.warm"], ["lic.models.base", "lic.models.variant"],
                             ["lic.solo"]]


def test_src_lic_has_no_import_circles():
    graph = import_graph(SRC)
    assert len(graph) > 20 and graph["lic.cli"], "the walk found src/lic's modules and their imports"
    found = cycles(graph)
    if found:
        pytest.fail("import circles in src/lic: " + "; ".join(" <-> ".join(c) for c in found))


def deferred_imports(src: Path, package: str = "lic") -> list[tuple[str, int, str, str]]:
    """(file, line, module, name) of every ``from lic... import name`` inside a function body: these run only
    when the function does, so a name moved to another module breaks them without failing any import."""
    found = set()  # a set: an import in a nested function is met once per enclosing function
    for path in sorted((src / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == package:
                    found.update((str(path.relative_to(src)), node.lineno, node.module, a.name) for a in node.names)
    return sorted(found)


def test_every_deferred_import_resolves():
    """`python -m lic.fuzz` once failed at its first line of work: its deferred import still named
    lic.cli for a function that had moved to lic.quiet."""
    import importlib

    deferred = deferred_imports(SRC)
    missing = []
    for file, line, module, name in deferred:
        mod = importlib.import_module(module)
        if not hasattr(mod, name):
            try:
                importlib.import_module(f"{module}.{name}")  # a submodule
            except ModuleNotFoundError:
                missing.append(f"{file}:{line}: from {module} import {name}")
    assert len(deferred) > 50 and not missing, "\n".join(missing)


def test_every_module_imports():
    """Each module of src/lic imports on its own (entry points like `python -m lic.bench_natten` included),
    and each with a ``main`` answers ``--help``."""
    import contextlib
    import importlib
    import inspect
    import io

    failed = []
    for path in sorted((SRC / "lic").rglob("*.py")):
        name = module_name(path, SRC)
        try:
            mod = importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 - collected and reported together
            failed.append(f"{name}: {type(e).__name__}: {e}")
            continue
        main = getattr(mod, "main", None)
        if callable(main) and getattr(main, "__module__", None) == name and "argv" in inspect.signature(main).parameters:
            with contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exit_:
                main(["--help"])
            if exit_.value.code != 0:
                failed.append(f"{name}: --help exited {exit_.value.code}")
    assert not failed, "\n".join(failed)
