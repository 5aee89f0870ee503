"""Review 36 (F3): the database's schema ahead of a running bridge's code (`migrate` run for the next release while a
bridge of this one still consumes: a forgotten second host, the deploy's steps out of order).

Django's AddField leaves a NOT NULL column without a database default, so this code's INSERT into that table fails
NotNullViolation (23502; SQLite "NOT NULL constraint failed"), an IntegrityError, which ingest took for the message's
fault: the occlusion was dead-lettered and ACKNOWLEDGED (its unreadable alarm failed the same way), lost for good.
Issue 15's rule: a failure that is not about one message is never dead-lettered; the bridge stops acknowledging and
retries (no heartbeat meanwhile: monitoring degraded). A bug of this code about one row (a column or constraint its
models know) is still the message's: dead-lettered and acknowledged, never holding the bridge up for ever.
SQLite and PostgreSQL (`-p tests.support.postgres`); the tables are changed as a migration would, hence `transaction`.
"""

import contextlib
import json

import pytest
from django.db import connection, models
from django.db.models import Q

from devices.models import Alarm, DeadLetter, Device
from devices.services.schema import check_constraint_known, code_schema, schema_faults_as_infrastructure
from devices.states import SERVER_ALARM_TYPES
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device
from tests.realtime.bridge.test_commit import POISON, FaultyIngest, committer_with, status
from tests.realtime.bridge.test_schema_behind_the_code import _commit_until_stopped

pytestmark = pytest.mark.django_db(transaction=True)
OCCLUSION = InboundMessage(
    topic="devices/PUMP_C/error",
    payload=json.dumps(
        {"type": "occlusion", "severity": "high", "message": "Line blocked", "timestamp": 1_800_000_000_000}
    ).encode(),
)


@contextlib.contextmanager
def _schema_changed(change, undo):
    """The schema as `change(editor)` leaves it for the block, then put back by `undo(editor)` whatever happened."""
    with connection.schema_editor() as editor:
        change(editor)
    try:
        yield
    finally:
        with connection.schema_editor() as editor:
            undo(editor)


def _next_releases_column():
    """The alarms' table as the next release's AddField leaves it for the block: a NOT NULL column, its default used
    for the rows there and then dropped (Django keeps defaults in Python)."""
    field = models.IntegerField(default=0)
    field.set_attributes_from_name("next_release_field")
    return _schema_changed(lambda editor: editor.add_field(Alarm, field),
                           lambda editor: editor.remove_field(Alarm, field))  # fmt: skip


def _next_releases_not_null():
    """The alarms' `cleared_at`, NULL while an alarm stands, made NOT NULL by the next release for the block."""
    nullable = Alarm._meta.get_field("cleared_at")
    not_null = models.DateTimeField(null=False, blank=True)
    not_null.set_attributes_from_name("cleared_at")
    not_null.model = Alarm
    return _schema_changed(lambda editor: editor.alter_field(Alarm, nullable, not_null),
                           lambda editor: editor.alter_field(Alarm, not_null, nullable))  # fmt: skip


def _next_releases_check():
    """The alarms' table with a CHECK constraint of the next release for the block (one every alarm raised fails)."""
    check = models.CheckConstraint(condition=Q(alerts__gte=5), name="alarm_next_release_check")

    def add(editor) -> None:
        known = Alarm._meta.constraints
        Alarm._meta.constraints = [*known, check]  # SQLite remakes the table from the model's constraints
        try:
            editor.add_constraint(Alarm, check)
        finally:
            Alarm._meta.constraints = known

    return _schema_changed(add, lambda editor: editor.remove_constraint(Alarm, check))


@contextlib.contextmanager
def _as_the_bridge(wrapped: bool):
    """The bridge's connections translate the schema's faults (`guard.schema_faults_watch`); without it, the
    Committer must still tell them from the raw IntegrityError."""
    with connection.execute_wrapper(schema_faults_as_infrastructure) if wrapped else contextlib.nullcontext():
        yield


SCHEMAS_AHEAD = {
    "new-column": _next_releases_column,
    "not-null": _next_releases_not_null,
    "check": _next_releases_check,
}


