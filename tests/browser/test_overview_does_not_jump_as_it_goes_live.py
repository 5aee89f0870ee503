"""The ward overview's pump cards stay where the server put them as its script runs and the page goes live, with the
station's alarms above them, at every width.

The station's banner, its list of the ward's alarms and its sound line (the silence button) were drawn only by
static/js/station.js: with an active alarm the server's page had none of them, and every card moved down as the script
ran, 185 px at 1366 and 1024 px, 186 px on a tablet and 291 px on a phone, under a finger reaching for one (the
steady-press guard then refused the press: she had to press again); with an escalated alarm 214 to 415 px; a ward's
silence, shown only once the page was live, 302 to 467 px; two wards' alarms and a silence 321 to 548 px; monitoring
degraded as the page was served (the station's technical alarm) 116 to 254 px. The station held still, the ward's
counts ("2 pumps" until the script ran) still moved them where the script's wrapped (52 px at 1024 and 820 px with two
wards, 25 px on a phone with one alarm), and each card's alarm said only its message until then. The server now renders
what the scripts first render (devices/views/overview_before_live.py), which station.js adopts.

Three renders are compared: live; the script's before the page is live (its socket never answers); the server's
(the script blocked, as for good had it failed). Each with the page unscrolled.
"""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Alarm, Device
from devices.services.silences import ward_silence
from devices.states import AlarmPriority, AlarmSource
from tests.browser.test_overview_before_its_script_runs import never_live
from tests.factories import make_device, make_ward
from tests.support.browser import LAPTOP, TABLET

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SMALL_LAPTOP = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}
# Each case at every width on one set-up (a page of its own per width): 20 set-ups of a running pump took a minute.
VIEWPORTS = (LAPTOP, SMALL_LAPTOP, TABLET, PHONE)
# Where each card begins, to the pixel, and the station's parts as a nurse sees them (their words, the buttons she
# may press): the cards are only where they were if what is above them is.
PLACED = """() => {
  const box = (element) => {
    const { x, y, width, height } = element.getBoundingClientRect();
    return [Math.round(x), Math.round(y), Math.round(width), Math.round(height)];
  };
  const shown = (element) => element.checkVisibility({ visibilityProperty: true });
  const station = document.getElementById("station");
  return {
    cards: [...document.querySelectorAll(".pump-card")].map((card) => [card.dataset.deviceId, box(card).slice(0, 2)]),
    station: [...station.querySelectorAll("p, li")].filter(shown).map((part) => [part.id || part.tagName, box(part),
      part.innerText.replace(/\\d+ s left/, "N s left")]),
    buttons: [...station.querySelectorAll("button")].filter(shown).map((button) => box(button)),
  };
}"""
SILENCED = re.compile(
    r"^Alarm sound silenced on every screen of ward d4 by dialog-nurse \(Attending the alarm\): \d+ s left\. A new "
    r"high alarm sounds at once\.$"
)
# Twenty minutes ago ("for 20 min" through the test), never alerted by the server: nothing escalates it meanwhile.
RAISED_AGO = timedelta(minutes=20, seconds=5)


def alarm_on(device_id: str, priority: str, message: str, **fields) -> Alarm:
    return Alarm.objects.create(device=Device.objects.get(device_id=device_id), type="occlusion", priority=priority,
                                message=message, source=AlarmSource.DEVICE, raised_at=timezone.now() - RAISED_AGO,
                                **fields)  # fmt: skip


def placed_live_then_before(page, summary: str, station: str) -> tuple[dict, dict]:
    """The page live (the ward's `summary` in, `station` in its station), then its script's render before it is
    live."""
    expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
    expect(page.locator("#ward-summary")).to_contain_text(summary)
    expect(page.locator("#station")).to_contain_text(station)
    live = page.evaluate(PLACED)
    never_live(page)
    page.reload()
    expect(page.locator("#connection-banner")).to_have_text("Connecting…")
    expect(page.locator('.pump-card[data-device-id="BRW_D_RUN"]')).to_have_attribute("data-condition", "stale")
    return live, page.evaluate(PLACED)


def as_the_server_renders_it(page) -> dict:
    page.route("**/static/js/overview.js", lambda route: route.abort())
    page.reload()
    expect(page.locator("#connection-banner")).to_have_text("Connecting…")
    return page.evaluate(PLACED)


def moved(first: dict, then: dict) -> int:
    """How far the cards moved, in px (the most any one did)."""
    before = dict(map(tuple, first["cards"]))
    return max((abs(x - before[card][0]) + abs(y - before[card][1]) for card, (x, y) in then["cards"]), default=0)


def stays_at_every_width(open_page, user, summary: str, station: str = ""):
    """`stays` at each width, on a page of its own; yields each server's page, left open, for the caller's checks."""
    for viewport in VIEWPORTS:
        page = open_page(user, "/", viewport)
        stays(page, viewport, summary, station)
        yield page


