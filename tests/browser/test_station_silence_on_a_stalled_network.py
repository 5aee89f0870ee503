"""Review 32, finding 2: on a network that stalls without closing (Wi-Fi roaming, a VPN hiccup), the station stops
saying "Live" after about 10.5 s and relabels its silence button "Silence this screen 2 min". What the button did was
decided by `socket.connected`, which stays true until socket.io gives up: it asked for the WARD's silence (held in
the stalled connection) and silenced nothing here; once the network recovered, TCP delivered the request and every
station of the ward went silent for 2 minutes under the nurse's name. The button must do what it says."""

import pytest
from django.db import transaction
from playwright.sync_api import expect

from devices.models import WardSilence
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward
from tests.support.black_hole import StallingProxy
from tests.support.bridge import wait_until
from tests.support.browser import signed_in_page

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WALL = {"width": 1920, "height": 1080}


# every event the page's socket sends, kept in the page (a request emitted into the stall arrives once it ends)
RECORD_EMITS = """() => {
  const socket = window.pumpstreamLive.socket, emit = socket.emit.bind(socket);
  window.emitted = [];
  socket.emit = (name, ...args) => (window.emitted.push(name), emit(name, ...args));
}"""


def test_silence_this_screen_silences_this_screen_not_the_ward(chromium, stack):
    ward = make_ward("r32n")
    make_device("R32_NET_1", ward=ward, bed="9", has_presence=True)
    proxy = StallingProxy(stack["daphne"].port).start()
    context, page = signed_in_page(chromium, make_user("r32n-nurse", ward=ward), proxy.url, "/?ward=r32n", WALL)
    try:
        station, banner = page.locator("#station"), page.locator("#connection-banner")
        expect(banner).to_have_text("Live")
        page.locator("#ward-heading").click()  # the gesture browsers want before sound
        with transaction.atomic():
            alarm_raise(device=device_lock(device_id="R32_NET_1"), type="occlusion", priority=AlarmPriority.HIGH,
                        source=AlarmSource.DEVICE, message="Downstream occlusion")  # fmt: skip
        expect(station).to_have_attribute("data-audio", "high", timeout=5_000)

        page.evaluate(RECORD_EMITS)
        proxy.stalled = True
        expect(banner).not_to_have_text("Live", timeout=15_000)
        button = page.locator("#station-audio-silence")
        expect(button).to_have_text("Silence this screen 2 min")
        button.click()
        expect(station, "this screen is silenced at once").to_have_attribute("data-audio", "silenced")
        assert page.evaluate("document.getElementById('station-audio-high').paused")
        assert "silence:ward" not in page.evaluate("window.emitted"), "nothing is sent for the ward"

        proxy.stalled = False  # the network recovers before socket.io gives up: what was held is delivered
        expect(banner).to_have_text("Live", timeout=20_000)
        with pytest.raises(AssertionError):  # and nothing arrives later as the ward's silence
            wait_until(lambda: WardSilence.objects.filter(ward=ward).exists(), timeout=5)
    finally:
        proxy.stalled = False
        context.close()
        proxy.stop()


def test_a_ward_silence_refused_as_held_up_is_told_to_the_station(chromium, stack):
    """The other road of a stall: shorter than the 10.5 s the page takes to stop saying "Live", so the ward's silence is
    sent, held, and refused on arrival (asked over 5 s before). Nothing is silenced anywhere; the nurse who pressed
    saw nothing happen (the refusal went to the browser's console only) and could believe the ward was quiet."""
    ward = make_ward("r32r")
    make_device("R32_REF_1", ward=ward, bed="2", has_presence=True)
    context, page = signed_in_page(chromium, make_user("r32r-nurse", ward=ward), stack["url"], "/?ward=r32r", WALL)
    try:
        expect(page.locator("#connection-banner")).to_have_text("Live")
        refused = page.locator("#station-silence-refused")
        expect(refused).to_be_hidden()
        page.evaluate("""() => window.pumpstreamLive.request("silence:ward", {ward: "r32r",
            reason: "Attending the alarm", askedAt: new Date(Date.now() - 60_000).toISOString()})""")
        expect(refused, "the refusal is shown where the nurse looks").to_be_visible(timeout=5_000)
        expect(refused).to_contain_text("Not silenced")
        expect(refused).to_contain_text("held up by the network")
        assert not WardSilence.objects.filter(ward=ward).exists(), "precondition: the server silenced nothing"
    finally:
        context.close()
