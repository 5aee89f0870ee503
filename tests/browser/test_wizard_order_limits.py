"""The wizard checks the server's own limits (review 20, finding 10); before, its check of the pump's maximum rate
was made on a float that is not the pump's maximum.

The admin stores a pump's maximum rate, entered in mL/h, as mL/min (`max_rate_ml_h / 60`); the page gives it back as
`max_rate_ml_min * 60` (presenters.py) and wizard.js compares the typed rate with that product. For 999 mL/h, the
commonest maximum of a volumetric pump (and the global limit), the product is 998.9999999999999: the wizard refuses an
order of 999 mL/h on that pump ("This pump delivers at most 998.9999999999999 mL/h.", under its own note "at most 999.0
mL/h"), though the pump and the server (`order_limits_check`, tolerance 1e-9) both take it. 123, 245-247, 490, 492,
494, 505, 507, 509, 965, 969, 973, 980, 984, 988 and 995 mL/h do the same.

And the wizard says "This pump delivers at most 1200 mL/h" for a pump left at the default maximum (20 mL/min), then
refuses 1000 mL/h only once submitted (the global order limit is 999 mL/h): the note states a limit that is not the
one applied.
"""

import pytest
from playwright.sync_api import expect

from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}


def infusion_step(open_page, device_id: str, **device):
    ward = make_ward(device_id.lower()[-6:])
    make_device(device_id, ward=ward, bed="3", has_presence=True, **device)
    page = open_page(make_user(f"{device_id.lower()}-nurse", ward=ward), f"/devices/{device_id}/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.get_by_role("button", name="Skip patient details").click()
    page.get_by_label("Drug", exact=True).fill("Saline 0.9%")
    return page


def order_typed(page, *, rate_ml_h: str, volume_ml: str, bolus_ml: str | None = None) -> None:
    """The infusion step filled as the nurse types it (the bolus ticked when given), then on to the review."""
    page.get_by_label("Rate (mL/h)").fill(rate_ml_h)
    page.get_by_label("Volume (mL)", exact=True).fill(volume_ml)
    if bolus_ml is not None:
        page.get_by_label("Bolus", exact=True).check()
        page.get_by_label("Bolus volume (mL)").fill(bolus_ml)
    page.get_by_role("button", name="Next: review").click()


def test_the_wizard_takes_the_pumps_own_maximum_rate(open_page):
    max_ml_min = 999.0 / 60.0  # what the admin form stores for "999" mL/h (admin_forms.py)
    page = infusion_step(open_page, "BRW_R20_MAX", max_rate_ml_min=max_ml_min)
    note = page.locator('fieldset[data-step="2"] p.muted').first.inner_text()
    order_typed(page, rate_ml_h="999", volume_ml="999")
    error = page.locator('[data-error-for="rate_ml_h"]').inner_text()
    assert error == "", (
        f"the wizard refuses 999 mL/h on a pump whose maximum is 999 mL/h: {error!r} (its note: {note!r})"
    )
    expect(page.locator("#review")).to_contain_text("999.0 mL/h")


def test_the_wizard_states_the_limit_it_applies(open_page):
    """A pump left at the default maximum (20 mL/min, 1200 mL/h): the limit applied is the global 999 mL/h, and the
    note, the wizard's own error and the server's all say that one number."""
    page = infusion_step(open_page, "BRW_R20_DEF")  # the default maximum, 20 mL/min
    note = page.locator('fieldset[data-step="2"] p.muted').first.inner_text()
    order_typed(page, rate_ml_h="1000", volume_ml="500")
    refused = page.locator('[data-error-for="rate_ml_h"]')
    expect(refused, "the wizard refuses 1000 mL/h on the infusion step, in the server's words").to_have_text(
        "The rate may be at most 999 mL/h."
    )
    assert "1200" not in note and "999" in note, f"the wizard says {note!r}, but applies 999 mL/h"
    page.get_by_label("Rate (mL/h)").fill("999")
    page.get_by_role("button", name="Next: review").click()
    expect(page.locator("#review")).to_contain_text("999.0 mL/h")


def test_the_wizard_checks_the_bolus_by_the_servers_rule(open_page):
    """wizard.js says it checks "the same rules as the server's", but lets a bolus up to the whole volume through
    (`bolus > volume`); the server allows half the volume (and the pump's max bolus): the nurse learns it only after
    typing the confirmation word and pressing Start, sent back two steps."""
    page = infusion_step(open_page, "BRW_R20_BOL")
    order_typed(page, rate_ml_h="120", volume_ml="30", bolus_ml="20")
    error = page.locator('[data-error-for="bolus_volume_ml"]').inner_text()
    reached_review = page.locator('fieldset[data-step="3"]').is_visible()
    assert error and not reached_review, (
        f"a bolus of 20 mL on 30 mL (the server allows 15) passed the infusion step (error {error!r}); the server "
        "refuses it only at Start"
    )


def test_the_review_shows_the_order_as_typed(open_page):
    """The review is what the nurse confirms and what is sent: it showed volume, time and bolus to two decimals and
    the rate to three significant figures, so a typed 0.125 mL read "0.13 mL", a bolus of 0.025 mL "0.03 mL" and
    12.34 mL/h "12.3 mL/h". Each figure now keeps the decimals typed (up to three)."""
    page = infusion_step(open_page, "BRW_R20_TYPED")
    order_typed(page, rate_ml_h="12.34", volume_ml="0.125", bolus_ml="0.025")
    review = page.locator("#review")
    expect(review).to_be_visible()
    text = review.inner_text()
    wrong = [figure for figure in ("12.34 mL/h", "0.125 mL", "0.025 mL") if figure not in text]
    assert not wrong, f"the review does not show {wrong} as typed: {text!r}"
