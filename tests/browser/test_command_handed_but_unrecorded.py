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

from devices.models import Command
from devices.services.publication import commands_handed_mark
from devices.states import CommandKind, CommandState
from tests.support.bridge import wait_until

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


def _deadline_monotonic(command: Command, *, seconds_after: float) -> float:
    """`seconds_after` the command's deadline, on this process's monotonic clock."""
    return time.monotonic() + (command.expires_at - timezone.now()).total_seconds() + seconds_after
