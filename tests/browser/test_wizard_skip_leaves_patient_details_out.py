"""The review of an order whose patient details were skipped shows no bed or allergies as if recorded (review 46, M3).

A nurse typed bed "7B" and allergies "Penicillin", then pressed "Skip patient details" and ordered Amoxicillin: the
review read "Patient: Skipped… | Bed 7B | … | Allergies Penicillin", while the order placed recorded neither
(forms.py `order`: no patient when skipped). She would believe the allergy was on the record. The review now says,
on those rows, that they are not recorded and that what was typed will not be kept; the fields keep what she typed,
so "Enter patient details instead" brings them back into the order, and the review then shows them as recorded.
"""

import pytest
from playwright.sync_api import expect

from devices.models import InfusionSession
from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}


def wizard(open_page, device_id: str):
    ward = make_ward(device_id.lower()[-8:])
    make_device(device_id, ward=ward, bed="3", has_presence=True)
    page = open_page(make_user(f"{device_id.lower()}-nurse", ward=ward), f"/devices/{device_id}/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.get_by_label("Bed", exact=True).fill("7B")
    page.get_by_label("Allergies", exact=True).fill("Penicillin")
    return page


def amoxicillin_reviewed(page) -> dict[str, str]:
    """The infusion step filled in, then the review, row by row (term: what it says)."""
    page.get_by_label("Drug", exact=True).fill("Amoxicillin")
    page.get_by_label("Rate (mL/h)").fill("60")
    page.get_by_label("Volume (mL)", exact=True).fill("10")
    page.get_by_role("button", name="Next: review").click()
    review = page.locator("#review")
    expect(review).to_contain_text("Amoxicillin")
    terms, details = review.locator("dt").all_inner_texts(), review.locator("dd").all_inner_texts()
    return dict(zip(terms, details, strict=True))


def start(page) -> InfusionSession:
    page.locator("#confirm").fill("start")
    page.get_by_role("button", name="Start infusion").click()
    expect(page.locator("#waiting-order")).to_contain_text("Order:")
    return InfusionSession.objects.get(device__device_id=page.url.split("/devices/")[1].split("/")[0])


def test_a_skip_after_typing_allergies_says_they_are_not_recorded(open_page):
    page = wizard(open_page, "BRW_R46_SKIP")
    page.get_by_role("button", name="Skip patient details").click()
    expect(page.locator("#skip-warning")).to_contain_text("no name, bed, age, weight or allergies")
    rows = amoxicillin_reviewed(page)
    assert rows["Patient"].startswith("Skipped"), rows
    for term, typed in (("Allergies", "Penicillin"), ("Bed", "7B")):
        assert rows[term].startswith("Not recorded (patient details skipped)") and "will not be kept" in rows[term], (
            f"the patient was skipped, so the order records no {term.lower()}, but the review the nurse confirms says "
            f"{term}: {rows[term]!r}"
        )
        assert f"“{typed}”" in rows[term], f"what she typed is named as left out: {rows[term]!r}"
    for term in ("Patient", "Bed", "Allergies"):
        expect(page.locator("#review dt", has_text=term).locator("+ dd")).to_have_class("warn-text")

    session = start(page)
    assert (session.patient_skipped, session.patient_bed, session.patient_allergies) == (True, "", ""), (
        "the order records what the review said: no patient details"
    )


def test_patient_details_entered_again_after_a_skip_are_reviewed_and_recorded(open_page):
    page = wizard(open_page, "BRW_R46_UNSKIP")
    page.get_by_role("button", name="Skip patient details").click()
    page.get_by_role("button", name="Back").first.click()
    page.get_by_role("button", name="Enter patient details instead").click()
    expect(page.get_by_label("Allergies", exact=True), "what she typed is kept through the skip").to_have_value(
        "Penicillin"
    )
    page.get_by_label("Name", exact=True).fill("Ada Lovelace")
    page.get_by_role("button", name="Next: infusion").click()
    rows = amoxicillin_reviewed(page)
    assert (rows["Bed"], rows["Allergies"]) == ("7B", "Penicillin"), rows
    session = start(page)
    assert (session.patient_skipped, session.patient_bed, session.patient_allergies) == (False, "7B", "Penicillin")
