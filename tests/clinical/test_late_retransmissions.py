"""A message the pump numbered older than one already applied of its boot never rewinds the screen (review 44, F1 and
F2).

A pump of today's firmware sends `bootId` and `seq` at QoS 1. A publish whose first send was lost is sent again by the
pump's MQTT stack (esp-mqtt, the original firmware's ESP32 stack, retransmits its outbox after
`message_retransmit_timeout`, 1 s, while newer messages go out at once), so an older `seq` of the same boot can reach
the broker after newer ones; the broker does not carry the DUP flag over to the bridge. Before, the bridge used `seq`
only to recognise copies (`records.message_receipts_claim`) and applied such a message as news: an old clearing
cleared the occlusion the pump reported since; an old running progress showed a paused infusion running. Now it is
recorded as `pump.report_late` and rewinds nothing (`devices/services/late_reports.py`), also when the other message of
a tick under its `seq` (a progress) arrived before it (review 45, F1).

Every test goes through the real Mosquitto, `manage.py run_mqtt_bridge`, Daphne and chromium (the clinical folder's
fixtures). Before judging, each publishes an informational `testing` status with the next `seq` and waits until it is
stored: the bridge applies one pump's messages in the order the broker hands them over, so everything published before
it was applied.
"""

import pytest
from playwright.sync_api import expect

from devices.models import Alarm, Device, DeviceEvent, InfusionSession
from devices.services.late_reports import REPORT_LATE_EVENT
from devices.states import SessionStatus
from tests.clinical.scenario import active_alarm, all_applied, confirmed_run, wait_status
from tests.factories import make_user, make_ward
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # orders wait for the tests, never for the 6 s time-out
BOOT = "boot-late"


def late_recorded(device_id: str) -> list[int]:
    """The `seq` of each message the pump's log records as late."""
    events = DeviceEvent.objects.filter(device__device_id=device_id, kind=REPORT_LATE_EVENT).order_by("id")
    return [event.payload["seq"] for event in events]


def test_a_late_retransmitted_clearing_does_not_hide_the_occlusion_the_pump_reported_after_it(
    clinical_bridge, clinical_pump, clinical_page
):
    """The pump reports an occlusion (seq 3), then its clearing (seq 4), whose first send is lost; the line occludes
    again (seq 5, delivered); the pump's stack then retransmits the clearing (seq 4). The pump's state is its seq 5:
    occluded.

    Before, the late clearing was applied as news and cleared the active occlusion: the monitor's alarm list showed no
    alarm, no sound, while the pump alarmed at the bedside (the same for any `X_cleared`)."""
    ward = make_ward("late-f1")
    pump = clinical_pump("LATE_F1")
    session = confirmed_run(pump, "LATE_F1", ward=ward, boot=BOOT)
    occlusion = {"type": "occlusion_detected", "severity": "high", "message": "Downstream occlusion", "bootId": BOOT}
    pump.publish("error", {**occlusion, "seq": 3})
    wait_until(lambda: active_alarm("LATE_F1", "occlusion_detected"), message="the occlusion was never raised")
    # seq 4, the clearing, is on its way again (its first send lost); the pump occludes again meanwhile:
    pump.publish("error", {**occlusion, "seq": 5})
    wait_until(lambda: active_alarm("LATE_F1", "occlusion_detected").count == 2, message="the repeat was never counted")
    pump.publish("error", {"type": "occlusion_cleared", "severity": "high", "message": "Occlusion cleared",
                           "bootId": BOOT, "seq": 4})  # fmt: skip
    all_applied(pump, "LATE_F1", seq=6, boot=BOOT)

    page = clinical_page(make_user("latenurse1", ward=ward), "/devices/LATE_F1/")
    expect(page.locator("#mon-session")).to_have_text("Running")
    assert active_alarm("LATE_F1", "occlusion_detected") is not None, (
        "a clearing older (seq 4, same boot) than the occlusion the pump reported since (seq 5) cleared it: "
        "the pump is occluded and the screen shows no alarm"
    )
    expect(page.locator("#alarm-list")).to_contain_text("occlusion", ignore_case=True)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING
    assert late_recorded("LATE_F1") == [4], "the late clearing is written in the pump's log"


