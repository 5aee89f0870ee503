"""Server alarms are the server's (contract v1.1): a pump's `X_cleared` never clears them; each clears by its own
rule or by a permitted user's resolve (coded reason and note, audited, seen by every watcher), also on the page.
"""

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from devices.models import Alarm, DeviceEvent, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, SessionStatus
from tests.clinical.alarm_support import (  # noqa: F401  (chromium, page_shelf, stack, open_page are fixtures)
    READ_BACK,
    bedside_close,
    bedside_open,
    chromium,
    open_page,
    page_shelf,
    stack,
)
from tests.factories import make_order, make_user
from tests.support.bridge import wait_until
from tests.support.browser import screenshot
from tests.support.sio import BrowserSession, StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bedside(clinical_broker, clinical_bridge, daphne_server):
    opened = bedside_open(clinical_broker.url, daphne_server.url, prefix="SRV")
    yield opened
    bedside_close(opened)


def applied(bedside, number: int) -> None:
    """Send a harmless status and wait until the bridge applied it: everything sent before it was applied too."""
    bedside.pump.publish("status", {"status": "testing", "timestamp": number})
    wait_until(lambda: DeviceEvent.objects.filter(device=bedside.device, kind="mqtt.status", device_timestamp=number),
               message="the bridge did not apply the pump's messages")  # fmt: skip


def charge_nurse(bedside):
    user = make_user(f"charge{bedside.device_id[-4:].lower()}", ward=bedside.device.ward)
    user.user_permissions.add(Permission.objects.get(codename="resolve_alarm"))
    return user


def test_a_pump_cannot_clear_infusing_without_order_and_its_idle_status_does(bedside):
    bedside.pump.publish("progress", {"deliveredVolumeMl": 1.0, "flowRate": 2.0, "status": "running"})
    alarm = bedside.alarm_event(lambda alarm: alarm["type"] == "infusing_without_order")
    bedside.pump.publish("error", {"type": "infusing_without_order_cleared"})
    bedside.pump.publish("error", {"type": "Infusing Without Order Cleared"})
    applied(bedside, 1)
    assert Alarm.objects.get(pk=alarm["id"]).state == AlarmState.ACTIVE, "the pump cleared a server alarm"
    bedside.pump.publish("status", {"status": "idle"})
    cleared = bedside.alarm_event(lambda a: a["id"] == alarm["id"] and a["state"] == "cleared")
    assert cleared["resolved"] is None


def test_a_pump_cannot_clear_a_mismatch_and_the_end_of_its_session_does(bedside):
    session = infusion_start(device_id=bedside.device_id, order=make_order())
    bedside.start_command(session.infusion_id)
    bedside.pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True,
                                      "parameters": {**READ_BACK, "flowRateMlMin": 5.0}})  # fmt: skip
    alarm = bedside.alarm_event(lambda alarm: alarm["type"] == "parameter_mismatch")
    bedside.pump.publish("error", {"type": "parameter_mismatch_cleared"})
    applied(bedside, 2)
    assert Alarm.objects.get(pk=alarm["id"]).state == AlarmState.ACTIVE, "the pump cleared the server's mismatch"
    bedside.pump.publish("status", {"status": "stopped"})
    bedside.alarm_event(lambda a: a["id"] == alarm["id"] and a["state"] == "cleared")
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.STOPPED


def test_a_permitted_user_resolves_a_stuck_alarm_audited_and_every_watcher_sees_it(bedside, daphne_server):
    other = make_user(f"other{bedside.device_id[-4:].lower()}", ward=bedside.device.ward)
    second_screen = StreamClient(daphne_server.url, cookie=session_cookie(other)).connect()
    try:
        second_screen.subscribe(bedside.device_id)
        bedside.pump.publish("error", b"\x00\x01 garbage from the pump")
        alarm = bedside.alarm_event(lambda alarm: alarm["type"] == "unreadable_alarm")
        BrowserSession(daphne_server.url, other.username).post(
            f"/api/alarms/{alarm['id']}/resolve/",
            {"reason": "checked_at_pump", "alerts": alarm["alerts"]},
            expect=(403,),
        )
        charge = charge_nurse(bedside)
        BrowserSession(daphne_server.url, charge.username).post(
            f"/api/alarms/{alarm['id']}/resolve/",
            {"reason": "other", "note": "pump screen: line occluded, fixed", "alerts": alarm["alerts"]},
        )
        for screen in (bedside.screen, second_screen):
            seen = screen.events.wait_for(lambda name, data: name == "device:alarm" and data["alarm"]["resolved"]
                                          and data["alarm"]["id"] == alarm["id"], timeout=10)["alarm"]  # fmt: skip
            assert seen["state"] == "cleared" and seen["resolved"]["by"] == charge.username
            assert seen["resolved"]["reason"] == "other" and seen["resolved"]["note"].startswith("pump screen")
    finally:
        second_screen.close()
    event = DeviceEvent.objects.get(device=bedside.device, kind="user.alarm_resolved")
    assert event.user == charge and event.payload["note"] == "pump screen: line occluded, fixed"


def test_a_lost_alarm_is_on_the_monitor_and_a_charge_nurse_resolves_it_there(bedside, open_page, artifacts_dir):  # noqa: F811
    charge = charge_nurse(bedside)
    page = open_page(charge, f"/devices/{bedside.device_id}/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    bedside.pump.publish("error", b"OCCLUSION!! line blocked")
    bedside.pump.publish("error", {"type": "Occlusion Detected (downstream)", "severity": "HIGH"})
    unreadable = bedside.alarm_event(lambda alarm: alarm["type"] == "unreadable_alarm")
    item = page.locator(f'.alarm[data-alarm-id="{unreadable["id"]}"]')
    expect(item).to_contain_text("could not be read (bad_json)")
    expect(item).to_have_attribute("data-priority", "high")
    expect(page.locator("#alarm-list")).to_contain_text("Occlusion Detected (downstream)")
    screenshot(page, artifacts_dir, "lost-alarm-on-the-monitor")
    item.get_by_role("button", name="Resolve…").click()
    dialog = page.locator("#resolve-dialog")
    dialog.get_by_label("Reason").select_option("checked_at_pump")
    dialog.get_by_label("Note").fill("read the pump's screen: occlusion, line changed")
    dialog.get_by_role("button", name="Resolve").click()
    expect(item).to_have_count(0)
    screenshot(page, artifacts_dir, "lost-alarm-resolved")
    resolved = Alarm.objects.get(pk=unreadable["id"])
    assert resolved.state == AlarmState.CLEARED and resolved.resolved_by == charge
