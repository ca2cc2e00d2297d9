"""No import cycle between the plugin's modules (ui/dock.py <-> ui/run_controller.py was one):
every import counts, also those inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "gis", "ui", "processing")


def _module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, node: ast.ImportFrom, names: list[str], known: set[str]) -> set[str]:
    """The plugin modules an ``import``/``from ... import`` names (``from . import x`` may name a module)."""
    if node.level:
        base = module.split(".")[: len(module.split(".")) - node.level + (1 if module in PACKAGES else 0)]
        target = ".".join([*base, *(node.module.split(".") if node.module else [])])
    else:
        target = (node.module or "").removeprefix("openeo_tile_jobs.")
    found = {f"{target}.{n}" for n in names if f"{target}.{n}" in known}
    return found | ({target} if target in known and not found else set())


def _graph() -> dict[str, set[str]]:
    files = {_module_of(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    known = set(files)
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                graph[module] |= _resolve(module, node, [a.name for a in node.names], known)
            elif isinstance(node, ast.Import):
                graph[module] |= {a.name.removeprefix("openeo_tile_jobs.") for a in node.names} & known
        graph[module].discard(module)
        graph[module] -= {m for m in graph[module] if module.startswith(m + ".")}  # a module's own package
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_the_graph_sees_the_panel_wiring() -> None:
    graph = _graph()
    assert "ui.run_controller" in graph["ui.dock"]
    assert "ui.run_page" in graph["ui.run_controller"]


def test_no_import_cycle() -> None:
    assert _cycles(_graph()) == []
