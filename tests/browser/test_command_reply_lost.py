"""A Pause whose request reached the server but whose reply was lost: the monitor's "could not be reached" box says
the command may have got through, and goes once the command list shows it (review 22, "Related" to finding 2).

It stayed until dismissed, saying "The server could not be reached" beside "Pause by … : done" in the list.
"""

import pytest
from playwright.sync_api import expect

from devices.models import Command
from devices.states import CommandKind

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_pause_whose_reply_was_lost_is_not_left_could_not_be_reached_once_listed(open_page, running_pump):
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    expect(page.locator("#mon-session")).to_have_text("Running")
    lost = []

    def reply_lost(route) -> None:
        route.fetch()  # the server queues the Pause...
        lost.append(True)
        route.abort("internetdisconnected")  # ...but its reply never reaches the page

    page.route("**/api/devices/*/commands/", reply_lost)
    page.get_by_role("button", name="Pause", exact=True).click()
    page.locator("#confirm-dialog").get_by_role("button", name="Pause infusion").click()
    item = page.locator('#command-list li[data-command="PAUSE_INFUSION"]').first
    expect(item).to_contain_text("Pause by dialog-nurse", timeout=10_000)  # (Playwright runs the route meanwhile)
    assert Command.objects.filter(kind=CommandKind.PAUSE_INFUSION).exists(), "precondition: the Pause was queued"
    page.wait_for_timeout(1_000)
    assert lost, "precondition: the reply was never dropped"
    notice = page.locator("#control-notice")
    said = notice.inner_text() if notice.is_visible() else ""
    assert not notice.is_visible(), (
        f"the Pause is listed ({item.inner_text()!r}), yet the monitor still says {said!r} until dismissed"
    )
