"""A nurse's Cancel of a pending start never stops an infusion the pump started meanwhile, and the waiting window
says so truthfully (round 1 was faulted for the server stopping an infusing pump).

The cancel's STOP only clears the pump's confirm screen of the unconfirmed order; the Cancel dialog offers nothing
else (stopping an infusing pump is Stop, on the monitor). Before, the cancel withheld that STOP only from a pump that
was infusing before the order was placed, and the outbox re-checked only the server's own time-out STOP before it
published it: a pump that started infusing (at the pump, without the order) after the order, or after the cancel
but before its STOP went out, was stopped, and the window said "the pump is told to clear its screen".
"""

import time

import pytest
from django.db import transaction
from playwright.sync_api import expect

from devices.models import Command, Device, InfusionSession
from devices.states import CommandKind, CommandState, PumpState
from realtime.bridge.batch import BatchIngest
from realtime.bridge.flood import ProgressFloodGuard
from tests.clinical.alarm_support import start_from_the_wizard
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until
from tests.support.ingest import report

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # its orders wait for tests that act on them, never for the 6 s time-out

RUNNING = {"status": "running", "flowRate": 1.5, "deliveredVolumeMl": 3.0, "volumeRemainingMl": 47.0}  # no infusionId


def order_waiting(page, pump: PumpClient, device_id: str) -> InfusionSession:
    """The nurse orders from the wizard; the START reaches the pump, which shows it but nobody accepts it."""
    expect(page.locator("#connection-banner")).to_have_text("Live")
    expect(page.locator("#mon-connectivity")).to_have_text("Online", timeout=10_000)
    start_from_the_wizard(page)
    session = wait_until(lambda: InfusionSession.objects.filter(device__device_id=device_id).first(),
                         message="no order was placed")  # fmt: skip
    wait_until(lambda: any(command["command"] == "START_INFUSION" for command in pump.commands),
               message="the START never reached the pump")  # fmt: skip
    return session


def stops_received(pump: PumpClient) -> list[dict]:
    return [command for command in pump.commands if command["command"] == "STOP_INFUSION"]


def test_a_cancel_sends_no_stop_to_a_pump_that_started_infusing_while_the_order_waited(open_page, stack):
    ward = make_ward("cbusy")
    make_device("CNL_BUSY", ward=ward, bed="7", has_presence=True)
    pump = PumpClient(stack["broker"].url, "CNL_BUSY")
    try:
        pump.publish("status", {"status": "online"})
        page = open_page(make_user("cbusy-nurse", ward=ward), "/devices/CNL_BUSY/start/")
        order_waiting(page, pump, "CNL_BUSY")
        pump.publish("progress", {**RUNNING, "timestamp": 90000})  # started at the pump, without the order
        wait_until(lambda: Device.objects.get(device_id="CNL_BUSY").pump_state == PumpState.RUNNING,
                   message="the bridge never applied the pump's running progress")  # fmt: skip
        page.locator("#waiting-cancel").click()
        expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "cancelled", timeout=5_000)
        expect(page.locator("#waiting-message")).to_contain_text("nothing was sent to the pump")
        time.sleep(1.5)  # a STOP would have reached the pump, and its event the page, by now
        assert stops_received(pump) == [], f"the cancel stopped the pump's own infusion: {stops_received(pump)}"
        message = page.locator("#waiting-message").inner_text()
        assert "clear its screen" not in message, f"nothing was sent, yet the window says: {message!r}"
    finally:
        pump.close()


def test_a_cancels_stop_withheld_at_publication_is_said_not_sent(open_page, stack):
    """The pump was idle at the cancel (its STOP queued, "told to clear its screen"); it started infusing before the
    bridge published that STOP (the bridge stalled a moment): the STOP is withheld, and the window takes it back."""
    ward = make_ward("cpub")
    make_device("CNL_PUB", ward=ward, bed="8", has_presence=True)
    pump = PumpClient(stack["broker"].url, "CNL_PUB")
    bridge = stack["bridge"]
    try:
        pump.publish("status", {"status": "online"})
        page = open_page(make_user("cpub-nurse", ward=ward), "/devices/CNL_PUB/start/")
        session = order_waiting(page, pump, "CNL_PUB")
        bridge.pause_idle()
        try:
            page.locator("#waiting-cancel").click()
            expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "cancelled", timeout=5_000)
            expect(page.locator("#waiting-message")).to_contain_text("clear its screen")  # the STOP is queued
            stop = Command.objects.get(session=session, kind=CommandKind.STOP_INFUSION)
            assert stop.state == CommandState.QUEUED and stop.published_at is None
            # the pump's running report, received before the STOP went out, applied by the bridge's own ingest
            with transaction.atomic():
                BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)).run(
                    [report("CNL_PUB", "progress", {**RUNNING, "timestamp": 91000})]
                )
        finally:
            bridge.resume()
        wait_until(lambda: Command.objects.get(pk=stop.pk).state != CommandState.QUEUED, timeout=10,
                   message="the bridge's outbox never took up the cancel's STOP")  # fmt: skip
        expect(page.locator("#waiting-message")).to_contain_text("nothing was sent to the pump", timeout=5_000)
        message = page.locator("#waiting-message").inner_text()
        assert "clear its screen" not in message, f"the STOP was withheld, yet the window says: {message!r}"
        time.sleep(1.0)
        assert stops_received(pump) == [], f"the cancel's STOP stopped the pump's infusion: {stops_received(pump)}"
    finally:
        bridge.resume()
        pump.close()
