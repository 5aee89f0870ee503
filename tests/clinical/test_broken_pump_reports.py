"""Review 44 (F3, F5, F6): a broken pump's reports (buggy firmware) that the server must not take at its word.

Every test goes through the real Mosquitto and `manage.py run_mqtt_bridge` (the clinical folder's fixtures). Each
failed on main at d2a5f4e for the reason its docstring gives.

A pump's messages here carry `bootId` and `seq` as the contract's modern firmware does. A QoS 1 message whose PUBACK
was lost is sent again by the pump's MQTT stack (esp-mqtt, the original firmware's ESP32 stack, retransmits its
outbox after `message_retransmit_timeout`, 1 s, while newer messages go out at once), so an older `seq` of the same
boot can reach the broker after newer ones; the broker does not carry the DUP flag over to the bridge.
"""

import pytest

from devices.models import Alarm, DeviceEvent, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, SessionStatus
from tests.clinical.scenario import all_applied, confirmed_run, published, wait_status
from tests.factories import make_device, make_order
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # orders wait for the tests, never for the 6 s time-out
BOOT = "boot-r44"


# F3 ------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["completion", "status"])
def test_a_completion_with_most_of_the_order_left_is_not_shown_as_completed_without_a_word(
    clinical_bridge, clinical_pump, how
):
    """A firmware that ends by its timer, not its volume (an occlusion or a slow syringe held it back), says
    `completed` (a `completion` whose own summary says 8 of 30 mL, or a `completed` status) while its last progress
    said 22 mL remained.

    On main the session ends `completed`, the pump idle, no alarm: the monitor reads "Completed" and the ward card an
    idle pump; the nurse takes the line down believing the order was given. The same pump saying `idle` instead is
    ended `interrupted` with a high `infusion_interrupted` naming the volume delivered (clinical-rules, Sessions): the
    server already knows this is not a completion, and says so only for one of the two words."""
    device_id = f"R44_F3_{how[:4].upper()}"
    pump = clinical_pump(device_id)
    session = confirmed_run(pump, device_id, boot=BOOT)
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "deliveredVolumeMl": 8.0,
                              "volumeRemainingMl": 22.0, "progressPercent": 26.7, "flowRate": 2.0, "bootId": BOOT,
                              "seq": 3})  # fmt: skip
    wait_until(lambda: (InfusionSession.objects.get(pk=session.pk).progress() or {}).get("deliveredVolumeMl") == 8.0,
               message="the progress at 8 mL never arrived")  # fmt: skip
    if how == "completion":
        pump.publish("completion", {"completed": True, "infusionId": session.infusion_id, "bootId": BOOT, "seq": 4,
                                    "summary": {"totalVolumeMl": 8.0, "plannedVolumeMl": 30, "totalTimeMin": 15.0,
                                                "plannedTimeMin": 15}})  # fmt: skip
    else:
        pump.publish("status", {"status": "completed", "infusionId": session.infusion_id, "bootId": BOOT, "seq": 4})
    wait_until(lambda: InfusionSession.objects.get(pk=session.pk).status != SessionStatus.RUNNING,
               message="the completion moved nothing")  # fmt: skip
    all_applied(pump, device_id, seq=5, boot=BOOT)
    ended = InfusionSession.objects.get(pk=session.pk)
    told = Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE).exclude(
        type__in=["communication_lost"]
    )
    assert ended.status != SessionStatus.COMPLETED or told.exists(), (
        f"the pump said completed with 22 of 30 mL left (8 mL delivered): shown {ended.status!r}, no alarm"
    )


# F5 ------------------------------------------------------------------------------------------------------------------


