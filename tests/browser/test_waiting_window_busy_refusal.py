"""A pump busy with an infusion of its own refuses a START (`confirmed: false`, `reason: "pump_busy"`,
docs/simulator.md): the waiting window and the monitor tell it as the pump's refusal for that reason, never as "someone
at the pump pressed Reject. Nothing is running." beside a pump reporting running (review 33, finding 2), and Retry (the
same order to the same busy pump) is not offered while it infuses. The reason is kept in the session's record."""

import pytest
from playwright.sync_api import expect

from devices.models import InfusionSession
from devices.states import SessionStatus
from tests.clinical.alarm_support import start_from_the_wizard
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}
DEVICE = "WW_BUSY"


def test_a_busy_pumps_refusal_is_told_as_its_reason_not_as_a_reject_with_nothing_running(open_page, stack):
    ward = make_ward("wwbz")
    make_device(DEVICE, ward=ward, bed="2", has_presence=True)
    pump = PumpClient(stack["broker"].url, DEVICE)
    seq = iter(range(1, 1000))
    try:
        pump.publish("status", {"status": "online", "bootId": "b1", "seq": next(seq), "uptime": 60_000})
        # infusing an infusion of its own (started at the pump): the server shows it infusing WITHOUT an order
        own = {"status": "running", "infusionId": "own-at-pump", "flowRate": 1.0, "deliveredVolumeMl": 2.0,
               "volumeRemainingMl": 48.0, "bootId": "b1"}  # fmt: skip
        pump.publish("progress", {**own, "seq": next(seq)})
        nurse = make_user("wwbz-nurse", ward=ward)
        page = open_page(nurse, f"/devices/{DEVICE}/start/")
        expect(page.locator("#connection-banner")).to_have_text("Live")
        start_from_the_wizard(page)
        start = wait_until(lambda: [c for c in pump.commands if c.get("command") == "START_INFUSION"],
                           message="the START never reached the pump")[0]  # fmt: skip
        order_id = start["payload"]["infusionId"]
        pump.publish("infusion", {"infusionId": order_id, "confirmed": False, "reason": "pump_busy",
                                  "bootId": "b1", "seq": next(seq)})  # fmt: skip
        pump.publish("progress", {**own, "deliveredVolumeMl": 2.1, "seq": next(seq)})  # still infusing its own
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "rejected", timeout=5_000)
        message = page.locator("#waiting-message")
        expect(message).to_contain_text("The pump refused the order: it is busy with an infusion of its own")
        expect(message).to_contain_text("The pump reports an infusion running, not this order: check the pump.")
        said = message.text_content()
        assert "Nothing is running" not in said and "pressed Reject" not in said, (
            f"the pump refused the order because it is busy infusing; the window says: {said!r}"
        )
        expect(page.get_by_role("button", name="Retry")).to_be_hidden()  # the same order to the same busy pump
        session = InfusionSession.objects.get(infusion_id=order_id)
        assert session.status == SessionStatus.REJECTED and "pump_busy" in session.status_reason, (
            f"the pump's reason is not in the record: {session.status} ({session.status_reason!r})"
        )
        assert session.confirmation.get("reason") == "pump_busy"

        monitor = open_page(nurse, f"/devices/{DEVICE}/")
        expect(monitor.locator("#event-list")).to_contain_text(
            "The pump refused the infusion: it is busy with an infusion of its own", timeout=10_000
        )
        expect(monitor.locator("#event-list")).not_to_contain_text("pressed Reject")
    finally:
        pump.close()


def test_a_reject_at_an_idle_pump_says_nothing_runs_and_offers_retry(open_page, stack):
    """A person's Reject (`reason: "rejected_at_pump"`) at a pump reporting idle: as before, "someone at the pump
    pressed Reject. Nothing is running.", with Retry."""
    ward = make_ward("wwri")
    make_device("WW_REJ_IDLE", ward=ward, bed="3", has_presence=True)
    pump = PumpClient(stack["broker"].url, "WW_REJ_IDLE")
    try:
        pump.publish("status", {"status": "online", "bootId": "b1", "seq": 1, "uptime": 60_000})
        pump.publish("status", {"status": "idle", "bootId": "b1", "seq": 2, "uptime": 60_100})
        page = open_page(make_user("wwri-nurse", ward=ward), "/devices/WW_REJ_IDLE/start/")
        expect(page.locator("#connection-banner")).to_have_text("Live")
        expect(page.locator("#mon-connectivity")).to_have_text("Online", timeout=10_000)
        start_from_the_wizard(page)
        start = wait_until(lambda: [c for c in pump.commands if c.get("command") == "START_INFUSION"],
                           message="the START never reached the pump")[0]  # fmt: skip
        pump.publish("infusion", {"infusionId": start["payload"]["infusionId"], "confirmed": False,
                                  "reason": "rejected_at_pump", "bootId": "b1", "seq": 3})  # fmt: skip
        expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "rejected", timeout=5_000)
        expect(page.locator("#waiting-message")).to_have_text(
            "The pump rejected the infusion: someone at the pump pressed Reject. Nothing is running."
        )
        expect(page.get_by_role("button", name="Retry")).to_be_visible()
    finally:
        pump.close()
