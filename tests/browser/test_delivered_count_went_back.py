"""The monitor and the station card show what was delivered in all once a pump's delivered count goes back (review
27, finding 2): 24 mL of a 30 mL order counted, then the count back to 0 and on to 6 mL. The Infused field showed the
pump's count alone (6 mL, "24 mL left") while 30 mL had gone in; it says 30 mL in all now, live and on a fresh load.
"""

import pytest
from playwright.sync_api import expect

from devices.services.sessions import infusion_start
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import PumpClient

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}


def test_the_monitor_and_the_card_show_the_volume_delivered_in_all_after_the_count_went_back(open_page, stack):
    ward = make_ward("countback")
    make_device("BRW_COUNT_BACK", ward=ward, bed="3", has_presence=True)
    nurse = make_user("countback-nurse", ward=ward)
    pump = PumpClient(stack["broker"].url, "BRW_COUNT_BACK")
    try:
        pump.publish("status", {"status": "online"})
        session = infusion_start(device_id="BRW_COUNT_BACK", user=nurse, order=make_order(
            drug="Saline 0.9%", flow_rate_ml_min=2.0, planned_volume_ml=30.0, planned_time_min=15.0,
            bolus_enabled=False))  # fmt: skip
        pump.publish("infusion", {"confirmed": True, "infusionId": session.infusion_id})
        running = {"status": "running", "flowRate": 2.0, "infusionId": session.infusion_id}
        pump.publish("progress", {**running, "deliveredVolumeMl": 24.0, "volumeRemainingMl": 6.0})
        monitor = open_page(nurse, "/devices/BRW_COUNT_BACK/")
        infused = monitor.locator("#mon-infused")
        expect(infused).to_have_text("24.0 mL", timeout=10_000)
        pump.publish("progress", {**running, "deliveredVolumeMl": 0.0, "volumeRemainingMl": 30.0})
        pump.publish("progress", {**running, "deliveredVolumeMl": 6.0, "volumeRemainingMl": 24.0})
        expect(infused, "the pump counts 6 mL, 24 mL went in before its count went back").to_contain_text(
            "30.0 mL in all", timeout=10_000
        )
        expect(monitor.locator("#mon-remaining")).to_have_text("0.0 mL of the order")
        expect(monitor.locator("#mon-readback")).to_contain_text("DELIVERED COUNT WENT BACK")
        monitor.reload()
        expect(monitor.locator("#mon-infused"), "a fresh load says the same").to_contain_text(
            "30.0 mL in all", timeout=10_000
        )
        overview = open_page(nurse, "/?ward=countback")
        volumes = overview.locator('.pump-card[data-device-id="BRW_COUNT_BACK"] [data-field="volumes"]')
        expect(volumes).to_contain_text("30.0 mL infused in all", timeout=10_000)
    finally:
        pump.close()


def test_the_monitor_and_the_card_of_a_pump_reporting_only_what_remains_show_the_volume_in_all(open_page, stack):
    """Review 29, finding 4: a pump that sends `volumeRemainingMl` alone (the server counts planned less remaining):
    24 mL, then its count from 0 again, on to 1 mL. The pages summed the pump's `deliveredVolumeMl`, which it never
    sends: the monitor said "—" infused and 29.0 mL remaining, the card "29.0 mL left" with the pump's bar."""
    ward = make_ward("remainingonly")
    make_device("BRW_REMAINING_ONLY", ward=ward, bed="4", has_presence=True)
    nurse = make_user("remainingonly-nurse", ward=ward)
    pump = PumpClient(stack["broker"].url, "BRW_REMAINING_ONLY")
    try:
        pump.publish("status", {"status": "online"})
        session = infusion_start(device_id="BRW_REMAINING_ONLY", user=nurse, order=make_order(
            drug="Saline 0.9%", flow_rate_ml_min=2.0, planned_volume_ml=30.0, planned_time_min=15.0,
            bolus_enabled=False))  # fmt: skip
        pump.publish("infusion", {"confirmed": True, "infusionId": session.infusion_id})
        running = {"status": "running", "flowRate": 2.0, "infusionId": session.infusion_id}
        pump.publish("progress", {**running, "volumeRemainingMl": 6.0})
        monitor = open_page(nurse, "/devices/BRW_REMAINING_ONLY/")
        expect(monitor.locator("#mon-remaining")).to_have_text("6.0 mL", timeout=10_000)
        overview = open_page(nurse, "/?ward=remainingonly")
        volumes = overview.locator('.pump-card[data-device-id="BRW_REMAINING_ONLY"] [data-field="volumes"]')
        expect(volumes).to_contain_text("6.0 mL left", timeout=10_000)
        pump.publish("progress", {**running, "volumeRemainingMl": 30.0})
        pump.publish("progress", {**running, "volumeRemainingMl": 29.0})
        expect(volumes, "the card, live: 24 + 1 mL went in").to_contain_text("25.0 mL infused in all", timeout=10_000)
        expect(monitor.locator("#mon-infused"), "24 + 1 mL went in").to_contain_text("25.0 mL in all", timeout=10_000)
        expect(monitor.locator("#mon-remaining")).to_have_text("5.0 mL of the order")
        monitor.reload()
        expect(monitor.locator("#mon-infused"), "a fresh load says the same").to_contain_text(
            "25.0 mL in all", timeout=10_000
        )
        overview.reload()
        expect(volumes, "the card on a fresh load").to_contain_text("25.0 mL infused in all", timeout=10_000)
    finally:
        pump.close()
