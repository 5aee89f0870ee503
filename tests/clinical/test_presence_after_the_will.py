"""A pump switched off (its Last Will, not retained, told "Offline") must not read "Online" again once the bridge
subscribes again and the broker hands back the `online` it retained before it died (review 44, F4); a pump that came
back while the bridge was away must read "Online"; one the bridge cannot vouch for (its broker session gone) reads by
its last heard, neither "Online" nor "Offline" for ever.

Its own module: it restarts the module's bridge (`clinical_bridge`), as a deploy, a crash under `supervise.sh` or the
bridge's lost broker connection does. Real Mosquitto, bridge, Daphne and chromium; the unit tests of the rule are
tests/realtime/bridge/test_presence_of_a_retained_copy.py.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from playwright.sync_api import expect

from devices.models import Device, DeviceEvent
from devices.states import Connectivity, Presence, SessionStatus
from tests.clinical.scenario import confirmed_run, wait_status
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, PumpWithWill, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BRIDGE_ENV = {"CONFIRMATION_TIMEOUT_S": "120"}
BOOT = "boot-r44"


@pytest.fixture
def pump_with_will(clinical_broker, clinical_bridge):
    pumps = []

    def make(device_id: str) -> PumpWithWill:
        pumps.append(PumpWithWill(clinical_broker.url, device_id))
        return pumps[-1]

    yield make
    for pump in pumps:  # its retained `online` cleared, by another connection (its own may be dead)
        if pump.powered:
            pump.client.disconnect()  # a clean goodbye: no Will
            pump.client.loop_stop()
        cleaner = PumpClient(clinical_broker.url, pump.device_id)
        try:
            cleaner.publish("status", b"", retain=True)
        finally:
            cleaner.close()


def switched_off(pump: PumpWithWill) -> None:
    """Its power cut: the broker's Will (not retained) makes it offline; its retained `online` stays at the broker."""
    pump.power_off()
    wait_until(lambda: Device.objects.get(device_id=pump.device_id).connectivity() == Connectivity.OFFLINE,
               timeout=15, message="the broker's Will never made the pump offline")  # fmt: skip


def copies_handled(clinical_pump, marker_id: str, battery: int) -> None:
    """Another pump's status, published after the bridge subscribed again: the broker handed over its retained copies
    (and the messages queued for its session) before it, so once this is applied they were."""
    if not Device.objects.filter(device_id=marker_id).exists():
        make_device(marker_id)
    clinical_pump(marker_id).publish("status", {"status": "testing", "batteryLevel": battery})
    wait_until(lambda: Device.objects.filter(device_id=marker_id, battery_level=battery).exists(),
               message="the marker was never applied")  # fmt: skip


def test_a_pump_switched_off_reads_offline_after_the_bridge_subscribes_again(
    clinical_broker, clinical_bridge, clinical_pump, pump_with_will, clinical_page
):
    """A pump with presence says `online` (retained, no `seq`), runs an infusion, is paused at the bedside, then its
    battery dies: the broker publishes its Will, `offline`, not retained. The bridge is then restarted (a deploy).

    Before, the broker's retained `online` from before the pump died, handed over on the bridge's new subscription
    (retain 1), set presence back to online: the monitor read "Online" beside "Paused" for a dead pump, for good, and
    the overview's card "Online" too (review 44, F4)."""
    ward = make_ward("r44-f4")
    pump = pump_with_will("R44_F4")
    pump.publish("status", {"status": "online", "batteryLevel": 64}, retain=True)
    session = confirmed_run(pump, "R44_F4", ward=ward, boot=BOOT)
    Device.objects.filter(device_id="R44_F4").update(has_presence=True)
    pump.publish("status", {"status": "paused", "infusionId": session.infusion_id, "bootId": BOOT, "seq": 3})
    wait_status(session.infusion_id, SessionStatus.PAUSED)
    switched_off(pump)

    clinical_bridge.stop()
    clinical_bridge.start()
    copies_handled(clinical_pump, "R44_F4_MARK", 44)
    assert DeviceEvent.objects.filter(device__device_id="R44_F4", kind="mqtt.status").count() >= 3

    page = clinical_page(make_user("r44nurse4", ward=ward), "/devices/R44_F4/")
    expect(page.locator("#mon-session")).to_have_text("Paused")
    assert Device.objects.get(device_id="R44_F4").connectivity() == Connectivity.OFFLINE, (
        "the retained `online` from before the pump died, handed back on the bridge's new subscription, made a "
        "switched-off pump online again"
    )
    expect(page.locator("#mon-connectivity")).to_have_text("Offline")
    station = clinical_page(make_user("r44charge4", ward=ward), "/")  # the ward overview's card says the same
    card = station.locator('article[data-device-id="R44_F4"]')
    expect(card.locator('[data-field="connectivity"]')).to_have_text("Offline")


