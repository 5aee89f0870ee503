"""The waiting window of an order whose pump leaves the nurse's wards says so and stops waiting (review 46, L1).

Ward B's nurse orders on a pump that received the order; an administrator moves the pump to the ICU while the order
waits (a pump in use goes only to a watched ward). The server stops her stream of the pump ("Not permitted") and her
re-read of the order answers 404; the window knew neither: it went on with its spinner, "waiting for the server…" and
Cancel for 90 s and more, though the order had timed out (in the ICU) meanwhile, and Cancel would have answered "No
such infusion in your wards". Now it ends: the pump is no longer in her wards, the window can no longer follow the order
nor cancel it, and it may still be on the pump's confirm screen.
"""

import pytest
from playwright.sync_api import expect

from devices.models import Device
from devices.services.registration import pump_registration_save
from tests.browser.test_waiting_window_endings import waiting_order
from tests.factories import make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # the order waits for the test, never for the time-out


def test_the_waiting_window_says_the_pump_left_her_wards_and_stops_waiting(open_page, stack):
    page, pump, _infusion_id = waiting_order(open_page, stack, "WW_MOVED", "wwm")
    try:
        icu = make_ward("wwm_icu")
        make_user("wwm-icu-nurse", ward=icu)  # watched: a pump with an order waiting goes only to a watched ward
        device = Device.objects.get(device_id="WW_MOVED")
        device.ward = icu
        pump_registration_save(device=device, fields={"ward"})
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "gone", timeout=15_000)
        message = page.locator("#waiting-message")
        expect(message).to_contain_text("This pump is no longer in your wards")
        expect(message).to_contain_text("can no longer follow the order nor cancel it")
        expect(message).to_contain_text("may still be on the pump's confirm screen")
        expect(modal.locator(".spinner")).to_be_hidden()
        expect(modal.locator(".countdown")).to_be_hidden()
        expect(page.locator("#waiting-cancel")).to_be_hidden()
        expect(page.locator('[data-wait][data-done="active"]')).to_have_count(0)
        close = page.locator("#waiting-close")
        expect(close).to_have_text("Back to my wards")
        close.click()
        expect(page).to_have_url(f"{stack['url']}/")
    finally:
        pump.close()


def test_her_cancel_answered_404_ends_the_window_though_no_stream_stop_came(open_page, stack):
    """Her page's live connection gone (closed for good: no stream stop can come), the pump moved meanwhile: her Cancel
    answers "No such infusion in your wards" and the order's re-read 404; the window ends on that, as on the stream's
    stop."""
    page, pump, _infusion_id = waiting_order(open_page, stack, "WW_MOVED_OFF", "wwo")
    try:
        page.evaluate("window.pumpstreamMonitor.live.socket.disconnect()")  # closed by the page: never again
        expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "connection", timeout=10_000)
        icu = make_ward("wwo_icu")
        make_user("wwo-icu-nurse", ward=icu)
        device = Device.objects.get(device_id="WW_MOVED_OFF")
        device.ward = icu
        pump_registration_save(device=device, fields={"ward"})
        page.locator("#waiting-cancel").click()
        expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "gone", timeout=10_000)
        expect(page.locator("#waiting-message")).to_contain_text("This pump is no longer in your wards")
        expect(page.locator("#waiting-cancel")).to_be_hidden()
    finally:
        pump.close()
