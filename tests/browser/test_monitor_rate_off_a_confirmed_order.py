"""A confirmed order the pump then runs at ten times its rate: the monitor said "parameters match" beside the
1,200 mL/h its own rate field showed, with no alarm (review 16). Real broker, bridge, Daphne and Chromium."""

import pytest
from playwright.sync_api import expect

from devices.models import InfusionSession
from devices.services.sessions import infusion_start
from tests.factories import make_device, make_order, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}
AS_ORDERED = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}


def test_the_monitor_does_not_say_parameters_match_beside_ten_times_the_rate(open_page, stack):
    ward = make_ward("r16")
    make_device("R16_PAGE", ward=ward, bed="7", has_presence=True)
    nurse = make_user("r16-page", ward=ward)
    pump = PumpClient(stack["broker"].url, "R16_PAGE")
    try:
        pump.publish("status", {"status": "online", "bootId": "boot-1", "seq": 1})
        order = make_order(drug="Heparin", bolus_enabled=False, bolus_volume_ml=0.0)
        session = infusion_start(device_id="R16_PAGE", user=nurse, order=order)
        infusion_id = session.infusion_id
        pump.publish("infusion", {"infusionId": infusion_id, "confirmed": True, "parameters": AS_ORDERED,
                                  "bootId": "boot-1", "seq": 2})  # fmt: skip
        wait_until(lambda: InfusionSession.objects.get(infusion_id=infusion_id).read_back == "match",
                   message="never confirmed")  # fmt: skip
        page = open_page(nurse, "/devices/R16_PAGE/")
        for seq in range(3, 8):  # the rate changed at the pump's own screen: 20 mL/min (1,200 mL/h) for an order of 2
            pump.publish("progress", {"status": "running", "infusionId": infusion_id, "flowRate": 20.0,
                                      "deliveredVolumeMl": seq * 0.3, "volumeRemainingMl": 30 - seq * 0.3,
                                      "bootId": "boot-1", "seq": seq})  # fmt: skip
        expect(page.locator("#mon-rate")).to_contain_text("1,200.0 mL/h", timeout=10_000)
        panel = page.locator("#mon-readback")
        expect(panel).not_to_have_attribute("data-readback", "match", timeout=5_000)
    finally:
        pump.close()
