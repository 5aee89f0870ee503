"""Review 12: the waiting window ended only on the endings it knew (running or paused, rejected, timed out,
cancelled). An order the pump had received and lost to a restart ends `interrupted`, and an order that ran and
ended while the page was offline is `stopped` or `completed` when the page asks again: on the old code the window
went on waiting ("waiting for a person at the pump"), its Close hidden and Escape refused, until a reload."""

from contextlib import contextmanager

import pytest
from playwright.sync_api import expect

from devices.models import InfusionSession
from devices.states import SessionStatus
from tests.clinical.alarm_support import start_from_the_wizard
from tests.clinical.scenario import wait_status
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # the orders end as the tests make them end, never by time-out


def waiting_order(open_page, stack, device_id: str, ward_code: str):
    """A modern pump (boot-1) online, and the start page's window waiting for it with its START delivered."""
    ward = make_ward(ward_code)
    make_device(device_id, ward=ward, bed="4", has_presence=True)
    pump = PumpClient(stack["broker"].url, device_id)
    pump.publish("status", {"status": "online", "bootId": "boot-1", "seq": 1})
    page = open_page(make_user(f"{ward_code}-nurse", ward=ward), f"/devices/{device_id}/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    expect(page.locator("#mon-connectivity")).to_have_text("Online", timeout=10_000)
    start_from_the_wizard(page)
    start = wait_until(lambda: [c for c in pump.commands if c.get("command") == "START_INFUSION"],
                       message="the START never reached the pump")[0]  # fmt: skip
    infusion_id = start["payload"]["infusionId"]
    pump.publish("status", {"status": "received_start_command", "infusionId": infusion_id, "bootId": "boot-1",
                            "seq": 2})  # fmt: skip
    expect(page.locator('[data-wait="delivered"]')).to_have_attribute("data-done", "done", timeout=5_000)
    return page, pump, infusion_id


@contextmanager
def offline(page):
    """The page's network down (its window says so) while the block runs; up again after it."""
    page.context.set_offline(True)
    expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "connection", timeout=10_000)
    yield
    page.context.set_offline(False)


def test_an_order_lost_to_a_pump_restart_ends_the_window(open_page, stack):
    page, pump, infusion_id = waiting_order(open_page, stack, "WW_RESTART", "wwr")
    try:
        pump.publish("status", {"status": "idle", "bootId": "boot-2", "seq": 1})  # it restarted on its confirm screen
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "interrupted", timeout=5_000)
        expect(page.locator("#waiting-message")).to_contain_text("The pump restarted before the start was confirmed")
        expect(page.locator("#waiting-message")).to_contain_text("nothing runs from this order")
        expect(page.get_by_role("button", name="Retry")).to_be_visible()
        expect(modal.locator(".spinner")).to_be_hidden()
        assert InfusionSession.objects.get(infusion_id=infusion_id).status == SessionStatus.INTERRUPTED
    finally:
        pump.close()


def test_an_order_that_ran_and_ended_while_the_page_was_offline_ends_the_window(open_page, stack):
    page, pump, infusion_id = waiting_order(open_page, stack, "WW_ENDED", "wwe")
    try:
        with offline(page):
            pump.publish("infusion", {"infusionId": infusion_id, "confirmed": True, "bootId": "boot-1", "seq": 3})
            pump.publish("status", {"status": "stopped", "infusionId": infusion_id, "bootId": "boot-1", "seq": 4})
            wait_status(infusion_id, SessionStatus.STOPPED)
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "ended", timeout=15_000)
        expect(page.locator("#waiting-message")).to_contain_text("has ended since")
        expect(page.locator("#waiting-message")).to_contain_text("stopped")
        page.get_by_role("button", name="Go to the monitor").click()
        expect(modal).to_be_hidden()
        expect(page.locator("#monitor")).to_be_visible()
    finally:
        pump.close()


