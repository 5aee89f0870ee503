"""The station alerts: a pump's high alarm sounds on the overview (its audio observably plays), takes the tab
title and a full-width banner, and heads the ward's alarm list; the station's own technical alarm sounds and
shows full-width when its connection is lost for more than 10 s or it is signed out."""

import time

import pytest
from django.contrib.sessions.models import Session
from django.db import transaction
from playwright.sync_api import expect

from devices.models import Alarm, Device
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.services.deliveries import ESCALATION_FAILED
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WALL = {"width": 1920, "height": 1080}


def playing(page, priority: str) -> bool:
    return page.evaluate(f"!document.getElementById('station-audio-{priority}').paused")


def allow_sound(page) -> None:
    """One gesture, as a nurse sitting down at the station would make (browsers block sound before one)."""
    page.locator("#ward-heading").click()


@pytest.fixture
def station(open_page, stack):
    ward = make_ward("s1")
    make_device("BRW_S_HIGH", ward=ward, bed="11", has_presence=True)
    make_device("BRW_S_MED", ward=ward, bed="12", has_presence=True)
    make_device("BRW_S_TWO", ward=ward, bed="13", has_presence=True)  # a pump per test: Daphne remembers seqs
    nurse = make_user("station-nurse", ward=ward)
    page = open_page(nurse, "/", viewport=WALL)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    allow_sound(page)
    return page


