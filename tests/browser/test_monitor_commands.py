"""The monitor's command list never shows a command the pump acted on as still waiting: the POST's reply
('queued'), read after the live events that overtook it (sent, delivered, done), must not undo them."""

import signal
import time

import pytest
from playwright.sync_api import expect

from devices.models import Command
from devices.states import CommandKind, CommandState
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# a command the broker has not acknowledged stays "sent" for the test to see, never failed by the 3 s time-out
BRIDGE_ENV = {"COMMAND_ACK_TIMEOUT_S": "30"}


def test_a_command_reply_read_after_its_live_events_does_not_show_it_waiting(open_page, running_pump):
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    expect(page.locator("#mon-session")).to_have_text("Running")

    def reply_late(route) -> None:  # the reply reaches the page only after the pump has acted on the command
        response = route.fetch()
        wait_until(lambda: Command.objects.filter(kind=CommandKind.PAUSE_INFUSION, state=CommandState.DONE).exists(),
                   timeout=15, message="the simulated pump never acted on the PAUSE")  # fmt: skip
        time.sleep(1)  # its live events reach the page first
        route.fulfill(response=response)

    page.route("**/api/devices/*/commands/", reply_late)
    page.get_by_role("button", name="Pause", exact=True).click()
    page.locator("#confirm-reason").fill("line check")
    page.locator("#confirm-dialog").get_by_role("button", name="Pause infusion").click()
    expect(page.locator("#mon-session")).to_have_text("Paused", timeout=15_000)
    item = page.locator('#command-list li[data-command="PAUSE_INFUSION"]').first
    expect(item).to_have_attribute("data-state", "done", timeout=10_000)
    page.wait_for_timeout(500)  # the late reply, fulfilled while the page waited for "Paused", is applied by now
    expect(item, "a PAUSE the pump carried out is shown waiting to be sent").to_have_attribute("data-state", "done")


def test_a_command_handed_to_the_broker_reads_sent_not_waiting_to_be_sent(open_page, running_pump, stack):
    """The bridge handed the PAUSE to the broker (`published_at`), whose PUBACK has not come (the broker stalled):
    the pump may act on it any moment, so the monitor must not say "waiting to be sent". Before, `device:command`
    carried no `publishedAt` and no change was recorded at publication: the page kept "waiting to be sent"."""
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    expect(page.locator("#mon-session")).to_have_text("Running")
    # the dialog opened first: with the broker stopped the pump falls silent and its alarm (in 3 s) moves the page
    page.get_by_role("button", name="Pause", exact=True).click()
    page.locator("#confirm-reason").fill("line check")
    broker = stack["broker"].process
    broker.send_signal(signal.SIGSTOP)  # the broker takes nothing further in: the bridge's publish gets no PUBACK
    try:
        page.locator("#confirm-dialog").get_by_role("button", name="Pause infusion").click()
        pause = wait_until(
            lambda: Command.objects.filter(kind=CommandKind.PAUSE_INFUSION, published_at__isnull=False).first(),
            timeout=10, message="the bridge never handed the PAUSE to the broker",
        )  # fmt: skip
        assert pause.state == CommandState.QUEUED, f"its PUBACK cannot have come (broker stopped): {pause.state}"
        item = page.locator('#command-list li[data-command="PAUSE_INFUSION"]').first
        expect(item, "handed to the broker, yet the monitor does not say so").to_contain_text(
            "sent, not yet acknowledged by the pump's network", timeout=5_000
        )
        expect(item).to_have_attribute("data-published", "true")
        assert "waiting to be sent" not in item.inner_text(), item.inner_text()
    finally:
        broker.send_signal(signal.SIGCONT)
    expect(page.locator("#mon-session")).to_have_text("Paused", timeout=20_000)  # the PUBACK, then the pump's reply
