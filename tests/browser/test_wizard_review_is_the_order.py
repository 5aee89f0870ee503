"""The wizard's review is the order as it will be placed (review 28, finding 1).

The wizard filled in the third of rate, volume and time with its own figure rounded to two decimals and reviewed that,
but sends the computed field empty: the server derives it itself (forms.py `order_figures`). 1 mL over 580 min reviewed
as "0.1 mL/h (0.0017 mL/min)" while the order placed, the waiting window, the monitor and the pump all said 0.103 mL/h:
the nurse typed "start" under a rate 3.4 % lower than the pump was told to run (up to 5 % just above the 0.1 mL/h
floor: a syringe driver of morphine). 7.5 mL/h for 45 min reviewed as "5.63 mL" (JavaScript rounding 5.625 up) while
the server ordered 5.62 mL (Python's `round`). The wizard now derives the order by the server's rule
(order_derivation.js) and reviews it as the waiting window and the monitor show an order (format.js `exact`)."""

import pytest
from playwright.sync_api import expect

from devices.models import InfusionSession
from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}


def infusion_step(open_page, device_id: str):
    ward = make_ward(device_id.lower()[-6:])
    make_device(device_id, ward=ward, bed="3", has_presence=True)
    nurse = make_user(f"{device_id.lower()}-nurse", ward=ward)
    page = open_page(nurse, f"/devices/{device_id}/start/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.get_by_role("button", name="Skip patient details").click()
    page.get_by_label("Drug", exact=True).fill("Morphine 1 mg/mL")
    return page, nurse


def review_of(page) -> str:
    page.get_by_role("button", name="Next: review").click()
    return page.locator("#review").inner_text()


def start(page) -> str:
    """Confirm the order reviewed; the waiting window's line naming the order placed."""
    page.locator("#confirm").fill("start")
    page.get_by_role("button", name="Start infusion").click()
    order = page.locator("#waiting-order")
    expect(order).to_contain_text("Order:")
    return order.inner_text()


def test_the_review_shows_the_rate_the_order_will_carry(open_page):
    page, nurse = infusion_step(open_page, "BRW_R28_RATE")
    page.get_by_label("Volume (mL)", exact=True).fill("1")
    page.get_by_label("Time (min)").fill("580")
    expect(page.get_by_label("Rate (mL/h)"), "the rate filled in is the order's").to_have_value("0.103")
    review = review_of(page)
    # The server derives 1 / 580 = 0.001724 mL/min (6 decimals) = 0.10344 mL/h, and the monitor and the waiting
    # window show it as "0.103 mL/h": the review must show that rate, not one rounded to 0.1.
    assert "0.103 mL/h (0.001724 mL/min)" in review, f"the order will carry 0.103 mL/h, but the review says:\n{review}"
    waiting = start(page)
    assert "0.103 mL/h" in waiting and "1.0 mL" in waiting, f"reviewed 0.103 mL/h, 1.0 mL; waiting: {waiting}"
    session = InfusionSession.objects.get(device__device_id="BRW_R28_RATE")
    assert session.flow_rate_ml_min == 0.001724, f"reviewed 0.001724 mL/min, ordered {session.flow_rate_ml_min}"
    monitor = open_page(nurse, "/devices/BRW_R28_RATE/")
    expect(monitor.locator("#mon-ordered")).to_contain_text("0.103 mL/h · 1.0 mL", timeout=10_000)


def test_the_review_shows_the_volume_the_order_will_carry(open_page):
    page, nurse = infusion_step(open_page, "BRW_R28_VOLUME")
    page.get_by_label("Rate (mL/h)").fill("7.5")
    page.get_by_label("Time (min)").fill("45")
    expect(page.get_by_label("Volume (mL)", exact=True), "the volume filled in is the order's").to_have_value("5.62")
    review = review_of(page)
    # The server orders round(0.125 * 45, 2) = 5.62 mL (a tie, to the even digit), as the waiting window and the
    # monitor then show it.
    assert "5.62 mL" in review, f"the order will carry 5.62 mL, but the review the nurse confirms says:\n{review}"
    waiting = start(page)
    assert "7.5 mL/h, 5.62 mL, 45.0 min" in waiting, f"reviewed 5.62 mL; waiting: {waiting}"
    assert InfusionSession.objects.get(device__device_id="BRW_R28_VOLUME").planned_volume_ml == 5.62
    monitor = open_page(nurse, "/devices/BRW_R28_VOLUME/")
    expect(monitor.locator("#mon-ordered")).to_contain_text("7.5 mL/h · 5.62 mL", timeout=10_000)