def test_a_window_ended_unverified_by_the_bolus_report_follows_the_confirmation_after_it(open_page, stack):
    """The original firmware reports its bolus (evidence: running, read-back unverified) 20 ms before its confirmation
    with the parameters as ordered: the window ended "unverified" on the first and stayed so (review 12), though the
    monitor said "parameters match"; it now ends on the confirmation's read-back."""
    page, pump, infusion_id = waiting_order(open_page, stack, "WW_BOLUS", "wwb")
    try:
        pump.publish("bolus", {"action": "BOLUS_COMPLETED", "infusionId": infusion_id, "bolusDelivered": 0.0,
                               "status": "bolus_completed_resuming_normal"}, qos=0, retain=True)  # fmt: skip
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "unverified", timeout=5_000)
        pump.publish("infusion", {"confirmed": True, "infusionId": infusion_id, "parameters": {
            "flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}},
            qos=0, retain=True)  # fmt: skip
        expect(modal).to_have_attribute("data-outcome", "confirmed", timeout=5_000)
        expect(modal).to_be_hidden()
        expect(page.locator("#monitor")).to_be_visible()
        assert InfusionSession.objects.get(infusion_id=infusion_id).read_back == "match"
    finally:
        pump.close()


def test_an_order_that_ran_and_was_interrupted_while_offline_is_not_said_never_to_have_run(open_page, stack):
    """Review 13: every `interrupted` ending said "nothing runs from this order … start again", with Retry, also for
    an order that had run (confirmed, then cut off by a restart while the page was offline): a second start one click
    away from a double dose."""
    page, pump, infusion_id = waiting_order(open_page, stack, "WW_RANINT", "wwri")
    try:
        with offline(page):
            pump.publish("infusion", {"infusionId": infusion_id, "confirmed": True, "bootId": "boot-1", "seq": 3})
            wait_status(infusion_id, SessionStatus.RUNNING)
            pump.publish("status", {"status": "idle", "bootId": "boot-2", "seq": 1})  # restarted mid-infusion
            wait_status(infusion_id, SessionStatus.INTERRUPTED)
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "ranInterrupted", timeout=15_000)
        expect(page.locator("#waiting-message")).to_contain_text("The pump ran this infusion, and it was interrupted")
        expect(page.get_by_role("button", name="Retry")).to_be_hidden()
        expect(page.get_by_role("button", name="Go to the monitor")).to_be_visible()
    finally:
        pump.close()


def test_an_order_interrupted_unconfirmed_that_then_runs_is_said_to_run(open_page, stack):
    """Review 13: after the window ended "interrupted" (nothing runs), the pump reported infusing that very order (it
    kept it across its restart): the window went on saying nothing runs, Retry offered, beside a running order."""
    page, pump, infusion_id = waiting_order(open_page, stack, "WW_INTRUN", "wwir")
    try:
        pump.publish("status", {"status": "idle", "bootId": "boot-2", "seq": 1})
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "interrupted", timeout=5_000)
        pump.publish("progress", {"status": "running", "infusionId": infusion_id, "flowRate": 2.0,
                                  "deliveredVolumeMl": 0.2, "volumeRemainingMl": 29.8, "bootId": "boot-2",
                                  "seq": 2})  # fmt: skip
        expect(modal).to_have_attribute("data-outcome", "unverified", timeout=5_000)
        expect(page.locator("#waiting-message")).to_contain_text("The pump started")
        expect(page.get_by_role("button", name="Retry")).to_be_hidden()
    finally:
        pump.close()


# The window's steps ("Sending to the pump", "Delivered to the pump", "Waiting for a person at the pump to accept")
# say what is true when it ends (found after 1c97016): ended `unverified` or `mismatch` on the pump's running evidence,
# step 3 stayed the current step, bold, "waiting for a person at the pump to accept" beside an order the pump runs.

STEPS = ("sent", "delivered", "accept")


def expect_steps(page, done: tuple[str, ...], why: str) -> None:
    """The steps `done` are ticked, and no step is the current one: the window waits for nothing any more."""
    for step in STEPS:
        state = page.locator(f'[data-wait="{step}"]')
        if step in done:
            expect(state, f"{why}: step {step!r} is not ticked").to_have_attribute("data-done", "done")
        else:
            current = f"{why}: step {step!r} is still shown as current"
            expect(state, current).not_to_have_attribute("data-done", "active")
            expect(state, f"{why}: step {step!r} is ticked").not_to_have_attribute("data-done", "done")


def test_the_steps_say_the_pump_runs_the_order_when_it_ends_on_its_running_evidence(open_page, stack):
    page, pump, infusion_id = waiting_order(open_page, stack, "WW_STEPS_RUN", "wwsr")
    try:
        pump.publish("status", {"status": "started", "infusionId": infusion_id, "bootId": "boot-1", "seq": 3})
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "unverified", timeout=5_000)
        expect_steps(page, STEPS, "the pump runs the order (unverified)")
        pump.publish("progress", {"status": "running", "infusionId": infusion_id, "flowRate": 20.0,
                                  "deliveredVolumeMl": 0.3, "volumeRemainingMl": 29.7, "bootId": "boot-1",
                                  "seq": 4})  # fmt: skip
        expect(modal).to_have_attribute("data-outcome", "mismatch", timeout=5_000)
        expect_steps(page, STEPS, "the pump runs the order at 10x its rate (mismatch)")
    finally:
        pump.close()


def test_the_steps_wait_for_nobody_once_the_pump_rejected_or_lost_the_order(open_page, stack):
    page, pump, infusion_id = waiting_order(open_page, stack, "WW_STEPS_REJ", "wwsj")
    try:
        pump.publish("infusion", {"infusionId": infusion_id, "confirmed": False, "bootId": "boot-1", "seq": 3})
        expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "rejected", timeout=5_000)
        expect_steps(page, ("sent", "delivered"), "rejected at the pump")
    finally:
        pump.close()
    page, pump, infusion_id = waiting_order(open_page, stack, "WW_STEPS_INT", "wwsi")
    try:
        pump.publish("status", {"status": "idle", "bootId": "boot-2", "seq": 1})  # restarted on its confirm screen
        expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "interrupted", timeout=5_000)
        expect_steps(page, ("sent", "delivered"), "lost to a restart before anyone accepted")
    finally:
        pump.close()


def test_the_steps_are_all_done_for_an_order_that_ran_and_ended_offline(open_page, stack):
    page, pump, infusion_id = waiting_order(open_page, stack, "WW_STEPS_END", "wwse")
    try:
        with offline(page):
            pump.publish("infusion", {"infusionId": infusion_id, "confirmed": True, "bootId": "boot-1", "seq": 3})
            pump.publish("status", {"status": "completed", "infusionId": infusion_id, "bootId": "boot-1", "seq": 4})
            wait_status(infusion_id, SessionStatus.COMPLETED)
        expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "ended", timeout=15_000)
        expect_steps(page, STEPS, "the order ran (confirmed) and completed")
    finally:
        pump.close()
