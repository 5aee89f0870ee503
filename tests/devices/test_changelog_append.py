"""The change log's append writes each entry's fields as the model stores them, in the caller's transaction."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from devices.models import ChangeLogEntry
from devices.services.changelog import change_log_append, change_log_listen, change_log_unlisten
from protocol.events import DeviceChange
from tests.factories import make_device

pytestmark = pytest.mark.django_db(transaction=True)


def test_entries_read_back_as_appended_and_listeners_hear_after_commit():
    first, second = make_device("PUMP_A"), make_device("PUMP_B")
    body = {"progress": {"volumeRemainingMl": 12.5, "status": "running", "note": "é ✓"}, "empty": None}
    heard = []

    def listener() -> None:
        heard.append(1)

    change_log_listen(listener)
    try:
        before = timezone.now()
        with transaction.atomic():
            change_log_append(entries=[(first.pk, DeviceChange("PUMP_A", 7, "device:progress", body, "icu")),
                                       (second.pk, DeviceChange("PUMP_B", 1, "device:status", {}, None))])  # fmt: skip
            assert heard == [], "a listener is told only after the commit"
        assert heard == [1]
    finally:
        change_log_unlisten(listener)
    rows = list(ChangeLogEntry.objects.order_by("id").values("device", "seq", "event", "body", "ward_code",
                                                             "created_at"))  # fmt: skip
    assert [{k: v for k, v in row.items() if k != "created_at"} for row in rows] == [
        {"device": first.pk, "seq": 7, "event": "device:progress", "body": body, "ward_code": "icu"},
        {"device": second.pk, "seq": 1, "event": "device:status", "body": {}, "ward_code": None},
    ]
    assert rows[0]["created_at"] == rows[1]["created_at"]
    assert before <= rows[0]["created_at"] <= before + timedelta(seconds=5)


def test_a_second_entry_for_the_same_seq_is_refused():
    pump = make_device("PUMP_A")
    change_log_append(entries=[(pump.pk, DeviceChange("PUMP_A", 3, "device:status", {}, None))])
    with pytest.raises(IntegrityError), transaction.atomic():
        change_log_append(entries=[(pump.pk, DeviceChange("PUMP_A", 3, "device:status", {}, None))])
    assert ChangeLogEntry.objects.count() == 1


def test_listeners_hear_once_per_commit_also_when_a_savepoint_with_the_first_append_rolled_back():
    """Each wake is a frame to Daphne and a read of the log: an alarm appends three times (its alarm, error and
    notification) and woke Daphne three times. One per commit now, and never none for a commit that logged."""
    pump = make_device("PUMP_A")
    heard = []

    def listener() -> None:
        heard.append(1)

    change_log_listen(listener)
    try:
        with transaction.atomic():
            for seq in (1, 2, 3):
                change_log_append(entries=[(pump.pk, DeviceChange("PUMP_A", seq, "device:status", {}, None))])
        assert heard == [1]
        with transaction.atomic():
            try:
                with transaction.atomic():  # a savepoint: its append, and the wake it registered, roll back
                    change_log_append(entries=[(pump.pk, DeviceChange("PUMP_A", 4, "device:status", {}, None))])
                    raise RuntimeError("this message failed")
            except RuntimeError:
                pass
            change_log_append(entries=[(pump.pk, DeviceChange("PUMP_A", 4, "device:status", {}, None))])
        assert heard == [1, 1], "the commit that logged seq 4 told the listeners"
        with transaction.atomic():
            with transaction.atomic():  # released, not rolled back: its one wake stands for the later append too
                change_log_append(entries=[(pump.pk, DeviceChange("PUMP_A", 5, "device:status", {}, None))])
            change_log_append(entries=[(pump.pk, DeviceChange("PUMP_A", 6, "device:status", {}, None))])
        assert heard == [1, 1, 1]
        change_log_append(entries=[(pump.pk, DeviceChange("PUMP_A", 7, "device:status", {}, None))])  # autocommit
        assert heard == [1, 1, 1, 1]
    finally:
        change_log_unlisten(listener)
    assert list(ChangeLogEntry.objects.order_by("seq").values_list("seq", flat=True)) == [1, 2, 3, 4, 5, 6, 7]
