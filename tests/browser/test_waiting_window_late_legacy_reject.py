"""The original firmware's `rejected` names no infusion: a late one of an earlier order never rejects the order the
nurse placed after it (review 33, finding 1). A colleague taps Reject at the pump on the nurse's first order while the
bridge is held up (a stall, a backlog); the nurse cancels that order and places a corrected one; when the bridge goes
on, the window of the corrected order said "The pump rejected the infusion: someone at the pump pressed Reject", its
START recorded `done` though never published. Now the corrected order waits for the pump's own answer to it: its
START goes out, and the pump's receipt and Reject of it (after it) end it rejected.

The contract (`received_start_command`: "the pending START was delivered to the pump") and the Pause/Stop road's rule:
a command never sent answers nothing (`commands.command_answered`)."""

import pytest
from playwright.sync_api import expect

from devices.models import Command, DeviceEvent, InfusionSession
from devices.services.named import REPORT_FOR_OTHER_INFUSION
from devices.states import CommandKind, SessionStatus
from tests.clinical.alarm_support import start_from_the_wizard
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # the orders end as the test makes them end
DEVICE = "WW_LATE_REJECT"


def legacy_status(pump: PumpClient, body: dict) -> None:
    """The original firmware's status: `device/{id}/status` (singular), QoS 0, no infusionId, uptime ms."""
    pump.publish("status", {"deviceId": DEVICE, **body}, qos=0, topic=f"device/{DEVICE}/status")


def starts_sent(pump: PumpClient) -> list[dict]:
    return [command for command in pump.commands if command.get("command") == "START_INFUSION"]


def start_of(pump: PumpClient, session: InfusionSession) -> list[dict]:
    return [command for command in starts_sent(pump) if command["payload"]["infusionId"] == session.infusion_id]


RECEIPT_OF_120_ML_H = {"status": "received_start_command",
                       "currentInfusion": {"rate": 2.0, "volume": 30, "time": 15, "bolusEnabled": False,
                                           "bolusVolume": 0}}  # fmt: skip


def withdraw_and_order_again(page, *, rate_ml_h: str, volume_ml: str) -> None:
    """The nurse cancels the order waiting, closes the window, goes Back and places an order of these figures."""
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "cancelled", timeout=5_000)
    page.locator("#waiting-close").click()
    page.get_by_role("button", name="Back").last.click()
    page.get_by_label("Rate (mL/h)").fill(rate_ml_h)
    page.get_by_label("Volume (mL)", exact=True).fill(volume_ml)
    page.get_by_role("button", name="Next: review").click()
    page.locator("#confirm").fill("start")
    page.get_by_role("button", name="Start infusion").click()


def test_a_late_bare_reject_of_an_earlier_order_never_rejects_the_order_placed_after_it(
    open_page, stack, artifacts_dir
):
    ward = make_ward("wwlr")
    make_device(DEVICE, ward=ward, bed="4", has_presence=False)
    pump = PumpClient(stack["broker"].url, DEVICE)
    bridge = stack["bridge"]
    try:
        legacy_status(pump, {"status": "online", "timestamp": 4215})
        page = open_page(make_user("wwlr-nurse", ward=ward), f"/devices/{DEVICE}/start/")
        expect(page.locator("#connection-banner")).to_have_text("Live")
        start_from_the_wizard(page, rate_ml_h="120", volume_ml="30")  # order X
        wait_until(lambda: starts_sent(pump), message="START X never reached the pump")
        legacy_status(pump, {"status": "received_start_command", "timestamp": 52010,
                             "currentInfusion": {"rate": 2.0, "volume": 30, "time": 15, "bolusEnabled": False,
                                                 "bolusVolume": 0}})  # fmt: skip
        modal = page.locator("#waiting-modal")
        expect(page.locator('[data-wait="delivered"]')).to_have_attribute("data-done", "done", timeout=5_000)
        first = InfusionSession.objects.get(device__device_id=DEVICE)

        bridge.pause_idle()  # the bridge held up: the pump's next report waits for it
        try:
            legacy_status(pump, {"status": "rejected", "timestamp": 60000})  # a colleague rejects X at the pump
            withdraw_and_order_again(page, rate_ml_h="60", volume_ml="30")  # X had a wrong figure: Y corrects it
            expect(modal).to_be_visible()
            second = wait_until(lambda: InfusionSession.objects.filter(device__device_id=DEVICE)
                                .exclude(pk=first.pk).first(), message="order Y was never placed")  # fmt: skip
        finally:
            bridge.resume()
        wait_until(lambda: Command.objects.filter(session=first, kind=CommandKind.STOP_INFUSION,
                                                  published_at__isnull=False).exists(),
                   timeout=10, message="the bridge never went on (X's clearing STOP unpublished)")  # fmt: skip
        page.wait_for_timeout(1_500)  # what the bridge applied once it went on has reached the page
        screenshot(page, artifacts_dir, "late-legacy-reject")
        second.refresh_from_db()
        message = page.locator("#waiting-message").text_content()  # "monitoring degraded" meanwhile (a held bridge)
        assert "The pump rejected" not in message, f"the window says the pump rejected order Y: {message!r}"
        assert second.status == SessionStatus.PENDING, f"order Y is {second.status} ({second.status_reason!r})"
        expect(modal).to_have_attribute("data-outcome", "waiting", timeout=15_000)  # the bridge's next heartbeat
        wait_until(lambda: [c for c in starts_sent(pump) if c["payload"]["infusionId"] == second.infusion_id],
                   timeout=10, message="START Y never reached the pump")  # fmt: skip

        # the pump now shows Y, and a person rejects it there: that Reject is Y's
        legacy_status(pump, {"status": "received_start_command", "timestamp": 70010,
                             "currentInfusion": {"rate": 1.0, "volume": 30, "time": 30, "bolusEnabled": False,
                                                 "bolusVolume": 0}})  # fmt: skip
        expect(page.locator('[data-wait="delivered"]')).to_have_attribute("data-done", "done", timeout=5_000)
        legacy_status(pump, {"status": "rejected", "timestamp": 75000})
        expect(modal).to_have_attribute("data-outcome", "rejected", timeout=5_000)
        expect(page.locator("#waiting-message")).to_contain_text("someone at the pump pressed Reject")
        second.refresh_from_db()
        assert second.status == SessionStatus.REJECTED
        assert not second.alarms.filter(type="parameter_mismatch").exists(), "Y's own figures raised a mismatch"
    finally:
        pump.close()


