"""Change-log ids that restart below Daphne's publisher position are read again from the log's start.

test_alarm_flood's lost alarm (a watcher subscribed, CALM's alarm stored and in the change log, Daphne's metrics
"0 entries behind", not one event in 30 s): the log's last id in that failure was 569, while the same Daphne had
published 1,371 changes (`pumpstream_realtime_publisher_lag_seconds_count`). The ids had started again from 1.

On SQLite a table rebuilt by a migration (`_remake_table`: CREATE new__x, copy the rows, DROP x, RENAME) loses its
`sqlite_sequence` row, so AUTOINCREMENT starts again from the highest id left (1 for an empty, flushed table).
tests/devices/test_alarm_sources.py::test_the_migration_moves_a_pumps_alarm_... migrates the worker's test
database back to 0013 and forward: 0021's AlterField rebuilds devices_changelogentry and 0016's rebuilds
devices_device. Run on the same xdist worker before test_alarm_flood, it leaves the session's Daphne with a
publisher position above every id the log will hand out for the next N rows: `id > position` reads none of them,
and `behind = max(0, highest - position)` says 0. Pump row ids restart too, so the publisher's `_last_seq[device_pk]`
and the fan-out's `_delivered` / `_joiners` (registration order) of an old pump apply to a new one.

This test does the same in a few seconds: a Daphne of its own publishes a few changes, the database is flushed and
migrated back and forth as that test does, a new pump's alarm is committed: the watcher must get it.
"""

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from devices.models import ChangeLogEntry
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.daphne import DaphneServer, publisher_metrics
from tests.support.sio import StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WAIT_S = 10.0


def raise_alarm(device_id: str, kind: str) -> None:
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        alarm_raise(device=device, type=kind, priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE)


def migrate_back_and_forth() -> None:
    """What tests/devices/test_alarm_sources.py's migration test does to the worker's test database."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("devices", "0013_session_progress_order")])
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def own_daphne(django_db_setup, django_db_blocker, broker, artifacts_dir):
    with django_db_blocker.unblock():
        daphne = DaphneServer(artifacts_dir, MQTT_URL=broker.url).start()
    yield daphne
    daphne.stop()


def test_a_change_logged_under_an_id_the_publisher_passed_still_reaches_its_watcher(own_daphne):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's AUTOINCREMENT restarts when a migration rebuilds the table")
    ward = make_ward("ids-ward")
    make_device("CALM", ward=ward)
    watcher = StreamClient(own_daphne.url, cookie=session_cookie(make_user("ids-nurse", ward=ward))).connect()
    try:
        assert watcher.subscribe("CALM")[0] == events.STREAM_SUBSCRIBED
        for n in range(5):  # an earlier test's changes: the publisher's position passes them
            raise_alarm("CALM", f"before_{n}")
            watcher.events.wait_for(lambda e, d, k=f"before_{n}": e == events.DEVICE_ALARM
                                    and d["alarm"]["type"] == k, timeout=WAIT_S)  # fmt: skip
    finally:
        watcher.close()
    position_at_least = ChangeLogEntry.objects.order_by("-id").values_list("id", flat=True).first()

    call_command("flush", interactive=False, verbosity=0, reset_sequences=False)  # as between two tests
    migrate_back_and_forth()  # as the migration test on the same worker does

    ward = make_ward("ids-ward")
    make_device("CALM", ward=ward)
    watcher = StreamClient(own_daphne.url, cookie=session_cookie(make_user("ids-nurse", ward=ward))).connect()
    try:
        assert watcher.subscribe("CALM")[0] == events.STREAM_SUBSCRIBED
        raise_alarm("CALM", "after")
        logged = ChangeLogEntry.objects.order_by("-id").values_list("id", flat=True).first()
        try:
            watcher.events.wait_for(lambda e, d: e == events.DEVICE_ALARM and d["alarm"]["type"] == "after",
                                    timeout=WAIT_S)  # fmt: skip
        except AssertionError as missing:
            staff = session_cookie(make_user("ids-staff", is_staff=True))
            raise AssertionError(
                f"{missing}\nthe new alarm was logged under id {logged}, below ids {position_at_least} the publisher "
                f"had already passed; Daphne's metrics: {publisher_metrics(own_daphne.url, staff)}"
            ) from None
    finally:
        watcher.close()
