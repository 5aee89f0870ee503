"""Strict read-back (contract v1.1) through the real broker, bridge and Daphne, and on the page in Chromium.

No 0.01 mL/min floor (1 mL/h must not match 1.5 mL/h), 6 decimals on the wire, a confirmation without
parameters is `unverified` (never a match), progress beyond tolerance while unverified is a mismatch, and
a second mismatch in a new session is a NEW alarm that the waiting window shows as a mismatch.
"""

import pytest
from playwright.sync_api import expect

from devices.models import Alarm, Device, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, ReadBack, SessionStatus
from protocol import events
from tests.clinical.alarm_support import (  # noqa: F401  (chromium, page_shelf, stack, open_page are fixtures)
    READ_BACK,
    bedside_close,
    bedside_open,
    chromium,
    open_page,
    page_shelf,
    stack,
    start_from_the_wizard,
)
from tests.factories import make_order
from tests.support.bridge import wait_until
from tests.support.browser import screenshot

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ML_H = 1 / 60


@pytest.fixture
def bedside(clinical_broker, clinical_bridge, daphne_server):
    opened = bedside_open(clinical_broker.url, daphne_server.url, prefix="RB")
    yield opened
    bedside_close(opened)


def session_event(bedside, infusion_id: str, predicate, *, start: int = 0) -> dict:
    return bedside.screen.events.wait_for(
        lambda name, data: name == events.DEVICE_SESSION and data["session"]["infusionId"] == infusion_id
        and predicate(data["session"]), start=start, timeout=10,
    )["session"]  # fmt: skip


def confirm(bedside, order, parameters) -> InfusionSession:
    """Start `order` on the pump, and have the pump confirm it with `parameters` (None: without any)."""
    session = infusion_start(device_id=bedside.device_id, order=order)
    bedside.start_command(session.infusion_id)
    body = {"infusionId": session.infusion_id, "confirmed": True}
    if parameters is not None:
        body["parameters"] = parameters
    bedside.pump.publish("infusion", body)
    return session


def test_one_ml_per_hour_does_not_match_a_pump_running_one_and_a_half(bedside):
    order = make_order(flow_rate_ml_min=1 * ML_H, planned_volume_ml=1.0, planned_time_min=60.0, bolus_enabled=False)
    session = infusion_start(device_id=bedside.device_id, order=order)
    sent = bedside.start_command(session.infusion_id)["payload"]["flowRateMlMin"]
    assert sent == 0.016667, f"1 mL/h went out as {sent} mL/min, not rounded to 6 decimals"
    bedside.pump.publish(
        "infusion",
        {
            "infusionId": session.infusion_id,
            "confirmed": True,
            "parameters": {
                "flowRateMlMin": 1.5 * ML_H,
                "plannedVolumeMl": 1.0,
                "plannedTimeMin": 60.0,
                "bolusEnabled": False,
            },
        },
    )
    shown = session_event(bedside, session.infusion_id, lambda s: s["status"] == "running")
    assert shown["readBack"] == "mismatch", f"1 mL/h against 1.5 mL/h was shown as {shown['readBack']}"
    alarm = bedside.alarm_event(lambda alarm: alarm["type"] == "parameter_mismatch")
    assert alarm["priority"] == "high" and alarm["infusionId"] == session.infusion_id


def test_a_tenth_of_a_ml_per_hour_goes_out_with_six_decimals(bedside):
    order = make_order(flow_rate_ml_min=0.1 * ML_H, planned_volume_ml=0.1, planned_time_min=60.0, bolus_enabled=False)
    session = infusion_start(device_id=bedside.device_id, order=order)
    sent = bedside.start_command(session.infusion_id)["payload"]["flowRateMlMin"]
    assert sent == 0.001667, f"0.1 mL/h went out as {sent} mL/min ({sent * 60:.4f} mL/h)"


