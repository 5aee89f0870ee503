"""The start wizard after the browser's Back is in a state it knows (review 33, finding 4).

A nurse fills the wizard (120 mL/h and 30 mL, the time 15 min computed, a bolus of 5 mL), looks at the pump's monitor
and comes back with Back. Chromium restored the form's fields (rate, volume, time, the Bolus tick) into a page whose
script knew nothing of them: which figure it had computed, and the bolus volume's enabled state. She corrected the rate
to 121 mL/h and nothing was recomputed: the review said 121 mL/h, 30 mL, 15 min, all three were sent, and the server
took them within its 1 %: the pump was sent 121 mL/h for 15 min, 30.25 mL, against 30 mL. And the Bolus box came
back ticked beside a bolus volume field left disabled and empty ("Enter the bolus volume" of a field she could not
type into). Now the wizard starts afresh on every load, whatever the browser restored, and the server refuses three
figures that disagree (tests/devices/test_order_three_figures.py)."""

import pytest
from playwright.sync_api import expect

from devices.models import InfusionSession
from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}  # the order waits for the test, never for the time-out


def filled_then_back(open_page, device_id: str):
    """The wizard filled as far as the bolus, a look at the pump's monitor, then the browser's Back."""
    ward = make_ward(device_id.lower()[-6:])
    make_device(device_id, ward=ward, bed="4", has_presence=True)
    page = open_page(make_user(f"{device_id.lower()}-nurse", ward=ward), f"/devices/{device_id}/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.get_by_role("button", name="Skip patient details").click()
    page.get_by_label("Drug", exact=True).fill("Heparin")
    page.get_by_label("Rate (mL/h)").fill("120")
    page.get_by_label("Volume (mL)", exact=True).fill("30")
    expect(page.get_by_label("Time (min)")).to_have_value("15")  # computed
    page.get_by_label("Bolus", exact=True).check()
    page.get_by_label("Bolus volume (mL)").fill("5")
    page.get_by_role("link", name=device_id).click()
    page.wait_for_url(f"**/devices/{device_id}/")
    page.go_back()
    page.wait_for_url(f"**/devices/{device_id}/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")  # the page's scripts have run
    return page


def review_figures(page) -> dict[str, str]:
    terms = page.locator("#review dt").all_inner_texts()
    return dict(zip(terms, page.locator("#review dd").all_inner_texts(), strict=True))


def test_a_rate_corrected_after_back_recomputes_the_time(open_page):
    """She corrects the rate to 121 mL/h and fills in what the page shows empty: the time follows the rate, the review
    shows the order placed, and the order's rate x time is its volume."""
    page = filled_then_back(open_page, "R33_BACK_RATE")
    page.get_by_role("button", name="Skip patient details").click()
    page.get_by_label("Drug", exact=True).fill("Heparin")
    if page.get_by_label("Bolus", exact=True).is_checked():
        page.get_by_label("Bolus", exact=True).uncheck()
    page.get_by_label("Rate (mL/h)").fill("121")  # a small correction: she expects the time to follow
    if page.get_by_label("Volume (mL)", exact=True).input_value() == "":
        page.get_by_label("Volume (mL)", exact=True).fill("30")
    page.get_by_role("button", name="Next: review").click()
    review = review_figures(page)
    reviewed = f"{review['Rate']}, {review['Volume']}, {review['Time']}"
    assert review["Time"].startswith("14.88 min"), (
        f"121 mL/h and 30 mL take 14.88 min, but the review says {reviewed}: the time computed before Back was sent"
        " as if typed"
    )
    page.locator("#confirm").fill("start")
    page.get_by_role("button", name="Start infusion").click()
    expect(page.locator("#waiting-order")).to_contain_text("Order:")
    session = InfusionSession.objects.get(device__device_id="R33_BACK_RATE")
    delivered_by_plan = session.flow_rate_ml_min * session.planned_time_min
    assert abs(delivered_by_plan - session.planned_volume_ml) <= 0.05, (
        f"order placed: {session.flow_rate_ml_min} mL/min for {session.planned_time_min} min = "
        f"{delivered_by_plan:.2f} mL, but {session.planned_volume_ml} mL: the pump is sent figures that disagree"
    )
    assert (session.planned_volume_ml, session.planned_time_min) == (30.0, 14.88), "the order is not the review's"


def test_after_back_the_bolus_tick_and_its_volume_agree(open_page):
    """The Bolus box and its volume field are in one state: ticked beside a volume she can type into, or unticked
    beside a disabled one; ticking it lets her type the volume."""
    page = filled_then_back(open_page, "R33_BACK_BOLUS")
    ticked = page.get_by_label("Bolus", exact=True).is_checked()
    typeable = page.get_by_label("Bolus volume (mL)").is_enabled()
    assert ticked == typeable, (
        f"after Back the Bolus box is {'ticked' if ticked else 'unticked'} beside a bolus volume field that is "
        f"{'enabled' if typeable else 'disabled'}"
    )
    page.get_by_role("button", name="Skip patient details").click()
    page.get_by_label("Bolus", exact=True).check()
    expect(page.get_by_label("Bolus volume (mL)")).to_be_enabled()


def test_a_page_shown_again_from_the_back_forward_cache_is_served_anew(open_page):
    """A browser that keeps the page whole in its back/forward cache shows it again by Back as it was left, its pump
    and its order as they were then (Chromium keeps none with a live connection: the page's `pageshow` is sent here as
    such a browser sends it): the page is served anew, the wizard empty."""
    page = filled_then_back(open_page, "R33_BACK_CACHE")
    page.get_by_role("button", name="Skip patient details").click()
    page.get_by_label("Rate (mL/h)").fill("120")
    page.evaluate("window.pumpstreamKeptWhole = true")
    with page.expect_navigation():
        page.evaluate("window.dispatchEvent(new PageTransitionEvent('pageshow', { persisted: true }))")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    assert page.evaluate("window.pumpstreamKeptWhole") is None, "the page shown again from the cache was not reloaded"
    expect(page.get_by_label("Rate (mL/h)"), "the reloaded wizard is not the one served").to_have_value("")