def test_a_late_retransmitted_running_progress_does_not_show_a_paused_infusion_running(
    clinical_bridge, clinical_pump, clinical_page
):
    """The pump's running progress seq 4 loses its first send; the nurse pauses at the pump, which reports `paused`
    (seq 5, delivered) and, as the original firmware does, publishes nothing else while paused; its stack then
    retransmits progress seq 4 (running, 6.5 mL).

    Before, the stale progress resumed the session: the monitor read "Running" at 120 mL/h for a pump standing paused
    (a paused vasopressor shown as running), and 3 s later a `communication_lost` sent the nurse after a network
    fault, not to a paused pump."""
    ward = make_ward("late-f2")
    pump = clinical_pump("LATE_F2")
    session = confirmed_run(pump, "LATE_F2", ward=ward, boot=BOOT)
    pump.publish("status", {"status": "paused", "infusionId": session.infusion_id, "bootId": BOOT, "seq": 5})
    wait_status(session.infusion_id, SessionStatus.PAUSED)
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "deliveredVolumeMl": 6.5,
                              "volumeRemainingMl": 23.5, "flowRate": 2.0, "bootId": BOOT, "seq": 4})  # fmt: skip
    all_applied(pump, "LATE_F2", seq=6, boot=BOOT)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PAUSED, (
        "a progress older (seq 4, same boot) than the pump's paused (seq 5) resumed the infusion on the screen"
    )
    assert Device.objects.get(device_id="LATE_F2").pump_state == "paused"
    page = clinical_page(make_user("latenurse2", ward=ward), "/devices/LATE_F2/")
    expect(page.locator("#mon-session")).to_have_text("Paused")
    assert late_recorded("LATE_F2") == [4], "the late progress is written in the pump's log"


def test_a_late_retransmitted_running_status_is_not_hidden_by_its_ticks_progress(
    clinical_bridge, clinical_pump, clinical_page
):
    """Review 45, F1: a pump numbering its ticks sends progress 4 and status 4 (`running`) under one `seq`; the status's
    first send is lost. The nurse pauses at the pump (status 5, delivered); the stack resends status 4.

    Before, status 4's key was used (by progress 4): it was taken for a reboot's message under a reused key and applied,
    the monitor reading "Running" for a pump standing paused until its next message."""
    ward = make_ward("late-tick")
    pump = clinical_pump("LATE_TICK")
    session = confirmed_run(pump, "LATE_TICK", ward=ward, boot=BOOT)
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "deliveredVolumeMl": 6.5,
                              "volumeRemainingMl": 23.5, "flowRate": 2.0, "bootId": BOOT, "seq": 4})  # fmt: skip
    wait_until(lambda: (InfusionSession.objects.get(pk=session.pk).progress() or {}).get("deliveredVolumeMl") == 6.5,
               message="progress 4 never arrived")  # fmt: skip
    pump.publish("status", {"status": "paused", "infusionId": session.infusion_id, "bootId": BOOT, "seq": 5})
    wait_status(session.infusion_id, SessionStatus.PAUSED)
    pump.publish("status", {"status": "running", "infusionId": session.infusion_id, "bootId": BOOT, "seq": 4})
    all_applied(pump, "LATE_TICK", seq=6, boot=BOOT)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PAUSED, (
        "a status older (seq 4, same boot) than the pump's paused (seq 5) resumed the infusion on the screen: its key "
        "was used by the tick's progress"
    )
    assert Device.objects.get(device_id="LATE_TICK").pump_state == "paused"
    page = clinical_page(make_user("latenurse3", ward=ward), "/devices/LATE_TICK/")
    expect(page.locator("#mon-session")).to_have_text("Paused")
    assert late_recorded("LATE_TICK") == [4], "the late status is written in the pump's log"


def test_a_late_retransmitted_clearing_is_not_hidden_by_its_ticks_progress(clinical_bridge, clinical_pump):
    """The alarm variant: the occlusion (3) clears at tick 4 (progress 4 and `occlusion_cleared` 4, whose first send is
    lost), the line occludes again (5), the stack resends the clearing 4. Before, it cleared the occlusion the pump
    still reported, its key used by the tick's progress."""
    pump = clinical_pump("LATE_TICK_ALARM")
    session = confirmed_run(pump, "LATE_TICK_ALARM", boot=BOOT)
    occlusion = {"type": "occlusion_detected", "severity": "high", "message": "Downstream occlusion", "bootId": BOOT}
    pump.publish("error", {**occlusion, "seq": 3})
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "deliveredVolumeMl": 6.5,
                              "volumeRemainingMl": 23.5, "flowRate": 2.0, "bootId": BOOT, "seq": 4})  # fmt: skip
    pump.publish("error", {**occlusion, "seq": 5})
    wait_until(lambda: (active_alarm("LATE_TICK_ALARM", "occlusion_detected") or Alarm(count=0)).count == 2,
               message="the occlusion and its repeat were never raised")  # fmt: skip
    pump.publish("error", {"type": "occlusion_cleared", "severity": "high", "message": "Occlusion cleared",
                           "bootId": BOOT, "seq": 4})  # fmt: skip
    all_applied(pump, "LATE_TICK_ALARM", seq=6, boot=BOOT)
    assert active_alarm("LATE_TICK_ALARM", "occlusion_detected") is not None, (
        "a clearing older (seq 4, same boot) than the occlusion the pump reported since (seq 5) cleared it: its key "
        "was used by the tick's progress"
    )
    assert late_recorded("LATE_TICK_ALARM") == [4]
