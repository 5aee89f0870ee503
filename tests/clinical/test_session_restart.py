"""Restarts end what the pump was doing, the idle rule, and a person ending a ghost record (page and admin).

On the old code a pump restarted idle (new bootId) left its session running for ever: the overview kept
"running · 250 mL/h", communication_lost cleared and re-raised, a new start was refused, nothing ended it.
"""

import pytest
from playwright.sync_api import expect

from devices.models import DeviceEvent, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, SessionStatus
from tests.clinical.scenario import active_alarm, legacy_step, legacy_steps, published, replay, wait_status
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import broker_session_end, wait_until
from tests.support.browser import screenshot
from tests.support.processes import subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

HEARTBEAT_TIMEOUT_S = float(subprocess_env()["HEARTBEAT_TIMEOUT_S"])  # the bridge's, as the tests start it
BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # its orders wait for tests that act on them, never for the 6 s time-out


def running_session(pump, device_id: str, **device_fields) -> InfusionSession:
    """A confirmed session with some progress, on a pump that sent bootId `boot-1`."""
    make_device(device_id, **device_fields)
    session = infusion_start(device_id=device_id, order=make_order())
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True, "bootId": "boot-1", "seq": 1})
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "deliveredVolumeMl": 12.5,
                              "volumeRemainingMl": 17.5, "flowRate": 2.0, "bootId": "boot-1", "seq": 2})  # fmt: skip
    wait_until(lambda: (InfusionSession.objects.get(pk=session.pk).progress() or {}).get("deliveredVolumeMl"),
               message="the session's progress never arrived")  # fmt: skip
    return session


def test_modern_restart_with_a_new_boot_id_interrupts_the_session_and_frees_the_pump(clinical_bridge, clinical_pump):
    pump = clinical_pump("CLN_BOOT_M")
    session = running_session(pump, "CLN_BOOT_M")
    pump.publish("status", {"status": "idle", "bootId": "boot-2", "seq": 1})
    ended = wait_status(session.infusion_id, SessionStatus.INTERRUPTED, message="a restarted pump kept its session")
    alarm = active_alarm("CLN_BOOT_M", "infusion_interrupted")
    assert alarm is not None and alarm.priority == "high", "a restart during an infusion raises a high alarm"
    assert "12.5 mL" in alarm.message, f"the alarm states the last delivered volume: {alarm.message!r}"
    assert ended.device.pump_state == "idle"
    assert DeviceEvent.objects.filter(device=ended.device, kind="pump.restarted").exists()
    newer = infusion_start(device_id="CLN_BOOT_M", order=make_order())  # the pump is free for a new order
    assert newer.status == SessionStatus.PENDING


def test_a_retained_replay_with_an_old_boot_never_counts_as_a_restart(clinical_broker, clinical_bridge, clinical_pump):
    """The broker hands a retained status over (RETAIN 1) when the bridge subscribes: the pump's state when it
    retained it, not news. Its session ended while it was away (expired), the bridge has no queued copy of it either:
    a status published while its session lasts is queued for it and arrives with RETAIN 0, news, as does one published
    to its established subscription (a new `bootId` then is a restart by the contract; the modern restart test)."""
    pump = clinical_pump("CLN_BOOT_R")
    session = running_session(pump, "CLN_BOOT_R")
    clinical_bridge.stop()
    try:
        broker_session_end(clinical_broker.url, clinical_bridge.client_id)
        pump.publish("status", {"status": "running", "bootId": "boot-0"}, retain=True)  # retained: state, not news
    finally:
        clinical_bridge.start()
    try:
        wait_until(lambda: DeviceEvent.objects.filter(device__device_id="CLN_BOOT_R", kind="mqtt.status",
                                                      payload__bootId="boot-0").exists(),
                   message="the retained status was never handed over on the bridge's start")  # fmt: skip
        pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "deliveredVolumeMl": 13.0,
                                  "bootId": "boot-1", "seq": 3})  # fmt: skip
        wait_until(lambda: (InfusionSession.objects.get(pk=session.pk).progress() or {}).get("deliveredVolumeMl")
                   == 13.0, message="progress after the retained message was not applied")  # fmt: skip
    finally:
        pump.publish("status", b"", retain=True)
    assert not DeviceEvent.objects.filter(device__device_id="CLN_BOOT_R", kind="pump.restarted").exists(), (
        "a retained replay was taken for a restart"
    )
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "a retained replay restarted it"
    assert active_alarm("CLN_BOOT_R", "infusion_interrupted") is None


