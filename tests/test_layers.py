"""The import graph has layers a newcomer can draw (docs/architecture.md):

    protocol → config → evidence → peripherals → social → transports → daemon → cli
    agents (the client side) → protocol, config, and the tool argument models

A module may import its own layer and the layers to its left, never one to its
right. Every import counts: at the top of a module, inside a function, under
``if TYPE_CHECKING:`` — so a cycle cannot be hidden, only removed. These tests
read the source with ``ast`` (nothing is imported to find the imports), and
two of them start a fresh interpreter to see what an import really loads.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO

PACKAGE = REPO / "futon"

# Left to right: a layer may import itself and anything to its left.
LAYERS: tuple[str, ...] = (
    "protocol", "config", "evidence", "peripherals", "social", "transports", "daemon", "cli",
)  # fmt: skip
AGENTS = "agents"
# What the client side may import besides itself: the wire (protocol), the
# settings vocabulary (config), and the shapes of the tools' arguments —
# pure pydantic models, never the engine or a backend.
AGENTS_MAY_IMPORT_LAYERS = frozenset({"protocol", "config"})
TOOL_SHAPE_MODULES = frozenset(
    {"futon.peripherals", "futon.peripherals.args", "futon.peripherals.argtypes",
     "futon.peripherals.domain",
     # the statuses a cycle tool's arguments may name (pure vocabulary)
     "futon.peripherals.domain.cycle_status"}
)  # fmt: skip
TOOL_SHAPE_SUFFIX = "_args"  # futon.peripherals.domain.<name>_args
# futon/data holds the files futon ships (configuration, patterns) and where
# they are: any layer but protocol may import it; it imports nothing of futon.
DATA = "data"

# Imports inside a function, each with why it is not a cycle being dodged.
# (futon/cli/ is exempt as a whole: a command imports what it runs when it
# runs, so `futon --help` does not load the daemon.)
LAZY_ALLOWED: dict[tuple[str, str], str] = {
    ("futon/daemon/app.py", "futon.transports.irc_bot"): "pydle loads only in bot mode",
}
# The one TYPE_CHECKING block allowed: futon.agents' lazy public API (names
# load on first use, so the client library does not pull in the runtime, the
# drivers and the MCP SDK). The block tells a type checker what those names
# are; test_agents_lazy_exports_hide_no_cycle holds it to the export table.
TYPE_CHECKING_ALLOWED = frozenset({"futon/agents/__init__.py"})


@dataclass(frozen=True)
class Import:
    path: str  # futon/x/y.py
    line: int
    target: str  # dotted futon module (or package) imported
    where: str  # "module", "function" or "type-checking"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The futon modules ``node`` imports (``from p import m`` names p.m
    when m is a module, else p)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "futon"]
    if node.level:
        package = module if is_package else module.rsplit(".", 1)[0]
        base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    if source.split(".")[0] != "futon":
        return []
    found = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES]
    return found or [source]


def imports_of(path: Path) -> Iterator[Import]:
    module = module_name(path)
    is_package = path.name == "__init__.py"
    rel = str(path.relative_to(REPO))

    def walk(node: ast.AST, where: str) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inner = where
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inner = "function" if where == "module" else where
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.body:
                    yield from walk_stmt(stmt, "type-checking")
                for stmt in child.orelse:
                    yield from walk_stmt(stmt, where)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(child, module, is_package):
                    yield Import(rel, child.lineno, target, inner)
            yield from walk(child, inner)

    def walk_stmt(stmt: ast.stmt, where: str) -> Iterator[Import]:
        wrapper = ast.Module(body=[stmt], type_ignores=[])
        yield from walk(wrapper, where)

    yield from walk(ast.parse(path.read_text(), filename=rel), "module")


ALL_IMPORTS: list[Import] = [imp for path in MODULES.values() for imp in imports_of(path)]


def layer_of(module: str) -> str:
    """The layer of a dotted futon module: its first package under futon
    (``futon`` itself is "root"; ``python -m futon`` is the CLI)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    if parts[1] == "__main__":
        return "cli"
    return parts[1]


def is_tool_shape(module: str) -> bool:
    return module in TOOL_SHAPE_MODULES or (
        module.startswith("futon.peripherals.domain.") and module.endswith(TOOL_SHAPE_SUFFIX)
    )


def violation(imp: Import) -> str | None:
    """Why ``imp`` goes against the layers, or None."""
    source = layer_of(module_name(REPO / imp.path))
    target = layer_of(imp.target)
    head = f"{imp.path}:{imp.line} imports {imp.target}"
    if source == target:
        return None
    if source == "protocol":
        return f"{head} (protocol imports nothing of futon but itself)"
    if source == "root":
        return f"{head} (futon/__init__.py holds the version only)"
    if source == DATA:
        return f"{head} (futon/data is the shipped files only)"
    if target in ("root", DATA):
        return None  # futon.__version__, the shipped files' paths
    if source == AGENTS:
        if target in AGENTS_MAY_IMPORT_LAYERS or is_tool_shape(imp.target):
            return None
        return (
            f"{head} (layer {target} is not below agents: the client side imports protocol,"
            " config and the tool argument models only)"
        )
    if target == AGENTS:
        if source == "cli":
            return None
        return f"{head} (layer agents is the client side: only cli may import it, not {source})"
    if source not in LAYERS or target not in LAYERS:
        return f"{head} (unknown layer: add {source if source not in LAYERS else target} to LAYERS)"
    if LAYERS.index(target) > LAYERS.index(source):
        return f"{head} (layer {target} above layer {source})"
    return None


