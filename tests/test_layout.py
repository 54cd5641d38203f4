"""The codebase's own promises: layering, no import cycles, small modules that say what they own,
and product code that never reads ``../shared``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("interp", "activations", "probes", "analyses")
LOWER = ("interp", "activations", "probes")
MAX_LINES = 400


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every module named by an import statement (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_lower_layers_never_import_analyses():
    for name, path in _modules().items():
        if name.split(".")[0] in LOWER:
            bad = sorted(m for m in _imports(path) if m.split(".")[0] in ("analyses", "cli"))
            assert not bad, f"{name} imports {bad}"


def test_no_import_cycles_between_modules():
    modules = _modules()
    graph = {
        name: {m for m in _imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    # a package's __init__ re-exporting its own submodules is not a cycle through them
    for name in graph:
        graph[name] = {m for m in graph[name] if not name.startswith(m + ".")}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_every_module_is_small_and_says_what_it_owns():
    for name, path in [*_modules().items(), ("cli", ROOT / "cli.py")]:
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_LINES, f"{name}: {lines} lines (> {MAX_LINES})"
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc.split()) >= 5, f"{name}: no opening docstring saying its idea"


def test_product_code_never_reads_shared():
    for path in [*_modules().values(), ROOT / "cli.py"]:
        text = path.read_text()
        assert "../shared" not in text.replace("``../shared``", "") or "never" in text, path
        assert "/work/shared" not in text and "shared/paper-data" not in text, path