def test_a_pump_programmed_for_twice_the_orders_volume_mid_run_is_not_read_back_as_the_order(
    clinical_bridge, clinical_pump
):
    """The order is 30 mL (bolus 5 mL within it) at 120 mL/h; the pump confirmed it (read-back `match`). Then its
    volume to be infused is changed at the bedside (or its firmware lost it): it reports 6 mL delivered and 54 mL
    remaining, 27 min left, at the order's rate, three reports over a second.

    On main nothing is raised and the read-back stays `match`: the monitor shows "Ordered 120 mL/h · 30 mL", the
    pump's "Remaining 53.9 mL" and "27 min" beside it, and the read-back "matches the order"; the pump will give the
    whole 60 mL. `delivery_divergence` speaks only once more than the whole order has gone in (35.05 mL), about 15
    minutes later; a rate off the order is `parameter_mismatch` at its first report (clinical-rules, Read-back), a
    volume off it is not. (The original firmware's final progress counts the bolus twice, 35 of 30 mL: the server
    already allows the order's bolus on top, `delivery.py`; 60 mL is beyond that too.)"""
    pump = clinical_pump("R44_F5")
    session = confirmed_run(pump, "R44_F5", boot=BOOT)
    for i in range(3):
        pump.publish("progress", {"status": "running", "infusionId": session.infusion_id,
                                  "deliveredVolumeMl": round(6.0 + i * 0.03, 2),
                                  "volumeRemainingMl": round(54.0 - i * 0.03, 2), "timeRemainingMin": 27.0,
                                  "flowRate": 2.0, "bootId": BOOT, "seq": 3 + i})  # fmt: skip
    all_applied(pump, "R44_F5", seq=6, boot=BOOT)
    assert (InfusionSession.objects.get(pk=session.pk).progress() or {}).get("volumeRemainingMl") == 53.94
    told = Alarm.objects.filter(device__device_id="R44_F5", state=AlarmState.ACTIVE).exclude(type="communication_lost")
    read_back = InfusionSession.objects.get(pk=session.pk).read_back
    assert told.exists() or read_back != "match", (
        "the pump reports 60 mL to give (6 delivered + 54 remaining) for a 30 mL order: read-back still 'match', "
        "no alarm"
    )


# F6 ------------------------------------------------------------------------------------------------------------------


def test_a_pump_clock_stepped_back_by_ntp_is_not_taken_for_a_reboot(clinical_bridge, clinical_pump):
    """A pump without `bootId` whose numeric `timestamp` is its wall clock in epoch ms (1.8e12: 56 years taken as an
    uptime), its clock stepped back 3 s by NTP while it infuses.

    On main the bridge takes it for the original firmware's `millis()` going back: "the pump restarted (uptime went
    back from 1796589159846 ms to 1796589156846 ms)", the session `interrupted`, a high `infusion_interrupted` raised
    (notification, sound, modal) and, the same progress naming the infusion running, the session running again and
    the alarm cleared: an alarm that flashes and vanishes on its own, and any command under way counted lost in a
    restart that never was. `restarts.UPTIME_BELIEVED_MAX_MS` (ten years) already refuses such an uptime a boot
    moment; it still tells a restart."""
    make_device("R44_F6")
    pump = clinical_pump("R44_F6")
    session = infusion_start(device_id="R44_F6", order=make_order())
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    now_ms = 1_796_589_159_846
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True, "timestamp": now_ms - 1000})
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "deliveredVolumeMl": 6.0,
                              "flowRate": 2.0, "timestamp": now_ms})  # fmt: skip
    wait_status(session.infusion_id, SessionStatus.RUNNING)
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "deliveredVolumeMl": 6.03,
                              "flowRate": 2.0, "timestamp": now_ms - 3000})  # fmt: skip
    pump.publish("status", {"status": "testing", "batteryLevel": 51, "timestamp": now_ms - 2000})
    wait_until(lambda: DeviceEvent.objects.filter(device__device_id="R44_F6", payload__batteryLevel=51).exists(),
               message="the marker status was never applied")  # fmt: skip
    restarts = list(DeviceEvent.objects.filter(device__device_id="R44_F6", kind="pump.restarted"))
    assert not restarts, f"a wall clock stepped back 3 s was told as a reboot: {[r.payload for r in restarts]}"
    assert not Alarm.objects.filter(device__device_id="R44_F6", type="infusion_interrupted").exists()
