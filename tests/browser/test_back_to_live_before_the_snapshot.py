"""Back to live, a page vouches for no calm before the new connection's snapshot or summary (review 37, finding 4).

live.js set the state "live" as the socket connected, before the pump's snapshot (`subscribe:device`'s answer) or the
ward's summary (`subscribe:ward`'s) arrived: the monitor's `isReceiving` and the overview's `heardHere` were true at
once, and the pages vouched again with what they held from before the loss. Socket lost, an occlusion raised
meanwhile, the socket back with its subscription not answered yet (a server slow to answer, a loaded database: here
the page's request is held back to stand for it), the monitor read "No active alarms." and "Online", the overview's
card "Idle" and the ward "1 idle". Each stream is now awaited from its (re)subscription to its snapshot or first
summary: the pump reads "Stale" meanwhile, the banner "Not live: waiting for the server's answer…" (review 39, finding
2: it read "Live"), and the page is current again once the answer is in. A ward feed's answer is its full summary:
one of only the pumps that changed does not make the others current (review 39, finding 3).
"""

import pytest
from playwright.sync_api import expect

from tests.browser.test_monitor_not_live_says_no_alarms import LOSE_THE_SOCKET, watching
from tests.factories import raise_high_alarm

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The socket connects again, the page's subscription request held back (its answer not come) until
# `answerTheSubscription()` sends it.
BACK_WITH_ITS_SUBSCRIPTION_HELD = """(request) => {
  const socket = window.pumpstreamLive.socket;
  const emit = socket.emit.bind(socket);
  const held = [];
  socket.emit = (name, ...rest) => (name === request ? (held.push([name, ...rest]), socket) : emit(name, ...rest));
  window.answerTheSubscription = () => {
    socket.emit = emit;
    for (const args of held) emit(...args);
  };
  socket.io.reconnection(true);
  socket.connect();
}"""
ANSWER_IT = "() => window.answerTheSubscription()"
CONNECTED = "() => window.pumpstreamLive.socket.connected"
WAITING = "Not live: waiting for the server's answer…"
# A `ward:summary` of only one pump changed (`full` false), as received from the server, listing the pump as before the
# loss: what a tick under way sent a returning station first (review 39, finding 3).
A_PARTIAL_SUMMARY = """(deviceId) => {
  const live = window.pumpstreamLive;
  const ward = [...live.wards.keys()][0];
  const body = { ward, pumps: [{ deviceId, connectivity: "online" }], full: false, left: [] };
  for (const listener of live.socket.listeners("ward:summary")) listener(body);
  return live.wardsReceiving;
}"""


def test_a_monitor_back_online_vouches_no_calm_before_its_snapshot(open_page, stack):
    with watching(open_page, stack, "backlive", "BRW_BACK_LIVE", "/devices/BRW_BACK_LIVE/") as page:
        banner, alarms = page.locator("#connection-banner"), page.locator("#alarm-list")
        badge, panel = page.locator("#mon-connectivity"), page.locator("#monitor")
        expect(banner).to_have_text("Live", timeout=15_000)
        expect(alarms).to_contain_text("No active alarms.", timeout=10_000)
        expect(badge).to_have_text("Online")
        page.evaluate(LOSE_THE_SOCKET)
        expect(banner).to_have_text("Reconnecting…", timeout=10_000)
        raise_high_alarm("BRW_BACK_LIVE")
        expect(alarms).not_to_contain_text("No active alarms.", timeout=12_000)
        page.evaluate(BACK_WITH_ITS_SUBSCRIPTION_HELD, "subscribe:device")
        page.wait_for_function(CONNECTED, timeout=15_000)
        expect(banner, "connected, its snapshot not in: the banner read 'Live'").to_have_text(WAITING)
        expect(badge, "back online, its snapshot not in: the pump read 'Online'").to_have_text("Stale")
        expect(alarms, "... and 'No active alarms.', an occlusion raised during the loss").not_to_contain_text(
            "No active alarms."
        )
        expect(panel, "its session and figures are not shown as current").to_have_attribute("data-current", "false")
        page.evaluate(ANSWER_IT)
        expect(alarms, "the snapshot's occlusion").to_contain_text("Line blocked", timeout=10_000)
        expect(badge).to_have_text("Online")
        expect(banner).to_have_text("Live")
        expect(panel).to_have_attribute("data-current", "true")


