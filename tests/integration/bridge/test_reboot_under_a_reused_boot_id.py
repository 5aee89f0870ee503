"""A pump that reboots under the same `bootId`, through a real Mosquitto and a real bridge process: its `online` after
the reboot is published retained (presence) and reaches the subscribed bridge live (retain 0: no retain-as-published),
so its `uptime` going back from 600,000 to 2,500 ms ends the infusion it no longer runs `interrupted`."""

import pytest

from devices.models import Alarm, Device, DeviceEvent, InfusionSession
from devices.states import AlarmState, SessionStatus
from tests.factories import make_device
from tests.support.bridge import PumpClient, wait_until
from tests.support.ingest import confirmed_order

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PUMP = "PUMP_REBOOT"
BOOT = "0000002a"  # an unseeded random(): the same on every boot


def test_a_reboot_under_the_same_boot_id_interrupts_the_running_infusion(shared_bridge, broker):
    make_device(PUMP, has_presence=True)
    session = confirmed_order(PUMP)
    before = PumpClient(broker.url, PUMP)
    try:
        before.publish("status", {"deviceId": PUMP, "status": "online", "uptime": 4_200, "seq": 1, "bootId": BOOT},
                       retain=True)  # fmt: skip
        before.publish("status", {"deviceId": PUMP, "status": "running", "uptime": 600_000, "seq": 40,
                                  "bootId": BOOT, "infusionId": session.infusion_id})  # fmt: skip
        before.publish("progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 20.0, "seq": 41,
                                    "bootId": BOOT, "infusionId": session.infusion_id})  # fmt: skip
        wait_until(lambda: Device.objects.filter(device_id=PUMP, latest_progress__isnull=False).exists(), timeout=20,
                   message="the running reports were not applied")  # fmt: skip
        before.publish("status", {"deviceId": PUMP, "status": "offline", "bootId": BOOT}, retain=True)  # its Last Will
    finally:
        before.close()
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "no restart before the reboot"
    after = PumpClient(broker.url, PUMP)
    try:
        after.publish("status", {"deviceId": PUMP, "status": "online", "uptime": 2_500, "seq": 1, "bootId": BOOT},
                      retain=True)  # fmt: skip
        wait_until(lambda: InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED, timeout=20,
                   message="the pump rebooted under its bootId (uptime 600,000 -> 2,500 ms): the infusion it no "
                           "longer runs is still shown running")  # fmt: skip
    finally:
        after.close()
    alarms = Alarm.objects.filter(device__device_id=PUMP, state=AlarmState.ACTIVE).values_list("type", flat=True)
    assert "infusion_interrupted" in alarms, f"the restart raised no infusion_interrupted: {list(alarms)}"
    restarts = DeviceEvent.objects.filter(device__device_id=PUMP, kind="pump.restarted")
    whys = list(restarts.values_list("payload__why", flat=True))
    assert len(whys) == 1 and "uptime went back" in whys[0], whys


def test_a_self_test_alarm_sent_before_the_status_telling_the_reboot_is_raised(shared_bridge, broker):
    """Review 25, finding 3, through Mosquitto and a bridge process: the rebooted pump's first message is its power-on
    self-test occlusion, the same bytes and `seq` as the run before's, then its `online` (uptime 2,500 ms). Whether
    the bridge takes them in one batch or two, the occlusion was skipped as a copy before the status told the reboot."""
    pump = "PUMP_REBOOT_SELFTEST"
    make_device(pump, has_presence=True)
    occlusion = {"type": "occlusion", "severity": "high", "message": "Occlusion at self-test", "seq": 1, "bootId": BOOT}
    before = PumpClient(broker.url, pump)
    try:
        before.publish("error", occlusion)
        before.publish("status", {"deviceId": pump, "status": "online", "uptime": 4_200, "seq": 2, "bootId": BOOT})
        before.publish("error", {"type": "occlusion_cleared", "seq": 3, "bootId": BOOT})
        before.publish("status", {"deviceId": pump, "status": "idle", "uptime": 600_000, "seq": 4, "bootId": BOOT})
        wait_until(lambda: Alarm.objects.filter(device__device_id=pump, type="occlusion", state=AlarmState.CLEARED)
                   .exists() and Device.objects.get(device_id=pump).last_uptime_ms == 600_000, timeout=20,
                   message="the run before's reports were not applied")  # fmt: skip
    finally:
        before.close()
    after = PumpClient(broker.url, pump)
    try:
        after.publish("error", occlusion)
        after.publish("status", {"deviceId": pump, "status": "online", "uptime": 2_500, "seq": 2, "bootId": BOOT})
        wait_until(lambda: DeviceEvent.objects.filter(device__device_id=pump, kind="pump.restarted").exists(),
                   timeout=20, message="the reboot was not told by the uptime")  # fmt: skip
    finally:
        after.close()
    active = list(Alarm.objects.filter(device__device_id=pump, state=AlarmState.ACTIVE).values_list("type", flat=True))
    assert "occlusion" in active, (
        f"the rebooted pump reported an occlusion just before the status telling the reboot: skipped as the run "
        f"before's seq 1, nothing alarms (active: {active})"
    )


