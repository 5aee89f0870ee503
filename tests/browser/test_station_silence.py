"""The ward's shared silence in the browser: a silence made at another station pauses this station's sound and
says so (who, why, how long); a new high alarm sounds through it; the button silences the other stations."""

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from playwright.sync_api import expect

from devices.models import Device, Ward
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.services.registration import pump_registration_save
from devices.services.silences import ward_silence, ward_silence_end
from devices.states import AlarmPriority, AlarmSource
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
        other.events.wait_for(lambda e, d: e == events.WARD_ALARM)  # the other station shows it too
        other.emit(
            events.SILENCE_WARD,
            {"ward": "ss", "seconds": 90, "reason": "Changing the battery", "seen": other.events.alarms_shown()},
        )
        expect(note).to_be_visible(timeout=10_000)
        expect(note).to_contain_text("silenced on every screen of ward ss by ss-nurse-b (Changing the battery)")
        expect(root).to_have_attribute("data-audio", "silenced")
        assert not playing(page, "medium"), "the ward's silence must stop this station's sound"
        screenshot(page, artifacts_dir, "station-ward-silenced-wall")

        pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Line blocked"})
        expect(root).to_have_attribute("data-audio", "high", timeout=5_000)
        assert playing(page, "high"), "a new high alarm must sound through the ward's silence"
        expect(note).to_be_hidden(timeout=10_000)
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
        other.emit(
            events.SILENCE_WARD,
            {"ward": "sp", "seconds": 60, "reason": "Attending bed 23", "seen": other.events.alarms_shown()},
        )
        expect(page.locator("#station-silence")).to_be_visible(timeout=10_000)
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
        other.emit(
            events.SILENCE_WARD, {"ward": "se", "seconds": 60, "reason": "Round", "seen": other.events.alarms_shown()}
        )
        expect(page.locator("#station-silence"), "the empty ward's station missed its ward's silence").to_contain_text(
            "silenced on every screen of ward se by se-nurse-b", timeout=10_000
        )
    finally:
        other.close()


def test_a_silence_ended_while_the_station_was_offline_ends_there_too(open_page, stack):
    """Found in review 3: the ward feed's resubscription sent only silences that were on, and the `ward:silence`
    announcing the end went to the station's old socket, so the station stayed silenced (medium alarms and the
    escalation of alarms already shown mute) until the old silence would have run out."""
    ward = make_ward("rv3s")
    make_device("RV3_SIL", ward=ward, bed="8", has_presence=True)
    colleague = make_user("rv3s-nurse-b", ward=ward)
    page = open_page(make_user("rv3s-nurse-a", ward=ward), "/", viewport=WALL)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    station = page.locator("#station")
    pump = PumpClient(stack["broker"].url, "RV3_SIL")
    try:
        pump.publish("error", {"type": "low_battery", "severity": "warning", "message": "Battery low"})
        expect(station).to_have_attribute("data-audio", "medium", timeout=5_000)
        ward_silence(ward=Ward.objects.get(code="rv3s"), user=colleague, seconds=120, reason="Changing the battery")
        expect(station).to_have_attribute("data-audio", "silenced", timeout=5_000)

        page.context.set_offline(True)  # a short Wi-Fi drop (under the station's 10 s connection alarm)
        expect(page.locator("#connection-banner")).to_have_text("Reconnecting…", timeout=10_000)
        ward_silence_end(ward=Ward.objects.get(code="rv3s"), user=colleague)  # "Sound again now" at her station
        page.wait_for_timeout(1500)
        page.context.set_offline(False)
        expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
        # the feed's full summary and silences come after the resubscription ("Live" is shown on connecting)
        expect(station, "the ward's silence was ended while this station was offline; after reconnecting it stays "
               "silenced: the medium alarm mute here until the old silence would have run out").to_have_attribute(
            "data-audio", "medium", timeout=10_000
        )  # fmt: skip
        expect(page.locator("#station-silence")).to_be_hidden()
    finally:
        pump.close()


def test_a_screens_own_silence_outlasts_the_wards_state_on_reconnecting(open_page, stack):
    """A silence pressed while offline silences this screen only; the ward's state sent on resubscription (no
    silence) does not undo it."""
    ward = make_ward("rv3o")
    make_device("RV3_OWN", ward=ward, bed="9", has_presence=True)
    page = open_page(make_user("rv3o-nurse", ward=ward), "/", viewport=WALL)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.locator("#ward-heading").click()
    station = page.locator("#station")
    pump = PumpClient(stack["broker"].url, "RV3_OWN")
    try:
        pump.publish("error", {"type": "low_battery", "severity": "warning", "message": "Battery low"})
        expect(station).to_have_attribute("data-audio", "medium", timeout=5_000)
        page.context.set_offline(True)
        expect(page.locator("#connection-banner")).to_have_text("Reconnecting…", timeout=10_000)
        page.locator("#station-audio-silence").click()  # offline: this screen only
        expect(station).to_have_attribute("data-audio", "silenced")
        page.context.set_offline(False)
        expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
        page.wait_for_timeout(2000)
        assert station.get_attribute("data-audio") == "silenced", "the ward's 'no silence' undid this screen's own"
    finally:
        pump.close()


