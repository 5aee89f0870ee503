"""The monitor's controls stay where they are as the page goes live, or stops being live, at every width.

The empty alarm list said "No active alarms." (one line) while live and, while not (each page load until its
snapshot, a lost socket), a longer text with padding that wrapped to two lines at laptop width: everything below it,
Pause and Stop among them, jumped 35 px as the page went live a fraction of a second after "Running" showed. A click
made in that instant landed where Pause had been, on nothing (a browser test's Pause that opened no dialog, once in a
full run). And the list as the server rendered it, before the page's scripts ran (or for good, had they failed), said
"No active alarms." whatever the pump's alarms. 08eb63b gave the longer text one line at laptop width; narrower it
wrapped again (review 42, finding 5): the list grew 22 px at 1024 and 820 px, 67 px on a phone. And the pump's status
line, beside its name while "Live", wrapped below it as it read "Last heard 1 s ago" (31 px more on a tablet and a
phone): Pause moved 54 px on a tablet. The list's box now holds the longer text's lines whichever it says, and the
status line has a row of its own below 900 px (its "last heard" one more on a phone).

Each check is made with the page unscrolled: scrolled to Pause on a phone, Chrome's scroll anchoring would make up
for the move and hide it.
"""

import pytest
from playwright.sync_api import expect

from tests.browser.test_monitor_not_live_says_no_alarms import LOSE_THE_SOCKET
from tests.support.browser import LAPTOP, TABLET

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NOT_VOUCHED = "(monitoring degraded, or the page not live)"
SMALL_LAPTOP = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}
VIEWPORTS = pytest.mark.parametrize(
    "viewport", [LAPTOP, SMALL_LAPTOP, TABLET, PHONE], ids=["laptop", "small-laptop", "tablet", "phone"]
)


def boxes(page):
    """Where the empty alarm list and Pause are, in the page."""
    return {
        "alarm list": page.locator("#alarm-list").bounding_box(),
        "Pause": page.get_by_role("button", name="Pause", exact=True).bounding_box(),
    }


@VIEWPORTS
def test_the_controls_do_not_move_when_the_page_stops_being_live(open_page, running_pump, viewport):
    page = open_page(running_pump, "/devices/BRW_D_RUN/", viewport)
    expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_enabled()
    expect(page.locator("#alarm-list")).to_have_text("No active alarms.")
    live = boxes(page)
    page.evaluate(LOSE_THE_SOCKET)
    expect(page.locator("#connection-banner")).to_have_text("Reconnecting…", timeout=10_000)
    expect(page.locator("#alarm-list")).to_contain_text(NOT_VOUCHED)
    assert boxes(page) == live, (
        f"moved at {viewport['width']} px as the page stopped being live (and back as it goes live)"
    )


# One column (tablet, phone), the order's drug and read-back come with the page's script, before it is live: the
# controls move down then, while disabled (not this test's jump).
@pytest.mark.parametrize("viewport", [LAPTOP, SMALL_LAPTOP], ids=["laptop", "small-laptop"])
def test_the_page_before_its_scripts_run_claims_no_calm_and_puts_pause_where_it_stays(
    open_page, running_pump, viewport
):
    page = open_page(running_pump, "/devices/BRW_D_RUN/", viewport)
    expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
    expect(page.locator("#alarm-list")).to_have_text("No active alarms.")
    live = boxes(page)
    page.route("**/static/js/monitor_page.js", lambda route: route.abort())  # as the server renders it, no more
    page.reload()
    expect(page.locator("#alarm-list"), "the server's page says calm before it knows").to_contain_text(NOT_VOUCHED)
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_disabled()
    assert boxes(page) == live, f"moved at {viewport['width']} px once the page's scripts run and it goes live"
