"""A pump never heard reports nothing: its card and monitor never say "idle" (found walking `make run`, 2026-12-05).

A registered pump that has never published has the model's default state, `idle`: the overview's card read "Never
heard … Pump reports idle" and the monitor and start page "Never heard · idle", a report the pump never made. They
show "—" now, as the server renders them and as the page keeps them; a pump once heard keeps its last report.
"""

import pytest
from playwright.sync_api import expect

from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_pump_never_heard_is_not_shown_idle(open_page, stack):
    ward = make_ward("neverheard")
    make_device("BRW_NEVER_HEARD", ward=ward, bed="4", has_presence=True)
    nurse = make_user("neverheard-nurse", ward=ward)
    overview = open_page(nurse, "/?ward=neverheard")
    card = overview.locator('.pump-card[data-device-id="BRW_NEVER_HEARD"]')
    expect(card.locator('[data-field="condition-label"]')).to_have_text("Never heard")
    rendered = overview.request.get(f"{stack['url']}/?ward=neverheard").text()  # before any script runs
    shown = {"card": card.locator('[data-field="state"]').inner_text(),
             "card as rendered": rendered.split('data-field="state">', 1)[1].split("<", 1)[0]}  # fmt: skip
    for path in ("/devices/BRW_NEVER_HEARD/", "/devices/BRW_NEVER_HEARD/start/"):
        page = open_page(nurse, path)
        expect(page.locator("#mon-connectivity")).to_have_text("Never heard")
        shown[path] = page.locator("#mon-state").inner_text()
        shown[f"{path} as rendered"] = page.request.get(f"{stack['url']}{path}").text().split(
            'id="mon-state" class="badge state">', 1)[1].split("<", 1)[0]  # fmt: skip
    wrong = {where: text for where, text in shown.items() if text.strip() != "—"}
    assert not wrong, f"a pump that never reported anything is shown reporting {wrong}"