def test_a_pump_moved_in_with_a_high_alarm_sounds_through_the_silence_and_leaves_its_old_station(open_page, stack):
    """Review 6 (B8): a patient transferred with the pump, its occlusion unacknowledged, into a ward its station has
    silenced. The receiving station lists and sounds the occlusion at once and the ward's silence ends; the station
    of the ward it left drops it and falls quiet (it is no longer theirs). Before the fix, an open station sounded it
    by its own rule (a high alarm it had not sounded yet) under a note saying the ward was silenced, and a station
    opened after the move kept it mute until the silence ran out."""
    receiving_ward, leaving_ward = make_ward("mvin"), make_ward("mvout")
    make_device("MV_OWN", ward=receiving_ward, bed="31", has_presence=True)
    make_device("MV_PUMP", ward=leaving_ward, bed="7", has_presence=True)
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id="MV_PUMP"), type="occlusion", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE, message="Downstream occlusion")  # fmt: skip
    receiving = open_page(make_user("mvin-nurse", ward=receiving_ward), "/", viewport=WALL)
    leaving = open_page(make_user("mvout-nurse", ward=leaving_ward), "/", viewport=WALL)
    for page in (receiving, leaving):
        expect(page.locator("#connection-banner")).to_have_text("Live")
        page.locator("#ward-heading").click()  # the gesture browsers want before sound
    expect(leaving.locator("#station")).to_have_attribute("data-audio", "high", timeout=5_000)
    ward_silence(ward=receiving_ward, user=make_user("mvin-charge", ward=receiving_ward), seconds=120, reason="Round")
    expect(receiving.locator("#station-silence")).to_be_visible(timeout=10_000)

    moved = Device.objects.get(device_id="MV_PUMP")
    moved.ward = receiving_ward
    pump_registration_save(device=moved, fields=["ward"])  # what the admin's change page does

    expect(
        receiving.locator("#station-alarm-list"), "the receiving station does not list the occlusion"
    ).to_contain_text("Downstream occlusion", timeout=5_000)
    expect(
        receiving.locator("#station"), "the receiving station shows the occlusion but does not sound it"
    ).to_have_attribute("data-audio", "high", timeout=10_000)
    assert playing(receiving, "high")
    expect(receiving.locator("#station-silence")).to_be_hidden()
    expect(
        leaving.locator("#station-alarm-list"), "the old station still lists a pump no longer its ward's"
    ).not_to_contain_text("Downstream occlusion", timeout=5_000)
    expect(leaving.locator("#station")).not_to_have_attribute("data-audio", "high")
    late = open_page(make_user("mvin-nurse-b", ward=receiving_ward), "/", viewport=WALL)  # a screen opened now
    expect(late.locator("#connection-banner")).to_have_text("Live")
    late.locator("#ward-heading").click()
    expect(late.locator("#station"), "a station opened after the move keeps the occlusion mute").to_have_attribute(
        "data-audio", "high", timeout=10_000
    )


def test_a_wall_screens_own_silence_ends_when_an_acknowledged_high_alarm_alerts_again(open_page, stack):
    """Review 7 (A): a view-only wall screen silences itself only (no ward silence the server would break). Its alarms
    carry no `count`: its sound keyed them as `id:1` whatever happened, so an acknowledged high alarm alerting again
    during the silence was not new and stayed silent. A new alert (`alerts` + 1) sounds at once."""
    ward = make_ward("rv7w")
    make_device("RV7_WALL", ward=ward, bed="7", has_presence=True)
    page = open_page(make_user("rv7w-wall", ward=ward, can_command=False), "/", viewport=WALL)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    station = page.locator("#station")

    def occlusion(realert: bool = False):
        with transaction.atomic():
            return alarm_raise(device=device_lock(device_id="RV7_WALL"), type="occlusion", priority=AlarmPriority.HIGH,
                               source=AlarmSource.DEVICE, message="Line blocked", realert=realert)  # fmt: skip

    alarm = occlusion()
    expect(station).to_have_attribute("data-audio", "high", timeout=5_000)
    page.locator("#station-audio-silence").click()  # a view-only screen: this screen only
    expect(station).to_have_attribute("data-audio", "silenced")
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user("rv7w-nurse", ward=ward), alerts=alarm.alerts)
    expect(station).to_have_attribute("data-audio", "off", timeout=5_000)
    occlusion(realert=True)  # it alerts again (as a reminder does): unacknowledged, alert 2
    expect(station, "a new alert of a high alarm must end this screen's silence").to_have_attribute(
        "data-audio", "high", timeout=5_000
    )
    assert playing(page, "high")
