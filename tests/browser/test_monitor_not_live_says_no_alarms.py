"""A page that is not live vouches for no calm (review 36, finding 2).

714b3fc made the monitor's empty alarm list say that no alarm is known, not "No active alarms.", while the page cannot
vouch: "(monitoring degraded, or the page not live)" in its own words. The condition (monitor_alarms.js renderNone)
read only the bridge's health and a pump's stream stopped by the server, never whether the page is live: with the
socket lost and not regained (socket.io refused by the socket cap, a proxy dropping WebSockets) while the HTTP polls
of /api/bridge/ are answered, the banner read "Reconnecting…" and the alarm list still "No active alarms." beside it,
an occlusion raised meanwhile never shown; the pump's badge read "Online". The overview's cards read "Online" and
"Idle" the same way: a pump the page does not hear now reads "Stale" on both (as with monitoring degraded).
"""

import contextlib

import pytest
from playwright.sync_api import expect

from tests.browser.test_monitor_during_a_database_outage import pump_online
from tests.factories import make_user, make_ward, raise_high_alarm

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LOSE_THE_SOCKET = """() => {
  const socket = window.pumpstreamLive.socket;
  socket.io.reconnection(false);  // the connection is not regained (refused, blocked): the polls still answered
  socket.io.engine.close();
}"""


@contextlib.contextmanager
def watching(open_page, stack, code: str, device_id: str, path: str):
    """A nurse of ward `code` on `path`, the ward's pump `device_id` online for the block."""
    ward = make_ward(code)
    pump = pump_online(stack, device_id, ward)
    try:
        yield open_page(make_user(f"{code}-nurse", ward=ward), path)
    finally:
        pump.close()


def test_a_monitor_that_is_not_live_does_not_say_no_active_alarms(open_page, stack):
    with watching(open_page, stack, "notlive", "BRW_NOT_LIVE", "/devices/BRW_NOT_LIVE/") as page:
        banner = page.locator("#connection-banner")
        expect(banner).to_have_text("Live", timeout=15_000)
        expect(page.locator("#alarm-list")).to_contain_text("No active alarms.")
        expect(page.locator("#mon-connectivity")).to_have_text("Online")
        page.evaluate(LOSE_THE_SOCKET)
        expect(banner).to_have_text("Reconnecting…", timeout=10_000)
        raise_high_alarm("BRW_NOT_LIVE")
        expect(
            page.locator("#degraded-banner"), "the bridge's polls are answered: monitoring is healthy"
        ).to_be_hidden()
        expect(
            page.locator("#alarm-list"), "'No active alarms.' beside 'Reconnecting…', an occlusion raised"
        ).not_to_contain_text("No active alarms.", timeout=12_000)
        expect(page.locator("#mon-connectivity"), "'Online' beside 'Reconnecting…'").to_have_text("Stale")


def test_an_overview_that_is_not_live_does_not_say_its_pumps_are_online(open_page, stack):
    with watching(open_page, stack, "notliveov", "BRW_NOT_LIVE_OV", "/") as page:
        card = page.locator('.pump-card[data-device-id="BRW_NOT_LIVE_OV"]')
        expect(card).to_have_attribute("data-connectivity", "online", timeout=15_000)
        expect(page.locator("#ward-summary")).to_have_text("1 idle")
        page.evaluate(LOSE_THE_SOCKET)
        raise_high_alarm("BRW_NOT_LIVE_OV")
        expect(
            page.locator("#degraded-banner"), "the bridge's polls are answered: monitoring is healthy"
        ).to_be_hidden()
        expect(card, "the card reads 'Online' and 'Idle', the page not live").to_have_attribute(
            "data-connectivity", "stale", timeout=5_000
        )
        expect(card.locator('[data-field="condition-label"]')).to_have_text("Stale")
        expect(page.locator("#ward-summary"), "the ward's count says its pumps are calm").to_have_text("1 stale")
