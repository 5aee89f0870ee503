"""Connected, a subscription the server does not answer: the banner never reads "Live", and the monitor says why.

3ff922e made a pump or ward feed "awaited" from its (re)subscription to its snapshot or full summary, and ef2cf1b gave
the station a technical alarm when its ward feed goes unanswered for over 10 s. But the connection banner
(`LiveConnection.renderBanner`) read only the socket and the stopped streams, never the awaited ones: connected, its
subscription never answered (an overloaded server, its database away), the page's banner read "Live" for as long as
it lasted, on the monitor beside a pump read "Stale" with nothing saying why, on the overview beside the station's own
"Not receiving the ward's alarms" (review 39, finding 2). It now reads "Not live: waiting for the server's answer…",
and past the station's 10 s (`live.unanswered`, one rule for both pages) the monitor's notice says the server has not
answered.
"""

import pytest
from playwright.sync_api import expect

from tests.browser.test_back_to_live_before_the_snapshot import ANSWER_IT, BACK_WITH_ITS_SUBSCRIPTION_HELD
from tests.browser.test_monitor_not_live_says_no_alarms import LOSE_THE_SOCKET, watching

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WAITING = "Not live: waiting for the server's answer…"
UNANSWERED = "has not answered"


@pytest.mark.parametrize(
    ("path", "request_held", "code", "device_id", "notice"),
    [("/devices/BRW_UNANSWERED/", "subscribe:device", "unanswered", "BRW_UNANSWERED", "#mon-not-live"),
     ("/", "subscribe:ward", "unansweredov", "BRW_UNANSWERED_OV", "#station-technical-alarm")],
    ids=["monitor", "overview"],
)  # fmt: skip
def test_the_banner_does_not_say_live_while_the_subscription_goes_unanswered(
    open_page, stack, path, request_held, code, device_id, notice
):
    with watching(open_page, stack, code, device_id, path) as page:
        banner = page.locator("#connection-banner")
        expect(banner).to_have_text("Live", timeout=15_000)
        page.evaluate(LOSE_THE_SOCKET)
        expect(banner).to_have_text("Reconnecting…", timeout=10_000)
        page.evaluate(BACK_WITH_ITS_SUBSCRIPTION_HELD, request_held)
        page.wait_for_function("() => window.pumpstreamLive.socket.connected", timeout=15_000)
        expect(banner, f"connected, {request_held} not answered: the page is not receiving").to_have_text(WAITING)
        expect(banner).to_have_attribute("data-state", "awaiting")
        expect(
            page.locator(notice), f"connected, {request_held} unanswered for over 10 s: nothing said why"
        ).to_contain_text(UNANSWERED, timeout=20_000)
        assert page.evaluate("() => window.pumpstreamLive.awaiting.size") > 0, "precondition: still unanswered"
        expect(banner, f"connected, {request_held} unanswered past the grace: the banner said Live").to_have_text(
            WAITING
        )
        page.evaluate(ANSWER_IT)
        expect(banner).to_have_text("Live", timeout=10_000)
        expect(page.locator(notice)).to_be_hidden(timeout=5_000)
