"""No import circles among llm modules: a module never imports one that imports it back.

Read from the source with ast, so imports inside functions count too (a lazy
import still ties the two modules together, it only hides the circle from
Python). An edge A -> B is any `import B[.x]` or `from B import x` anywhere
in A, B being the longest llm module named; `from P import m` imports the
submodule P.m when there is one, else the package P (its `__init__`, which
counts as importing whatever it imports). Importing P.m also runs P's
`__init__`, but that edge is Python's, not the module's: counting it would
make every package that re-exports its submodules a circle.
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = "llm"


def module_files(root: pathlib.Path = ROOT, package: str = PACKAGE) -> dict[str, pathlib.Path]:
    """Dotted module name -> source file, for every module of `package`."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: set[str]) -> str | None:
    """The longest prefix of dotted `name` that is one of `modules`."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: pathlib.Path, modules: set[str]) -> set[str]:
    """The modules of `modules` that `module` imports anywhere in its source."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                # `from . import x` in a package's __init__ is relative to the
                # package itself; in a module, to the module's package.
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            resolved = _resolve(target, modules)
            if resolved and resolved != module:
                out.add(resolved)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the llm modules it imports."""
    files = module_files()
    names = set(files)
    return {m: imports_of(m, p, names) for m, p in files.items()}


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of `graph` with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _cycle_through(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One shortest circle within `component`, starting and ending at its first module."""
    inside = set(component)
    start = component[0]
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & inside):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if w not in parents:
                    parents[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{component} is not strongly connected")


def find_cycles(graph: dict[str, set[str]]) -> dict[tuple[str, ...], list[str]]:
    """Each import circle's modules (sorted) -> one circle through them."""
    return {tuple(c): _cycle_through(graph, c) for c in _strongly_connected(graph)}


def test_finds_a_lazy_cycle(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from pkg.a import f\n")
    (pkg / "a.py").write_text("from pkg import b\n\ndef f():\n    pass\n")
    (pkg / "b.py").write_text("def g():\n    from pkg.a import f\n")
    (pkg / "c.py").write_text("from pkg import f\n")
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("from . import d\n")
    (pkg / "sub" / "d.py").write_text("import os\nfrom .. import c\nimport pkg.sub.d\n")
    files = module_files(tmp_path, "pkg")
    graph = {m: imports_of(m, p, set(files)) for m, p in files.items()}
    assert graph["pkg"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg"}
    assert graph["pkg.sub"] == {"pkg.sub.d"}
    assert graph["pkg.sub.d"] == {"pkg.c"}
    assert find_cycles(graph) == {("pkg.a", "pkg.b"): ["pkg.a", "pkg.b", "pkg.a"]}


def test_llm_has_no_import_cycles():
    cycles = find_cycles(import_graph())
    assert not cycles, "Import circles among llm modules:\n" + "\n".join(
        " -> ".join(c) for c in cycles.values()
    )
