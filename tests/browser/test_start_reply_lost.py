"""The start wizard whose POST reached the server but whose reply was lost.

The nurse types "start" and presses Start infusion. The server commits the order and queues START_INFUSION; the
bridge publishes it and the pump shows its confirm screen. The reply never reaches the page (Wi-Fi roaming, a proxy
timing out, Daphne restarted after the commit): `postJson` turns that into "The server could not be reached. Check
the connection." and the wizard re-enables Start. Nothing on the start page follows the order from then on: the
waiting window opens only from the POST's reply (or at a page load), and the monitor's session, controls and log are
hidden on this page. So the page says the start failed while an order waits on the pump's confirm screen (and, once
someone at the pump accepts it, runs): the order's fate is not shown, and Cancel is not offered.

Review 22, finding 2.
"""

import pytest
from playwright.sync_api import expect

from devices.models import Command, InfusionSession
from devices.states import CommandKind, SessionStatus
from tests.browser.test_start_infusion import open_wizard
from tests.support.bridge import PumpClient, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
# its orders wait for the tests that act on them, never for the 6 s time-out (a loaded run took longer: ci55)
BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}


def order_typed_and_started(page, drug: str = "Heparin") -> None:
    """Skip the patient; Heparin (`drug`) at 120 mL/h, 30 mL; type "start" and press Start infusion."""
    page.get_by_role("button", name="Skip patient details").click()
    page.get_by_label("Drug", exact=True).fill(drug)
    page.get_by_label("Rate (mL/h)").fill("120")
    page.get_by_label("Volume (mL)", exact=True).fill("30")
    page.get_by_role("button", name="Next: review").click()
    page.locator("#confirm").fill("start")
    page.get_by_role("button", name="Start infusion").click()


def test_a_start_whose_reply_was_lost_shows_the_order_waiting_not_could_not_be_reached(open_page, stack):
    pump = PumpClient(stack["broker"].url, "BRW_R22_LOST")  # hears the START, never answers it
    try:
        page = open_wizard(open_page, "BRW_R22_LOST", has_presence=True)
        pump.publish("status", {"status": "online"}, retain=False)

        def reply_lost(route) -> None:
            route.fetch()  # the server receives the order and commits it
            route.abort("internetdisconnected")  # ...but its reply never reaches the page

        page.route("**/api/devices/*/infusions/", reply_lost)
        order_typed_and_started(page)
        session = wait_until(lambda: InfusionSession.objects.filter(device__device_id="BRW_R22_LOST").first(),
                             timeout=10, message="the server never received the order")  # fmt: skip
        assert session.status == SessionStatus.PENDING
        wait_until(lambda: Command.objects.filter(session=session, kind=CommandKind.START_INFUSION,
                                                  sent_at__isnull=False).exists(),
                   timeout=10, message="the START was never published")  # fmt: skip
        wait_until(lambda: any(c.get("command") == "START_INFUSION" for c in pump.commands), timeout=10,
                   message="the pump never received the START")  # fmt: skip
        page.wait_for_timeout(3_000)  # the live feed has told the page of the order and its START by now
        error = page.locator("#wizard-error")
        said = error.inner_text() if error.is_visible() else ""
        start_enabled = page.locator("#start-submit").is_enabled()
        waiting_shown = page.locator("#waiting-modal").is_visible()
        assert waiting_shown, (
            "the order is pending and its START is on the pump's confirm screen, yet the start page shows the wizard "
            f"with {said!r} (Start button enabled: {start_enabled}) and no waiting window (no Cancel, no countdown)"
        )
    finally:
        pump.close()


def test_start_pressed_again_after_the_network_returns_shows_the_order_placed_never_a_second(open_page, stack):
    """The reply is lost and so is the page's question whether the order was placed (the network is down): the
    wizard says the order may have been placed; pressed again once connected, Start shows that order (the same
    request, by its idempotency key), never a second order nor "already has an active infusion"."""
    page = open_wizard(open_page, "BRW_R22_AGAIN", has_presence=True)

    def reply_lost(route) -> None:
        route.fetch()
        route.abort("internetdisconnected")

    page.route("**/api/devices/*/infusions/", reply_lost)
    page.route("**/api/devices/*/starts/**", lambda route: route.abort("internetdisconnected"))
    order_typed_and_started(page)
    error = page.locator("#wizard-error")
    expect(error).to_contain_text("may have been placed", timeout=10_000)
    expect(page.locator("#start-submit")).to_be_enabled()
    page.unroute("**/api/devices/*/infusions/")
    page.unroute("**/api/devices/*/starts/**")
    page.get_by_role("button", name="Start infusion").click()
    expect(page.locator("#waiting-modal")).to_be_visible(timeout=10_000)
    sessions = list(InfusionSession.objects.filter(device__device_id="BRW_R22_AGAIN"))
    assert len(sessions) == 1 and sessions[0].status == SessionStatus.PENDING, (
        f"Start pressed again for the same order: {[(s.infusion_id, s.status) for s in sessions]}"
    )
    commands = Command.objects.filter(kind=CommandKind.START_INFUSION, session__device__device_id="BRW_R22_AGAIN")
    assert commands.count() == 1, "a second START was queued"
