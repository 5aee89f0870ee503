"""The ward's shared silence in the browser: a silence made at another station pauses this station's sound and
says so (who, why, how long); a new high alarm sounds through it; the button silences the other stations."""

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient
from tests.support.browser import screenshot
from tests.support.sio import StreamClient, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WALL = {"width": 1920, "height": 1080}


def playing(page, priority: str) -> bool:
    return page.evaluate(f"!document.getElementById('station-audio-{priority}').paused")


@pytest.fixture
def stations(open_page, stack):
    """A nurse's station page on ward ss and a second station (a Socket.IO client) of another nurse."""
    ward = make_ward("ss")
    make_device("BRW_SIL_1", ward=ward, bed="21", has_presence=True)
    make_device("BRW_SIL_2", ward=ward, bed="22", has_presence=True)  # a pump per test: Daphne remembers seqs
    page = open_page(make_user("ss-nurse-a", ward=ward), "/", viewport=WALL)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    other = StreamClient(stack["url"], cookie=session_cookie(make_user("ss-nurse-b", ward=ward))).connect()
    other.emit(events.SUBSCRIBE_WARD, {"ward": "ss"})
    other.events.wait_for(lambda e, d: e == events.WARD_SUMMARY)
    yield page, other
    other.close()


def test_a_silence_from_another_station_pauses_the_sound_until_a_high_alarm(stations, stack, artifacts_dir):
    page, other = stations
    root, note = page.locator("#station"), page.locator("#station-silence")
    pump = PumpClient(stack["broker"].url, "BRW_SIL_1")
    try:
        pump.publish("error", {"type": "low_battery", "severity": "warning", "message": "Battery low"})
        expect(root).to_have_attribute("data-audio", "medium", timeout=5_000)
        assert playing(page, "medium")
        other.emit(events.SILENCE_WARD, {"ward": "ss", "seconds": 90, "reason": "Changing the battery"})
        expect(note).to_be_visible(timeout=3_000)
        expect(note).to_contain_text("silenced on every screen of ward ss by ss-nurse-b (Changing the battery)")
        expect(root).to_have_attribute("data-audio", "silenced")
        assert not playing(page, "medium"), "the ward's silence must stop this station's sound"
        screenshot(page, artifacts_dir, "station-ward-silenced-wall")

        pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Line blocked"})
        expect(root).to_have_attribute("data-audio", "high", timeout=5_000)
        assert playing(page, "high"), "a new high alarm must sound through the ward's silence"
        expect(note).to_be_hidden(timeout=3_000)
    finally:
        pump.close()


def test_the_silence_button_silences_the_other_stations(stations, stack):
    page, other = stations
    pump = PumpClient(stack["broker"].url, "BRW_SIL_2")
    try:
        pump.publish("error", {"type": "air_in_line", "severity": "high", "message": "Air in line"})
        expect(page.locator("#station")).to_have_attribute("data-audio", "high", timeout=5_000)
        page.get_by_role("button", name="Silence the ward 2 min").click()
        seen = other.events.wait_for(lambda e, d: e == events.WARD_SILENCE and d["active"])
        assert seen["by"] == "ss-nurse-a" and seen["reason"] == "Attending the alarm", seen
        expect(page.locator("#station")).to_have_attribute("data-audio", "silenced")
        page.get_by_role("button", name="Sound again now").click()
        other.events.wait_for(lambda e, d: e == events.WARD_SILENCE and not d["active"])
        expect(page.locator("#station")).to_have_attribute("data-audio", "high")
        assert get_user_model().objects.get(username="ss-nurse-a").is_active
    finally:
        pump.close()


def test_the_silence_bar_fits_a_phone(open_page, stack, artifacts_dir):
    ward = make_ward("sp")
    make_device("BRW_SIL_P", ward=ward, bed="23", has_presence=True)
    page = open_page(make_user("sp-nurse-a", ward=ward), "/", viewport={"width": 390, "height": 844})
    expect(page.locator("#connection-banner")).to_have_text("Live")
    other = StreamClient(stack["url"], cookie=session_cookie(make_user("sp-nurse-b", ward=ward))).connect()
    try:
        other.emit(events.SILENCE_WARD, {"ward": "sp", "seconds": 60, "reason": "Attending bed 23"})
        expect(page.locator("#station-silence")).to_be_visible(timeout=3_000)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the silence bar makes the phone layout {overflow} px wider than the screen"
        screenshot(page, artifacts_dir, "station-ward-silenced-phone")
    finally:
        other.close()


def test_a_nurse_of_a_ward_without_pumps_still_hears_its_silence(open_page, stack):
    """Her ward feed covers her ward by membership, not by the pumps it happens to hold today."""
    ward = make_ward("se")
    page = open_page(make_user("se-nurse-a", ward=ward), "/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    other = StreamClient(stack["url"], cookie=session_cookie(make_user("se-nurse-b", ward=ward))).connect()
    try:
        other.emit(events.SILENCE_WARD, {"ward": "se", "seconds": 60, "reason": "Round"})
        expect(page.locator("#station-silence"), "the empty ward's station missed its ward's silence").to_contain_text(
            "silenced on every screen of ward se by se-nurse-b", timeout=3_000
        )
    finally:
        other.close()
