"""A Stop pressed while the bridge is down says "waiting to be sent" long past its deadline, and nothing
tells the nurse to act at the pump.

Every command ends within a bounded time (docs/protocol.md: "others: 30 s by default"), and a STOP or PAUSE that
does not end `done` raises the high `command_not_carried_out` ("act at the pump"). Both are done only by the bridge's
housekeeping (`commands_end_overdue`). While the bridge is down (crashed, crash-looping, a deployment, SIGSTOPped
here) a Stop the nurse confirms is queued by Daphne and then shown "Stop by … at …: waiting to be sent" for as long as
the bridge stays away, though its `expiresAt` (which the page holds) has passed and it can now never be sent: the
command's fate is not shown, and no alarm sends her to the pump. Staleness is derived from the last receive time
wherever it is read, so it stays true when the bridge is down; a command's deadline is not.

Review 22, finding 3.
"""

import pytest
from playwright.sync_api import expect

from devices.models import Command
from devices.states import CommandKind
from tests.support.bridge import wait_until
from tests.support.processes import subprocess_env

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COMMAND_EXPIRY_S = float(subprocess_env()["COMMAND_EXPIRY_S"])  # Daphne's, as the tests start it (10 s)


def test_a_stop_queued_while_the_bridge_is_down_is_not_shown_waiting_past_its_deadline(open_page, running_pump, stack):
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    expect(page.locator("#mon-session")).to_have_text("Running")
    bridge = stack["bridge"]
    bridge.pause_idle()  # the bridge is gone (a crash loop, a deployment): Daphne still serves the nurse
    try:
        page.get_by_role("button", name="Stop", exact=True).click()
        page.locator("#confirm-dialog").get_by_role("button", name="Stop infusion").click()
        stop = wait_until(lambda: Command.objects.filter(kind=CommandKind.STOP_INFUSION,
                                                         session__device__device_id="BRW_D_RUN").first(),
                          timeout=10, message="the Stop was never queued")  # fmt: skip
        item = page.locator('#command-list li[data-command="STOP_INFUSION"]').first
        expect(item).to_contain_text("Stop", timeout=5_000)
        page.wait_for_timeout(int((COMMAND_EXPIRY_S + 5) * 1000))  # its deadline is well past
        stop.refresh_from_db()
        text = item.inner_text()
        assert "waiting to be sent" not in text, (
            f"the Stop's deadline ({stop.expires_at:%H:%M:%S}) passed {5:.0f} s ago and it can never be sent now "
            f"(state {stop.state}), yet the monitor says {text!r}: nothing tells the nurse to act at the pump"
        )
        assert "NOT SENT" in text or "EXPIRED" in text, f"the Stop past its deadline reads {text!r}"
        # Daphne ends it (no bridge reports): expired, and the high alarm sends the nurse to the pump
        alarm = page.locator("#alarm-list .alarm").filter(has_text="did not stop")
        expect(alarm).to_be_visible(timeout=10_000)
        expect(item).to_contain_text("EXPIRED")
        audio = page.locator("#monitor").get_attribute("data-audio")
        assert audio in ("high", "blocked"), f"a Stop that never reached the pump sounds nothing (audio {audio!r})"
    finally:
        bridge.resume()
