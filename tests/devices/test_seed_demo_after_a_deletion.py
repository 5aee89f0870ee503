"""Review 7, C: `manage.py seed_demo` (run by every `make run`) recreates a demo pump an administrator deleted with
`Device.objects.get_or_create`, bypassing `pump_register`: its seq restarts at 0 (below the device:removed every
screen saw), no device:status change is recorded, and the RemovedPump row stays behind."""

import pytest
from django.core.management import call_command

from devices.models import Device, RemovedPump
from devices.services.registration import pump_delete, pump_registration_save
from protocol import events
from tests.support.changes import RecordedChanges

pytestmark = pytest.mark.django_db


def test_a_deleted_demo_pump_seeded_again_goes_on_from_its_last_seq():
    call_command("seed_demo", password="a-test-password")
    for bed in ("7", "8", "9"):
        device = Device.objects.get(device_id="PUMP_0001")
        device.bed = bed
        pump_registration_save(device=device, fields=["bed"])
    pump_delete(device=Device.objects.get(device_id="PUMP_0001"))
    removed_at = RemovedPump.objects.get(device_id="PUMP_0001").last_seq
    emitted = RecordedChanges()
    emitted.clear()

    call_command("seed_demo", password="a-test-password")  # the next `make run`

    again = Device.objects.get(device_id="PUMP_0001")
    assert again.event_seq > removed_at, (
        f"seq restarted: the pump seeded again is at seq {again.event_seq}, its device:removed was seq {removed_at}"
    )
    assert not RemovedPump.objects.filter(device_id="PUMP_0001").exists()
    statuses = [
        change for change in emitted if change.device_id == "PUMP_0001" and change.event == events.DEVICE_STATUS
    ]
    assert [change.seq for change in statuses] == [again.event_seq], (
        f"the pump seeded again is not shown at once (no device:status recorded): {statuses}"
    )
