"""How `make test` shares the suite among pytest-xdist workers (`-n 3 --dist loadgroup`, pyproject's addopts).

Each worker is a pytest process of its own with its own test database (the SQLite file is named after its pid;
pytest-django suffixes it with the worker id, as it does PostgreSQL's `test_pumpstream_gw0`), its own Mosquitto,
Daphne and bridges on ports of its own block (`tests.support.processes.free_port`).

A work unit is what one worker runs whole, in order:
- the browser tests are one unit: one chromium at a time beside the other workers, as chromium is the heaviest
  thing the tests run on the CPU (three at once made starts time out on the loaded 2 cores);
- a module of the other folders whose tests share module-scoped real processes (a bridge, chromium, a broker)
  runs on one worker, so they start once, as in a serial run;
- the modules in `ONE_AT_A_TIME` form one unit: they load the CPU by design (floods, thousands of messages) and
  assert on what the other pumps still get meanwhile, so they never run beside each other;
- any other test is a unit by itself.
The long units go first (`run_order`), so the workers end on short unit tests rather than one waiting on a long
module. pytest-xdist 3.8's own `loadgroup` reads `xdist_group` marks by rewriting a node id attribute that
pytest 9.2 no longer has (every test became its own unit), hence this scheduler in its place.
"""

from xdist.scheduler import LoadScopeScheduling

WHOLE_FOLDERS = ("browser",)
WHOLE_MODULE_FOLDERS = ("clinical", "integration")
ONE_AT_A_TIME = (
    "tests/integration/bridge/test_flood.py",
    "tests/integration/bridge/test_crash_recovery.py",
    "tests/integration/hostile/test_alarm_flood.py",
    "tests/integration/reliability/test_hostile_input.py",
)
ONE_AT_A_TIME_UNIT = "one-at-a-time"
FIRST = ("browser", ONE_AT_A_TIME_UNIT, "clinical", "integration")  # the rest after these, in collection order


def work_unit(nodeid: str) -> str:
    """The unit a test belongs to: `one-at-a-time`, its folder's or its module's path, or its own node id."""
    path = nodeid.split("::", 1)[0]
    if path in ONE_AT_A_TIME:
        return ONE_AT_A_TIME_UNIT
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in WHOLE_FOLDERS:
        return "/".join(parts[:2])
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in WHOLE_MODULE_FOLDERS:
        return path
    return nodeid


def run_order(nodeid: str) -> int:
    """The test's place in a worker's collection: the index of its kind in `FIRST` (a stable sort keeps the rest)."""
    unit = work_unit(nodeid)
    kind = unit if unit == ONE_AT_A_TIME_UNIT else nodeid.split("/")[1]
    return FIRST.index(kind) if kind in FIRST else len(FIRST)


class ModuleGroupScheduling(LoadScopeScheduling):
    """pytest-xdist's scope scheduling with `work_unit` as the scope; units are handed out in collection order."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)