def test_a_confirmation_without_parameters_is_unverified_and_progress_beyond_tolerance_is_a_mismatch(bedside):
    session = confirm(bedside, make_order(), None)
    shown = session_event(bedside, session.infusion_id, lambda s: s["status"] == "running")
    assert shown["readBack"] == "unverified", "a confirmation without parameters must never count as a match"
    unverified = bedside.alarm_event(lambda alarm: alarm["type"] == "parameters_unverified")
    assert unverified["priority"] == "medium" and unverified["infusionId"] == session.infusion_id
    assert not Alarm.objects.filter(type="parameter_mismatch").exists()
    mark = bedside.mark()
    bedside.pump.publish("progress", {"flowRate": 2.004, "deliveredVolumeMl": 0.1, "status": "running"})
    bedside.pump.publish("progress", {"flowRate": 3.0, "deliveredVolumeMl": 0.2, "status": "running"})
    mismatch = bedside.alarm_event(lambda alarm: alarm["type"] == "parameter_mismatch", start=mark)
    assert mismatch["priority"] == "high" and mismatch["infusionId"] == session.infusion_id
    assert "180 mL/h" in mismatch["message"], mismatch["message"]
    assert session_event(bedside, session.infusion_id, lambda s: s["readBack"] == "mismatch", start=mark)


def test_a_confirmation_missing_one_field_is_unverified(bedside):
    partial = {name: value for name, value in READ_BACK.items() if name != "plannedVolumeMl"}
    session = confirm(bedside, make_order(), partial)
    assert session_event(bedside, session.infusion_id, lambda s: s["status"] == "running")["readBack"] == "unverified"
    assert bedside.alarm(type="parameters_unverified").details["fields"] == ["plannedVolumeMl"]


def test_a_second_mismatch_in_a_new_session_is_a_new_alarm_and_never_confirmed(bedside, open_page, artifacts_dir):  # noqa: F811
    bedside.pump.publish("status", {"status": "healthy"})
    wait_until(lambda: Device.objects.get(pk=bedside.device.pk).last_seen_at, message="the pump was never heard")
    page = open_page(bedside.nurse, f"/devices/{bedside.device_id}/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    sessions = []
    for number, reported_ml_min in ((1, 5.0), (2, 7.0)):
        if number == 2:
            page.goto(f"{page.url.split('/devices/')[0]}/devices/{bedside.device_id}/start/")
            expect(page.locator("#connection-banner")).to_have_text("Live")
        start_from_the_wizard(page)
        session = wait_until(lambda: InfusionSession.objects.filter(device=bedside.device,
                                                                    status=SessionStatus.PENDING).first(),
                             message="the wizard created no pending session")  # fmt: skip
        bedside.start_command(session.infusion_id)
        bedside.pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True,
                                          "parameters": {**READ_BACK, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0,
                                                         "bolusEnabled": False, "bolusVolumeMl": 0,
                                                         "flowRateMlMin": reported_ml_min}})  # fmt: skip
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "mismatch", timeout=15_000)
        expect(page.locator("#waiting-readback")).to_contain_text("MISMATCH")
        expect(page.locator("#waiting-readback")).to_contain_text("120.000 mL/h")
        expect(page.locator("#waiting-readback")).to_contain_text(f"{reported_ml_min * 60:.3f} mL/h")
        screenshot(page, artifacts_dir, f"readback-mismatch-{number}")
        expect(modal).to_be_visible()  # a mismatch never closes the window as "confirmed"
        sessions.append(session)
        page.get_by_role("button", name="Go to the monitor").click()
        expect(page.locator("#mon-readback")).to_contain_text("MISMATCH")
        if number == 1:
            bedside.pump.publish("status", {"status": "stopped"})
            wait_until(lambda session=session: InfusionSession.objects.get(pk=session.pk).status
                       == SessionStatus.STOPPED, message="the first infusion did not stop")  # fmt: skip
    screenshot(page, artifacts_dir, "readback-second-mismatch-monitor")
    alarms = list(Alarm.objects.filter(device=bedside.device, type="parameter_mismatch").order_by("pk"))
    assert [alarm.session_id for alarm in alarms] == [s.pk for s in sessions], (
        f"the second mismatch must be a new alarm tied to the new session: {[(a.session_id, a.count) for a in alarms]}"
    )
    assert alarms[1].state == AlarmState.ACTIVE and alarms[1].count == 1 and alarms[1].acknowledged_at is None
    assert InfusionSession.objects.get(pk=sessions[1].pk).read_back == ReadBack.MISMATCH
    expect(page.locator(f'.alarm[data-alarm-id="{alarms[1].pk}"]')).to_be_visible()
