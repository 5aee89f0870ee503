"""How `make test` shares the suite among pytest-xdist workers (`-n 4`, the Makefile's `TEST_WORKERS`; `--dist
loadgroup` is pyproject's).

Each worker is a pytest process of its own with its own test database (the SQLite file is named after its pid;
pytest-django suffixes it with the worker id, as it does PostgreSQL's `test_pumpstream_gw0`), its own Mosquitto,
Daphne and bridges on ports of its own block (`tests.support.processes.free_port`).

A work unit is what one worker runs whole, in order:
- the browser tests are `TEST_BROWSER_UNITS` units (3 in `make test`), each on one worker with one chromium (the
  heaviest thing the tests run on the CPU; three at once once made starts time out on 2 cores loaded by other
  sessions' tests, and ran in ci48 on a machine of their own);
- a module of the other folders whose tests share module-scoped real processes (a bridge, chromium, a broker)
  runs on one worker, so they start once, as in a serial run;
- the modules in `ALONE` form one unit, run last and alone (the other workers idle meanwhile): they load the CPU
  by design (floods, thousands of messages) and bound what the other pumps still get meanwhile (a calm pump's
  status within 2 s), which another worker's chromium beside them broke (3.1 s);
- any other test is a unit by itself.
The long units go first (`run_order`), so the workers end on short unit tests rather than one waiting on a long
module; `ALONE` comes after them. pytest-xdist 3.8's own `loadgroup` reads `xdist_group` marks by rewriting a
node id attribute that pytest 9.2 no longer has (every test became its own unit), hence this scheduler instead.
"""

import os
import zlib

from xdist.scheduler import LoadScopeScheduling

WHOLE_FOLDERS = ("browser",)
# The browser tests as this many units (`TEST_BROWSER_UNITS`, the Makefile's; default 1), each module in one of them
# (`browser_units`: balanced by their count of tests): with more workers than 2, one browser unit alone outlasts the
# rest of the suite.
BROWSER_UNITS = max(1, int(os.environ.get("TEST_BROWSER_UNITS", "1")))
WHOLE_MODULE_FOLDERS = ("clinical", "integration")
ALONE = (
    "tests/integration/bridge/test_flood.py",
    "tests/integration/bridge/test_crash_recovery.py",
    "tests/integration/hostile/test_alarm_flood.py",
    "tests/integration/reliability/test_hostile_input.py",
)
ALONE_UNIT = "alone"
FIRST = ("browser", "clinical", "integration")  # the rest after these, in collection order; then ALONE


def work_unit(nodeid: str, units_of: dict[str, int] | None = None) -> str:
    """The unit a test belongs to: `alone`, its folder's or its module's path, or its own node id. A browser module's
    share of its folder is `units_of`'s (`browser_units`), else a hash of its path."""
    path = nodeid.split("::", 1)[0]
    if path in ALONE:
        return ALONE_UNIT
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in WHOLE_FOLDERS:
        folder = "/".join(parts[:2])
        if BROWSER_UNITS == 1:
            return folder
        share = units_of[path] if units_of and path in units_of else zlib.crc32(path.encode()) % BROWSER_UNITS
        return f"{folder}#{share}"
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in WHOLE_MODULE_FOLDERS:
        return path
    return nodeid


def browser_units(nodeids: list[str], units: int = BROWSER_UNITS) -> dict[str, int]:
    """Each browser module's unit, the units' counts of tests balanced: the modules with most tests first, each to
    the unit with fewest so far. A hash of the path put 148 tests in one unit and 100 in the other (2026-12-07: the
    suite's last browser unit outlasted the rest by minutes, `make test` 19 min)."""
    counts: dict[str, int] = {}
    for nodeid in nodeids:
        path = nodeid.split("::", 1)[0]
        parts = path.split("/")
        if len(parts) > 2 and parts[0] == "tests" and parts[1] in WHOLE_FOLDERS and path not in ALONE:
            counts[path] = counts.get(path, 0) + 1
    loads, shares = [0] * units, {}
    for path in sorted(counts, key=lambda path: (-counts[path], path)):
        share = loads.index(min(loads))
        shares[path], loads[share] = share, loads[share] + counts[path]
    return shares


def run_order(nodeid: str) -> int:
    """The test's place in a worker's collection: the index of its kind in `FIRST` (a stable sort keeps the rest)."""
    if work_unit(nodeid) == ALONE_UNIT:
        return len(FIRST) + 1
    kind = nodeid.split("/")[1]
    return FIRST.index(kind) if kind in FIRST else len(FIRST)


class ModuleGroupScheduling(LoadScopeScheduling):
    """pytest-xdist's scope scheduling with `work_unit` as the scope; units are handed out in collection order,
    the `ALONE` unit only to a worker once every worker has finished all it was given, and nothing beside it."""

    units_of: dict[str, int] | None = None

    def schedule(self) -> None:
        if self.collection is None and self.registered_collections:  # the first call: the units are made now
            self.units_of = browser_units(list(next(iter(self.registered_collections.values()))))
        super().schedule()

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid, self.units_of)

    def _alone_running(self) -> bool:
        return any(not all(assigned.get(ALONE_UNIT, {}).values()) for assigned in self.assigned_work.values())

    def _assign_work_unit(self, node) -> None:
        """Nothing beside the `ALONE` unit. A worker runs the last test it was given only once it gets more work or
        is shut down, so when only `ALONE` is left and each worker holds at most that one test, all workers but
        one are shut down (running it); once they are done, the one left gets `ALONE` (after its own last test)."""
        if self._alone_running():
            return
        if next(iter(self.workqueue)) != ALONE_UNIT:
            super()._assign_work_unit(node)
            return
        if any(self._pending_of(assigned) > 1 for assigned in self.assigned_work.values()):
            return  # `mark_test_complete` asks again as the workers finish
        keeper = next(worker for worker in self.nodes if not worker.shutting_down)
        others = [worker for worker in self.nodes if worker is not keeper]
        for worker in others:
            if not worker.shutting_down:
                worker.shutdown()
        if node is keeper and not any(self._pending_of(self.assigned_work[worker]) for worker in others):
            super()._assign_work_unit(node)

    def mark_test_complete(self, node, item_index: int, duration: float = 0) -> None:
        """Every worker is reconsidered, not only this one: an idle worker may be waiting for the `ALONE` unit to
        start or to end (and, once nothing is left, to be shut down)."""
        super().mark_test_complete(node, item_index, duration)
        for other in self.nodes:
            if other is not node:
                self._reschedule(other)
