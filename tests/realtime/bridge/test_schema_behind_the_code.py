"""Review 34 (F2): the bridge's code ahead of the database's schema (started before `migrate`) and a dead letter that
could not be stored are the infrastructure's faults: retried unacknowledged, never a message dead-lettered and
acknowledged for them (issue 15: nothing lost, nothing silent)."""

import threading

import psycopg.errors
import pytest
from django.db import ProgrammingError, connection, transaction

from devices.models import DeadLetter
from devices.services.schema import SchemaBehindCode, migrations_unapplied, schema_faults_as_infrastructure
from devices.services.sql import hot_cursor
from realtime import metrics
from realtime.bridge import batch, ingest
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device
from tests.realtime.bridge.test_commit import POISON, FaultyIngest, committer_with, status

pytestmark = pytest.mark.django_db


def _undefined_column() -> ProgrammingError:
    """What Django raises on PostgreSQL for a column the database lacks (psycopg's UndefinedColumn, 42703)."""
    error = ProgrammingError("column devices_infusionsession.delivered_before_run_ml does not exist")
    error.__cause__ = psycopg.errors.UndefinedColumn("column ... does not exist")
    return error


def _commit_until_stopped(committer, batch_of: list[InboundMessage]) -> None:
    """Commit through the real Committer, stopped after 1.5 s if it stalls (as a bridge stopping would)."""
    stopper = threading.Timer(1.5, committer.stop.set)
    stopper.start()
    try:
        committer.commit(batch_of)
    finally:
        stopper.cancel()
        metrics.DATABASE_STALLED.set(0)  # stopped while stalled: the gauge is this process's, shared by the tests


def test_a_missing_column_on_postgresql_is_retried_unacknowledged_and_never_dead_lettered():
    """PostgreSQL says a missing column with ProgrammingError: it was taken for the message's fault, dead-lettered
    `internal_error` and acknowledged (an occlusion lost for good, review 34)."""
    make_device("PUMP_C")
    committer, acknowledged = committer_with(FaultyIngest(_undefined_column()))
    poison = InboundMessage(topic="devices/PUMP_C/error", payload=POISON)
    _commit_until_stopped(committer, [status(10), poison])
    letters = list(DeadLetter.objects.values_list("reason", "detail"))
    assert not acknowledged and not letters, f"acknowledged {len(acknowledged)}, dead-lettered {letters}"


def test_a_message_whose_dead_letter_cannot_be_stored_is_never_acknowledged(monkeypatch):
    """The message is at fault, and its dead letter fails too: it was acknowledged with nothing but a log line
    ("dead letter not stored"); it must stay with the broker, retried, while the messages before it are applied."""
    make_device("PUMP_C")

    def refused(**fields):
        raise RuntimeError("the dead letter's own fault")

    monkeypatch.setattr(ingest, "dead_letter_record", refused)
    monkeypatch.setattr(batch, "dead_letter_record", refused, raising=False)
    committer, acknowledged = committer_with(FaultyIngest(RuntimeError("a bug in a service")))
    before, poison = status(10), InboundMessage(topic="devices/PUMP_C/error", payload=POISON)
    _commit_until_stopped(committer, [before, poison])
    assert poison not in acknowledged, "a message neither applied nor dead-lettered was acknowledged: lost"
    assert before in acknowledged, "the message before it is applied and acknowledged"


def test_a_refusal_whose_alarm_fails_still_stores_its_dead_letter_and_is_acknowledged(monkeypatch):
    """Only the dead letter must be stored for the message to go: a refusal's alarm failing on its own leaves the
    dead letter alone, saying so."""
    make_device("PUMP_C")

    def alarm_fails(*args, **kwargs):
        raise RuntimeError("the alarm's own fault")

    monkeypatch.setattr(ingest, "error_unreadable_raise", alarm_fails)
    committer, acknowledged = committer_with(FaultyIngest(RuntimeError("a bug in a service")))
    poison = InboundMessage(topic="devices/PUMP_C/error", payload=POISON)
    _commit_until_stopped(committer, [poison])
    letter = DeadLetter.objects.get()
    assert acknowledged == [poison] and "the alarm's own fault" in letter.detail, letter.detail


def test_a_statement_naming_a_missing_column_raises_schema_behind_code_on_either_database():
    """Django's cursor under the bridge's execute wrapper, and the bridge's hot cursor: SQLite's OperationalError
    ("no such column") and PostgreSQL's ProgrammingError (UndefinedColumn) both become `SchemaBehindCode`."""
    with connection.execute_wrapper(schema_faults_as_infrastructure), connection.cursor() as cursor:
        with pytest.raises(SchemaBehindCode), transaction.atomic():
            cursor.execute("SELECT no_such_column FROM devices_device")
    with pytest.raises(SchemaBehindCode), transaction.atomic(), hot_cursor() as cursor:
        cursor.execute("SELECT no_such_column FROM devices_no_such_table", [])


def test_a_statement_wrong_otherwise_stays_a_fault_of_its_own():
    with connection.execute_wrapper(schema_faults_as_infrastructure), connection.cursor() as cursor:
        with pytest.raises(ProgrammingError if connection.vendor == "postgresql" else Exception) as raised:
            with transaction.atomic():
                cursor.execute("SELEC 1")
    assert not isinstance(raised.value, SchemaBehindCode), raised.value


def test_a_migrated_database_has_no_migration_unapplied():
    assert migrations_unapplied() == []
