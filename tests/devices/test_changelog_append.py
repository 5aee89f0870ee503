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