def test_a_pump_high_alarm_sounds_on_the_overview_and_leads_title_banner_and_list(station, stack, artifacts_dir):
    page = station
    root = page.locator("#station")
    expect(root).to_have_attribute("data-audio", "off")
    medium, high = PumpClient(stack["broker"].url, "BRW_S_MED"), PumpClient(stack["broker"].url, "BRW_S_HIGH")
    try:
        medium.publish("error", {"type": "low_battery", "severity": "warning", "message": "Battery low"})
        expect(root).to_have_attribute("data-audio", "medium", timeout=5_000)
        assert playing(page, "medium"), "a medium alarm must sound the medium pattern on the overview"
        time.sleep(1.1)  # the high alarm is the newer one
        high.publish("error", {"type": "occlusion", "severity": "critical", "message": "Line blocked"})
        expect(root).to_have_attribute("data-audio", "high", timeout=5_000)
        assert playing(page, "high") and not playing(page, "medium"), "the high pattern replaces the medium one"
        expect(page).to_have_title("HIGH: Bed 11 · Ward overview · PumpStream")
        banner = page.locator("#station-alarm-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("High alarm · Bed 11 · Line blocked · for")
        items = page.locator("#station-alarm-list li")
        expect(items).to_have_count(2)
        expect(items.nth(0)).to_have_attribute("data-priority", "high")
        expect(items.nth(1)).to_contain_text("Bed 12 · Battery low")
        screenshot(page, artifacts_dir, "station-high-alarm-wall")
        # both alarms seen (on the screen 600 ms) before she presses: the button no longer moves as the sound's line
        # changes words, so nothing else makes the press wait for that (a press before is refused, as it should be)
        page.wait_for_function("window.pumpstreamStation.seenAlarms().length === 2")
        page.get_by_role("button", name="Silence the ward 2 min").click()
        expect(root).to_have_attribute("data-audio", "silenced")
        assert not playing(page, "high")
    finally:
        medium.close()
        high.close()


def test_every_active_alarm_of_a_pump_is_listed_and_a_failed_page_sounds_once_the_high_is_acknowledged(
    station, stack, artifacts_dir
):
    """A failed escalation page (medium, server-raised) on a pump that also has a high alarm: the station lists
    both, and when the high one is acknowledged, the failed page still sounds (not only on the monitor)."""
    page, root = station, station.locator("#station")
    ward = Device.objects.get(device_id="BRW_S_MED").ward
    nurse = make_user("station-nurse-b", ward=ward)
    pump = PumpClient(stack["broker"].url, "BRW_S_TWO")
    try:
        pump.publish("error", {"type": "occlusion", "severity": "critical", "message": "Line blocked"})
        expect(root).to_have_attribute("data-audio", "high", timeout=5_000)
        with transaction.atomic():
            alarm_raise(device=device_lock(device_id="BRW_S_TWO"), type=ESCALATION_FAILED, source=AlarmSource.SERVER,
                        priority=AlarmPriority.MEDIUM, message="Paging tier 1 failed after 3 tries")  # fmt: skip
        items = page.locator("#station-alarm-list li")
        expect(items, "the station lists only the pump's top alarm").to_have_count(2, timeout=5_000)
        expect(items.nth(0)).to_contain_text("Bed 13 · Line blocked")
        expect(items.nth(1)).to_contain_text("Bed 13 · Paging tier 1 failed after 3 tries")
        card = page.locator('.pump-card[data-device-id="BRW_S_TWO"] [data-field="alarm"]')
        expect(card, "the card must say its pump has more than the alarm it shows").to_contain_text("+1 more alarm")
        high = Alarm.objects.get(device__device_id="BRW_S_TWO", type="occlusion")
        alarm_acknowledge(alarm_id=high.pk, user=nurse)
        expect(root, "the failed page went silent behind the acknowledged high alarm").to_have_attribute(
            "data-audio", "medium", timeout=5_000
        )
        expect(page.locator("#station-alarm-banner")).to_contain_text("Medium alarm · Bed 13 · Paging tier 1 failed")
        assert playing(page, "medium")
        screenshot(page, artifacts_dir, "station-failed-page-wall")
        page.reload()  # the page as rendered lists both too
        expect(page.locator("#station-alarm-list li"), "the page as rendered lists one alarm a pump").to_have_count(2)
    finally:
        pump.close()


def test_lost_connection_over_10_s_raises_the_station_technical_alarm(station, artifacts_dir):
    page = station
    technical = page.locator("#station-technical-alarm")
    page.context.set_offline(True)
    lost = time.monotonic()
    expect(page.locator("#connection-banner")).to_have_text("Reconnecting…", timeout=10_000)
    silence = page.locator("#station-audio-silence")  # offline, it can silence this screen only, and says so
    expect(silence).to_have_text("Silence this screen 2 min")
    expect(technical).to_be_hidden()  # not before 10 s
    expect(technical).to_contain_text("Connection lost for more than 10 s", timeout=15_000)
    waited = time.monotonic() - lost
    assert waited >= 9.5, f"the technical alarm came after {waited:.1f} s, before the 10 s grace"
    expect(page.locator("#station")).to_have_attribute("data-audio", "medium")
    assert playing(page, "medium"), "the station's technical alarm must sound"
    assert page.title().startswith("STATION ALARM"), page.title()
    screenshot(page, artifacts_dir, "station-technical-connection-lost")
    page.context.set_offline(False)
    expect(technical).to_be_hidden(timeout=20_000)
    expect(silence).to_have_text("Silence the ward 2 min")


def test_signed_out_station_says_so_and_sounds(station, stack, artifacts_dir):
    page = station
    Session.objects.all().delete()  # the station's sign-in ends (expired, or signed out elsewhere)
    expect(page).to_have_url(f"{stack['url']}/accounts/login/?next=/", timeout=12_000)
    technical = page.locator("#station-technical-alarm")
    expect(technical, "the sign-in page must keep the station's technical alarm").to_contain_text("Signed out")
    expect(technical).to_be_visible()
    root = page.locator("#station")
    print(f"signed-out station's sound after the reload: {root.get_attribute('data-audio')}")
    if root.get_attribute("data-audio") == "blocked":  # the browser's autoplay rule after the reload
        page.get_by_role("button", name="Enable alarm sound").click()
    expect(root).to_have_attribute("data-audio", "medium")
    assert playing(page, "medium"), "a signed-out station must sound"
    assert page.title().startswith("STATION ALARM"), page.title()
    screenshot(page, artifacts_dir, "station-technical-signed-out")


def test_a_station_whose_ward_feed_is_withdrawn_says_so_and_sounds(open_page, stack):
    """Found beside review 3: the rights re-check stops the feed of a ward the user no longer belongs to (an `error`
    naming the ward) and the station went on showing that ward's pumps as "Live", silent, for good."""
    ward = make_ward("s9")
    make_device("BRW_S_GONE", ward=ward, bed="19", has_presence=True)
    nurse = make_user("station-moved", ward=ward)
    page = open_page(nurse, "/?ward=s9", viewport=WALL)
    banner, technical = page.locator("#connection-banner"), page.locator("#station-technical-alarm")
    expect(banner).to_have_text("Live")
    allow_sound(page)
    ward.members.remove(nurse)  # moved to another ward: this screen no longer receives ward s9's alarms
    expect(technical).to_contain_text("Not receiving the ward's alarms", timeout=10_000)
    expect(banner).to_have_attribute("data-state", "stopped")
    expect(banner).to_contain_text("Not live")
    expect(page.locator("#station")).to_have_attribute("data-audio", "medium")
    assert playing(page, "medium"), "the station's technical alarm must sound"


def test_monitoring_degraded_raises_the_station_technical_alarm(station, stack, artifacts_dir):
    """Last in this module: it stops the module's bridge (the server then cannot hear any pump)."""
    page = station
    technical = page.locator("#station-technical-alarm")
    expect(technical).to_be_hidden()
    stack["bridge"].stop()
    expect(technical).to_contain_text("Monitoring degraded", timeout=15_000)
    expect(page.locator("#station")).to_have_attribute("data-audio", "medium")
    assert playing(page, "medium"), "a station whose monitoring is degraded must sound"
    screenshot(page, artifacts_dir, "station-technical-degraded")