def test_a_pump_that_came_back_while_the_bridge_was_away_reads_online(clinical_bridge, clinical_pump, pump_with_will):
    """The pump died (its Will, not retained), then came back while the bridge was restarting: its new `online`
    (retained, QoS 1) was queued for the bridge's session and arrives as news, so the pump reads "Online"; the
    broker's retained copy of it, handed over on the new subscription, changes nothing."""
    make_device("R44_BACK", has_presence=True)
    pump = pump_with_will("R44_BACK")
    pump.publish("status", {"status": "online", "batteryLevel": 64}, retain=True)
    wait_until(lambda: Device.objects.get(device_id="R44_BACK").connectivity() == Connectivity.ONLINE,
               message="the pump's `online` was never applied")  # fmt: skip
    switched_off(pump)

    clinical_bridge.stop()
    back = pump_with_will("R44_BACK")  # switched on again: a new connection, the same `online`
    back.publish("status", {"status": "online", "batteryLevel": 64}, retain=True)
    clinical_bridge.start()
    copies_handled(clinical_pump, "R44_BACK_MARK", 45)

    pump_row = Device.objects.get(device_id="R44_BACK")
    assert (pump_row.presence, pump_row.connectivity()) == (Presence.ONLINE, Connectivity.ONLINE), (
        f"a pump that came back while the bridge was away, its `online` queued for the bridge, reads "
        f"{pump_row.connectivity()} (presence {pump_row.presence})"
    )


def test_a_pump_the_bridge_cannot_vouch_for_reads_by_its_last_heard(
    clinical_broker, clinical_bridge, clinical_pump, pump_with_will, artifacts_dir, daphne_server
):
    """The bridge comes back without its broker session (expired: away longer than `MQTT_SESSION_EXPIRY_S`; here a
    bridge of another client id): nothing the pumps published meanwhile was queued for it, so a retained `online` is
    all it gets, of a pump dead since its Will or of one that came back meanwhile alike. Neither reads "Online" (the
    dead one would, for good) nor "Offline" for ever (the live one, idle, says nothing more): both are not vouched for,
    and read stale a heartbeat timeout after they were last heard, until one is heard live."""
    make_device("R44_DEAD", has_presence=True)
    make_device("R44_BACK2", has_presence=True)
    dead, away = pump_with_will("R44_DEAD"), pump_with_will("R44_BACK2")
    for pump in (dead, away):
        pump.publish("status", {"status": "online", "batteryLevel": 64}, retain=True)
    wait_until(lambda: Device.objects.filter(device_id__in=["R44_DEAD", "R44_BACK2"],
                                             presence=Presence.ONLINE).count() == 2,
               message="the pumps' `online` was never applied")  # fmt: skip
    switched_off(dead)
    switched_off(away)

    clinical_bridge.stop()
    pump_with_will("R44_BACK2").publish("status", {"status": "online", "batteryLevel": 63}, retain=True)
    sessionless = BridgeProcess(clinical_broker.url, daphne_server.internal_url, artifacts_dir, **BRIDGE_ENV).start()
    try:
        copies_handled(clinical_pump, "R44_NEW_MARK", 46)
        read = {device_id: unvouched_reading(device_id) for device_id in ("R44_DEAD", "R44_BACK2")}
        battery = Device.objects.get(device_id="R44_BACK2").battery_level
    finally:  # judged first: the module's bridge gets what was queued for its session meanwhile, the live `online`
        sessionless.stop()
        clinical_bridge.start()
    assert read == dict.fromkeys(("R44_DEAD", "R44_BACK2"), (Presence.UNKNOWN, Connectivity.STALE)), (
        f"a retained `online` the bridge cannot date (its session gone) left (presence, connectivity a heartbeat "
        f"timeout after last heard) = {read}: neither vouched online nor offline for ever"
    )
    assert battery == 63, "the copy's content is applied all the same"


def unvouched_reading(device_id: str) -> tuple[str, str]:
    """The pump's presence, and its connectivity a heartbeat timeout after it was last heard."""
    pump = Device.objects.get(device_id=device_id)
    timeout = timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 1)
    return pump.presence, pump.connectivity(now=pump.last_seen_at + timeout)
