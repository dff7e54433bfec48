"""The search drivers' modules import one way: no module of sltsearch/search reaches itself through its imports
(top-level or inside functions), as `search/workers.py` <-> `search/optuna_backend.py` once did."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sltsearch"


def _imports(path: Path) -> set[str]:
    """The sltsearch.search modules ``path`` imports anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n for n in names if n.startswith("sltsearch.search.") and n.count(".") == 2}
    return found


def test_the_search_modules_import_without_a_cycle() -> None:
    graph = {f"sltsearch.search.{p.stem}": _imports(p) for p in (PACKAGE / "search").glob("*.py")}
    graph = {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    return [*trail, start]
                if dep not in trail:
                    stack.append((dep, [*trail, dep]))
        return None

    cycles = [c for m in sorted(graph) if (c := cycle_from(m))]
    assert not cycles, " -> ".join(cycles[0])
