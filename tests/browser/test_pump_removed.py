"""A pump deleted while pages show it, and one registered again under the same device id, in a real browser.

Real parts: chromium, Daphne, the bridge; the administrator's deletion and registration go through the services the
admin pages call. Before the fix, a deleted pump's monitor went on showing its last state ("running") and, at the
rights re-check, said only "No longer permitted to watch this pump"; the overview kept its card for good; and a pump
registered again under the same id counted `seq` from 1, so an overview that had shown the old pump (seq 3) dropped
the new pump's summaries as older than what it held: its card kept the old pump's bed and state.
"""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Device
from devices.services.registration import pump_delete, pump_register, pump_registration_save
from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def beds_edited(device_id: str, beds: list[str]) -> None:
    for bed in beds:
        device = Device.objects.get(device_id=device_id)
        device.bed = bed
        pump_registration_save(device=device, fields=["bed"])


def test_the_monitor_of_a_deleted_pump_says_it_is_gone_and_stops_showing_its_state(open_page):
    ward = make_ward("rmb1")
    make_device("BRW_RM_MON", ward=ward, bed="4", pump_state="running", last_seen_at=timezone.now())
    page = open_page(make_user("rmb1-nurse", ward=ward), "/devices/BRW_RM_MON/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    state = page.locator("#mon-state")
    expect(state).to_have_text("running")

    pump_delete(device=Device.objects.get(device_id="BRW_RM_MON"))

    notice = page.locator("#mon-not-live")
    expect(notice).to_contain_text("removed", timeout=10_000)  # its device:removed, or the rights re-check's error
    expect(notice).to_contain_text("no longer monitored")
    expect(state).to_be_hidden()
    expect(page.locator("#mon-connectivity")).to_be_hidden()
    expect(page.locator("#connection-banner")).to_contain_text("Pump removed")


def test_the_overview_drops_the_card_of_a_deleted_pump(open_page):
    ward = make_ward("rmb2")
    make_device("BRW_RM_CARD", ward=ward, bed="4", pump_state="running", last_seen_at=timezone.now())
    make_device("BRW_RM_KEPT", ward=ward, bed="5")
    page = open_page(make_user("rmb2-nurse", ward=ward), "/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    card = page.locator('.pump-card[data-device-id="BRW_RM_CARD"]')
    expect(card).to_be_visible()

    pump_delete(device=Device.objects.get(device_id="BRW_RM_CARD"))

    expect(card).to_have_count(0, timeout=5_000)
    expect(page.locator('.pump-card[data-device-id="BRW_RM_KEPT"]')).to_be_visible()


def test_an_overview_back_after_a_pump_was_deleted_and_registered_again_shows_the_new_pump(open_page):
    ward = make_ward("rmb3")
    make_device("BRW_RM_ANEW", ward=ward, bed="4")
    beds_edited("BRW_RM_ANEW", ["5", "6"])  # the old pump's seq: 2, as the page holds it
    page = open_page(make_user("rmb3-nurse", ward=ward), "/")
    banner = page.locator("#connection-banner")
    expect(banner).to_have_text("Live")
    bed = page.locator('.pump-card[data-device-id="BRW_RM_ANEW"] [data-field="bed"]')
    expect(bed).to_have_text("Bed 6")

    page.context.set_offline(True)
    expect(banner).to_have_text("Reconnecting…", timeout=10_000)
    pump_delete(device=Device.objects.get(device_id="BRW_RM_ANEW"))
    pump_register(device=Device(device_id="BRW_RM_ANEW", ward=ward, bed="12"))
    page.context.set_offline(False)
    expect(banner).to_have_text("Live", timeout=15_000)

    expect(bed).to_have_text("Bed 12", timeout=5_000)


def test_a_monitor_offline_while_its_pump_was_deleted_says_it_is_gone_once_back(open_page):
    """The removal was announced while the page was offline: subscribing again, it is refused ("Invalid Device ID"),
    which for a pump the page watched means the pump is gone, not a state to keep showing greyed."""
    ward = make_ward("rmb4")
    make_device("BRW_RM_AWAY", ward=ward, bed="4", pump_state="running", last_seen_at=timezone.now())
    page = open_page(make_user("rmb4-nurse", ward=ward), "/devices/BRW_RM_AWAY/")
    banner = page.locator("#connection-banner")
    expect(banner).to_have_text("Live")
    expect(page.locator("#mon-state")).to_have_text("running")

    page.context.set_offline(True)
    expect(banner).to_have_text("Reconnecting…", timeout=10_000)
    pump_delete(device=Device.objects.get(device_id="BRW_RM_AWAY"))
    page.context.set_offline(False)

    expect(page.locator("#mon-not-live")).to_contain_text("no longer monitored", timeout=15_000)
    expect(page.locator("#mon-state")).to_be_hidden()
