"""An alarm whose long type ends in "cleared" but clears nothing is stored under a key of at most 64 (review 23,
finding 3).

`alarm_type_key` cuts a type's key to 64 characters, but a key ending in `_cleared` is cut as its base's and then
`_cleared` is added (so that `X_cleared` pairs with `X` however long), which makes up to 72. A type that is not
literally `X_cleared` and clears nothing is raised as the alarm it says it is (review 15: "Occlusion not cleared"):
under that 72-character key. `Alarm.type` is a `varchar(64)`: on PostgreSQL the insert fails (`DataError`, a
`DatabaseError` that `message_ingest` re-raises), the batch it came in goes through message by message, and the alarm
is dead-lettered as `internal_error` and shown only as a generic `unreadable_alarm`; on SQLite a key longer than the
column is stored. A pump can send one such alarm a second (its alarm budget) and so turn every batch of every pump
into one transaction per message. A value the database refuses (`DataError`) is now that one message's fault, as an
`IntegrityError` is: dead-lettered in its savepoint, the rest of its batch applied.
"""

import pytest
from django.db import DataError

from devices.models import Alarm, DeadLetter
from devices.services.alarm_keys import device_alarm_key
from realtime.bridge import ingest as bridge_ingest
from tests.factories import make_device
from tests.support.ingest import ingest, report, send

pytestmark = pytest.mark.django_db

# 81 characters, with spaces: not literally `X_cleared`; nothing active under its base, so it is an alarm
LONG_NOT_CLEARED = "Downstream occlusion during bolus delivery - pressure limit exceeded, not cleared"


def test_a_long_type_ending_in_cleared_that_clears_nothing_is_raised_as_sent(django_capture_on_commit_callbacks):
    make_device("R23_LONG")
    send(django_capture_on_commit_callbacks, "R23_LONG", "error",
         {"type": LONG_NOT_CLEARED, "severity": "high", "message": "Check the line"})  # fmt: skip
    alarms = list(Alarm.objects.filter(device__device_id="R23_LONG").values_list("type", "type_reported"))
    letters = list(DeadLetter.objects.filter(source="R23_LONG").values_list("reason", "detail"))
    bound = Alarm._meta.get_field("type").max_length
    assert [reported for _, reported in alarms] == [LONG_NOT_CLEARED] and all(len(key) <= bound for key, _ in alarms), (
        f"a high alarm typed {LONG_NOT_CLEARED!r} (clearing nothing) was stored as {alarms} (keys of "
        f"{[len(key) for key, _ in alarms]} characters in a column of {bound}); dead letters {letters}"
    )


def test_the_stored_key_of_a_long_clearing_like_type_still_says_cleared_and_differs_from_its_base():
    key, base = device_alarm_key(LONG_NOT_CLEARED), device_alarm_key(LONG_NOT_CLEARED.removesuffix(", not cleared"))
    assert len(key) <= 64 and key.endswith("_cleared") and key != base, (
        f"the alarm {LONG_NOT_CLEARED!r} is keyed {key!r} ({len(key)} characters), its base's alarm {base!r}"
    )


def test_a_value_the_database_refuses_is_the_one_messages_fault(django_capture_on_commit_callbacks, monkeypatch):
    """A `DataError` raised while applying one message dead-letters that message (and, for an alarm, raises
    `unreadable_alarm`), never the batch: the next message of the batch is applied in the same pass."""
    make_device("R23_DATA")
    applied = bridge_ingest.pump_report_apply

    def refusing(**kwargs):
        if kwargs["report"].model_extra.get("refuse"):
            raise DataError("value too long for type character varying(64)")
        return applied(**kwargs)

    monkeypatch.setattr(bridge_ingest, "pump_report_apply", refusing)
    batch = [report("R23_DATA", "error", {"type": "occlusion", "refuse": True}),
             report("R23_DATA", "error", {"type": "air_in_line", "severity": "high"}, 0.001)]  # fmt: skip
    ingest(batch, django_capture_on_commit_callbacks)
    letters = list(DeadLetter.objects.filter(source="R23_DATA").values_list("reason", flat=True))
    active = sorted(Alarm.objects.filter(device__device_id="R23_DATA", state="active").values_list("type", flat=True))
    assert letters == ["data_error"] and active == ["air_in_line", "unreadable_alarm"], (
        f"a message the database refused: dead letters {letters}, active alarms {active}"
    )
