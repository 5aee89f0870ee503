"""Review 25: a pump reusing its `bootId` (an unseeded random()) that rebooted and sends its alarm BEFORE the status
that tells the reboot (an occlusion found at its power-on self-test, published before its first status) has that
alarm dropped as a copy of the run before's message with the same `seq` and bytes. Review 23 finding 4 retired the
run before's receipts when the status tells the reboot; review 24 finding 2 re-claims a message that FOLLOWS that
status in the same batch. A message that comes before it, in the same batch or the one before, was judged a copy
and skipped: the pump is occluded and nothing alarms. The message came without DUP and not retained: the pump sent
it now, it is no redelivery."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, DeviceEvent
from tests.factories import make_device
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

BOOT = {"bootId": "b00t"}  # an Arduino random() never seeded: the same on every boot
OCCLUSION = {"type": "occlusion", "severity": "high", "message": "Downstream occlusion at self-test"}


@pytest.mark.parametrize("batches", ["one_batch", "two_batches"])
def test_an_alarm_sent_before_the_status_telling_a_reboot_under_a_reused_boot_id_is_raised(
    django_capture_on_commit_callbacks, batches
):
    capture, device_id = django_capture_on_commit_callbacks, f"R25_BOOT_{batches.upper()}"
    make_device(device_id, has_presence=True)
    start = timezone.now()

    def message(seconds: float, kind: str, body: dict):
        return report(device_id, kind, {**body, **BOOT}, at=start + timedelta(seconds=seconds))

    # the run before: its self-test found an occlusion (seq 1), then its status, the occlusion cleared, idle
    for seconds, kind, body in [(0, "error", {**OCCLUSION, "seq": 1}),
                                (0.5, "status", {"status": "online", "uptime": 5_000, "seq": 2}),
                                (2, "error", {"type": "occlusion_cleared", "seq": 3}),
                                (600, "status", {"status": "idle", "uptime": 605_000, "seq": 4})]:  # fmt: skip
        ingest([message(seconds, kind, body)], capture)
    assert not Alarm.objects.filter(device__device_id=device_id, state="active").exists(), "precondition"

    # rebooted: the same self-test finds the occlusion again (seq 1, same bytes), then its first status
    alarm, status = (message(700, "error", {**OCCLUSION, "seq": 1}),
                     message(700.02, "status", {"status": "online", "uptime": 2_500, "seq": 2}))  # fmt: skip
    if batches == "one_batch":
        outcomes = [ingest([alarm, status], capture)]
    else:
        outcomes = [ingest([alarm], capture), ingest([status], capture)]
    assert DeviceEvent.objects.filter(device__device_id=device_id, kind="pump.restarted").exists(), (
        "precondition: the reboot is told by the uptime"
    )
    active = list(Alarm.objects.filter(device__device_id=device_id, state="active").values_list("type", flat=True))
    assert "occlusion" in active, (
        f"the pump rebooted under its reused bootId and reported an occlusion just before the status telling it; the "
        f"occlusion was skipped as the run before's seq 1 and nothing alarms (active: {active}; outcomes "
        f"{[dict(o) for o in outcomes]})"
    )
