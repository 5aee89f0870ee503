"""A station whose ward subscription is refused says so: the refusal names the ward (it did not, and the station
stayed "Live", silent, for good). Refused for good (moved off the ward while offline), its technical alarm stays;
refused for the request rate, it subscribes again later and is live again once the ward's summary is here."""

import pytest
from playwright.sync_api import expect

from tests.factories import make_device, make_user, make_ward
from tests.support.browser import refused_for_rate

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WALL = {"width": 1920, "height": 1080}


def test_a_station_refused_its_ward_on_reconnecting_says_so(open_page, stack):
    ward = make_ward("s7")
    make_device("BRW_S_REFUSED", ward=ward, bed="17", has_presence=True)
    nurse = make_user("station-refused", ward=ward)
    page = open_page(nurse, "/?ward=s7", viewport=WALL)
    banner, technical = page.locator("#connection-banner"), page.locator("#station-technical-alarm")
    expect(banner).to_have_text("Live")
    page.context.set_offline(True)
    expect(banner).to_have_text("Reconnecting…", timeout=10_000)
    ward.members.remove(nurse)  # moved off the ward while the screen was offline: its old socket heard nothing
    page.context.set_offline(False)
    expect(technical).to_contain_text("Not receiving the ward's alarms", timeout=15_000)
    expect(banner).to_contain_text("Not permitted to watch this ward")


def test_a_station_whose_ward_subscription_is_rate_limited_subscribes_again(open_page, stack):
    ward = make_ward("s8")
    make_device("BRW_S_RATE", ward=ward, bed="18", has_presence=True)
    nurse = make_user("station-rate", ward=ward)

    def live_station():
        page = open_page(nurse, "/?ward=s8", viewport=WALL)
        expect(page.locator("#connection-banner")).to_have_text("Live")
        return page

    page = refused_for_rate(live_station, request="subscribe:ward", payload={"ward": "s8"}, target="s8",
                            accepted="ward:summary")  # fmt: skip
    banner, technical = page.locator("#connection-banner"), page.locator("#station-technical-alarm")
    expect(banner).to_contain_text("Too many requests")
    expect(technical).to_contain_text("Not receiving the ward's alarms")
    expect(banner).to_have_text("Live", timeout=15_000)  # asked again once the rate allowed it
    expect(technical).to_be_hidden()