def test_the_first_orders_late_answers_leave_the_order_placed_again_waiting_and_say_so(open_page, stack, artifacts_dir):
    """Review 36, finding 1: order X went out and the pump's answers to it were held up (a backlog); the nurse
    cancelled X and placed the very same order again (as the window's Retry does), whose START went out too. Then X's
    receipt and Reject arrive: they tell the figures of both orders and name none. They rejected the order placed
    again ("someone at the pump pressed Reject. Nothing is running.") while it reached the pump's confirm screen. Now
    it waits, and the window says the pump's Reject may be the earlier order's or this one's: check at the pump. The
    pump's receipt of it, after them, is its own (the note goes), and the Reject after that rejects it."""
    ward = make_ward("wwrr")
    make_device(DEVICE, ward=ward, bed="4", has_presence=False)
    pump = PumpClient(stack["broker"].url, DEVICE)
    try:
        legacy_status(pump, {"status": "online", "timestamp": 4215})
        page = open_page(make_user("wwrr-nurse", ward=ward), f"/devices/{DEVICE}/start/")
        expect(page.locator("#connection-banner")).to_have_text("Live")
        start_from_the_wizard(page, rate_ml_h="120", volume_ml="30")  # order X; the pump's answers held up
        modal = page.locator("#waiting-modal")
        first = wait_until(lambda: InfusionSession.objects.filter(device__device_id=DEVICE).first(),
                           message="order X was never placed")  # fmt: skip
        wait_until(lambda: start_of(pump, first), message="START X never reached the pump")
        withdraw_and_order_again(page, rate_ml_h="120", volume_ml="30")  # the same order again
        expect(modal).to_have_attribute("data-outcome", "waiting")
        again = wait_until(lambda: InfusionSession.objects.filter(device__device_id=DEVICE).exclude(pk=first.pk)
                           .first(), message="the order was never placed again")  # fmt: skip
        wait_until(lambda: start_of(pump, again), timeout=10, message="the START of the order placed again never came")

        legacy_status(pump, {**RECEIPT_OF_120_ML_H, "timestamp": 52010})  # X's, held up until now
        legacy_status(pump, {"status": "rejected", "timestamp": 60000})  # a colleague rejected X at the pump
        wait_until(lambda: DeviceEvent.objects.filter(kind=REPORT_FOR_OTHER_INFUSION, session=again,
                                                      payload__report="rejected").exists()
                   or InfusionSession.objects.get(pk=again.pk).status != SessionStatus.PENDING,
                   timeout=10, message="the late Reject was not heard")  # fmt: skip
        screenshot(page, artifacts_dir, "late-answers-of-the-order-placed-before")
        again.refresh_from_db()
        assert again.status == SessionStatus.PENDING, (
            f"the order placed again, on its way to the pump's confirm screen, is {again.status} "
            f"({again.status_reason!r}) by the earlier order's late receipt and Reject"
        )
        expect(modal).to_have_attribute("data-outcome", "waiting")
        message = page.locator("#waiting-message").text_content()
        assert "The pump rejected" not in message, f"the window says the pump rejected the order again: {message}"
        expect(page.locator('[data-wait="delivered"]')).not_to_have_attribute("data-done", "done")
        doubt = page.locator("#waiting-doubt")
        expect(doubt).to_contain_text("a Reject naming no order: it may be of the earlier order", timeout=5_000)
        expect(doubt).to_contain_text("Check at the pump")

        legacy_status(pump, {**RECEIPT_OF_120_ML_H, "timestamp": 70010})  # its own, after X's
        expect(page.locator('[data-wait="delivered"]')).to_have_attribute("data-done", "done", timeout=5_000)
        expect(doubt).to_be_hidden()
        legacy_status(pump, {"status": "rejected", "timestamp": 75000})
        expect(modal).to_have_attribute("data-outcome", "rejected", timeout=5_000)
        expect(page.locator("#waiting-message")).to_contain_text("someone at the pump pressed Reject")
    finally:
        pump.close()