def stays(page, viewport: dict, summary: str, station: str = "") -> None:
    """The cards and the station's parts where they are live (`summary` and `station` shown), as the script first
    renders them, and as the server does; the server's page is left open."""
    live, scripted = placed_live_then_before(page, summary, station)
    served = as_the_server_renders_it(page)
    width = viewport["width"]
    assert served["cards"] == live["cards"], f"the cards moved {moved(served, live)} px at {width} px going live"
    assert served["cards"] == scripted["cards"], f"the cards moved {moved(served, scripted)} px as the script ran"
    for render in (scripted, live):
        assert served["station"] == render["station"], f"the station's alarms differ at {width} px"
        assert served["buttons"] == render["buttons"], f"the station's buttons moved at {width} px"


def test_the_cards_stay_below_an_active_alarm(open_page, running_pump):
    make_device("BRW_D_OTHER", ward=Device.objects.get(device_id="BRW_D_RUN").ward, bed="5")
    alarm_on("BRW_D_RUN", AlarmPriority.HIGH, "Line blocked")
    for page in stays_at_every_width(open_page, running_pump, "1 high alarm",
                                     "High alarm · Bed 4 · Line blocked · for 20 min"):  # fmt: skip
        expect(page.locator("#station-alarm-banner"), "the server's page names the alarm").to_have_text(
            "High alarm · Bed 4 · Line blocked · for 20 min"
        )
        expect(page.locator("#station-alarm-list li")).to_have_text("High: Bed 4 · Line blocked · for 20 min")
        assert not page.locator("#station-audio-state").inner_text(), "the server's page speaks of a sound it lacks"
        silence = page.locator("#station-audio-silence")
        expect(silence, "the server's page promises no ward's silence").to_have_text("Silence this screen 2 min")
        expect(silence).to_be_disabled()


def test_the_cards_stay_below_an_escalated_alarm(open_page, running_pump):
    make_device("BRW_D_OTHER", ward=Device.objects.get(device_id="BRW_D_RUN").ward, bed="5")
    alarm_on("BRW_D_RUN", AlarmPriority.MEDIUM, "Battery low", escalation_level=1, escalated_at=timezone.now())
    alarm_on("BRW_D_OTHER", AlarmPriority.LOW, "Check the line", acknowledged_at=timezone.now(),
             acknowledged_by=running_pump)  # fmt: skip
    for page in stays_at_every_width(open_page, running_pump, "1 medium alarm", "ESCALATED to tier 1"):
        expect(page.locator("#station-alarm-list li")).to_have_text([
            "Medium: Bed 4 · Battery low · for 20 min · ESCALATED to tier 1",
            "Low: Bed 5 · Check the line · for 20 min (acknowledged)",
        ])  # fmt: skip


def test_the_cards_stay_below_a_silenced_ward(open_page, running_pump):
    ward = Device.objects.get(device_id="BRW_D_RUN").ward
    make_device("BRW_D_OTHER", ward=ward, bed="5")
    alarm_on("BRW_D_RUN", AlarmPriority.HIGH, "Line blocked")
    ward_silence(ward=ward, user=running_pump, seconds=120, reason="Attending the alarm")
    for page in stays_at_every_width(open_page, running_pump, "1 high alarm", "silenced on every screen of ward d4"):
        expect(page.locator("#station-silence-text"), "the server's page says the ward is silenced").to_have_text(
            SILENCED
        )
        expect(page.get_by_role("button", name="Sound again now")).to_be_disabled()


def test_the_cards_stay_below_the_alarms_of_several_wards(open_page, running_pump):
    other = make_ward("d5")
    other.members.add(running_pump)
    make_device("BRW_D_W2", ward=other, bed="7")
    alarm_on("BRW_D_RUN", AlarmPriority.HIGH, "Line blocked")
    alarm_on("BRW_D_W2", AlarmPriority.MEDIUM, "Battery low")
    ward_silence(ward=other, user=running_pump, seconds=120, reason="")
    for page in stays_at_every_width(open_page, running_pump, "1 high alarm", "silenced on every screen of ward d5"):
        expect(page.locator("#station-alarm-list li")).to_have_text([
            "High: Bed 4 · Line blocked · for 20 min", "Medium: Bed 7 · Battery low · for 20 min"
        ])  # fmt: skip


def test_the_cards_stay_below_the_stations_own_alarm_while_monitoring_is_degraded(open_page, running_pump, stack):
    """The bridge hung: the script's first render says at once "Monitoring degraded" (the server's word as the page
    was served), full-width and sounded; the server's page says it where the script does."""
    make_device("BRW_D_OTHER", ward=Device.objects.get(device_id="BRW_D_RUN").ward, bed="5")
    for viewport in VIEWPORTS:  # a page is opened on a bridge that is heard (`signed_in_page`), then it hangs
        page = open_page(running_pump, "/", viewport)
        try:
            stack["bridge"].pause_idle()
            expect(page.locator("#station-technical-alarm")).to_be_visible(timeout=15_000)
            stays(page, viewport, "1 stale", "Monitoring degraded: the server cannot hear the pumps.")
            expect(page.locator("#station-technical-alarm")).to_have_text(
                "Monitoring degraded: the server cannot hear the pumps. Check the pumps at the bedside."
            )
        finally:
            stack["bridge"].resume()