@pytest.mark.parametrize("wrapped", [True, False], ids=["bridge-connection", "raw-error"])
@pytest.mark.parametrize("schema_ahead", SCHEMAS_AHEAD.values(), ids=SCHEMAS_AHEAD.keys())
def test_an_occlusion_met_by_the_next_releases_schema_is_retried_unacknowledged_then_applied(
    schema_ahead, wrapped, caplog
):
    make_device("PUMP_C")
    with schema_ahead(), _as_the_bridge(wrapped):
        committer, acknowledged = committer_with(FaultyIngest(RuntimeError("never raised: no poison")))
        _commit_until_stopped(committer, [OCCLUSION])
        letters = list(DeadLetter.objects.values_list("reason", "detail"))
        assert not acknowledged and not letters, (
            f"the occlusion was dead-lettered {[(r, d[:90]) for r, d in letters]} and acknowledged"
            f" {len(acknowledged)}: lost for good, while the schema is only ahead of this bridge's code"
        )
    assert "database schema ahead of the code" in caplog.text, "the log names the cause"
    committer, acknowledged = committer_with(FaultyIngest(RuntimeError("never raised: no poison")))
    _commit_until_stopped(committer, [OCCLUSION])  # the bridge upgraded to the schema's code: the broker's copy
    occlusions = Alarm.objects.filter(device__device_id="PUMP_C", type="occlusion")
    assert acknowledged == [OCCLUSION] and occlusions.exists(), "the occlusion kept by the broker is applied"


class BuggyIngest(FaultyIngest):
    """A bug of this code about one row: the poison message's handling breaks a constraint the models know."""

    def __init__(self, bug) -> None:
        super().__init__(RuntimeError("unused"))
        self.bug = bug

    def run(self, batch, **options):
        if any(b"poison" in message.payload for message in batch):
            self.bug()
        return super().run(batch, **options)


def _device_alarm_named_like_a_servers() -> None:
    alarm = Alarm.objects.create(device=Device.objects.get(device_id="PUMP_C"), type="x", priority="high",
                                 source="device")  # fmt: skip
    Alarm.objects.filter(pk=alarm.pk).update(type=sorted(SERVER_ALARM_TYPES)[0])


BUGS = {
    "not-null": lambda: Device.objects.filter(device_id="PUMP_C").update(device_id=None),
    "column-check": lambda: Device.objects.filter(device_id="PUMP_C").update(event_seq=-1),
    "named-check": _device_alarm_named_like_a_servers,
}


@pytest.mark.parametrize("bug", BUGS.values(), ids=BUGS.keys())
def test_a_constraint_this_code_knows_broken_by_a_bug_is_the_messages_fault_dead_lettered(bug):
    """The rule the retry must not swallow: a message whose handling breaks a known constraint goes (poison), and
    the messages around it are applied."""
    make_device("PUMP_C")
    with _as_the_bridge(wrapped=True):
        committer, acknowledged = committer_with(BuggyIngest(bug))
        batch = [status(10), InboundMessage(topic="devices/PUMP_C/status", payload=POISON), status(11)]
        _commit_until_stopped(committer, batch)
    letter = DeadLetter.objects.values_list("reason", "detail").first()
    assert acknowledged == batch and letter and "IntegrityError" in letter[1], (
        f"acknowledged {len(acknowledged)} of 3, dead letter {letter}: a bug about one row must not hold the bridge up"
    )
    assert Device.objects.get(device_id="PUMP_C").battery_level == 11


def test_every_check_constraint_of_the_migrated_database_is_known_to_the_code():
    """A check the code's rule does not recognise (a name Django or the database gave differently) would make a bug
    that breaks it wedge the bridge as the schema ahead: each one the database holds must be known."""
    known = code_schema()
    tables = {table for table, _ in known.columns}
    seen, unknown = [], []
    with connection.cursor() as cursor:
        for table in sorted(tables & set(connection.introspection.table_names(cursor))):
            for name, constraint in connection.introspection.get_constraints(cursor, table).items():
                if not constraint["check"] or name.startswith("__unnamed_constraint_"):  # SQLite: named by its column
                    continue
                seen.append(name)
                if not check_constraint_known(table, name):
                    unknown.append(f"{table}.{name}")
    assert seen, "no check constraint found: nothing was checked"
    assert not unknown, f"check constraints the code would take for a later release's: {unknown}"