def test_every_package_has_a_layer() -> None:
    packages = {layer_of(m) for m in MODULES}
    assert packages - {"root", DATA} <= {*LAYERS, AGENTS}, packages


def test_no_module_imports_a_layer_above_its_own() -> None:
    found = [why for imp in ALL_IMPORTS if (why := violation(imp))]
    assert not found, "imports against the layers:\n" + "\n".join(found)


def test_protocol_imports_nothing_of_futon_but_itself() -> None:
    found = [
        f"{imp.path}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if imp.path.startswith("futon/protocol/") and not imp.target.startswith("futon.protocol")
    ]
    assert not found, "\n".join(found)


def test_no_futon_import_hides_under_type_checking() -> None:
    found = [
        f"{imp.path}:{imp.line} imports {imp.target} under TYPE_CHECKING"
        for imp in ALL_IMPORTS
        if imp.where == "type-checking" and imp.path not in TYPE_CHECKING_ALLOWED
    ]
    assert not found, "a TYPE_CHECKING import hides a cycle; remove the cycle:\n" + "\n".join(found)


def test_no_futon_import_waits_inside_a_function() -> None:
    found = [
        f"{imp.path}:{imp.line} imports {imp.target} inside a function"
        for imp in ALL_IMPORTS
        if imp.where == "function"
        and not imp.path.startswith("futon/cli/")
        and (imp.path, imp.target) not in LAZY_ALLOWED
    ]
    assert not found, "a lazy import dodges a cycle; import at the top:\n" + "\n".join(found)


def test_the_lazy_allowlist_is_still_needed() -> None:
    lazy = {(imp.path, imp.target) for imp in ALL_IMPORTS if imp.where == "function"}
    stale = sorted(set(LAZY_ALLOWED) - lazy)
    assert not stale, f"LAZY_ALLOWED lists imports that are gone: {stale}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
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
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges)))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    """Between modules, counting every import (lazy and TYPE_CHECKING ones
    too). A module importing names from its own package's ``__init__`` is
    Python's package idiom, not an edge: the package is always set up first."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in ALL_IMPORTS:
        source = module_name(REPO / imp.path)
        if imp.target not in MODULES or imp.target == source:
            continue
        if source.startswith(imp.target + "."):
            continue  # its own package
        edges[source].add(imp.target)
    cycles = _cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)


def _fresh(code: str) -> object:
    """Run ``code`` in a new interpreter; it prints one JSON value."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_client_side_loads_no_server_part() -> None:
    """Importing all of futon.agents loads the tools' argument models but no
    engine, backend, tool code, social, transport, daemon or CLI module."""
    agents = sorted(m for m in MODULES if layer_of(m) == AGENTS)
    loaded = _fresh(
        "import importlib, json, sys\n"
        f"for m in {agents!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('futon'))))"
    )
    assert isinstance(loaded, list)
    server = [
        m
        for m in loaded
        if layer_of(m) in {"social", "transports", "daemon", "cli"}
        or (layer_of(m) == "peripherals" and not is_tool_shape(m))
    ]
    assert not server, f"futon.agents loads server parts: {server}"
    assert "futon.peripherals.args" in loaded  # the schemas' one source


def test_every_tool_has_its_argument_model_at_import() -> None:
    """The registry is complete without a backend: every tool of the catalog
    has a model, and loading them built no backend."""
    result = _fresh(
        "import json, sys\n"
        "from futon.peripherals.args import ARGS\n"
        "from futon.config.catalog import KNOWN_TOOLS\n"
        "print(json.dumps({'missing': sorted(KNOWN_TOOLS - set(ARGS)),\n"
        "  'extra': sorted(set(ARGS) - KNOWN_TOOLS),\n"
        "  'backend': 'futon.peripherals.tools.backend' in sys.modules}))"
    )
    assert result == {"missing": [], "extra": [], "backend": False}


def test_agents_lazy_exports_hide_no_cycle() -> None:
    """futon.agents' TYPE_CHECKING block names exactly its lazy exports, and
    each export's module imports first thing in a fresh interpreter — the
    laziness keeps the client library light, it does not dodge a cycle."""
    path = PACKAGE / "agents" / "__init__.py"
    tree = ast.parse(path.read_text())
    exports: dict[str, str] = {}
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "_EXPORTS":
            assert node.value is not None
            exports = ast.literal_eval(node.value)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                typed.update({a.name: stmt.module for a in stmt.names})
    assert exports and typed == exports
    for module in sorted(set(exports.values())):
        _fresh(f"import json, {module}; import futon.agents as a\nprint(json.dumps(1))")
    names = sorted(exports)
    resolved = _fresh(
        "import json, futon.agents as a\n"
        f"print(json.dumps([n for n in {names!r} if getattr(a, n, None) is None]))"
    )
    assert resolved == []


def test_the_architecture_page_names_every_layer() -> None:
    page = (REPO / "docs" / "architecture.md").read_text()
    missing = [name for name in (*LAYERS, AGENTS) if f"futon/{name}" not in page]
    assert not missing, f"docs/architecture.md does not describe: {missing}"
