"""The start page shows the pump's own state above the wizard and its waiting window (review 20, finding 3).

Before, start.html included the monitor panel `hidden` until the pump confirmed the order, with the alarm list, "Silence
2 min", Acknowledge, "Enable alarm sound" and the connectivity in it: a high alarm of this very pump raised while the
nurse filled in the wizard played its sound with nothing on screen and nothing to press, and an offline pump's wizard
looked like any other until Start was refused.
"""

import pytest
from django.db import transaction
from playwright.sync_api import expect

from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}


def test_a_high_alarm_of_the_pump_shows_on_its_start_page(open_page, stack):
    ward = make_ward("r20wiz")
    make_device("BRW_R20_WIZ", ward=ward, bed="8", has_presence=True)
    pump = PumpClient(stack["broker"].url, "BRW_R20_WIZ")
    try:
        pump.publish("status", {"status": "online"})
        page = open_page(make_user("r20wiz-nurse", ward=ward), "/devices/BRW_R20_WIZ/start/")
        expect(page.locator("#connection-banner")).to_have_text("Live")
        page.get_by_label("Name", exact=True).fill("Ann Lee")  # the nurse is typing the patient's details
        with transaction.atomic():
            alarm_raise(device=device_lock(device_id="BRW_R20_WIZ"), type="occlusion", priority=AlarmPriority.HIGH,
                        source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip
        received = page.locator('#alarm-list .alarm[data-priority="high"]')
        expect(received, "precondition: the page received the alarm").to_have_count(1, timeout=5_000)
        page.wait_for_timeout(500)
        shown = page.evaluate("""() => [...document.querySelectorAll('body *')].filter((el) =>
            el.children.length === 0 && /Line blocked|Occlusion/i.test(el.textContent) && el.id !== 'alarm-announcer'
            && el.checkVisibility() && el.getBoundingClientRect().width > 2).map((el) => el.outerHTML.slice(0, 120))""")
        assert shown, (
            "the pump has a HIGH occlusion and the page received it, but its start page shows nothing of it (the alarm"
            f" list is inside the hidden monitor; sound state {page.locator('#monitor').get_attribute('data-audio')!r},"
            " its buttons hidden)"
        )
        expect(received.get_by_role("button", name="Acknowledge")).to_be_visible()
        silence = page.get_by_role("button", name="Silence 2 min")
        expect(silence, "the sound plays (typing was the gesture): its Silence must be in reach").to_be_visible()
        silence.click()
        expect(page.locator("#monitor")).to_have_attribute("data-audio", "silenced")
    finally:
        pump.close()


def test_the_start_page_says_the_pump_is_offline_before_the_nurse_fills_it_in(open_page, stack):
    """The same hidden panel holds the pump's connectivity: the wizard of an offline (or stale, or never heard) pump
    looks like any other until Start, when an offline pump is refused ("The pump is offline") and a stale one is sent
    an order it may never see."""
    from django.utils import timezone

    ward = make_ward("r20off")
    make_device("BRW_R20_OFF", ward=ward, bed="9", has_presence=True, presence="offline", last_seen_at=timezone.now())
    page = open_page(make_user("r20off-nurse", ward=ward), "/devices/BRW_R20_OFF/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    expect(page.locator("#mon-connectivity"), "precondition: the page knows").to_have_text("Offline")
    shown = page.evaluate("""() => [...document.querySelectorAll('body *')].filter((el) => el.children.length === 0
        && /offline/i.test(el.textContent) && el.checkVisibility() && el.getBoundingClientRect().width > 2)
        .map((el) => el.textContent.trim())""")
    assert shown, "the pump is offline and the page knows it, but its start page shows nothing of it"
