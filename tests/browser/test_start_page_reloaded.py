"""The start page, reloaded while its order waits, shows the waiting order (review 20, finding 6).

F5, a browser restored after a crash, or the page's own reload when the session ended (the nurse signs in again with
`next` back to it). Before, `infusion_start_page` rendered the wizard whatever the pump's session, and start_page.js
opened the waiting window only from the wizard's own POST reply: an empty wizard, no countdown, no Cancel, nothing
saying that the order was still on the pump's confirm screen, where anyone at the bedside can accept it.
"""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import InfusionSession
from devices.states import Presence, SessionStatus
from tests.browser.test_waiting_window_endings import waiting_order
from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # the order waits for the test, never for the time-out


def test_a_start_page_reloaded_while_its_order_waits_still_shows_the_waiting_order(open_page, stack):
    page, pump, infusion_id = waiting_order(open_page, stack, "R20_RELOAD", "r20rl")
    try:
        page.reload()
        expect(page.locator("#connection-banner")).to_have_text("Live")
        page.wait_for_timeout(2_000)  # the page's scripts, its snapshot and its first bridge poll
        waiting = page.locator("#waiting-modal")
        said = page.locator("main, body").first.inner_text()
        assert waiting.is_visible() or "wait" in said.lower() and "Heparin" in said, (
            f"order {infusion_id} still waits on the pump's confirm screen, but the reloaded start page shows no"
            f" waiting window, no Cancel and no word of it; it shows: {said[:400]!r}"
        )
    finally:
        pump.close()


def test_the_start_page_of_an_infusing_pump_shows_its_infusion(open_page):
    """Opened on a pump already infusing (a bookmark, a page restored after a crash), the start page shows the pump's
    monitor with its infusion and Stop, never an empty wizard that says why not only after every step."""
    ward = make_ward("r20ri")
    device = make_device("R20_RUNNING", ward=ward, bed="6", has_presence=True, presence=Presence.ONLINE,
                         last_seen_at=timezone.now())  # fmt: skip
    InfusionSession.objects.create(device=device, status=SessionStatus.RUNNING, flow_rate_ml_min=1.0,
                                   planned_volume_ml=100, planned_time_min=100, drug="Heparin")  # fmt: skip
    page = open_page(make_user("r20ri-nurse", ward=ward), "/devices/R20_RUNNING/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    expect(page.locator("#wizard"), "a pump infusing Heparin is offered a new infusion").to_be_hidden()
    expect(page.locator("#mon-drug")).to_contain_text("Heparin")
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_visible()