def test_a_new_runs_message_under_a_key_the_run_before_gave_another_kind_is_applied_once_the_reboot_is_told(
    shared_bridge, broker
):
    """Review 45, F1's other side: only a key used by a message of the same kind exempts one numbered below the pump's
    mark from being late (a tick's progress no longer hides its late status). The rebooted pump's first message, a
    `testing` status (battery 77 %) numbered 2 under the reused `bootId`, has the run before's progress 2 under its
    key: late, held; its `online` (uptime 20 s) tells the reboot, and the held status is applied after it."""
    pump = "PUMP_REBOOT_KINDS"
    make_device(pump)
    session = confirmed_order(pump)
    ids = {"bootId": BOOT, "infusionId": session.infusion_id}
    before = PumpClient(broker.url, pump)
    try:
        before.publish("status", {"deviceId": pump, "status": "running", "uptime": 600_000, "seq": 1, **ids})
        before.publish("progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 20.0, "seq": 2, **ids})
        before.publish("status", {"deviceId": pump, "status": "running", "uptime": 602_000, "seq": 3, **ids})
        wait_until(lambda: Device.objects.get(device_id=pump).seq_applied == 3, timeout=20,
                   message="the run before's reports were not applied")  # fmt: skip
    finally:
        before.close()
    after = PumpClient(broker.url, pump)
    try:
        after.publish("status", {"deviceId": pump, "status": "testing", "batteryLevel": 77, "seq": 2, "bootId": BOOT})
        wait_until(lambda: DeviceEvent.objects.filter(device__device_id=pump, kind="pump.report_late").exists(),
                   timeout=20, message="the status under the run before's progress key was not late")  # fmt: skip
        assert Device.objects.get(device_id=pump).battery_level != 77, "a late status applied before the reboot"
        # up 20 s: the held status was received since that boot (however long the bridge took meanwhile)
        after.publish("status", {"deviceId": pump, "status": "online", "uptime": 20_000, "seq": 3, "bootId": BOOT})
        wait_until(lambda: DeviceEvent.objects.filter(device__device_id=pump, kind="pump.restarted").exists(),
                   timeout=20, message="the reboot was not told by the uptime")  # fmt: skip
    finally:
        after.close()
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED
    assert Device.objects.get(device_id=pump).battery_level == 77, (
        "the rebooted pump's status, late under its reused bootId, was not applied once its reboot was told"
    )


def test_a_held_status_claimed_again_never_overwrites_the_new_runs_newer_status(shared_bridge, broker):
    """Review 47, M1: the run before numbered its ticks (statuses 1, 3, 5, progress 2, 4). The new run's status 2
    (`testing`, 77 %) is late under progress 2's key, held; its status 3 (`issue`, 12 %) is under a status's key,
    applied at once; its `online` 4 tells the reboot. The held status 2 was then applied last: the screen showed
    77 %, the pump's newest word being 12 %. Now it is recorded as late, overtaken by status 3 of its own run."""
    pump = "PUMP_REBOOT_HELD_ORDER"
    make_device(pump)
    session = confirmed_order(pump)
    ids = {"bootId": BOOT, "infusionId": session.infusion_id}
    flow = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 20.0}
    before = PumpClient(broker.url, pump)
    try:
        before.publish("status", {"deviceId": pump, "status": "running", "uptime": 600_000, "seq": 1, **ids})
        before.publish("progress", {**flow, "seq": 2, **ids})
        before.publish("status", {"deviceId": pump, "status": "running", "uptime": 602_000, "seq": 3, **ids})
        before.publish("progress", {**flow, "seq": 4, **ids})
        before.publish("status", {"deviceId": pump, "status": "running", "uptime": 604_000, "seq": 5, **ids})
        wait_until(lambda: Device.objects.get(device_id=pump).seq_applied == 5, timeout=20,
                   message="the run before's reports were not applied")  # fmt: skip
    finally:
        before.close()
    late = DeviceEvent.objects.filter(device__device_id=pump, kind="pump.report_late")
    after = PumpClient(broker.url, pump)
    try:
        after.publish("status", {"deviceId": pump, "status": "testing", "batteryLevel": 77, "seq": 2, "bootId": BOOT})
        wait_until(lambda: late.count() == 1, timeout=20, message="status 2 under progress 2's key not late")
        after.publish("status", {"deviceId": pump, "status": "issue", "batteryLevel": 12, "seq": 3, "bootId": BOOT})
        wait_until(lambda: Device.objects.get(device_id=pump).battery_level == 12, timeout=20,
                   message="status 3 under status 3's key not applied")  # fmt: skip
        after.publish("status", {"deviceId": pump, "status": "online", "uptime": 20_000, "seq": 4, "bootId": BOOT})
        wait_until(lambda: late.count() == 2, timeout=20,
                   message="the held status 2, claimed again after the told reboot, not recorded as late")  # fmt: skip
    finally:
        after.close()
    assert DeviceEvent.objects.filter(device__device_id=pump, kind="pump.restarted").exists()
    device = Device.objects.get(device_id=pump)
    assert (device.battery_level, device.reported_status) == (12, "online"), (
        f"the pump's newer status 3 (12 %) was overwritten by its held status 2 (77 %): shown "
        f"{device.reported_status}, battery {device.battery_level} %"
    )
    assert late.order_by("-id").first().payload["seqApplied"] == 3, "recorded as coming after the new run's status 3"
