"""A Pause the outbox marked handed (`handed_at`, committed before paho has it) whose publication the bridge never
recorded (it stalled between paho and its record) reads "handed to the broker ...: outcome not yet known", and past its
deadline "NO OUTCOME ...: it may have reached the pump", never "waiting to be sent" nor "NOT SENT".

Review 26, finding 4: the mark told nobody and `device:command` carried no `handedAt`, so the monitor said "waiting to
be sent", and 2 s past the deadline "NOT SENT by its deadline: it can no longer reach the pump", until a keeper ended
it `failed` ("it may have reached the pump"), while the pump may already have paused.
"""

import time

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Command, InfusionSession
from devices.services.publication import commands_handed_mark
from devices.states import CommandKind, CommandState
from tests.clinical.alarm_support import fill_the_wizard, press_start
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

LIES = ("waiting to be sent", "NOT SENT")


def test_a_pause_handed_while_the_bridge_stalls_reads_handed_then_no_outcome(open_page, running_pump, stack):
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    expect(page.locator("#mon-session")).to_have_text("Running")
    bridge = stack["bridge"]
    bridge.pause_idle()  # the bridge stalls: Daphne still serves the nurse, and tells what the database holds
    try:
        page.get_by_role("button", name="Pause", exact=True).click()
        page.locator("#confirm-reason").fill("line check")
        page.locator("#confirm-dialog").get_by_role("button", name="Pause infusion").click()
        pause = wait_until(lambda: Command.objects.filter(kind=CommandKind.PAUSE_INFUSION,
                                                          session__device__device_id="BRW_D_RUN").first(),
                           timeout=10, message="the Pause was never queued")  # fmt: skip
        item = page.locator('#command-list li[data-command="PAUSE_INFUSION"]').first
        expect(item).to_contain_text("waiting to be sent", timeout=5_000)  # queued, not handed: true
        # the outbox's mark, as the stalled bridge committed it just before paho had the Pause
        commands_handed_mark(commands=[pause], now=timezone.now())
        expect(item, "marked handed (it may reach the pump), yet the monitor does not say so").to_contain_text(
            "outcome not yet known", timeout=5_000
        )
        expect(item).to_contain_text("handed to the broker at")
        expect(item).to_have_attribute("data-handed", "true")
        seen, until = [], _deadline_monotonic(pause, seconds_after=6)
        while time.monotonic() < until:
            seen.append(item.inner_text())
            if "FAILED" in seen[-1]:
                break  # Daphne's keeper (the bridge silent 10 s) ended it: outcome unknown
            page.wait_for_timeout(200)
        lies = [text for text in seen if any(lie in text for lie in LIES)]
        assert not lies, f"a Pause handed to the broker (it may have paused the pump) was shown as: {lies[0]!r}"
        pause.refresh_from_db()
        assert pause.state in (CommandState.QUEUED, CommandState.FAILED), pause.state
    finally:
        bridge.resume()


def test_the_wording_of_a_command_handed_unrecorded_past_its_deadline(open_page, running_pump):
    """The overdue wording itself, from the page's own `format.js` (the keeper may end the command before the monitor's
    2 s overdue margin passes, so the live test cannot count on seeing it)."""
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    expect(page.locator("#mon-session")).to_have_text("Running")
    texts = page.evaluate(
        """async () => {
            const main = document.querySelector('script[type="module"]').src;
            const { commandStateText } = await import(new URL("format.js", main).href);
            const past = new Date(Date.now() - 60_000).toISOString();
            const queued = { state: "queued", expiresAt: past, publishedAt: null, handedAt: null };
            return {
              handed: commandStateText({ ...queued, handedAt: past }),
              unsent: commandStateText(queued),
              published: commandStateText({ ...queued, publishedAt: past, handedAt: past }),
            };
        }"""
    )
    assert "NO OUTCOME" in texts["handed"] and "may have reached the pump" in texts["handed"], texts
    assert "NOT SENT" not in texts["handed"], texts
    assert "NOT SENT" in texts["unsent"], "one never handed over can say it can no longer be sent"
    assert "NO OUTCOME" in texts["published"], texts


def test_a_cancels_stop_handed_while_the_bridge_stalls_is_not_said_unsent(open_page, stack):
    """The start page's window, after a cancel, says what became of the STOP clearing the pump's confirm screen: one
    marked handed but not recorded has not "not left the server" (it may be on its way to the pump) nor reached it."""
    ward = make_ward("r26c")
    make_device("R26_CLEAR", ward=ward, bed="6", has_presence=True)
    pump = PumpClient(stack["broker"].url, "R26_CLEAR")  # hears the START, never answers: the order stays pending
    try:
        pump.publish("status", {"status": "online"})
        page = open_page(make_user("r26c-nurse", ward=ward), "/devices/R26_CLEAR/start/")
        expect(page.locator("#mon-connectivity")).to_have_text("Online", timeout=10_000)
        fill_the_wizard(page)
        press_start(page)
        wait_until(lambda: Command.objects.filter(kind=CommandKind.START_INFUSION, published_at__isnull=False,
                                                  session__device__device_id="R26_CLEAR").exists(),
                   timeout=10, message="the bridge never published the START")  # fmt: skip
        stack["bridge"].pause_idle()  # the bridge stalls: the cancel's STOP is queued and marked, never recorded
        try:
            page.get_by_role("button", name="Cancel").click()
            message = page.locator("#waiting-message")
            expect(message).to_contain_text("has not left the server", timeout=10_000)  # queued: true
            session = InfusionSession.objects.get(device__device_id="R26_CLEAR")
            stop = Command.objects.get(session=session, kind=CommandKind.STOP_INFUSION)
            commands_handed_mark(commands=[stop], now=timezone.now())  # the stalled bridge's mark, before paho
            expect(message, "a STOP handed to the broker is said not to have left the server").to_contain_text(
                "handed to the broker", timeout=5_000
            )
            assert "has not left the server" not in message.inner_text()
            assert "was told to clear" not in message.inner_text(), "its outcome is not known"
        finally:
            stack["bridge"].resume()
    finally:
        pump.close()


def _deadline_monotonic(command: Command, *, seconds_after: float) -> float:
    """`seconds_after` the command's deadline, on this process's monotonic clock."""
    return time.monotonic() + (command.expires_at - timezone.now()).total_seconds() + seconds_after
