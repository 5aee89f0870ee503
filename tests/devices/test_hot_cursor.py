"""The bridge's hot statements on the database's own cursor (`hot_cursor`): what Django's cursor guaranteed still holds.

Errors are Django's (the bridge retries a locked or lost database, `OperationalError`, and never dead-letters a
message for it), a transaction broken by an earlier error runs nothing more, `%%` stays a literal `%`, and the
statements are still seen where they are recorded (a test's `CaptureQueriesContext`) or wrapped; under DEBUG alone
(the integration tests' bridge) they run as in production.
"""

import pytest
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.backends.utils import CursorWrapper
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from devices.models import Device
from devices.services.schema import SchemaBehindCode
from devices.services.sql import hot_cursor, select_in_sql
from tests.factories import make_device

pytestmark = pytest.mark.django_db(transaction=True)
TABLE = connection.ops.quote_name(Device._meta.db_table)


def test_it_reads_what_djangos_cursor_reads():
    make_device("PUMP_0001")
    sql = select_in_sql(Device, ("id", "device_id"), (("device_id", 2),))
    with hot_cursor() as cursor:
        cursor.execute(sql, ["PUMP_0001", "PUMP_0002"])
        mine = cursor.fetchall()
    with connection.cursor() as cursor:
        cursor.execute(sql, ["PUMP_0001", "PUMP_0002"])
        theirs = cursor.fetchall()
    assert [tuple(row) for row in mine] == [tuple(row) for row in theirs] and len(mine) == 1, (mine, theirs)


def test_a_literal_percent_is_kept():
    make_device("PUMP_0001")
    with hot_cursor() as cursor:
        cursor.execute(f"SELECT device_id FROM {TABLE} WHERE device_id LIKE 'PUMP%%' AND device_id = %s", ["PUMP_0001"])
        assert [row[0] for row in cursor.fetchall()] == ["PUMP_0001"]


def test_a_constraint_violation_is_djangos_integrity_error():
    make_device("PUMP_0001")
    make_device("PUMP_0002")
    with pytest.raises(IntegrityError), transaction.atomic(), hot_cursor() as cursor:
        cursor.executemany(f"UPDATE {TABLE} SET device_id = %s WHERE device_id = %s", [("PUMP_0001", "PUMP_0002")])


def test_a_database_error_is_djangos_so_the_bridge_retries_it():
    with pytest.raises(DatabaseError) as raised, hot_cursor() as cursor:
        cursor.execute("SELECT id FROM devices_device WHERE id = %s GROUP", [1])  # a statement the database refuses
    assert type(raised.value).__module__ == "django.db.utils", f"not translated: {type(raised.value)!r}"


def test_a_table_the_database_lacks_is_the_schemas_fault_not_the_messages():
    """`migrate` not run since the code was installed (review 34): the infrastructure's fault, retried, not acked."""
    with pytest.raises(SchemaBehindCode), hot_cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table_here WHERE id = %s", [1])


def test_an_operational_error_stays_operational(monkeypatch):
    """What the bridge's guard counts as the infrastructure's fault (a locked or lost database) must stay so."""

    class Locked:  # the DB-API cursor of a database that is locked
        def execute(self, *_):
            raise connection.Database.OperationalError("database is locked")

        def close(self):
            pass

    class LockedConnection:
        def cursor(self, *_, **__):
            return Locked()

    wrapper = connections[DEFAULT_DB_ALIAS]
    wrapper.ensure_connection()
    monkeypatch.setattr(wrapper, "connection", LockedConnection())
    monkeypatch.setattr(wrapper, "create_cursor", lambda name=None: Locked())
    with pytest.raises(OperationalError), hot_cursor() as cursor:
        cursor.execute("SELECT 1 WHERE 1 = %s", [1])


def test_a_broken_transaction_runs_nothing_more():
    make_device("PUMP_0001")
    with transaction.atomic():
        connection.needs_rollback = True  # as after an error caught inside the atomic block
        try:
            with pytest.raises(TransactionManagementError), hot_cursor() as cursor:
                cursor.execute(f"SELECT id FROM {TABLE} WHERE device_id = %s", ["PUMP_0001"])
        finally:
            connection.needs_rollback = False


def test_recorded_statements_still_see_every_statement():
    make_device("PUMP_0001")
    with CaptureQueriesContext(connection) as queries, hot_cursor() as cursor:
        cursor.execute(f"SELECT id FROM {TABLE} WHERE device_id = %s", ["PUMP_0001"])
        cursor.executemany(f"UPDATE {TABLE} SET presence = %s WHERE device_id = %s", [("online", "PUMP_0001")])
    assert len(queries) == 2, f"statements not recorded: {[query['sql'] for query in queries]}"


def test_an_execute_wrapper_still_sees_every_statement():
    seen = []

    def count(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count), hot_cursor() as cursor:
        cursor.execute(f"SELECT id FROM {TABLE} WHERE device_id = %s", ["PUMP_0001"])
    assert len(seen) == 1, seen


def test_debug_alone_runs_the_statements_as_production_does(settings):
    """The integration tests' bridge runs with DEBUG on: it must take the path production takes."""
    settings.DEBUG = True
    with hot_cursor() as cursor:
        assert not isinstance(cursor.cursor, CursorWrapper), "DEBUG switched the hot path to Django's cursor"
    with CaptureQueriesContext(connection), hot_cursor() as cursor:
        assert isinstance(cursor.cursor, CursorWrapper), "recorded statements not on Django's cursor"


def test_a_cursor_shared_by_a_batch_checks_and_translates_each_statement():
    """A routine batch's statements share one cursor (`hot_cursor(shared)`): a transaction broken after its first
    statement runs nothing more, and a later statement's error is still Django's."""
    make_device("PUMP_0001")
    sql = f"SELECT id FROM {TABLE} WHERE device_id = %s"
    with transaction.atomic(), hot_cursor() as cursor:
        with hot_cursor(cursor) as shared:
            assert shared is cursor, "a caller's cursor not shared"
            shared.execute(sql, ["PUMP_0001"])
        connection.needs_rollback = True  # as after an error caught inside the atomic block
        try:
            with pytest.raises(TransactionManagementError):
                cursor.execute(sql, ["PUMP_0001"])
        finally:
            connection.needs_rollback = False
    with hot_cursor() as cursor:
        cursor.execute(sql, ["PUMP_0001"])
        with pytest.raises(DatabaseError) as raised:
            cursor.execute("SELECT id FROM devices_device WHERE id = %s GROUP", [1])
    assert type(raised.value).__module__ == "django.db.utils", f"not translated: {type(raised.value)!r}"
