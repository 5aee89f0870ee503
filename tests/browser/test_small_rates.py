"""A rate under 1 mL/h keeps its digits on the monitor and the overview (review 20): 0.14 mL/h is never "0.1 mL/h".

The wizard accepts any rate from 0.1 mL/h, and the server keeps 6 decimals of mL/min. One decimal (`fixed(…, 1)`, the
template's `floatformat:1`) showed 0.14 as "0.1" (29 % low against the pump's own screen) and 0.25 as "0.3"; a pump
wrongly at 0.10 read like the order. Rates are now shown to three significant figures (format.js `significant`,
devices/templatetags/units.py): the card is checked both as the server rendered it and as the page updates it.

Review 28 (finding 2): the ward feed still rounded the rate to two decimals of mL/h before the page's three figures, so
0.125 mL/h read "0.12 mL/h" on the overview (and the station) beside the monitor's "0.125"; and the card named an order
of 12.34 mL/h "ordered 12.3 mL/h" where the monitor's Ordered line says "12.34 mL/h". The feed now sends the rate
unrounded, and the card shows the order's rate as the monitor does (`exact`).
"""

import re

import pytest
from playwright.sync_api import expect

from devices.services.sessions import infusion_start
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import PumpClient

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}

RATE_ML_MIN = round(0.14 / 60, 6)  # 0.14 mL/h, as the server stores the wizard's "0.14"


def running_at(stack, code: str, device_id: str, rate_ml_min: float) -> tuple:
    """A 2 mL Morphine syringe at `rate_ml_min` on bed 1 of ward `code`, confirmed and reported: (nurse, pump)."""
    ward = make_ward(code)
    make_device(device_id, ward=ward, bed="1", has_presence=True)
    nurse = make_user(f"{code}-nurse", ward=ward)
    pump = PumpClient(stack["broker"].url, device_id)
    pump.publish("status", {"status": "online"})
    session = infusion_start(device_id=device_id, user=nurse, order=make_order(
        drug="Morphine 1 mg/mL", flow_rate_ml_min=rate_ml_min, planned_volume_ml=2.0,
        planned_time_min=round(2.0 / rate_ml_min, 3), bolus_enabled=False))  # fmt: skip
    pump.publish("infusion", {"confirmed": True, "infusionId": session.infusion_id})
    pump.publish("progress", {"status": "running", "flowRate": rate_ml_min, "deliveredVolumeMl": 0.01,
                              "infusionId": session.infusion_id})  # fmt: skip
    return nurse, pump


def typed_order(code: str, device_id: str):
    """12.34 mL/h and 2.125 mL as the nurse typed them, waiting on bed 2 of ward `code`: its nurse."""
    ward = make_ward(code)
    make_device(device_id, ward=ward, bed="2", has_presence=True)
    nurse = make_user(f"{code}-nurse", ward=ward)
    infusion_start(device_id=device_id, user=nurse, order=make_order(
        drug="Saline 0.9%", flow_rate_ml_min=round(12.34 / 60, 6), planned_volume_ml=2.125,
        planned_time_min=10.33, bolus_enabled=False))  # fmt: skip
    return nurse


def test_a_rate_of_0_14_ml_h_is_never_shown_as_0_1(open_page, stack):
    nurse, pump = running_at(stack, "smallrate", "BRW_SMALL_RATE", RATE_ML_MIN)
    try:
        monitor = open_page(nurse, "/devices/BRW_SMALL_RATE/")
        expect(monitor.locator("#mon-session")).to_have_text("Running", timeout=10_000)
        expect(monitor.locator("#mon-rate")).not_to_have_text("—", timeout=5_000)
        overview = open_page(nurse, "/?ward=smallrate")
        card_rate = overview.locator('.pump-card[data-device-id="BRW_SMALL_RATE"] [data-field="rate"]')
        expect(card_rate).not_to_have_text("—", timeout=5_000)
        rendered = overview.request.get(f"{stack['url']}/?ward=smallrate").text()  # before any script runs
        shown = {"monitor Ordered": monitor.locator("#mon-ordered").inner_text(),
                 "monitor Rate": monitor.locator("#mon-rate").inner_text(),
                 "overview card": card_rate.inner_text(),
                 "overview card as rendered": re.search(r'data-field="rate">([^<]*)<', rendered).group(1)}  # fmt: skip
        wrong = {where: text for where, text in shown.items() if "0.14" not in text}
        assert not wrong, f"the pump runs 0.14 mL/h (ordered 0.14), but the screens show {wrong}"
        expect(monitor.locator("#mon-infused"), "0.01 mL of a 2 mL syringe is not 0.0").to_have_text("0.01 mL")
    finally:
        pump.close()


