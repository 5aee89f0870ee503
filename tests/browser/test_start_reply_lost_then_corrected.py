"""The start wizard's reply is lost AND so is its question whether the order was placed (the network is down): it
says "the order may have been placed". The nurse then corrects a figure (120 -> 100 mL/h). An edit makes another
order, and it made the wizard forget the first one's request (`forgetRequest` dropped its key and `unsure`): pressed
again once connected, Start infusion said "This pump already has an active infusion" while her 120 mL/h order waited
on the pump's confirm screen, with no waiting window, no Cancel, and the live check of a pending order no longer
asking. The wizard now keeps the keys of requests whose outcome it does not know, asks after them on a 409
`session_active` and when the live page shows a pending order, and opens the waiting window on the order placed,
naming the figures actually sent (120 mL/h) and saying the form's (100 mL/h) were not.

Review 25, finding 4.
"""

import pytest
from playwright.sync_api import expect

from devices.models import InfusionSession
from devices.states import SessionStatus
from tests.browser.test_start_infusion import open_wizard
from tests.browser.test_start_reply_lost import order_typed_and_started
from tests.support.bridge import PumpClient, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
# its orders wait for the tests that act on them, never for the 6 s time-out (a loaded run took longer: ci55)
BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}


def order_placed_unseen(page, device_id: str, drug: str = "Heparin") -> InfusionSession:
    """Heparin (`drug`) at 120 mL/h, 30 mL started; its reply and the question after it lost: "may have been
    placed"."""

    def reply_lost(route) -> None:
        route.fetch()  # the server commits the order
        route.abort("internetdisconnected")  # ...its reply is lost

    page.route("**/api/devices/*/infusions/", reply_lost)
    page.route("**/api/devices/*/starts/**", lambda route: route.abort("internetdisconnected"))
    order_typed_and_started(page, drug)
    expect(page.locator("#wizard-error")).to_contain_text("may have been placed", timeout=10_000)
    placed = InfusionSession.objects.get(device__device_id=device_id)
    assert placed.status == SessionStatus.PENDING, "precondition: her order was placed"
    page.unroute("**/api/devices/*/infusions/")
    return placed


def rate_corrected_to_100(page) -> None:
    """Back from the review to the infusion step: the rate 100 mL/h (the volume typed again), then the review."""
    page.locator('fieldset[data-step="3"] button[data-next="2"]').click()
    page.get_by_label("Rate (mL/h)").fill("100")
    page.get_by_label("Volume (mL)", exact=True).fill("30")
    page.get_by_role("button", name="Next: review").click()


def start_confirmed(page) -> None:
    page.locator("#confirm").fill("start")
    page.get_by_role("button", name="Start infusion").click()


def expect_her_earlier_order_shown(page, placed: InfusionSession) -> None:
    """The waiting window on her 120 mL/h order, with Cancel, saying the form's 100 mL/h were not sent."""
    modal = page.locator("#waiting-modal")
    expect(modal).to_be_visible(timeout=10_000)
    expect(page.locator("#waiting-order")).to_contain_text("120.0 mL/h")
    expect(page.locator("#waiting-order")).not_to_contain_text("100.0 mL/h")
    earlier = page.locator("#waiting-earlier")
    expect(earlier).to_contain_text("Your earlier order (120.0 mL/h) was placed")
    expect(earlier).to_contain_text("(\u2068Heparin\u2069, 100.0 mL/h, 30.0 mL, 18.0 min, bolus off) was not sent")
    expect(page.get_by_role("button", name="Cancel")).to_be_visible()
    sessions = list(InfusionSession.objects.filter(device__device_id=placed.device.device_id))
    assert [s.infusion_id for s in sessions] == [placed.infusion_id], f"another order was placed: {sessions}"


def test_start_after_a_correction_shows_the_earlier_order_placed_then_she_cancels_and_orders_again(open_page, stack):
    page = open_wizard(open_page, "BRW_R25_CORRECTED", has_presence=True)
    placed = order_placed_unseen(page, "BRW_R25_CORRECTED")
    page.unroute("**/api/devices/*/starts/**")  # the network is back
    rate_corrected_to_100(page)
    start_confirmed(page)
    error = page.locator("#wizard-error")
    expect(page.locator("#waiting-modal:visible, #wizard-error:visible").first).to_be_visible(timeout=10_000)
    said = error.inner_text() if error.is_visible() else ""
    assert page.locator("#waiting-modal").is_visible(), (
        f"her order {placed.infusion_id} (120 mL/h) waits on the pump, placed by her request whose reply was lost; "
        f"the page shows no waiting window and says {said!r}"
    )
    expect_her_earlier_order_shown(page, placed)
    # she cancels it, then orders the corrected rate: that one is placed, and its window names it
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "cancelled", timeout=10_000)
    page.get_by_role("button", name="Close").click()
    expect(page.locator("#review")).to_contain_text("100.0 mL/h")
    expect(page.locator("#start-submit")).to_be_disabled()  # confirmed anew
    start_confirmed(page)
    expect(page.locator("#waiting-order")).to_contain_text("100.0 mL/h", timeout=10_000)
    expect(page.locator("#waiting-earlier")).to_be_hidden()
    corrected = InfusionSession.objects.filter(device__device_id="BRW_R25_CORRECTED").exclude(pk=placed.pk).get()
    assert corrected.status == SessionStatus.PENDING and abs(corrected.flow_rate_ml_min * 60 - 100) < 0.01


def test_a_pending_order_on_the_live_page_after_a_correction_is_asked_after_and_shown(open_page, stack):
    """She has corrected the rate but not pressed Start yet; the pump reports the order received (a live `pending`
    session): the wizard asks after her earlier request and shows its order."""
    pump = PumpClient(stack["broker"].url, "BRW_R25_LIVE")
    try:
        page = open_wizard(open_page, "BRW_R25_LIVE", has_presence=True)
        pump.publish("status", {"status": "online", "bootId": "boot-1", "seq": 1})
        expect(page.locator("#mon-connectivity")).to_have_text("Online", timeout=10_000)
        placed = order_placed_unseen(page, "BRW_R25_LIVE")
        page.unroute("**/api/devices/*/starts/**")
        rate_corrected_to_100(page)
        wait_until(lambda: any(c.get("command") == "START_INFUSION" for c in pump.commands), timeout=10,
                   message="the pump never received the START")  # fmt: skip
        pump.publish("status", {"status": "received_start_command", "infusionId": placed.infusion_id,
                                "bootId": "boot-1", "seq": 2})  # fmt: skip
        expect_her_earlier_order_shown(page, placed)
    finally:
        pump.close()


def test_start_after_a_correction_while_the_question_still_fails_names_the_earlier_order(open_page, stack):
    """The start request reaches the server (409) but the question after her earlier request still fails: the page
    cannot show that order, and says the pump's active infusion may be her earlier 120 mL/h order."""
    page = open_wizard(open_page, "BRW_R25_UNASKED", has_presence=True)
    order_placed_unseen(page, "BRW_R25_UNASKED")  # the question after it still fails
    rate_corrected_to_100(page)
    start_confirmed(page)
    error = page.locator("#wizard-error")
    expect(error).to_contain_text("already has an active infusion", timeout=10_000)
    # the drug isolated (FSI … PDI: test_right_to_left_texts_in_sentences.py), the figures after it as they read
    expect(error).to_contain_text("your earlier order (\u2068Heparin\u2069, 120.0 mL/h, 30.0 mL, 15.0 min, bolus off)")
    expect(page.locator("#waiting-modal")).to_be_hidden()
