"""A drug, a patient's name or a username in Arabic or Hebrew keeps the page's figures after it in their place
(review 39, suspected). Stripping direction controls cannot help here: letters of a right-to-left script take the
number after them into their run (Unicode's rules W2/N1), and Chromium showed "Order: هيبارين, 120.0 mL/h · 30 mL"
as "Order: 120.0 ,هيبارين mL/h", the rate before the drug. The pages isolate such texts in a `<bdi>` (keyed_rows.js
`isolated`); the sentences' text is unchanged."""

import pytest
from playwright.sync_api import expect

from protocol import events
from tests.browser.test_start_infusion import open_wizard
from tests.browser.test_start_reply_lost_then_corrected import (
    order_placed_unseen,
    rate_corrected_to_100,
    start_confirmed,
)
from tests.factories import make_device, make_user, make_ward
from tests.support.sio import StreamClient, session_cookie

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]
# its orders wait for the tests that act on them, never for the 6 s time-out (a loaded run took longer: ci55)
BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}

WALL = {"width": 1920, "height": 1080}
DRUG = "هيبارين"  # heparin, in Arabic
NAME = "מרים כהן"  # a patient's name, in Hebrew
NURSE = "مريم"  # a nurse's username, in Arabic (Django's validator takes any letter)

# The left edge on screen of the first match of the pattern `needle` in one of the element's text nodes.
LEFT_OF = """(element, needle) => {
  const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const match = new RegExp(needle).exec(node.data);
    if (!match) continue;
    const range = document.createRange();
    range.setStart(node, match.index);
    range.setEnd(node, match.index + match[0].length);
    return range.getBoundingClientRect().left;
  }
  return null;
}"""


def left_of(locator, needle: str) -> float:
    """Where `needle` (a pattern) starts on screen, left to right."""
    left = locator.evaluate(LEFT_OF, needle)
    assert left is not None, f"{needle!r} is not in {locator.inner_text()!r}"
    return left


def test_a_right_to_left_drug_and_name_keep_the_figures_after_them_in_place(open_page):
    ward = make_ward("rtl")
    make_device("BRW_RTL", ward=ward, bed="3", has_presence=True)
    page = open_page(make_user("rtl-nurse", ward=ward), "/devices/BRW_RTL/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.get_by_label("Name", exact=True).fill(NAME)
    page.get_by_label("Age").fill("36")
    page.get_by_role("button", name="Next: infusion").click()
    page.get_by_label("Drug", exact=True).fill(DRUG)
    page.get_by_label("Rate (mL/h)").fill("120")
    page.get_by_label("Volume (mL)", exact=True).fill("30")
    page.get_by_role("button", name="Next: review").click()
    patient = page.locator("#review dd").first
    expect(patient).to_have_text(f"{NAME}, 36 y")
    assert left_of(patient, "36") > left_of(patient, NAME), "the patient's age is shown before her name"
    page.locator("#confirm").fill("start")
    page.get_by_role("button", name="Start infusion").click()
    order = page.locator("#waiting-order")
    expect(order).to_contain_text(f"Order: {DRUG}, 120.0 mL/h")
    assert left_of(order, r"120\.0") > left_of(order, DRUG), (
        f"the waiting window shows the order's rate before its drug: {order.inner_text()!r} reads 'Order: 120.0 ,…'"
    )


def test_a_right_to_left_name_keeps_the_silences_time_left_after_it(open_page, stack):
    """A silence without a reason names who made it just before its time left: "by مريم: 88 s left" showed the 88
    before the name. (A reason is in brackets, which Unicode's rule N0 keeps in the sentence's direction.)"""
    ward = make_ward("rtl-sil")
    make_device("BRW_RTL_SIL", ward=ward, bed="4", has_presence=True)
    page = open_page(make_user("rtl-station", ward=ward), "/", viewport=WALL)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    other = StreamClient(stack["url"], cookie=session_cookie(make_user(NURSE, ward=ward))).connect()
    try:
        # another station's, no reason given
        other.emit(events.SILENCE_WARD, {"ward": "rtl-sil", "seconds": 90, "seen": other.events.alarms_shown()})
        note = page.locator("#station-silence-text")
        expect(note).to_contain_text(f"by {NURSE}: ", timeout=10_000)
    finally:
        other.close()
    assert left_of(note, r"\d+ s left") > left_of(note, NURSE), (
        f"the station shows the silence's time left before who made it: {note.inner_text()!r}"
    )


def test_a_right_to_left_drug_keeps_its_rate_after_it_in_a_message_after_a_lost_reply(open_page, stack):
    """A message is one string: the drug is isolated between FSI and PDI there (`isolatedInText`). "your earlier order
    (هيبارين, 120.0 mL/h, …)" showed the rate before the drug inside the brackets."""
    page = open_wizard(open_page, "BRW_RTL_LOST", has_presence=True)
    order_placed_unseen(page, "BRW_RTL_LOST", drug=DRUG)  # the question after it still fails
    rate_corrected_to_100(page)
    start_confirmed(page)
    error = page.locator("#wizard-error")
    expect(error).to_contain_text("your earlier order (", timeout=10_000)
    assert left_of(error, r"120\.0 mL/h") > left_of(error, DRUG), (
        f"the message names the earlier order with its rate before its drug: {error.inner_text()!r}"
    )
