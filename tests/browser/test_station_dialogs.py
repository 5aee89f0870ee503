"""Dialogs and the wizard by keyboard: Enter submits Pause and advances the wizard, never confirms Stop or Start
and never cancels silently; Escape cancels; Stop is red and names bed, drug and patient; errors clear when fixed;
the drug belongs to the infusion step, so skipping the patient never skips it."""

import pytest
from playwright.sync_api import expect

from devices.models import Command, InfusionSession
from devices.states import CommandKind
from tests.factories import make_device, make_user, make_ward
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
HIGH_RED = "rgb(208, 2, 27)"


def stop_commands() -> int:
    return Command.objects.filter(kind=CommandKind.STOP_INFUSION).count()


def test_enter_pauses_escape_cancels_and_enter_never_stops(open_page, running_pump, artifacts_dir):
    page = open_page(running_pump, "/devices/BRW_D_RUN/")
    session_badge, dialog = page.locator("#mon-session"), page.locator("#confirm-dialog")
    expect(session_badge).to_have_text("Running")

    page.get_by_role("button", name="Pause", exact=True).click()
    page.locator("#confirm-reason").fill("line check")
    page.keyboard.press("Enter")
    expect(dialog, "Enter in the Pause reason must submit it").to_be_hidden()
    expect(session_badge).to_have_text("Paused", timeout=15_000)

    page.get_by_role("button", name="Resume", exact=True).click()
    page.keyboard.press("Enter")
    expect(session_badge).to_have_text("Running", timeout=15_000)

    page.get_by_role("button", name="Stop", exact=True).click()
    expect(dialog).to_be_visible()
    text = dialog.locator("#confirm-text").inner_text()
    for words in ("Heparin", "Ann Lee", "bed 4"):
        assert words in text, f"the Stop confirmation must name {words!r}: {text!r}"
    ok = dialog.get_by_role("button", name="Stop infusion")
    expect(ok, "Stop's confirm button is red").to_have_css("background-color", HIGH_RED)
    page.locator("#confirm-reason").fill("wrong bag")
    page.keyboard.press("Enter")
    expect(dialog, "Enter must not close the Stop dialog (neither stop nor cancel silently)").to_be_visible()
    expect(dialog.locator("#confirm-hint")).to_contain_text("press the red Stop infusion button")
    screenshot(page, artifacts_dir, "dialog-stop-enter-refused")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(500)
    assert stop_commands() == 0, "Enter or Escape sent a STOP"
    expect(session_badge).to_have_text("Running")


def test_stop_dialog_fits_a_phone(open_page, running_pump, artifacts_dir):
    page = open_page(running_pump, "/devices/BRW_D_RUN/", viewport=PHONE)
    expect(page.locator("#mon-session")).to_have_text("Running")
    page.get_by_role("button", name="Stop", exact=True).click()
    box = page.locator("#confirm-dialog").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], f"the Stop dialog runs off the screen: {box}"
    expect(page.get_by_role("button", name="Stop infusion")).to_be_in_viewport()
    screenshot(page, artifacts_dir, "dialog-stop-phone")
    page.get_by_role("button", name="Back (Esc)").click()
    expect(page.locator("#confirm-dialog")).to_be_hidden()
    assert stop_commands() == 0


def test_wizard_by_keyboard_drug_required_after_skip_errors_clear_enter_never_starts(open_page, artifacts_dir):
    ward = make_ward("d5")
    make_device("BRW_D_WIZ", ward=ward, bed="5", has_presence=True)
    page = open_page(make_user("wizard-nurse", ward=ward), "/devices/BRW_D_WIZ/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.get_by_label("Name", exact=True).fill("Ann Lee")
    page.keyboard.press("Enter")
    drug = page.get_by_label("Drug", exact=True)
    expect(drug, "Enter advances to the infusion step, where the drug is asked").to_be_visible()
    page.get_by_label("Rate (mL/h)").fill("1500")  # this pump delivers at most 1,200 mL/h
    page.get_by_label("Volume (mL)", exact=True).fill("30")
    page.keyboard.press("Enter")
    expect(page.locator('[data-error-for="drug"]')).to_contain_text("Enter the drug")
    expect(page.locator('[data-error-for="rate_ml_h"]')).to_contain_text("at most")
    drug.fill("Saline 0.9%")
    expect(page.locator('[data-error-for="drug"]'), "a fixed field must drop its error").to_be_empty()
    page.get_by_label("Rate (mL/h)").fill("120")
    expect(page.locator('[data-error-for="rate_ml_h"]'), "a fixed rate must drop its error").to_be_empty()
    page.get_by_label("Rate (mL/h)").press("Enter")
    expect(page.locator("#review")).to_contain_text("Saline 0.9%")
    page.locator("#confirm").fill("start")
    page.locator("#confirm").press("Enter")
    expect(page.locator('[data-error-for="confirm"]')).to_contain_text("Enter does not start an infusion")
    page.wait_for_timeout(500)
    assert not InfusionSession.objects.exists(), "Enter started an infusion"
    screenshot(page, artifacts_dir, "wizard-enter-refused-on-review")

    page.locator('fieldset[data-step="3"] [data-next="2"]').click()
    page.locator('fieldset[data-step="2"] [data-next="1"]').click()
    screenshot(page, artifacts_dir, "wizard-back-to-patient")
    page.get_by_role("button", name="Skip patient details").click()
    expect(drug, "skipping the patient lands on the infusion step, drug included").to_be_visible()
    drug.fill("")
    page.get_by_role("button", name="Next: review").click()
    expect(page.locator('[data-error-for="drug"]'), "a skipped patient must not skip the drug").to_contain_text(
        "Enter the drug"
    )
