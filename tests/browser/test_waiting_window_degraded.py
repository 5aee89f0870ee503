"""The start's waiting window says when monitoring is degraded (review 20, finding 4).

Before, the window (static/js/waiting.js) followed the socket's state but not the bridge's health (`watchBridge`,
/api/bridge/). With the bridge hung (SIGSTOP: a stuck disk, a long pause) the page's socket stays "Live"; the page's
"Monitoring degraded" banner sat behind the modal's backdrop, and the window went on saying "Waiting for a person at the
pump to accept" with its countdown running, though the server could hear no confirmation. Cancelled in the same
outage, it said the pump "is told to clear its screen" while the STOP sat unsent in the outbox.
"""

import pytest
from playwright.sync_api import expect

from tests.browser.test_waiting_window_endings import waiting_order
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # the order waits for the test, never for the time-out


def test_the_waiting_window_says_when_the_server_cannot_hear_the_pump(open_page, stack):
    page, pump, infusion_id = waiting_order(open_page, stack, "R20_WAIT_DEG", "r20wd")
    try:
        stack["bridge"].pause_idle()  # the bridge hangs: nothing the pump sends is applied
        pump.publish("infusion", {"confirmed": True, "infusionId": infusion_id})  # Accept pressed at the pump
        expect(
            page.locator("#degraded-banner"), "precondition: the page learns the bridge is not reporting"
        ).to_be_visible(timeout=15_000)
        modal = page.locator("#waiting-modal")
        expect(page.locator("#connection-banner")).to_have_text("Live")  # the socket to Daphne is fine
        text = modal.inner_text()
        said_so = lambda: "degraded" in modal.inner_text().lower() or modal.get_attribute("data-outcome") != "waiting"  # noqa: E731
        wait_until(said_so, timeout=5, database=False,
                   message=f"the bridge is down (banner shown behind the modal), yet the waiting window says only:"
                           f" {text!r} (outcome {modal.get_attribute('data-outcome')!r}): it must say the server cannot"
                           " hear the pump, so the nurse checks the pump instead of waiting for a confirmation nobody"
                           " can hear")  # fmt: skip
        expect(modal.locator(".countdown"), "no countdown presented as the pump's while degraded").to_be_hidden()
        stack["bridge"].resume()  # the confirmation the pump sent meanwhile is applied: the window ends on it
        expect(modal).not_to_have_attribute("data-outcome", "degraded", timeout=20_000)
    finally:
        stack["bridge"].resume()
        pump.close()


def test_a_cancel_while_the_bridge_is_down_never_says_the_pump_was_told(open_page, stack):
    """Cancel pressed in the same outage: the order is withdrawn and its STOP queued, but nothing can send it. The
    window said "The start was cancelled (the pump is told to clear its screen)" at once, on the STOP's queued
    `device:command`, while the order stays on the pump's confirm screen, where a person at the bedside can still
    accept it. It says the screen is not cleared yet, and "was told" once the STOP has left the server."""
    from devices.models import Command
    from devices.states import CommandKind

    page, pump, infusion_id = waiting_order(open_page, stack, "R20_WAIT_CAN", "r20wc")
    try:
        stack["bridge"].pause_idle()
        expect(page.locator("#degraded-banner")).to_be_visible(timeout=15_000)
        page.locator("#waiting-cancel").click()
        modal = page.locator("#waiting-modal")
        expect(modal).to_have_attribute("data-outcome", "cancelled", timeout=5_000)
        page.wait_for_timeout(1_000)  # the STOP's queued event
        stop = Command.objects.filter(kind=CommandKind.STOP_INFUSION, session__infusion_id=infusion_id).first()
        assert stop is not None and stop.published_at is None, "precondition: the STOP is queued, never sent"
        assert not [c for c in pump.commands if c.get("command") == "STOP_INFUSION"], "precondition: the pump got none"
        message = page.locator("#waiting-message").inner_text()
        assert "told" not in message.lower(), (
            f"the bridge is down and the STOP never left the server, yet the window says: {message!r}; the order is "
            "still on the pump's confirm screen"
        )
        assert "clear its screen" in message, f"the window must say the screen is not cleared yet: {message!r}"
        stack["bridge"].resume()  # the outbox sends the STOP: the window, following it, says so then
        expect(page.locator("#waiting-message")).to_contain_text("was told to clear its screen", timeout=15_000)
    finally:
        stack["bridge"].resume()
        pump.close()
