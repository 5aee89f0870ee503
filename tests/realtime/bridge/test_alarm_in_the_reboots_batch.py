"""Review 24, finding 2: the new run's alarm after a reboot under a reused `bootId` was still dropped as a copy when
it arrived in the SAME bridge batch as the status that tells the reboot, which is how a rebooting pump's first
messages arrive (its `online`/`idle` status and its alarm within milliseconds).

`messages_prepare` claims every receipt of a run of messages in one statement BEFORE any of them is applied: the
occlusion's (bootId, seq 2, same bytes) conflicted with the run before's receipt and was judged a copy there. The
status then told the reboot and retired the run before's receipts (`message_receipts_retire`, review 23 finding 4),
but too late for the occlusion already judged. The pump was occluded and nothing alarmed; the fix of review 23 held
only when the alarm came in a later batch than the status (its own test sends one message per batch). Now a message
judged a copy ahead of its run is claimed again in its turn when a status of its pump and bootId came before it in
the batch (`ingest.prepared_after_status`): a copy still unless that status retired the receipt it matched."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, DeviceEvent
from tests.factories import make_device
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

BOOT = {"bootId": "b00t"}  # an Arduino random() never seeded: the same on every boot
OCCLUSION = {"type": "occlusion", "severity": "high", "message": "Downstream occlusion"}


def test_an_alarm_in_the_same_batch_as_the_status_telling_the_reboot_is_not_a_copy(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    make_device("BOOT_BATCH", has_presence=True)
    start = timezone.now()

    def message(seconds: float, kind: str, body: dict):
        return report("BOOT_BATCH", kind, {**body, **BOOT}, at=start + timedelta(seconds=seconds))

    for seconds, kind, body in [(0, "status", {"status": "online", "uptime": 5_000, "seq": 1}),
                                (1, "error", {**OCCLUSION, "seq": 2}),
                                (2, "error", {"type": "occlusion_cleared", "seq": 3}),
                                (600, "status", {"status": "idle", "uptime": 605_000, "seq": 4})]:  # fmt: skip
        ingest([message(seconds, kind, body)], capture)
    assert not Alarm.objects.filter(device__device_id="BOOT_BATCH", state="active").exists(), "precondition"

    # rebooted: its first status (uptime went back) and its occlusion, received 20 ms apart: one bridge batch
    outcome = ingest([message(700, "status", {"status": "online", "uptime": 2_500, "seq": 1}),
            message(700.02, "error", {**OCCLUSION, "seq": 2})], capture)  # fmt: skip
    assert DeviceEvent.objects.filter(device__device_id="BOOT_BATCH", kind="pump.restarted").exists(), (
        "precondition: the reboot is told by the uptime"
    )
    active = list(Alarm.objects.filter(device__device_id="BOOT_BATCH", state="active")
                  .values_list("type", flat=True))  # fmt: skip
    assert "occlusion" in active, (
        "the pump rebooted under its reused bootId (told: pump.restarted) and reported an occlusion in the same "
        f"batch; its receipt was claimed before the reboot retired the run before's, so it was skipped as a copy of "
        f"the previous run's seq 2 and nothing alarms (active: {active}; batch outcome {dict(outcome)})"
    )


def test_a_copy_after_a_status_that_tells_no_reboot_is_still_a_copy(django_capture_on_commit_callbacks):
    """The other side of review 24, finding 2: the re-check after a status must not turn a real copy (the same
    message redelivered, the pump not rebooted) into news: it is skipped, and the occlusion is not counted twice."""
    capture = django_capture_on_commit_callbacks
    make_device("BOOT_NO_REBOOT", has_presence=True)
    start = timezone.now()

    def message(seconds: float, kind: str, body: dict):
        return report("BOOT_NO_REBOOT", kind, {**body, **BOOT}, at=start + timedelta(seconds=seconds))

    ingest([message(0, "status", {"status": "online", "uptime": 5_000, "seq": 1})], capture)
    ingest([message(1, "error", {**OCCLUSION, "seq": 2})], capture)
    outcome = ingest([message(10, "status", {"status": "idle", "uptime": 15_000, "seq": 3}),
                      message(10.02, "error", {**OCCLUSION, "seq": 2})], capture)  # fmt: skip
    occlusion = Alarm.objects.get(device__device_id="BOOT_NO_REBOOT", type="occlusion")
    assert outcome["duplicate"] == 1 and occlusion.count == 1, (
        f"the pump did not reboot: its occlusion seq 2 sent again after a status is a copy, yet outcome "
        f"{dict(outcome)}, occlusion counted {occlusion.count}"
    )
