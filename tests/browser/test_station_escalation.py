"""Issue 19's end-to-end station test: a pump's high alarm sounds on two open station screens, one nurse's
silence silences the other screen, and when nobody acknowledges, the alarm escalates after its delay: marked
ESCALATED on every screen, sounding through the silence with the stronger (faster) pattern."""

import time

import pytest
from playwright.sync_api import expect

from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WALL = {"width": 1920, "height": 1080}
TIER_1_S = 6.0
BRIDGE_ENV = {"ESCALATION_HIGH_S": f"{TIER_1_S},600"}  # a high alarm escalates to tier 1 after 6 s, not 60


def playing(page, priority: str) -> bool:
    return page.evaluate(f"!document.getElementById('station-audio-{priority}').paused")


def open_station(open_page, user):
    page = open_page(user, "/", viewport=WALL)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    return page


def test_a_high_alarm_sounds_everywhere_one_silence_silences_all_and_escalation_sounds_through(
    open_page, stack, artifacts_dir
):
    ward = make_ward("es")
    make_device("BRW_ESC_1", ward=ward, bed="31", has_presence=True)
    first = open_station(open_page, make_user("es-nurse-a", ward=ward))
    second = open_station(open_page, make_user("es-nurse-b", ward=ward))
    pump = PumpClient(stack["broker"].url, "BRW_ESC_1")
    try:
        pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Line blocked"})
        raised = time.monotonic()
        for page in (first, second):
            expect(page.locator("#station")).to_have_attribute("data-audio", "high", timeout=5_000)
            assert playing(page, "high"), "a pump's high alarm must sound on every open station"
        first.get_by_role("button", name="Silence the ward 2 min").click()
        expect(second.locator("#station")).to_have_attribute("data-audio", "silenced", timeout=10_000)
        assert not playing(second, "high"), "one nurse's silence must silence the other station"
        expect(second.locator("#station-silence")).to_contain_text("by es-nurse-a")
        screenshot(second, artifacts_dir, "station-ward-silenced")

        for page in (first, second):
            item = page.locator("#station-alarm-list li").first
            expect(item).to_contain_text("ESCALATED to tier 1", timeout=(TIER_1_S + 6) * 1000)
            expect(item).to_have_attribute("data-escalated", "true")
            expect(page.locator("#station")).to_have_attribute("data-escalated", "true")
            expect(page.locator("#station")).to_have_attribute("data-audio", "high", timeout=10_000)
            assert playing(page, "high"), "an escalation must sound through the ward's silence"
            rate = page.evaluate("document.getElementById('station-audio-high').playbackRate")
            assert rate > 1, f"an escalated alarm plays the stronger (faster) pattern, got playbackRate {rate}"
            expect(page.locator("#station-silence")).to_be_hidden()
        waited = time.monotonic() - raised
        assert waited >= TIER_1_S - 1, f"escalated {waited:.1f} s after the alarm, before tier 1's {TIER_1_S} s"
        screenshot(first, artifacts_dir, "station-escalated")
    finally:
        pump.close()
