"""The start's waiting window declares "could not be delivered" when the START's publish was not acknowledged in
time, stops following the order, and never shows that the pump then confirmed it and is infusing.

The outbox ends a START `failed` when the broker's PUBACK is late (COMMAND_ACK_TIMEOUT_S, 10 s: a congested or
half-broken connection; paho may well have written it, and the broker may deliver it). That ends the COMMAND, not the
ORDER: the session stays `pending` and is confirmed (or times out) as usual. But waiting.js `onCommand` turns a
failed START into the final outcome "The command could not be delivered to the pump." with Retry, and from then on
`matches()` ignores every event of the order (outcome is no longer "waiting"). When the person at the pump accepts
the order, the nurse's screen still says it could not be delivered, the monitor is never shown, and Retry leads to
"This pump already has an active infusion". A running infusion shown as never delivered invites a second order.

The window should keep following the order while it is pending (a failed START says "not acknowledged yet"), and
end on the session's outcome (confirmed, timed out, ...). (Review 3, MEDIUM; moved here from /work/review3.)
"""

import pytest
from django.db import transaction
from playwright.sync_api import expect

from devices.models import Command, InfusionSession
from devices.services.changes import device_lock
from devices.services.commands import command_advance
from devices.services.confirmations import infusion_confirm
from devices.services.requests import infusion_time_out
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState, SessionStatus
from tests.clinical.alarm_support import fill_the_wizard, press_start
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_waiting_window_follows_the_order_after_a_late_puback(open_page, stack):
    ward = make_ward("rv3w")
    make_device("RV3_WAIT", ward=ward, bed="5", has_presence=True)
    pump = PumpClient(stack["broker"].url, "RV3_WAIT")
    try:
        pump.publish("status", {"status": "online"})
        page = open_page(make_user("rv3w-nurse", ward=ward), "/devices/RV3_WAIT/start/")
        expect(page.locator("#connection-banner")).to_have_text("Live")
        expect(page.locator("#mon-connectivity")).to_have_text("Online", timeout=10_000)
        fill_the_wizard(page)
        # The bridge stalls before the order (until the end): its START stays unpublished, so no PUBACK can arrive
        # before the test fails it, and no time-out ends the order first. Running, a fast broker's PUBACK had beaten
        # the test to it (a full run: "The start command ended" for a START already sent), and a slow run reached
        # the order's confirmation time-out (6 s here) first. The page's events come from Daphne, not the bridge.
        # Paused idle, holding no SQLite write lock: paused holding it, the order's POST waited for the lock (a CI
        # run found Start still disabled, its POST in flight) and the teardown's flush failed "database is locked".
        with stack["bridge"].held_up():  # its heartbeat kept: held up, not dead (monitoring alive)
            press_start(page)

            session = wait_until(lambda: InfusionSession.objects.filter(device__device_id="RV3_WAIT").first(),
                                 message="no order was placed")  # fmt: skip
            start = Command.objects.get(session=session, kind=CommandKind.START_INFUSION)
            # the outbox's `_fail_overdue`: the broker's PUBACK did not come within COMMAND_ACK_TIMEOUT_S
            command_advance(device_id="RV3_WAIT", command_pk=start.pk, to=CommandState.FAILED,
                            error="the broker did not acknowledge the command in time",
                            now=start.created_at)  # fmt: skip
            expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "unacknowledged", timeout=5_000)
            expect(page.locator("#waiting-message")).to_contain_text("Not acknowledged by the pump's network yet")
            expect(page.get_by_role("button", name="Cancel")).to_be_visible()  # still pending: it can be withdrawn
            with transaction.atomic():  # the START reached the pump all the same; someone at the pump accepts it
                infusion_confirm(device=device_lock(device_id="RV3_WAIT"), infusion_id=session.infusion_id,
                                 confirmed=True, parameters=None, confirmation={"confirmed": True})  # fmt: skip
            assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING
            # the window ends on the order's own outcome: confirmed without parameters, so "check its screen"
            expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "unverified", timeout=5_000)
            expect(page.locator("#waiting-message")).to_contain_text("The pump started")
    finally:
        stack["bridge"].resume()
        pump.close()


def test_a_start_cancelled_because_the_pump_runs_an_older_order_says_so(open_page, stack):
    """Review 3, suspicion (a), confirmed: the pump confirming an older, timed-out order cancels the newer pending one
    (`infusion_running_late`), and the window said "The pump was told to clear its screen" though nothing was sent."""
    ward = make_ward("rv3c")
    make_device("RV3_LATE", ward=ward, bed="6", has_presence=True)
    pump = PumpClient(stack["broker"].url, "RV3_LATE")
    try:
        pump.publish("status", {"status": "online"})
        older = infusion_start(device_id="RV3_LATE", order=make_order())
        infusion_time_out(infusion_id=older.infusion_id)
        page = open_page(make_user("rv3c-nurse", ward=ward), "/devices/RV3_LATE/start/")
        expect(page.locator("#connection-banner")).to_have_text("Live")
        expect(page.locator("#mon-connectivity")).to_have_text("Online", timeout=10_000)
        fill_the_wizard(page)
        # The bridge stalls before the order (until the end): its START stays unpublished, so no PUBACK can arrive
        # before the test fails it, and no time-out ends the order first. Running, a fast broker's PUBACK had beaten
        # the test to it (a full run: "The start command ended" for a START already sent), and a slow run reached
        # the order's confirmation time-out (6 s here) first. The page's events come from Daphne, not the bridge.
        # Paused idle, holding no SQLite write lock: paused holding it, the order's POST waited for the lock (a CI
        # run found Start still disabled, its POST in flight) and the teardown's flush failed "database is locked".
        with stack["bridge"].held_up():  # its heartbeat kept: held up, not dead (monitoring alive)
            press_start(page)
            wait_until(lambda: InfusionSession.objects.filter(device__device_id="RV3_LATE", status="pending").first(),
                       message="no order was placed")  # fmt: skip
            with transaction.atomic():  # the person at the pump accepts the OLDER order, still on its screen
                infusion_confirm(device=device_lock(device_id="RV3_LATE"), infusion_id=older.infusion_id,
                                 confirmed=True, parameters=None, confirmation={"confirmed": True})  # fmt: skip
            expect(page.locator("#waiting-modal")).to_have_attribute("data-outcome", "cancelled", timeout=5_000)
            expect(page.locator("#waiting-message")).to_contain_text(
                f"the pump runs older infusion {older.infusion_id}"
            )
            page.wait_for_timeout(1000)  # any STOP for this order would have arrived by now
            message = page.locator("#waiting-message").inner_text()
            assert "clear its screen" not in message, (
                f"no STOP was sent for this order, yet the window says: {message!r}"
            )
    finally:
        stack["bridge"].resume()
        pump.close()