def test_the_monitor_states_the_order_as_it_was_typed(open_page, stack):
    """The monitor's "Ordered" line is the order as the nurse typed it: 12.34 mL/h and 2.125 mL read "12.3 mL/h" and
    "2.13 mL" (three significant figures), while the pump's own screen shows what was sent (found walking make run)."""
    nurse = typed_order("typedorder", "BRW_TYPED_ORDER")
    monitor = open_page(nurse, "/devices/BRW_TYPED_ORDER/")
    ordered = monitor.locator("#mon-ordered")
    expect(ordered).not_to_have_text("—", timeout=10_000)
    text = ordered.inner_text()
    assert "12.34 mL/h" in text and "2.125 mL" in text, f"the order of 12.34 mL/h and 2.125 mL reads {text!r}"


def card_rate_texts(overview, stack, ward_code: str, device_id: str) -> dict[str, str]:
    """The overview card's Rate as the page shows it (live) and as the server rendered it, before any script ran."""
    card_rate = overview.locator(f'.pump-card[data-device-id="{device_id}"] [data-field="rate"]')
    expect(card_rate).not_to_have_text("—", timeout=5_000)
    rendered = overview.request.get(f"{stack['url']}/?ward={ward_code}").text()
    pattern = rf'data-device-id="{device_id}".*?data-field="rate">([^<]*)<'
    return {"overview card": card_rate.inner_text(),
            "overview card as rendered": re.search(pattern, rendered, re.DOTALL).group(1)}  # fmt: skip


def test_a_rate_of_0_125_ml_h_reads_0_125_on_the_overview_as_on_the_monitor(open_page, stack):
    # 0.125 mL/h, as the server stores the wizard's "0.125"
    nurse, pump = running_at(stack, "r28ovrate", "BRW_R28_OVRATE", round(0.125 / 60, 6))
    try:
        monitor = open_page(nurse, "/devices/BRW_R28_OVRATE/")
        expect(monitor.locator("#mon-rate")).to_have_text("0.125 mL/h", timeout=10_000)
        overview = open_page(nurse, "/?ward=r28ovrate")
        expect(overview.locator('.pump-card[data-device-id="BRW_R28_OVRATE"] [data-field="rate"]')).to_contain_text(
            "mL/h", timeout=10_000)  # fmt: skip
        shown = card_rate_texts(overview, stack, "r28ovrate", "BRW_R28_OVRATE")
        wrong = {where: text for where, text in shown.items() if text != "0.125 mL/h"}
        assert not wrong, f"the pump runs 0.125 mL/h and its monitor says so, but the overview shows {wrong}"
    finally:
        pump.close()


def test_the_overview_names_an_order_as_the_monitor_does(open_page, stack):
    """An order waiting for its pump: the card's "ordered …" is the monitor's Ordered figure, 12.34 mL/h as typed."""
    nurse = typed_order("r28ordered", "BRW_R28_ORDERED")
    monitor = open_page(nurse, "/devices/BRW_R28_ORDERED/")
    expect(monitor.locator("#mon-ordered")).to_contain_text("12.34 mL/h", timeout=10_000)
    overview = open_page(nurse, "/?ward=r28ordered")
    shown = card_rate_texts(overview, stack, "r28ordered", "BRW_R28_ORDERED")
    wrong = {where: text for where, text in shown.items() if text != "ordered 12.34 mL/h"}
    assert not wrong, f"the monitor says Ordered 12.34 mL/h, but the overview shows {wrong}"
