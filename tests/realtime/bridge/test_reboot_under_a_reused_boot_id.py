"""A pump that reboots under the same `bootId` (an unseeded `random()`) is told restarted by its status's `uptime`.

Today's firmware (the simulator's `ModernFirmware`) sends its uptime in every status (`uptime`, ms) and an ISO
`timestamp`, so a reboot under a reused `bootId` is plain to see: uptime 600,000 ms, then 2,500 ms. It was never
told (`pump_restart_detect` returned as soon as a report carried a `bootId`): the Last Will turned the pump offline,
its `online` after the reboot online again, and the infusion it no longer ran stayed "running" with its last rate and
volumes, no `infusion_interrupted` (with the last delivered volume); a paused one stayed "Paused" and nothing ever
alarmed. What is not a restart (a late message, one status on both status topics, a wrap) is in
`test_restart_by_uptime_is_not_told_falsely.py`.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, Device, InfusionSession
from tests.factories import make_device, make_ward
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip


def modern(body: dict, *, seq: int, at: datetime) -> dict:
    """As `ModernFirmware._message` builds it: the device id, an ISO timestamp, `seq` and the (reused) `bootId`."""
    return {"deviceId": "REBOOT", **body, "timestamp": at.astimezone(UTC).isoformat(), "seq": seq, "bootId": "b00t"}


def test_a_reboot_under_the_same_boot_id_shown_by_the_uptime_going_back_interrupts_the_infusion(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    make_device("REBOOT", ward=make_ward("reboot"), has_presence=True, last_seen_at=timezone.now())
    session = confirmed_order("REBOOT", parameters=READ_BACK)
    ids, start = {"infusionId": session.infusion_id}, timezone.now()
    status = {"batteryLevel": 90, "firmwareVersion": "pumpstream-sim 2.0"}
    ingest([report("REBOOT", "status", modern({"status": "running", "uptime": 600_000, **status, **ids}, seq=40,
                                              at=start), at=start),
            report("REBOOT", "progress", modern({"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 20.0,
                                                 "volumeRemainingMl": 10.0, **ids}, seq=41, at=start), at=start)],
           capture)  # fmt: skip
    reboot = start + timedelta(seconds=3)
    ingest([report("REBOOT", "status", {"deviceId": "REBOOT", "status": "offline", "bootId": "b00t"},
                   at=reboot),  # its Last Will, from the broker
            report("REBOOT", "status", modern({"status": "online", "uptime": 2_500, **status}, seq=1, at=reboot),
                   at=reboot + timedelta(seconds=1))], capture)  # fmt: skip
    session.refresh_from_db()
    device = Device.objects.get(device_id="REBOOT")
    alarms = list(Alarm.objects.filter(device=device, state="active").values_list("type", flat=True))
    assert session.status == "interrupted" and "infusion_interrupted" in alarms, (
        f"the pump's uptime went back from 600,000 to 2,500 ms under bootId b00t (a reboot): the screen shows the "
        f"infusion {session.status}, the pump {device.pump_state} and {device.connectivity()}, alarms {alarms}"
    )
    assert InfusionSession.objects.get(pk=session.pk).status != "running"


def test_a_reboot_under_the_same_boot_id_of_a_paused_pump_interrupts_its_infusion(django_capture_on_commit_callbacks):
    """Paused, the infusion is not watched for silence: after the reboot nothing ever alarms. The infusion the pump
    forgot stays "Paused" on every screen; a Resume sent then fails ("act at the pump") with no alarm either (only a
    failed STOP or PAUSE raises `command_not_carried_out`)."""
    capture = django_capture_on_commit_callbacks
    make_device("REBOOT", ward=make_ward("reboot"), has_presence=True, last_seen_at=timezone.now())
    session = confirmed_order("REBOOT", parameters=READ_BACK)
    ids, start = {"infusionId": session.infusion_id}, timezone.now()
    status = {"batteryLevel": 90, "firmwareVersion": "pumpstream-sim 2.0"}
    ingest([report("REBOOT", "progress", modern({"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 20.0,
                                                 **ids}, seq=41, at=start), at=start),
            report("REBOOT", "actions", modern({"action": "MANUAL_PAUSE", "source": "device_screen", **ids}, seq=42,
                                               at=start), at=start),
            report("REBOOT", "status", modern({"status": "paused", "uptime": 600_000, **status, **ids}, seq=43,
                                              at=start), at=start)], capture)  # fmt: skip
    reboot = start + timedelta(seconds=60)
    ingest([report("REBOOT", "status", {"deviceId": "REBOOT", "status": "offline", "bootId": "b00t"}, at=reboot),
            report("REBOOT", "status", modern({"status": "online", "uptime": 2_500, **status}, seq=1, at=reboot),
                   at=reboot + timedelta(seconds=1))], capture)  # fmt: skip
    session.refresh_from_db()
    alarms = list(Alarm.objects.filter(device__device_id="REBOOT", state="active").values_list("type", flat=True))
    assert session.status == "interrupted" and "infusion_interrupted" in alarms, (
        f"the paused pump rebooted (uptime 600,000 -> 2,500 ms, bootId b00t reused): the infusion is shown "
        f"{session.status}, alarms {alarms}, and no silence check will ever alarm for a paused infusion"
    )
