"""Shared fixtures: a real Mosquitto, a real Daphne, and the file-backed test database they can see."""

import os
import time
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from tests.support.broker import MosquittoBroker
from tests.support.daphne import DaphneServer
from tests.support.page_shelf import TEST_PASSED
from tests.support.xdist import ModuleGroupScheduling, run_order

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep logs and screenshots (kept after the run)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> MosquittoBroker:
    """A real Mosquitto with persistence, shared by the session's tests."""
    server = MosquittoBroker(tmp_path_factory.mktemp("mosquitto")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker, broker, artifacts_dir) -> DaphneServer:
    """Daphne serving `pumpstream.asgi:application` on a free port, sharing the test database."""
    server = DaphneServer(artifacts_dir, MQTT_URL=broker.url).start()
    yield server
    server.stop()


PROCESS_FOLDERS = ("tests/browser/", "tests/clinical/", "tests/integration/")


@pytest.fixture(scope="module", autouse=True)
def no_row_outlives_its_module(request, django_db_blocker):
    """A module's real processes write until they stop, after its last test's flush: a bridge's heartbeat row
    said "monitoring alive" for `BRIDGE_STALE_AFTER_S` to the next test on the worker (a CI run failed so: the
    overview's degraded banner hidden by a bridge stopped 1.4 s before). Autouse, so it is torn down after the
    module's own processes have stopped, and flushes what they wrote, as a transactional test does."""
    if not str(request.path.relative_to(ROOT)).startswith(PROCESS_FOLDERS):
        yield
        return
    request.getfixturevalue("django_db_setup")  # the test database, never the development one
    yield
    with django_db_blocker.unblock():
        # as TransactionTestCase does: ids do not restart (Daphne's publisher reads the change log from its id; a
        # migration test that rebuilds tables on SQLite puts the sequences back: test_alarm_sources.sequences_kept)
        call_command("flush", interactive=False, verbosity=0, reset_sequences=False)


@pytest.fixture(scope="session", autouse=True)
def flush_retries_a_deadlock():
    """On PostgreSQL a flush (TRUNCATE of every table, each locked in turn) runs while the module's bridge and
    Daphne still read: one of them holding table B and waiting for table A, which the TRUNCATE holds while waiting
    for B, is a deadlock that PostgreSQL ends by aborting one of the two (a CI run's teardown flush was the one).
    The flush is tried again, as a deadlock's victim should be."""
    from django.db import connection

    if connection.vendor != "postgresql":
        yield
        return
    from django.db.backends.postgresql.operations import DatabaseOperations
    from django.db.utils import OperationalError

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        for attempt in range(5):
            try:
                return original(self, sql_list)
            except OperationalError as error:
                if "deadlock detected" not in str(error) or attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    yield
    DatabaseOperations.execute_sql_flush = original


@pytest.fixture(autouse=True)
def snapshot_reads_in_the_tests_transaction(monkeypatch):
    """In-process tests read snapshots on `sync_to_async`'s thread, which holds the test's transaction (the
    snapshot readers' own thread could not see its rows). Daphne in the integration tests is unaffected."""
    from realtime.sio.snapshot import snapshot_reads

    monkeypatch.setattr(snapshot_reads, "offload", lambda function, ids: sync_to_async(function)(ids))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a pytest-xdist worker, the long kinds first (`tests.support.xdist.run_order`); serial runs keep theirs."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: run_order(item.nodeid))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadgroup` (pyproject's default) schedules by `tests.support.xdist.work_unit`."""
    if config.getvalue("dist") == "loadgroup":
        return ModuleGroupScheduling(config, log)
    return None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Whether the test's body passed (`TEST_PASSED`), for fixtures that keep something for the next test."""
    report = yield
    if report.when == "call":
        item.stash[TEST_PASSED] = report.passed
    return report
