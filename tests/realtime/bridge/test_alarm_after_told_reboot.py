"""Review 23, finding 4: once a reboot under a reused `bootId` is told (its status's uptime went back), the new run's
alarm is not dropped as a copy of the old run's.

docs/protocol.md's known limit: a pump reusing its `bootId` has its first messages after a reboot skipped as copies
when they are byte for byte those it sent under the same `seq` before, "until the first message that differs". But a
status whose uptime went back differs, and the server then tells the reboot (`pump.restarted`): it knows the old run's
receipts are not this run's. Its next occlusion, the same bytes under the same `seq` as one raised (and cleared) in
the run before, is still skipped as a duplicate: the pump is occluded and nothing alarms.
"""

from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, DeviceEvent
from tests.factories import make_device
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

BOOT = {"bootId": "b00t"}  # an Arduino random() never seeded: the same on every boot
OCCLUSION = {"type": "occlusion", "severity": "high", "message": "Downstream occlusion"}


def test_an_alarm_after_a_told_reboot_under_the_same_boot_id_is_not_a_copy(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    make_device("R23_BOOT", has_presence=True)
    start = timezone.now()

    def at(seconds: float, kind: str, body: dict):
        ingest([report("R23_BOOT", kind, {**body, **BOOT}, at=start + timedelta(seconds=seconds))], capture)

    at(0, "status", {"status": "online", "uptime": 5_000, "seq": 1})
    at(1, "error", {**OCCLUSION, "seq": 2})
    at(2, "error", {"type": "occlusion_cleared", "seq": 3})
    at(600, "status", {"status": "idle", "uptime": 605_000, "seq": 4})
    assert not Alarm.objects.filter(device__device_id="R23_BOOT", state="active").exists(), "precondition: cleared"

    at(700, "status", {"status": "online", "uptime": 2_500, "seq": 1})  # rebooted: the uptime went back
    assert DeviceEvent.objects.filter(device__device_id="R23_BOOT", kind="pump.restarted").exists(), (
        "precondition: the reboot is told by the uptime"
    )
    at(701, "error", {**OCCLUSION, "seq": 2})  # the new run's occlusion

    active = list(Alarm.objects.filter(device__device_id="R23_BOOT", state="active").values_list("type", flat=True))
    assert "occlusion" in active, (
        "the pump rebooted under its reused bootId (told: pump.restarted) and then reported an occlusion; it was "
        f"skipped as a copy of the previous run's seq 2 and nothing alarms (active: {active})"
    )


def test_a_late_copy_of_the_run_before_is_still_a_copy_after_a_told_reboot(django_capture_on_commit_callbacks):
    """The old run's receipts are retired at the told reboot, not forgotten: a redelivered (MQTT DUP) copy of the old
    run's `occlusion_cleared` arriving after the reboot is still a copy, and never clears the new run's occlusion."""
    capture = django_capture_on_commit_callbacks
    make_device("BOOT_DUP", has_presence=True)
    start = timezone.now()

    def message(seconds: float, kind: str, body: dict):
        return report("BOOT_DUP", kind, {**body, **BOOT}, at=start + timedelta(seconds=seconds))

    old_clearing = {"type": "occlusion_cleared", "seq": 3}
    for seconds, kind, body in [(0, "status", {"status": "online", "uptime": 5_000, "seq": 1}),
                                (1, "error", {**OCCLUSION, "seq": 2}), (2, "error", old_clearing),
                                (600, "status", {"status": "idle", "uptime": 605_000, "seq": 4}),
                                (700, "status", {"status": "online", "uptime": 2_500, "seq": 1}),
                                (701, "error", {**OCCLUSION, "seq": 2})]:  # fmt: skip
        ingest([message(seconds, kind, body)], capture)
    assert Alarm.objects.filter(device__device_id="BOOT_DUP", state="active", type="occlusion").exists(), "precondition"
    ingest([replace(message(702, "error", old_clearing), redelivered=True)], capture)
    active = list(Alarm.objects.filter(device__device_id="BOOT_DUP", state="active").values_list("type", flat=True))
    assert "occlusion" in active, (
        f"a redelivered copy of the run before's occlusion_cleared cleared the new run's occlusion (active: {active})"
    )
