"""The wizard refuses, at its own step, a patient's name or a drug that shows nothing (a zero-width space pasted with a
label), by the server's rule (`static/js/visible_text.js`, held equal to `devices/visible_text.py`). Before (review
33, "noticed"), its `trim()` kept "\u200b": the nurse reached the review with a blank drug, and the server placed the
order so. The server now refuses it too (400 naming the field: tests/devices/test_invisible_text_in_the_order.py);
here the nurse is told before the review, where she is typing, and a bed of such characters reviews as "—"."""

import pytest
from playwright.sync_api import expect

from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wizard(open_page):
    ward = make_ward("r33t")
    make_device("BRW_R33_TEXT", ward=ward, bed="3", has_presence=True)
    page = open_page(make_user("r33t-nurse", ward=ward), "/devices/BRW_R33_TEXT/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    return page


def test_a_name_and_a_drug_of_a_zero_width_space_are_refused_at_their_step(open_page):
    page = wizard(open_page)
    page.get_by_label("Name", exact=True).fill("\u200b")
    page.get_by_role("button", name="Next: infusion").click()
    expect(page.locator('[data-error-for="patient_name"]')).to_contain_text("no visible character")
    expect(page.locator('fieldset[data-step="2"]')).to_be_hidden()
    page.get_by_label("Name", exact=True).fill("Ada Lovelace")
    page.get_by_label("Bed", exact=True).fill("\u200b\u2060")
    page.get_by_role("button", name="Next: infusion").click()
    page.get_by_label("Drug", exact=True).fill("\u200b")
    page.get_by_label("Rate (mL/h)").fill("120")
    page.get_by_label("Volume (mL)", exact=True).fill("30")
    page.get_by_role("button", name="Next: review").click()
    error = page.locator('[data-error-for="drug"]')
    expect(error).to_contain_text("no visible character")
    assert page.locator('fieldset[data-step="3"]').is_hidden(), "the wizard went on to the review with a blank drug"
    page.get_by_label("Drug", exact=True).fill("Heparin")
    page.get_by_role("button", name="Next: review").click()
    expect(page.locator("#review")).to_contain_text("Heparin")
    bed = page.locator("#review dt", has_text="Bed").locator("xpath=following-sibling::dd[1]")
    expect(bed).to_have_text("—")
