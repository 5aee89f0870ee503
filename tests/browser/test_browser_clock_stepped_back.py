"""The browser's wall clock stepped back (an NTP correction of a PC that ran fast, someone setting the time) changes
no age, staleness or countdown a page shows (review 35, findings 2 and 3).

Before, format.js estimated the server's time as `Date.now()` plus an offset learnt only from the bridge polls: stepped
back ten minutes, a pump silent for 5 min read "Online" / "Live" until the next poll, and for as long as the step while
the polls failed (a silent network). live.js's watchdog compared `Date.now()` with the moment it last heard the
server: a network gone silent was said only when socket.io's own timer closed the socket (28 s, not about 10 s). The
ward silence's "N s left" and the sound's "up to N s" read the step's ten minutes more than the 2 min a silence lasts.
The page's clocks now run on `performance.now()` between what the server says, which a step of the wall clock leaves
alone (`tests/support/browser_clock.py` steps `Date.now` alone, as the operating system's step does).
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Ward
from devices.services.silences import ward_silence
from tests.factories import make_device, make_user, make_ward
from tests.support.black_hole import BlackHoleProxy
from tests.support.bridge import PumpClient
from tests.support.browser import signed_in_page
from tests.support.browser_clock import STEPPABLE_CLOCK, step_clock

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STEP_BACK_MS = -10 * 60 * 1000  # ten minutes
NOT_LIVE_WITHIN_S = 12  # as test_silent_network.py: the next ping within 8 s, 2.5 s grace, 0.5 s check, 1 s spare


def test_a_pump_silent_for_minutes_stays_stale_when_the_browser_clock_steps_back(chromium, stack):
    ward = make_ward("clockback")
    make_device("CLK_QUIET", ward=ward, bed="5", last_seen_at=timezone.now() - timedelta(minutes=5))
    context, page = signed_in_page(chromium, make_user("clockback-nurse", ward=ward), stack["url"],
                                   "/?ward=clockback", init_script=STEPPABLE_CLOCK)  # fmt: skip
    try:
        card = page.locator('.pump-card[data-device-id="CLK_QUIET"]')
        expect(card.locator('[data-field="connectivity"]')).to_have_text("Stale")
        with page.expect_response(lambda response: "/api/bridge/" in response.url, timeout=10_000):
            pass  # just after a bridge poll answered: the next is 5 s away
        step_clock(page, STEP_BACK_MS)
        page.wait_for_timeout(1500)  # the overview renders every second
        shown = card.locator('[data-field="connectivity"]').inner_text()
        heard = card.locator('[data-field="last-heard"]').inner_text()
        assert shown == "Stale" and "5 min ago" in heard, (
            f"a pump silent for 5 min shows {shown!r} / {heard!r} after the browser's clock stepped back 10 min"
        )
    finally:
        context.close()


def test_a_silent_network_is_said_within_seconds_when_the_browser_clock_steps_back(chromium, stack):
    ward = make_ward("clocknet")
    make_device("CLK_NET", ward=ward, bed="6", has_presence=True)
    proxy = BlackHoleProxy(stack["daphne"].port).start()
    context, page = signed_in_page(chromium, make_user("clocknet-nurse", ward=ward), proxy.url, "/?ward=clocknet",
                                   init_script=STEPPABLE_CLOCK)  # fmt: skip
    try:
        banner = page.locator("#connection-banner")
        expect(banner).to_have_text("Live")
        step_clock(page, STEP_BACK_MS)  # the PC's clock put back ten minutes ...
        proxy.dropping = True  # ... as the network goes silent (Wi-Fi roaming), nothing closed
        said = f"still 'Live' {NOT_LIVE_WITHIN_S} s after the network went silent and the clock stepped back"
        expect(banner, said).not_to_have_text("Live", timeout=NOT_LIVE_WITHIN_S * 1000)
    finally:
        proxy.dropping = False
        context.close()
        proxy.stop()


def test_a_monitor_on_a_silent_network_shows_its_quiet_pump_stale_when_the_browser_clock_steps_back(chromium, stack):
    """The bridge polls fail too on a silent network: nothing the server says corrects the page's clock. The pump,
    silent since (the tests' heartbeat timeout is 3 s), was "Online" / "Live (at …)" for as long as the step."""
    ward = make_ward("clockmon")
    heard_at = timezone.now()
    make_device("CLK_MON", ward=ward, bed="6", last_seen_at=heard_at, has_presence=False)
    proxy = BlackHoleProxy(stack["daphne"].port).start()
    context, page = signed_in_page(chromium, make_user("clockmon-nurse", ward=ward), proxy.url, "/devices/CLK_MON/",
                                   init_script=STEPPABLE_CLOCK)  # fmt: skip
    try:
        expect(page.locator("#connection-banner")).to_have_text("Live")
        step_clock(page, STEP_BACK_MS)
        proxy.dropping = True
        # the heartbeat timeout (3 s) and the page's next render: 15 s is ample
        badge = page.locator("#mon-connectivity")
        expect(badge, "the pump went quiet, the clock stepped back").to_have_text("Stale", timeout=15_000)
        # stale either way once two polls failed (monitoring degraded): the age shown must still be the truth
        page.wait_for_timeout(1500)  # past the heartbeat timeout and a render, whichever made it stale
        heard = page.locator("#mon-last-heard").inner_text()
        silent_s = (timezone.now() - heard_at).total_seconds()
        shown = re.search(r"(\d+) s ago", heard)
        assert shown and int(shown.group(1)) >= silent_s - 2, (
            f"a pump silent for {silent_s:.0f} s reads {heard!r} after the browser's clock stepped back 10 min"
        )
    finally:
        proxy.dropping = False
        context.close()
        proxy.stop()


def seconds_in(text: str, pattern: str) -> int:
    found = re.search(pattern, text)
    assert found, f"no {pattern!r} in {text!r}"
    return int(found.group(1))


def test_a_ward_silence_never_counts_down_from_more_than_its_two_minutes_when_the_browser_clock_steps_back(
    chromium, stack
):
    ward = make_ward("clocksil")
    make_device("CLK_SIL", ward=ward, bed="7", has_presence=True)
    colleague = make_user("clocksil-nurse-b", ward=ward)
    context, page = signed_in_page(chromium, make_user("clocksil-nurse-a", ward=ward), stack["url"], "/",
                                   init_script=STEPPABLE_CLOCK)  # fmt: skip
    pump = PumpClient(stack["broker"].url, "CLK_SIL")
    try:
        expect(page.locator("#connection-banner")).to_have_text("Live")
        page.locator("#ward-heading").click()  # the gesture browsers want before sound
        pump.publish("error", {"type": "low_battery", "severity": "warning", "message": "Battery low"})
        expect(page.locator("#station")).to_have_attribute("data-audio", "medium", timeout=5_000)
        ward_silence(ward=Ward.objects.get(code="clocksil"), user=colleague, seconds=120, reason="Changing the battery")
        expect(page.locator("#station")).to_have_attribute("data-audio", "silenced", timeout=5_000)
        step_clock(page, STEP_BACK_MS)
        page.wait_for_timeout(1500)  # the station renders every second
        ward_left = seconds_in(page.locator("#station-silence-text").inner_text(), r"(\d+) s left")
        sound_left = seconds_in(page.locator("#station-audio-state").inner_text(), r"up to (\d+) s")
        assert ward_left <= 120 and sound_left <= 120, (
            f"a 2 min silence says '{ward_left} s left' and 'silenced for up to {sound_left} s' after the browser's "
            "clock stepped back 10 min"
        )
    finally:
        pump.close()
        context.close()
