"""An infusion without an order shows what the pump reports, as such, with a working Stop; its alarm clears when
it stops or an order is confirmed. Modern and original firmware, through the real broker, bridge and Daphne.

On the old code: the alarm was raised but the overview said "idle", rate "—", the monitor "No infusion" with
Stop disabled, and the alarm stayed active after a proper order started.
"""

import pytest
from playwright.sync_api import expect

from devices.models import Command, Device, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, SessionStatus
from tests.clinical.scenario import active_alarm, published, wait_status
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import wait_until
from tests.support.browser import screenshot

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # its orders wait for tests that act on them, never for the 6 s time-out

UNORDERED = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 7.5, "volumeRemainingMl": 42.5,
             "timeRemainingMin": 21.0, "progressPercent": 15}  # fmt: skip


def test_an_unordered_infusion_is_shown_as_such_and_stopped_from_the_monitor(
    clinical_bridge, clinical_pump, clinical_page, artifacts_dir
):
    ward = make_ward("cln-unordered")
    make_device("CLN_NOORDER", ward=ward, bed="9")
    pump = clinical_pump("CLN_NOORDER")
    nurse = make_user("ordernurse", ward=ward)
    pump.publish("progress", UNORDERED)
    alarm = wait_until(lambda: active_alarm("CLN_NOORDER", "infusing_without_order"),
                       message="progress with no order raised no infusing_without_order")  # fmt: skip
    assert alarm.priority == "high"
    assert Device.objects.get(device_id="CLN_NOORDER").pump_state == "running", "the pump's state is what it reports"

    overview = clinical_page(nurse, "/?ward=cln-unordered")
    card = overview.locator('.pump-card[data-device-id="CLN_NOORDER"]')
    pump.publish("progress", UNORDERED)  # keeps it fresh while the page opens
    expect(card.locator('[data-field="state"]')).to_have_text("running without an order")
    expect(card.locator('[data-field="drug"]')).to_have_text("NO ORDER")
    expect(card.locator('[data-field="rate"]')).to_have_text("120.0 mL/h")
    expect(card.locator('[data-field="volumes"]')).to_contain_text("7.5 mL infused")
    screenshot(overview, artifacts_dir, "clinical-unordered-overview")

    monitor = clinical_page(nurse, "/devices/CLN_NOORDER/")
    pump.publish("progress", UNORDERED)
    expect(monitor.locator("#mon-session")).to_have_text("Infusing WITHOUT an order")
    expect(monitor.locator("#mon-rate")).to_have_text("120.0 mL/h")
    expect(monitor.locator("#mon-infused")).to_contain_text("7.5")
    stop = monitor.get_by_role("button", name="Stop")
    expect(stop).to_be_enabled()
    screenshot(monitor, artifacts_dir, "clinical-unordered-monitor")
    stop.click()
    monitor.locator("#confirm-ok").click()
    sent = wait_until(lambda: published(pump, "STOP_INFUSION"), message="the page's Stop never reached the pump")[0]
    assert sent["payload"]["infusionId"] is None and sent["payload"]["emergency"] is False
    pump.publish("status", {"status": "stopped"})
    wait_until(lambda: active_alarm("CLN_NOORDER", "infusing_without_order") is None,
               message="infusing_without_order did not clear when the pump stopped")  # fmt: skip
    command = Command.objects.get(device__device_id="CLN_NOORDER", kind=CommandKind.STOP_INFUSION)
    assert command.state == CommandState.DONE and command.session is None and command.created_by == nurse
    expect(monitor.locator("#mon-session")).to_have_text("No infusion", timeout=10_000)
    expect(monitor.locator("#mon-rate")).to_have_text("—")
    expect(stop).to_be_disabled()


def test_original_firmware_unordered_progress_alarm_clears_when_an_order_is_confirmed(clinical_bridge, clinical_pump):
    make_device("CLN_NOORDER_L")
    pump = clinical_pump("CLN_NOORDER_L")
    pump.publish("progress", {**UNORDERED, "timestamp": 65510})  # the original firmware: no infusionId
    wait_until(lambda: active_alarm("CLN_NOORDER_L", "infusing_without_order"), message="no infusing_without_order")
    session = infusion_start(device_id="CLN_NOORDER_L", order=make_order())
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True})
    wait_status(session.infusion_id, SessionStatus.RUNNING)
    wait_until(lambda: active_alarm("CLN_NOORDER_L", "infusing_without_order") is None,
               message="infusing_without_order stayed active after an order was confirmed")  # fmt: skip


def test_a_busy_pump_with_an_order_waiting_keeps_its_stop_and_the_orders_cancel(
    clinical_bridge, clinical_pump, clinical_page, artifacts_dir
):
    """Review 5: an order placed on a pump infusing its own (the original firmware ignores the START while busy) stood
    in for that infusion: the monitor said "Waiting" and the server refused its Stop (409 infusion_changed)."""
    ward = make_ward("cln-busy-order")
    make_device("CLN_BUSY_ORDER", ward=ward, bed="3")
    pump = clinical_pump("CLN_BUSY_ORDER")
    nurse = make_user("busynurse", ward=ward)
    pump.publish("progress", {**UNORDERED, "timestamp": 65510})  # the original firmware: no infusionId
    wait_until(lambda: active_alarm("CLN_BUSY_ORDER", "infusing_without_order"), message="no infusing_without_order")
    monitor = clinical_page(nurse, "/devices/CLN_BUSY_ORDER/")  # open first: the order's START times out in 6 s
    expect(monitor.locator("#mon-session")).to_have_text("Infusing WITHOUT an order")
    order = infusion_start(device_id="CLN_BUSY_ORDER", order=make_order(drug="Heparin"), user=nurse)
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    pump.publish("progress", {**UNORDERED, "timestamp": 66510})  # it goes on infusing its own
    expect(monitor.locator("#mon-session")).to_have_text("Infusing WITHOUT an order")
    expect(monitor.locator("#mon-drug")).to_contain_text("An order of Heparin waits for the pump's confirmation")
    expect(monitor.locator("#mon-rate")).to_have_text("120.0 mL/h")
    expect(monitor.get_by_role("button", name="Cancel start")).to_be_visible()
    stop = monitor.get_by_role("button", name="Stop")
    expect(stop).to_be_enabled()
    screenshot(monitor, artifacts_dir, "clinical-busy-pump-order-waiting")
    stop.click()
    expect(monitor.locator("#confirm-text")).to_contain_text("runs WITHOUT an order")
    expect(monitor.locator("#confirm-text")).to_contain_text("stays pending")
    monitor.locator("#confirm-ok").click()
    sent = wait_until(lambda: published(pump, "STOP_INFUSION"), message="the page's Stop never reached the pump")[0]
    assert sent["payload"]["infusionId"] is None, f"the Stop named an infusion: {sent['payload']}"
    command = Command.objects.get(device__device_id="CLN_BUSY_ORDER", kind=CommandKind.STOP_INFUSION, created_by=nurse)
    assert command.session is None and command.created_by == nurse
    assert InfusionSession.objects.get(pk=order.pk).status in (SessionStatus.PENDING, SessionStatus.TIMED_OUT), (
        "the Stop of the pump's own infusion ended the order waiting on it"
    )