def test_an_overview_back_online_vouches_no_calm_before_its_ward_summary(open_page, stack):
    with watching(open_page, stack, "backliveov", "BRW_BACK_LIVE_OV", "/") as page:
        card = page.locator('.pump-card[data-device-id="BRW_BACK_LIVE_OV"]')
        summary = page.locator("#ward-summary")
        expect(card).to_have_attribute("data-connectivity", "online", timeout=15_000)
        page.evaluate(LOSE_THE_SOCKET)
        raise_high_alarm("BRW_BACK_LIVE_OV")
        expect(card).to_have_attribute("data-connectivity", "stale", timeout=5_000)
        page.evaluate(BACK_WITH_ITS_SUBSCRIPTION_HELD, "subscribe:ward")
        page.wait_for_function(CONNECTED, timeout=15_000)
        expect(page.locator("#connection-banner")).to_have_text(WAITING)
        expect(card, "back online, the ward's summary not in: the card read 'Idle'").to_have_attribute(
            "data-connectivity", "stale"
        )
        expect(card.locator('[data-field="condition-label"]')).to_have_text("Stale")
        expect(summary, "... and the ward '1 idle', an occlusion raised during the loss").to_have_text("1 stale")
        page.evaluate(ANSWER_IT)
        expect(card, "the summary's occlusion").to_have_attribute("data-alarm", "high", timeout=10_000)
        expect(card).to_have_attribute("data-connectivity", "online")


def test_a_station_whose_ward_subscription_goes_unanswered_raises_its_technical_alarm(open_page, stack):
    """Connected again, its `subscribe:ward` never answered (an overloaded server, its database away): the cards read
    Stale, and after 10 s the station says it is not receiving the ward's alarms, as for a lost connection; it said
    nothing (h2's note on review 37, finding 4). Answered, the alarm goes."""
    with watching(open_page, stack, "backlivest", "BRW_BACK_LIVE_ST", "/") as page:
        card = page.locator('.pump-card[data-device-id="BRW_BACK_LIVE_ST"]')
        technical = page.locator("#station-technical-alarm")
        expect(card).to_have_attribute("data-connectivity", "online", timeout=15_000)
        page.evaluate(LOSE_THE_SOCKET)
        page.evaluate(BACK_WITH_ITS_SUBSCRIPTION_HELD, "subscribe:ward")
        page.wait_for_function(CONNECTED, timeout=15_000)
        expect(page.locator("#connection-banner")).to_have_text(WAITING)
        expect(card).to_have_attribute("data-connectivity", "stale")
        expect(
            technical, "connected, the ward's feed unanswered for over 10 s: the station said nothing"
        ).to_contain_text("the server has not answered this screen's subscription", timeout=20_000)
        expect(technical).not_to_contain_text("Connection lost")
        page.evaluate(ANSWER_IT)
        expect(card).to_have_attribute("data-connectivity", "online", timeout=10_000)
        expect(technical).to_be_hidden(timeout=5_000)


def test_an_overview_back_online_is_not_current_again_at_a_summary_of_only_the_pumps_changed(open_page, stack):
    """Back online, its `subscribe:ward` unanswered, a summary of one pump changed (`full` false) arrives first:
    live.js took any summary as the feed received again, and the card read "Online" with its pre-loss state while an
    occlusion raised during the loss was unknown. Only the full summary makes the feed current."""
    with watching(open_page, stack, "backlivepart", "BRW_BACK_LIVE_PART", "/") as page:
        card = page.locator('.pump-card[data-device-id="BRW_BACK_LIVE_PART"]')
        expect(card).to_have_attribute("data-connectivity", "online", timeout=15_000)
        page.evaluate(LOSE_THE_SOCKET)
        raise_high_alarm("BRW_BACK_LIVE_PART")
        page.evaluate(BACK_WITH_ITS_SUBSCRIPTION_HELD, "subscribe:ward")
        page.wait_for_function(CONNECTED, timeout=15_000)
        receiving = page.evaluate(A_PARTIAL_SUMMARY, "BRW_BACK_LIVE_PART")
        assert receiving is False, "a summary of only the pumps changed made the ward feed received again"
        expect(card, "... and the card read 'Online', the occlusion raised meanwhile unknown").to_have_attribute(
            "data-connectivity", "stale"
        )
        expect(page.locator("#connection-banner")).to_have_text(WAITING)
        page.evaluate(ANSWER_IT)
        expect(card, "the full summary's occlusion").to_have_attribute("data-alarm", "high", timeout=10_000)
        expect(card).to_have_attribute("data-connectivity", "online")
        expect(page.locator("#connection-banner")).to_have_text("Live")
