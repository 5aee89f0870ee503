"""A silent pump's "has presence" ticked in the admin leaves its monitor and its overview card "Stale" (review 46, M2).

A pump of the original firmware (no Last Will) said a plain `online`, then its infusion was paused and it fell silent:
"Stale", true. An administrator ticked "Announces itself with a retained online status and a Last Will": the monitor
and the overview read "Online · Connected · last heard 1 min ago" from then on, for a pump nobody had heard since and
whose going no Will would ever say. Now that `online` vouches for nothing once presence is turned on or off
(`registration._presence_unvouched`): "Stale" by its last heard until it says `online` live again. The reverse: a
pump online by its presence, unticked, reads "Stale" by its silence, and ticked again stays so.
The services: tests/devices/test_presence_ticked_in_the_admin.py.
"""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Device
from devices.services.registration import pump_registration_save
from devices.states import Presence
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, PumpWithWill, wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def silent_paused_pump(pump, device_id: str, settings) -> None:
    """The pump says `online` (live: with no Last Will behind it, for one without presence) and `paused`, then
    stays silent past the heartbeat. Heard live after the broker started: no broker restart took its presence back."""
    pump.publish("status", {"status": "online"})  # as it connects (not retained: nothing left at the broker)
    pump.publish("status", {"status": "paused"})
    silent_s = settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 1
    wait_until(lambda: _silent_for(device_id) > silent_s, timeout=silent_s + 10,
               message="the pump was never heard, or its silence never grew past the heartbeat")  # fmt: skip
    assert Device.objects.get(device_id=device_id).presence == Presence.ONLINE, "precondition: its online said"


def _silent_for(device_id: str) -> float:
    heard = Device.objects.get(device_id=device_id).last_seen_at
    return 0.0 if heard is None else (timezone.now() - heard).total_seconds()


def edit(device_id: str, **values) -> None:
    """The admin's save of these fields (`DeviceAdmin.save_model`)."""
    device = Device.objects.get(device_id=device_id)
    for name, value in values.items():
        setattr(device, name, value)
    pump_registration_save(device=device, fields=list(values))


def shown(monitor, card) -> tuple[str, str, str, str]:
    return (monitor.locator("#mon-connectivity").inner_text(), monitor.locator("#mon-last-heard").inner_text(),
            card.locator('[data-field="connectivity"]').inner_text(),
            card.locator('[data-field="last-heard"]').inner_text())  # fmt: skip


def pages(open_page, device_id: str, ward):
    nurse = make_user(f"{device_id.lower()}-nurse", ward=ward)
    monitor = open_page(nurse, f"/devices/{device_id}/")
    overview = open_page(nurse, f"/?ward={ward.code}")
    card = overview.locator(f'.pump-card[data-device-id="{device_id}"]')
    for page in (monitor, overview):
        expect(page.locator("#connection-banner")).to_have_text("Live")
    return monitor, overview, card


def moved_to_bed(monitor, card, bed: str) -> None:
    """An edit made after the one under test has reached both screens: so has that one (the change log's order)."""
    expect(monitor.locator("#mon-bed")).to_contain_text(f"Bed {bed}", timeout=10_000)
    expect(card.locator('[data-field="bed"]')).to_have_text(f"Bed {bed}", timeout=10_000)


def test_a_silent_pump_ticked_has_presence_stays_stale_on_the_monitor_and_the_overview(open_page, stack, settings):
    ward = make_ward("r46tick")
    make_device("BRW_R46_TICK", ward=ward, bed="3", has_presence=False)
    pump = PumpClient(stack["broker"].url, "BRW_R46_TICK")  # the original firmware: no Last Will
    try:
        silent_paused_pump(pump, "BRW_R46_TICK", settings)
        monitor, _, card = pages(open_page, "BRW_R46_TICK", ward)
        expect(monitor.locator("#mon-connectivity")).to_have_text("Stale")
        expect(card.locator('[data-field="connectivity"]')).to_have_text("Stale")

        edit("BRW_R46_TICK", has_presence=True)  # the administrator ticks "has presence"
        edit("BRW_R46_TICK", bed="4")  # an edit after it, to know the tick has reached the screens
        moved_to_bed(monitor, card, "4")
        now = shown(monitor, card)
        assert (now[0], now[2]) == ("Stale", "Stale") and not any("Connected" in text for text in now), (
            f"a pump silent past the heartbeat, whose `online` had no Last Will behind it, reads {now} once 'has "
            "presence' is ticked (monitor badge, monitor heard, card badge, card heard): no Will will ever come to "
            "correct it"
        )
    finally:
        pump.close()


def test_a_pump_with_presence_unticked_then_ticked_again_stays_stale(open_page, stack, settings):
    """A real pump with presence (its Last Will set), connected and silent while paused: "Online", as the contract
    says. Unticked, then ticked again: its old `online` vouched for it again before."""
    ward = make_ward("r46untick")
    make_device("BRW_R46_UNTICK", ward=ward, bed="3", has_presence=True)
    pump = PumpWithWill(stack["broker"].url, "BRW_R46_UNTICK")
    try:
        silent_paused_pump(pump, "BRW_R46_UNTICK", settings)
        monitor, _, card = pages(open_page, "BRW_R46_UNTICK", ward)
        expect(monitor.locator("#mon-connectivity"), "online by its presence, silent while paused").to_have_text(
            "Online"
        )
        expect(card.locator('[data-field="connectivity"]')).to_have_text("Online")

        edit("BRW_R46_UNTICK", has_presence=False)
        expect(monitor.locator("#mon-connectivity"), "without presence: judged by its silence").to_have_text("Stale")
        expect(card.locator('[data-field="connectivity"]')).to_have_text("Stale")
        edit("BRW_R46_UNTICK", has_presence=True)
        edit("BRW_R46_UNTICK", bed="5")
        moved_to_bed(monitor, card, "5")
        now = shown(monitor, card)
        assert (now[0], now[2]) == ("Stale", "Stale"), f"unticked and ticked again, the silent pump reads {now}"
    finally:
        pump.client.disconnect()  # cleanly: no Will
        pump.client.loop_stop()
