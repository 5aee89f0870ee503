"""A refusal on the monitor stays said until the nurse dismisses it (review 20, finding 5).

Every refusal used to be written into the sound's status line (`#audio-state`), which `AlarmAudio.render()` rewrites
every second: a Stop refused (409 `infusion_changed`, nothing sent) was said for under a second, and the nurse could
walk away believing the pump was told to stop. Refusals now have lines of their own beside the buttons pressed
(`#control-notice`, `#alarm-notice`, static/js/monitor_notice.js), kept until dismissed.
"""

import pytest
from django.db import transaction
from playwright.sync_api import expect

from devices.models import Alarm
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.requests import infusion_record_end
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import PumpClient

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}


def test_a_refused_stop_stays_said(open_page, stack):
    ward = make_ward("r20ref")
    make_device("BRW_R20_REF", ward=ward, bed="6", has_presence=True)
    nurse, colleague = make_user("r20ref-nurse", ward=ward), make_user("r20ref-colleague", ward=ward)
    pump = PumpClient(stack["broker"].url, "BRW_R20_REF")
    try:
        pump.publish("status", {"status": "online"})
        first = infusion_start(device_id="BRW_R20_REF", order=make_order(drug="Heparin"), user=nurse)
        pump.publish("infusion", {"confirmed": True, "infusionId": first.infusion_id})
        page = open_page(nurse, "/devices/BRW_R20_REF/")
        expect(page.locator("#mon-session")).to_have_text("Running", timeout=10_000)
        page.get_by_role("button", name="Stop", exact=True).click()
        expect(page.locator("#confirm-text")).to_contain_text("Heparin")
        # meanwhile a colleague ends Heparin's record and starts Insulin, which the pump confirms
        infusion_record_end(infusion_id=first.infusion_id, user=colleague, reason="pump swapped")
        second = infusion_start(device_id="BRW_R20_REF", order=make_order(drug="Insulin"), user=colleague)
        pump.publish("infusion", {"confirmed": True, "infusionId": second.infusion_id})
        with page.expect_response("**/api/devices/*/commands/") as reply:
            page.locator("#confirm-dialog").get_by_role("button", name="Stop infusion").click()
        assert reply.value.status == 409, f"precondition: the Stop of Heparin is refused, got {reply.value.status}"
        page.wait_for_timeout(2_000)  # the nurse looks up from the button
        shown = page.locator("#monitor").inner_text()
        assert "no longer on" in shown, (
            "the server refused the Stop (nothing sent: Insulin runs now), but two seconds later the page says nothing "
            f"of it; the sound's line reads {page.locator('#audio-state').inner_text()!r}"
        )
        notice = page.locator("#control-notice")
        expect(notice).to_be_visible()
        expect(notice.get_by_role("alert")).to_contain_text("Insulin")
        notice.get_by_role("button", name="Dismiss").click()
        expect(notice).to_be_hidden()
    finally:
        pump.close()


def test_an_acknowledge_that_never_reached_the_server_stays_said_and_can_be_pressed_again(open_page, stack):
    """The network drops the Acknowledge: the page says so until dismissed, and the button is offered again."""
    ward = make_ward("r20net")
    make_device("BRW_R20_NET", ward=ward, bed="7", has_presence=True)
    page = open_page(make_user("r20net-nurse", ward=ward), "/devices/BRW_R20_NET/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id="BRW_R20_NET"), type="air_in_line", priority=AlarmPriority.MEDIUM,
                    source=AlarmSource.DEVICE, message="Air in line")  # fmt: skip
    row = page.locator(".alarm").filter(has_text="Air in line")
    page.route("**/api/alarms/*/acknowledge/", lambda route: route.abort("internetdisconnected"))
    row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_timeout(2_000)
    notice = page.locator("#alarm-notice")
    assert notice.is_visible() and "could not be reached" in notice.inner_text(), (
        "the Acknowledge never reached the server, but two seconds later the page says "
        f"{page.locator('section.alarms').inner_text()!r}"
    )
    assert Alarm.objects.get(device__device_id="BRW_R20_NET").acknowledged_at is None, "precondition: not acknowledged"
    page.unroute("**/api/alarms/*/acknowledge/")
    expect(row.get_by_role("button", name="Acknowledge")).to_be_enabled()
    notice.get_by_role("button", name="Dismiss").click()
    expect(notice).to_be_hidden()
    row.get_by_role("button", name="Acknowledge").click()
    expect(row).to_contain_text("Acknowledged by r20net-nurse", timeout=5_000)
