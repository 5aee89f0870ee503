"""Layers point one way (`../shared/style.md`): protocol/ <- devices/ <- realtime/, and no import circle.

The imports are read from the source with `ast` (every `import`, at module level or inside a function, but
not those under `if TYPE_CHECKING:`, which never run), so a lazy import inside a function counts too: it
hides a circle from Python's loader, not from a reader.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tests.support.processes import ROOT

PACKAGES = ("bench", "devices", "protocol", "pumpstream", "realtime")
SIMULATOR = "realtime.simulator"
# No known exception left: the change service writes the change log (devices/services/changelog.py) instead
# of handing its change to realtime's dispatch sink, so any import of realtime/ from devices/ fails the test.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Import:
    """One import statement of a project module: who imports what, and where."""

    importer: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.importer}:{self.line} imports {self.imported}"


def module_name(path: Path) -> str:
    """`devices/services/changes.py` -> `devices.services.changes`; a package's `__init__.py` is the package."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def project_modules() -> dict[str, Path]:
    """Every Python module of the project's packages, by dotted name."""
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def is_type_checking_block(node: ast.AST) -> bool:
    """An `if TYPE_CHECKING:` block: its imports are for the type checker only."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_nodes(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement in a tree, skipping `if TYPE_CHECKING:` blocks."""
    for node in ast.iter_child_nodes(tree):
        if is_type_checking_block(node):
            yield from (n for child in node.orelse for n in import_nodes(ast.Module(body=[child], type_ignores=[])))
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        yield from import_nodes(node)


def absolute_base(importer: str, node: ast.ImportFrom, is_package: bool) -> str:
    """The absolute module a `from ... import` names, resolving relative dots against the importer."""
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    keep = len(parts) - node.level + (1 if is_package else 0)
    return ".".join(parts[:keep] + ([node.module] if node.module else []))


def imported_names(importer: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The dotted names an import statement loads: `from a.b import c` is `a.b.c` when c is a module, else `a.b`."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    is_package = project_modules()[importer].name == "__init__.py"
    base = absolute_base(importer, node, is_package)
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        yield candidate if candidate in project_modules() else base


@cache
def all_imports() -> tuple[Import, ...]:
    """Every import of every project module (project, standard library and third-party alike)."""
    found = []
    for name, path in project_modules().items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in import_nodes(tree):
            found.extend(Import(name, imported, node.lineno) for imported in imported_names(name, node))
    return tuple(found)


def within(name: str, package: str) -> bool:
    """True when `name` is `package` or one of its submodules."""
    return name == package or name.startswith(package + ".")


def imports_of(package: str, *, into: tuple[str, ...]) -> list[Import]:
    """The imports from modules of `package` into any of the packages `into`."""
    return [
        found
        for found in all_imports()
        if within(found.importer, package) and any(within(found.imported, target) for target in into)
    ]


def project_edges() -> dict[str, set[str]]:
    """The import graph among the project's own modules."""
    modules = project_modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for found in all_imports():
        target = found.imported
        while target and target not in modules:  # `import a.b.C` names a class: its module imports
            target = target.rpartition(".")[0]
        if target and target != found.importer:
            edges[found.importer].add(target)
    return edges


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module: each is one or more import circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def one_circle(component: list[str], edges: dict[str, set[str]]) -> list[str]:
    """A shortest circle through the component's first module, to show in a failure message."""
    start = component[0]
    members = set(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(edges[node] & members):
                if target == start:
                    return paths[node] + [start]
                if target not in paths:
                    paths[target] = paths[node] + [target]
                    following.append(target)
        frontier = following
    return component


def listing(found: list[Import]) -> str:
    return "\n".join(f"  {item}" for item in found)


def test_the_import_walk_sees_the_project() -> None:
    assert {"devices.services.changes", "protocol.limits", "realtime.simulator.pump"} <= set(project_modules())
    assert any(found.importer == "devices.forms" and within(found.imported, "protocol") for found in all_imports())


def test_devices_imports_nothing_from_realtime() -> None:
    found = [
        item
        for item in imports_of("devices", into=("realtime",))
        if (item.importer, item.imported) not in KNOWN_EXCEPTIONS
    ]
    assert not found, "devices/ (the domain) imports realtime/ (a transport):\n" + listing(found)


def test_protocol_imports_neither_django_nor_the_domain_nor_a_transport() -> None:
    found = imports_of("protocol", into=("django", "channels", "socketio", "devices", "realtime", "pumpstream"))
    assert not found, "protocol/ must stand alone (no Django, no devices/, no realtime/):\n" + listing(found)


def test_the_simulator_imports_only_the_protocol_from_the_project() -> None:
    project = tuple(name for name in PACKAGES if name != "protocol") + ("django", "channels", "socketio")
    found = [item for item in imports_of(SIMULATOR, into=project) if not within(item.imported, SIMULATOR)]
    assert not found, "the simulator speaks the protocol only (protocol/ and its own modules):\n" + listing(found)


def test_no_import_circle_among_the_project_modules() -> None:
    edges = project_edges()
    circles = [
        f"  {' -> '.join(one_circle(component, edges))}   (the group: {', '.join(component)})"
        for component in strongly_connected(edges)
    ]
    assert not circles, "import circles (one line per group of modules that import each other):\n" + "\n".join(circles)
