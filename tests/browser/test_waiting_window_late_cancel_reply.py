"""The waiting window's Cancel shows its outcome by the live event only, never by a late reply (as the monitor).

waiting.js applied the cancel's POST reply as the newest session: when the pump's Accept came in just after the cancel
(evidence wins: the order runs, `infusion_running_late`) and its live `device:session` reached the page before the
slow reply, the reply put "The start was cancelled" back over the running order.
"""

import time

import pytest

from devices.models import InfusionSession
from tests.browser.test_waiting_window_endings import waiting_order
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # the order waits for the test, never for the time-out


def test_a_late_cancel_reply_never_hides_the_order_the_pump_runs(open_page, stack):
    page, pump, infusion_id = waiting_order(open_page, stack, "LATE_CANCEL", "lcr")
    try:

        def slow_network(route):  # the cancel commits at once; its reply is slow to come back
            response = route.fetch()
            pump.publish("infusion", {"confirmed": True, "infusionId": infusion_id})  # Accept pressed at the pump
            wait_until(lambda: InfusionSession.objects.get(infusion_id=infusion_id).status == "running",
                       message="the bridge never applied the pump's late confirmation")  # fmt: skip
            time.sleep(2)  # its live event reaches the page before the reply
            route.fulfill(response=response)

        page.route("**/api/infusions/*/cancel/", slow_network)
        page.locator("#waiting-cancel").click()
        page.wait_for_timeout(4_000)
        modal = page.locator("#waiting-modal")
        outcome = modal.get_attribute("data-outcome")
        assert outcome != "cancelled", (
            f"the pump runs the order (its confirmation came after the cancel), but after the cancel's late reply the"
            f" window says {page.locator('#waiting-message').inner_text()!r} (outcome {outcome!r})"
        )
    finally:
        pump.close()
