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

On a tablet or a phone (one column) the order, its read-back, the figures and the alarms are above the controls, and
the server's page had none of them: the script put them there as it ran, Pause 282 px down on a tablet and 505 px on a
phone for a running infusion with its read-back, 307 and 615 px with an alarm (whose Acknowledge appeared only then);
an idle pump's empty chart box, unseen once the script ran, put them 220 px up. The server's page now renders what the
script first renders (devices/views/monitor_before_live.py), and the sound's line keeps one box while it is wanted.

Each check is made with the page unscrolled: scrolled to Pause on a phone, Chrome's scroll anchoring would make up
for the move and hide it.
"""

import pytest
from playwright.sync_api import expect

from devices.models import Alarm, Device, InfusionSession
from devices.states import AlarmPriority, AlarmSource, SessionStatus
from tests.browser.test_monitor_not_live_says_no_alarms import LOSE_THE_SOCKET
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient
from tests.support.browser import LAPTOP, TABLET

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NOT_VOUCHED = "(monitoring degraded, or the page not live)"
SMALL_LAPTOP = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}
# A running pump's cases at every width on one set-up of it (a page of its own per width): 12 set-ups took 40 s.
VIEWPORTS = (LAPTOP, SMALL_LAPTOP, TABLET, PHONE)


CONTROLS = ("Pause", "Resume", "Stop")


def boxes(page, controls=CONTROLS):
    """Where the alarm list and the controls named are, in the page (None: not there, or not shown)."""
    found = {"alarm list": page.locator("#alarm-list").bounding_box()}
    for name in controls:
        control = page.get_by_role("button", name=name, exact=True)
        found[name] = control.bounding_box() if control.count() == 1 else None
    return found


def as_the_server_renders_it(page):
    """Reload `page` without its script: the monitor as the server renders it, and for good had the script failed."""
    page.route("**/static/js/monitor_page.js", lambda route: route.abort())
    page.reload()
    expect(page.locator("#alarm-list"), "the server's page says calm before it knows").to_contain_text(NOT_VOUCHED)
    for name in ("Pause", "Stop"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_disabled()


def test_the_controls_do_not_move_when_the_page_stops_being_live(open_page, running_pump):
    for viewport in VIEWPORTS:
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


def test_the_page_before_its_scripts_run_claims_no_calm_and_puts_the_controls_where_they_stay(open_page, running_pump):
    """A running infusion with its order and read-back."""
    for viewport in VIEWPORTS:
        page = open_page(running_pump, "/devices/BRW_D_RUN/", viewport)
        expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
        expect(page.locator("#alarm-list")).to_have_text("No active alarms.")
        expect(page.locator("#mon-readback")).to_be_visible()
        live = boxes(page, (*CONTROLS, "End record…"))
        as_the_server_renders_it(page)
        assert boxes(page, (*CONTROLS, "End record…")) == live, (
            f"moved at {viewport['width']} px once the page's scripts run and it goes live"
        )
        expect(page.locator("#mon-readback"), "the server's page shows the read-back").to_contain_text(
            "parameters match"
        )


def test_an_alarms_acknowledge_and_the_controls_are_where_the_server_put_them(open_page, running_pump):
    """With an alarm sounding (or the browser blocking its sound): its row, its Acknowledge and the sound's line."""
    Alarm.objects.create(device=Device.objects.get(device_id="BRW_D_RUN"), type="occlusion",
                         priority=AlarmPriority.HIGH, message="Line blocked", source=AlarmSource.DEVICE)  # fmt: skip
    for viewport in VIEWPORTS:
        page = open_page(running_pump, "/devices/BRW_D_RUN/", viewport)
        expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
        expect(page.locator("#monitor")).not_to_have_attribute("data-audio", "off")
        live = boxes(page, (*CONTROLS, "Acknowledge"))
        assert live["Acknowledge"], f"the live page shows the alarm's Acknowledge at {viewport['width']} px"
        as_the_server_renders_it(page)
        assert boxes(page, (*CONTROLS, "Acknowledge")) == live, (
            f"moved at {viewport['width']} px once the page's scripts run and it goes live"
        )
        expect(page.locator(".alarm"), "the server's page lists the alarm").to_contain_text("High: Occlusion")
        expect(page.get_by_role("button", name="Acknowledge")).to_be_disabled()


def controls_stay_as_it_goes_live(open_page, stack, nurse, device_id: str, viewport: dict, shown: tuple) -> None:
    """The pump says it is online; its monitor opened live, showing `shown` (a selector, its text), then as the server
    renders it: each control where the live page had it."""
    pump = PumpClient(stack["broker"].url, device_id)
    try:
        pump.publish("status", {"status": "online"})
        page = open_page(nurse, f"/devices/{device_id}/", viewport)
        expect(page.locator("#connection-banner")).to_have_text("Live", timeout=15_000)
        expect(page.locator(shown[0])).to_have_text(shown[1])
        live = boxes(page)
        as_the_server_renders_it(page)
        assert boxes(page) == live, f"moved at {viewport['width']} px once the page's scripts run and it goes live"
    finally:
        pump.close()


@pytest.mark.parametrize("viewport", [TABLET, PHONE], ids=["tablet", "phone"])
def test_an_idle_pumps_controls_are_where_the_server_put_them(open_page, stack, viewport):
    """No infusion: no chart (the server's page had an empty chart box the script hid, 220 px on a tablet)."""
    ward = make_ward("d4")
    nurse = make_user("idle-nurse", ward=ward)
    make_device("BRW_D_IDLE", ward=ward, bed="3", has_presence=True)
    controls_stay_as_it_goes_live(open_page, stack, nurse, "BRW_D_IDLE", viewport, ("#mon-session", "No infusion"))


@pytest.mark.parametrize("viewport", [TABLET, PHONE], ids=["tablet", "phone"])
def test_the_controls_stay_below_an_order_not_confirmed_in_time(open_page, stack, viewport):
    """Its time left and rate say "Not confirmed in time": in lighter italics while not live they took two lines on a
    tablet where they took three live (the controls 25 px down as the page went live); only the italics differ now."""
    ward = make_ward("d4")
    nurse = make_user("late-nurse", ward=ward)
    device = make_device("BRW_D_LATE", ward=ward, bed="5", has_presence=True)
    InfusionSession.objects.create(device=device, ward=ward, status=SessionStatus.TIMED_OUT, flow_rate_ml_min=1.0,
                                   planned_volume_ml=100, planned_time_min=100, drug="Heparin")  # fmt: skip
    shown = ("#mon-rate", "Not confirmed in time")
    controls_stay_as_it_goes_live(open_page, stack, nurse, "BRW_D_LATE", viewport, shown)