def test_original_firmware_post_boot_test_message_interrupts_the_session(clinical_bridge, clinical_pump):
    pump = clinical_pump("CLN_BOOT_L")
    make_device("CLN_BOOT_L")
    session = infusion_start(device_id="CLN_BOOT_L", order=make_order())
    steps = legacy_steps("infusion", session.infusion_id, "CLN_BOOT_L")
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    replay(pump, legacy_step(steps, "/status", status="received_start_command"), legacy_step(steps, "/infusion"),
           legacy_step(steps, "/progress", status="running"))  # fmt: skip
    wait_until(lambda: (InfusionSession.objects.get(pk=session.pk).progress() or {}).get("deliveredVolumeMl"),
               message="the legacy progress never arrived")  # fmt: skip
    replay(pump, legacy_step(steps, "/test"))  # the pump rebooted: its post-boot test message
    wait_status(session.infusion_id, SessionStatus.INTERRUPTED, message="the post-boot test did not end the session")
    assert "5.04 mL" in active_alarm("CLN_BOOT_L", "infusion_interrupted").message
    pump.publish("infusion", b"", retain=True)


def test_original_firmware_uptime_going_back_interrupts_the_session(clinical_bridge, clinical_pump):
    pump = clinical_pump("CLN_BOOT_U")
    make_device("CLN_BOOT_U")
    session = infusion_start(device_id="CLN_BOOT_U", order=make_order())
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True})
    pump.publish("progress", {"status": "running", "deliveredVolumeMl": 4.0, "timestamp": 900000})
    wait_status(session.infusion_id, SessionStatus.RUNNING)
    pump.publish("status", {"status": "online", "timestamp": 4215}, topic="device/CLN_BOOT_U/status")
    wait_status(session.infusion_id, SessionStatus.INTERRUPTED, message="uptime going back did not end the session")


@pytest.mark.parametrize(("last_progress", "expected"), [
    ({"status": "running", "volumeRemainingMl": 0.0, "progressPercent": 100}, SessionStatus.COMPLETED),
    ({"status": "running", "volumeRemainingMl": 11.0, "progressPercent": 63}, SessionStatus.INTERRUPTED),
])  # fmt: skip
def test_idle_ends_a_running_session_completed_only_when_nothing_remained(
    clinical_bridge, clinical_pump, last_progress, expected
):
    device_id = f"CLN_IDLE_{expected[:4].upper()}"
    pump = clinical_pump(device_id)
    make_device(device_id)
    session = infusion_start(device_id=device_id, order=make_order())
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True})
    pump.publish("progress", {**last_progress, "infusionId": session.infusion_id, "deliveredVolumeMl": 19.0})
    wait_until(lambda: InfusionSession.objects.get(pk=session.pk).progress(), message="no progress")
    pump.publish("status", {"status": "idle"})
    wait_status(session.infusion_id, expected, message=f"idle after {last_progress} did not end it {expected}")
    interrupted_alarm = active_alarm(device_id, "infusion_interrupted")
    assert (interrupted_alarm is not None) == (expected == SessionStatus.INTERRUPTED)


