"""The monitor's controls stay where they are as the page goes live, or stops being live.

The empty alarm list said "No active alarms." (one line) while live and, while not (each page load until its
snapshot, a lost socket), a longer text with padding that wrapped to two lines at laptop width: everything below
it, Pause and Stop among them, jumped 35 px as the page went live a fraction of a second after "Running" showed.
A click made in that instant landed where Pause had been, on nothing (a browser test's Pause that opened no dialog,
once in a full run). And the list as the server rendered it, before the page's scripts ran (or for good, had they
failed), said "No active alarms." whatever the pump's alarms.
"""

import pytest
from playwright.sync_api import expect

from tests.browser.test_monitor_not_live_says_no_alarms import LOSE_THE_SOCKET

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NOT_VOUCHED = "(monitoring degraded, or the page not live)"


def test_the_controls_do_not_move_when_the_page_stops_being_live(open_page, running_pump):
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    pause = page.get_by_role("button", name="Pause", exact=True)
    expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
    expect(pause).to_be_enabled()
    live = pause.bounding_box()
    page.evaluate(LOSE_THE_SOCKET)
    expect(page.locator("#connection-banner")).to_have_text("Reconnecting…", timeout=10_000)
    expect(page.locator("#alarm-list")).to_contain_text(NOT_VOUCHED)
    assert pause.bounding_box() == live, "Pause moved as the page stopped being live"


def test_the_page_before_its_scripts_run_claims_no_calm_and_puts_pause_where_it_stays(open_page, running_pump):
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    pause = page.get_by_role("button", name="Pause", exact=True)
    expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
    live = pause.bounding_box()
    page.route("**/static/js/monitor_page.js", lambda route: route.abort())  # as the server renders it, no more
    page.reload()
    expect(page.locator("#alarm-list"), "the server's page says calm before it knows").to_contain_text(NOT_VOUCHED)
    expect(pause).to_be_disabled()
    assert pause.bounding_box() == live, "Pause moves once the page's scripts run and it goes live"
