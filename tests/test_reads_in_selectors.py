"""Database reads live in selectors (`../shared/style.md`): transports, views and the project's plumbing call them.

The realtime server, the bridge, the pages and `pumpstream/` never touch a manager (`Model.objects`) or refine a
queryset themselves: each read they need is a named selector in `devices/*selectors.py`, so there is one place to
find, index and test what is read. Found with `ast` on the source (the simulator has no database at all).
"""

import ast
from pathlib import Path

from tests.support.processes import ROOT

READERS = ("realtime", "devices/views", "devices/forms.py", "pumpstream")
QUERY_ATTRIBUTES = frozenset({
    "objects", "_default_manager", "filter", "exclude", "values_list", "select_related", "prefetch_related",
    "annotate", "aggregate", "order_by", "exists", "select_for_update", "in_bulk", "raw",
})  # fmt: skip


def reader_modules() -> list[Path]:
    paths = []
    for name in READERS:
        where = ROOT / name
        paths += [where] if where.is_file() else sorted(where.rglob("*.py"))
    return [path for path in paths if "migrations" not in path.parts]


def test_transports_views_and_plumbing_read_the_database_only_through_selectors() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}"
        for path in reader_modules()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Attribute) and node.attr in QUERY_ATTRIBUTES
    ]
    assert not found, "database reads outside the selectors (add one to devices/*selectors.py):\n" + "\n".join(found)


def test_the_scan_sees_a_query() -> None:
    tree = ast.parse('Device.objects.filter(device_id="P").exists()')
    assert {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)} <= QUERY_ATTRIBUTES
