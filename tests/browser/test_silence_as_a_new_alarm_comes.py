"""A silence pressed as a new alarm comes silences nothing, says why, and silences once she has seen it.

The station's "Silence the ward 2 min" did not move when a second high alarm came (the sound's line still read
"Sounding: high-priority alarm", the new alarm listed below the button), so steady_press.js let the press through,
and the silence covered an alarm that had been on her screen for a few milliseconds, on every screen of the ward.
Now the request names the alarms shown for at least 600 ms (`seen`) and the server refuses it while another would
sound through it; the monitor's own "Silence 2 min" is judged the same way on the page (alarm_audio.js). Taps are
the mouse's on Playwright's stopped clock (`test_presses_on_moved_controls.py`), so "at once" holds on any machine.
"""

import time

import pytest
from playwright.sync_api import expect

from devices.models import WardSilence
from tests.browser.test_presses_on_moved_controls import aim, clock_stopped, opened_live
from tests.factories import make_device, make_user, make_ward, raise_high_alarm
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WALL = {"width": 1920, "height": 1080}
NEW_ALARM = "Not silenced: A new alarm came as you pressed: look at it, then silence again"


def her_look(page, paused_at: float) -> None:
    """She reads the new alarm: the page's time goes on by a second, and by as long as the test's real time ran while
    it stood still (so the press's `askedAt`, on the page's estimate of the server's clock, is not taken as held up)."""
    page.clock.run_for(max(1000, round((time.monotonic() - paused_at) * 1000) + 500))


def test_a_ward_silence_pressed_as_a_second_high_alarm_comes_is_not_made_until_she_saw_it(open_page, stack):
    ward = make_ward("sna")
    make_device("BRW_SNA_1", ward=ward, bed="1")
    make_device("BRW_SNA_2", ward=ward, bed="2")
    page = opened_live(open_page, make_user("sna-nurse", ward=ward), "/")
    page.set_viewport_size(WALL)
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    station = page.locator("#station")
    raise_high_alarm("BRW_SNA_1")
    expect(station).to_have_attribute("data-audio", "high")
    silence = page.get_by_role("button", name="Silence the ward 2 min")
    aimed = aim(silence)  # it stood 600 ms: the occlusion too, seen
    clock_stopped(page)
    paused_at = time.monotonic()
    raise_high_alarm("BRW_SNA_2", "air_in_line", "Air in line")
    expect(page.locator("#station-alarm-list")).to_contain_text("Air in line")
    page.mouse.click(*aimed)

    expect(page.locator("#station-silence-refused")).to_have_text(NEW_ALARM)
    expect(page.locator("#steady-notice"), "the button moved: steady_press refused it, not the silence").to_be_hidden()
    assert not WardSilence.objects.filter(ward=ward).exists(), "the ward silenced an alarm she never saw"
    expect(station).to_have_attribute("data-audio", "high")

    her_look(page, paused_at)
    page.mouse.click(*aimed)  # pressed again, both alarms seen: made
    expect(station).to_have_attribute("data-audio", "silenced")
    expect(page.locator("#station-silence-refused")).to_be_hidden()
    wait_until(lambda: WardSilence.objects.filter(ward=ward, ended_at__isnull=True).exists(), timeout=5,
               message="the second press did not silence the ward")  # fmt: skip


def test_a_screens_own_silence_pressed_as_a_new_high_alarm_comes_is_not_made_until_she_saw_it(open_page, stack):
    """The monitor's "Silence 2 min" silences that screen only, judged on the page: the same rule, the same words."""
    ward = make_ward("snm")
    make_device("BRW_SNM_1", ward=ward, bed="5")
    page = opened_live(open_page, make_user("snm-nurse", ward=ward), "/devices/BRW_SNM_1/")
    page.locator("h1").first.click()  # the gesture browsers want before sound
    monitor = page.locator("#monitor")
    raise_high_alarm("BRW_SNM_1")
    expect(monitor).to_have_attribute("data-audio", "high")
    aimed = aim(page.get_by_role("button", name="Silence 2 min"))
    clock_stopped(page)
    paused_at = time.monotonic()
    raise_high_alarm("BRW_SNM_1", "air_in_line", "Air in line")
    expect(page.locator(".alarm").filter(has_text="Air in line")).to_be_visible()
    page.mouse.click(*aimed)

    expect(page.locator("#alarm-notice")).to_contain_text(NEW_ALARM)
    expect(page.locator("#steady-notice"), "the button moved: steady_press refused it, not the silence").to_be_hidden()
    expect(monitor, "the screen silenced an alarm she never saw").to_have_attribute("data-audio", "high")

    her_look(page, paused_at)
    page.mouse.click(*aimed)
    expect(monitor).to_have_attribute("data-audio", "silenced")
    expect(page.locator("#alarm-notice"), "silenced, and still saying it is not").to_be_hidden()


