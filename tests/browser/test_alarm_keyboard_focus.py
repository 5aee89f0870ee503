"""Acknowledge (monitor) and the alarm links (station) keep the keyboard focus while the page updates (review 20,
finding 7).

The monitor rebuilt its alarm rows on every event and the station its list every second ("· for 12 s"): a nurse who
tabbed to Acknowledge or to an alarm's link (keyboard, switch access, a screen reader) had it taken from under her
focus, and her Enter went to the page's body. Rows are now kept by alarm and updated in place (keyed_rows.js).
"""

import threading

import pytest
from django.db import transaction
from playwright.sync_api import expect

from devices.models import Alarm
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import PumpClient

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}


def test_acknowledge_keeps_the_keyboard_focus_while_the_pump_reports_progress(open_page, stack):
    ward = make_ward("r20foc")
    make_device("BRW_R20_FOC", ward=ward, bed="2", has_presence=True)
    nurse = make_user("r20foc-nurse", ward=ward)
    pump = PumpClient(stack["broker"].url, "BRW_R20_FOC")
    done = threading.Event()
    try:
        pump.publish("status", {"status": "online"})
        session = infusion_start(device_id="BRW_R20_FOC", order=make_order(drug="Heparin", bolus_enabled=False),
                                 user=nurse)  # fmt: skip
        pump.publish("infusion", {"confirmed": True, "infusionId": session.infusion_id})

        def report() -> None:  # the pump's routine progress, as a running pump sends it
            delivered = 0.0
            while not done.wait(0.5):
                delivered += 0.02
                pump.publish("progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": delivered,
                                          "infusionId": session.infusion_id})  # fmt: skip

        reporter = threading.Thread(target=report, daemon=True)
        reporter.start()
        with transaction.atomic():
            alarm_raise(device=device_lock(device_id="BRW_R20_FOC"), type="air_in_line", priority=AlarmPriority.MEDIUM,
                        source=AlarmSource.DEVICE, message="Air in line")  # fmt: skip
        page = open_page(nurse, "/devices/BRW_R20_FOC/")
        row = page.locator(".alarm").filter(has_text="Air in line")
        expect(row.get_by_role("button", name="Acknowledge")).to_be_visible(timeout=5_000)
        events = page.evaluate("window.pumpstreamLive.stats.events")
        row.get_by_role("button", name="Acknowledge").focus()  # she tabbed to it
        page.wait_for_timeout(1_500)  # reads the alarm once more
        # the pump's next reports came meanwhile (each re-renders the monitor)
        page.wait_for_function(f"window.pumpstreamLive.stats.events >= {events + 2}", timeout=10_000)
        events = page.evaluate("window.pumpstreamLive.stats.events") - events
        focused = page.evaluate(
            "`${document.activeElement?.tagName}: ${document.activeElement?.textContent.trim().slice(0, 30)}`"
        )
        page.keyboard.press("Enter")
        page.wait_for_timeout(1_500)
        acknowledged = Alarm.objects.get(device__device_id="BRW_R20_FOC", type="air_in_line").acknowledged_at
        assert acknowledged is not None, (
            f"the nurse tabbed to Acknowledge and pressed Enter a moment later; the focus was on {focused!r} by then"
            f" ({events} events came meanwhile) and the alarm is not acknowledged"
        )
    finally:
        done.set()
        pump.close()


def test_the_stations_alarm_link_keeps_the_keyboard_focus(open_page, stack):
    """The station's list of active alarms is rebuilt whenever its texts change (station.js `renderList`), and they
    change every second ("· for 12 s"): the link to the pump's monitor loses the keyboard focus within a second."""
    ward = make_ward("r20sfo")
    make_device("BRW_R20_SFO", ward=ward, bed="3", has_presence=True)
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id="BRW_R20_SFO"), type="occlusion", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip
    page = open_page(make_user("r20sfo-nurse", ward=ward), "/?ward=r20sfo")
    link = page.locator("#station-alarm-list a").first
    expect(link).to_contain_text("Line blocked", timeout=5_000)
    link.focus()  # she tabbed to it
    page.wait_for_timeout(2_000)
    focused = page.evaluate(
        "`${document.activeElement?.tagName}: ${document.activeElement?.textContent.trim().slice(0, 40)}`"
    )
    page.keyboard.press("Enter")
    page.wait_for_timeout(1_000)
    assert "/devices/BRW_R20_SFO/" in page.url, (
        f"the nurse tabbed to the alarm's link and pressed Enter 2 s later: the focus was on {focused!r} (the list was"
        f" rebuilt for its counting time) and the page is still {page.url}"
    )