def test_a_nurse_ends_a_ghost_record_on_the_monitor_page(clinical_bridge, clinical_pump, clinical_page, artifacts_dir):
    """The pump went silent mid-infusion (it restarted unseen); a permitted user ends the record, audited."""
    ward = make_ward("cln-ghost")
    pump = clinical_pump("CLN_GHOST")
    session = running_session(pump, "CLN_GHOST", ward=ward, bed="7")
    wait_until(lambda: active_alarm("CLN_GHOST", "communication_lost"), timeout=15,
               message="the silent running session raised no communication_lost")  # fmt: skip
    nurse = make_user("ghostnurse", ward=ward)
    page = clinical_page(nurse, "/devices/CLN_GHOST/")
    expect(page.locator("#mon-session")).to_have_text("Running")
    page.get_by_role("button", name="End record…").click()
    page.locator("#confirm-reason").fill("pump restarted, not infusing (checked at the bedside)")
    page.locator("#confirm-ok").click()
    expect(page.locator("#mon-session")).to_have_text("Interrupted", timeout=10_000)
    expect(page.locator("#mon-drug")).to_contain_text("record ended by ghostnurse")
    expect(page.locator("#mon-rate")).to_have_text("Interrupted")
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    expect(page.locator("#start-link")).to_be_visible()
    screenshot(page, artifacts_dir, "clinical-ghost-record-ended")
    ended = InfusionSession.objects.get(pk=session.pk)
    assert ended.status == SessionStatus.INTERRUPTED and "ghostnurse" in ended.status_reason
    audit = DeviceEvent.objects.get(kind="user.infusion_record_end", session=ended)
    assert audit.user == nurse and "bedside" in audit.payload["reason"]
    assert active_alarm("CLN_GHOST", "communication_lost") is None, "the silence alarm ends with the session"
    assert published(pump, "STOP_INFUSION") == [], "ending a record sends nothing to the pump"
    assert ended.device.alarms.filter(type="communication_lost", state=AlarmState.CLEARED).count() == 1


def test_a_pending_order_on_the_monitor_is_cancelled_never_merely_ended(clinical_bridge, clinical_pump, clinical_page):
    """Review 3: End record of a pending order left it on the pump's confirm screen (nothing sent); accepted there,
    it ran. The monitor offers Cancel start… for a pending order instead, which tells the pump to clear its screen."""
    ward = make_ward("cln-pending")
    pump = clinical_pump("CLN_PEND")
    make_device("CLN_PEND", ward=ward)
    page = clinical_page(make_user("pendnurse", ward=ward), "/devices/CLN_PEND/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    session = infusion_start(device_id="CLN_PEND", order=make_order(drug="Heparin"))  # a colleague's order
    expect(page.locator("#mon-session")).to_have_text("Waiting for the pump", timeout=10_000)
    expect(page.get_by_role("button", name="End record…")).to_be_hidden()
    page.get_by_role("button", name="Cancel start…").click()
    expect(page.locator("#confirm-text")).to_contain_text("Heparin")
    page.locator("#confirm-ok").click()
    expect(page.locator("#mon-session")).to_have_text("Cancelled", timeout=10_000)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.CANCELLED
    wait_until(lambda: published(pump, "STOP_INFUSION"), message="the cancel did not clear the pump's screen")


def test_an_administrator_ends_a_ghost_record_in_the_admin(clinical_bridge, clinical_pump, client, settings):
    """As on the monitor page, for a pump gone silent mid-infusion: one reporting it running is no ghost (refused:
    `tests/integration/simulator/test_end_record_of_a_running_pump.py`)."""
    from django.contrib.auth import get_user_model

    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "HEARTBEAT_TIMEOUT_S": HEARTBEAT_TIMEOUT_S}  # judged as the bridge
    pump = clinical_pump("CLN_GHOST_A")
    session = running_session(pump, "CLN_GHOST_A")
    wait_until(lambda: active_alarm("CLN_GHOST_A", "communication_lost"), timeout=15,
               message="the silent running session raised no communication_lost")  # fmt: skip
    admin = get_user_model().objects.create_superuser("chief", password="pw-for-tests-only")
    client.force_login(admin)
    action = {"action": "end_record", "_selected_action": [session.pk]}
    response = client.post("/admin/devices/infusionsession/", action, follow=True)
    assert response.status_code == 200
    ended = InfusionSession.objects.get(pk=session.pk)
    assert ended.status == SessionStatus.INTERRUPTED and "chief" in ended.status_reason
    assert DeviceEvent.objects.filter(kind="user.infusion_record_end", session=ended, user=admin).exists()