def test_a_wall_screens_own_silence_pressed_as_a_new_high_alarm_comes_is_not_made_until_she_saw_it(open_page, stack):
    """A view-only station silences itself only ("Silence this screen 2 min"): judged on the page, said under its
    silence line as the server's refusal of a ward silence is."""
    ward = make_ward("snw")
    make_device("BRW_SNW_1", ward=ward, bed="7")
    make_device("BRW_SNW_2", ward=ward, bed="8")
    page = opened_live(open_page, make_user("snw-wall", ward=ward, can_command=False), "/")
    page.set_viewport_size(WALL)
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    station = page.locator("#station")
    raise_high_alarm("BRW_SNW_1")
    expect(station).to_have_attribute("data-audio", "high")
    aimed = aim(page.get_by_role("button", name="Silence this screen 2 min"))
    clock_stopped(page)
    paused_at = time.monotonic()
    raise_high_alarm("BRW_SNW_2", "air_in_line", "Air in line")
    expect(page.locator("#station-alarm-list")).to_contain_text("Air in line")
    page.mouse.click(*aimed)

    expect(page.locator("#station-silence-refused")).to_have_text(NEW_ALARM)
    expect(page.locator("#steady-notice"), "the button moved: steady_press refused it, not the silence").to_be_hidden()
    expect(station, "the screen silenced an alarm she never saw").to_have_attribute("data-audio", "high")

    her_look(page, paused_at)
    page.mouse.click(*aimed)
    expect(station).to_have_attribute("data-audio", "silenced")
    expect(page.locator("#station-silence-refused"), "silenced, and still saying it is not").to_be_hidden()
    assert not WardSilence.objects.filter(ward=ward).exists(), "a view-only screen silenced the ward"


def test_a_station_of_two_wards_silences_the_ward_whose_alarms_she_saw_and_says_the_other_was_not(open_page, stack):
    """Her station shows two wards and asks each for its silence with the same list: each is judged alone. The ward
    whose alarms she had seen is silenced (its bar says so); the one whose new alarm she had not is not, her screen
    goes on sounding and says why, naming that ward (it could not: the refusal named none); pressed again once seen,
    both are silenced and her screen with them."""
    seen_ward, new_ward = make_ward("sn2a"), make_ward("sn2b")
    make_device("BRW_SN2A", ward=seen_ward, bed="3")
    make_device("BRW_SN2B", ward=new_ward, bed="4")
    nurse = make_user("sn2-nurse", ward=seen_ward)
    new_ward.members.add(nurse)
    page = opened_live(open_page, nurse, "/")
    page.set_viewport_size(WALL)
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    station = page.locator("#station")
    raise_high_alarm("BRW_SN2A")
    expect(station).to_have_attribute("data-audio", "high")
    aimed = aim(page.get_by_role("button", name="Silence the ward 2 min"))
    clock_stopped(page)
    paused_at = time.monotonic()
    raise_high_alarm("BRW_SN2B", "air_in_line", "Air in line")
    expect(page.locator("#station-alarm-list")).to_contain_text("Air in line")
    page.mouse.click(*aimed)

    expect(page.locator("#station-silence-refused"), "the line does not say which ward was not silenced").to_have_text(
        NEW_ALARM.replace("Not silenced:", "Not silenced in ward sn2b:")
    )
    expect(page.locator("#station-silence")).to_contain_text("ward sn2a by sn2-nurse")
    expect(page.locator("#station-silence")).not_to_contain_text("ward sn2b")
    assert WardSilence.objects.filter(ward=seen_ward).exists(), "the ward whose alarms she saw was not silenced"
    assert not WardSilence.objects.filter(ward=new_ward).exists(), "the ward silenced an alarm she never saw"
    expect(station, "her screen went quiet over the alarm she never saw").to_have_attribute("data-audio", "high")

    her_look(page, paused_at)
    page.mouse.click(*aimed)
    expect(station).to_have_attribute("data-audio", "silenced")
    expect(page.locator("#station-silence")).to_contain_text("ward sn2b by sn2-nurse")
