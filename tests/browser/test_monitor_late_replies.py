"""A late reply never puts an older state back over the live events that overtook it (review 20, finding 1).

monitor_alarms.js applied the POST reply of Acknowledge (and of Resolve…) as if it were the newest live
`device:alarm`. When the alarm alerted again (the pump's occlusion went from warning to critical) between the server's
acknowledgement and the reply's arrival, the live re-alert came first and the late reply overwrote it: "Medium:
Occlusion · Acknowledged" and silence, while the pump had an unacknowledged HIGH occlusion. The monitor now shows an
act's outcome by its live event only (the button says "Acknowledging…" meanwhile).
"""

import time

import pytest
from django.db import transaction
from playwright.sync_api import expect

from devices.models import Alarm, InfusionSession
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import PumpClient

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def occlusion(device_id: str, priority: AlarmPriority) -> None:
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id=device_id), type="occlusion", priority=priority,
                    source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip


def test_a_late_acknowledge_reply_never_hides_the_higher_alert_that_overtook_it(open_page):
    ward = make_ward("r20ack")
    make_device("BRW_R20_ACK", ward=ward, bed="5", has_presence=True)
    page = open_page(make_user("ack-nurse", ward=ward), "/devices/BRW_R20_ACK/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    occlusion("BRW_R20_ACK", AlarmPriority.MEDIUM)
    medium = page.locator('.alarm[data-priority="medium"]').filter(has_text="Occlusion")
    expect(medium).to_be_visible(timeout=5_000)

    def slow_network(route):  # the acknowledgement commits at once; its reply is slow to come back (a busy network)
        response = route.fetch()
        occlusion("BRW_R20_ACK", AlarmPriority.HIGH)  # meanwhile the pump says it is critical: a new alert
        time.sleep(3)  # the live re-alert reaches the page (Daphne's publisher, a socket of its own) before the reply
        route.fulfill(response=response)

    page.route("**/api/alarms/*/acknowledge/", slow_network)
    page.evaluate("""() => new MutationObserver(() => {  // did the live high alert ever reach the screen?
        if (document.querySelector('.alarm[data-priority="high"][data-acknowledged="false"]')) window.sawHigh = true;
    }).observe(document.getElementById('alarm-list'), {childList: true, subtree: true})""")
    medium.get_by_role("button", name="Acknowledge").click()
    page.wait_for_timeout(5_000)
    alarm = Alarm.objects.get(device__device_id="BRW_R20_ACK", state="active")
    assert (alarm.priority, alarm.acknowledged_at) == ("high", None), "precondition: the server holds a new high alert"
    assert page.evaluate("window.sawHigh === true"), "precondition: the live high alert was shown before the reply came"
    high = page.locator('.alarm[data-priority="high"]').filter(has_text="Occlusion")
    assert high.count() == 1 and high.get_attribute("data-acknowledged") == "false", (
        "the pump's occlusion alerted again as HIGH, unacknowledged, but the monitor shows: "
        f"{page.locator('#alarm-list').inner_text()!r} (audio {page.locator('#monitor').get_attribute('data-audio')}):"
        " the late reply of the acknowledgement of the medium alert overwrote the live high alert"
    )


def test_a_late_end_record_reply_never_hides_the_infusion_started_after_it(open_page, stack):
    """End record… of Heparin: the server ends it at once, but the reply is slow; meanwhile a colleague starts
    Insulin, which the pump confirms (live events). The late reply must not put the ended Heparin back on screen."""
    ward = make_ward("r20end")
    make_device("BRW_R20_END", ward=ward, bed="6", has_presence=True)
    nurse, colleague = make_user("r20end-nurse", ward=ward), make_user("r20end-colleague", ward=ward)
    pump = PumpClient(stack["broker"].url, "BRW_R20_END")
    try:
        pump.publish("status", {"status": "online"})
        heparin = infusion_start(device_id="BRW_R20_END", order=make_order(drug="Heparin"), user=nurse)
        pump.publish("infusion", {"confirmed": True, "infusionId": heparin.infusion_id})
        page = open_page(nurse, "/devices/BRW_R20_END/")
        expect(page.locator("#mon-session")).to_have_text("Running", timeout=10_000)

        def slow_network(route):  # the record ends at once; the reply is slow to come back
            response = route.fetch()
            insulin = infusion_start(device_id="BRW_R20_END", order=make_order(drug="Insulin"), user=colleague)
            pump.publish("infusion", {"confirmed": True, "infusionId": insulin.infusion_id})
            time.sleep(3)  # the live events of Insulin reach the page before the reply
            route.fulfill(response=response)

        page.route("**/api/infusions/*/end-record/", slow_network)
        page.get_by_role("button", name="End record…").click()
        page.locator("#confirm-reason").fill("checked at the bedside")
        page.locator("#confirm-ok").click()
        page.wait_for_timeout(5_000)
        assert InfusionSession.objects.get(device__device_id="BRW_R20_END", status="running").drug == "Insulin", (
            "precondition: Insulin runs on the server"
        )
        assert "Insulin" in page.locator("#mon-drug").inner_text() and page.locator("#mon-session").inner_text() == (
            "Running"
        ), (
            "the pump runs Insulin, but after the late reply of End record… of Heparin the monitor shows "
            f"{page.locator('#mon-session').inner_text()!r}: {page.locator('#mon-drug').inner_text()!r}"
        )
    finally:
        pump.close()
