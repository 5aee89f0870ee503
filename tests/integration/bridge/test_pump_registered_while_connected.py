"""A pump registered while it is connected is shown as the broker holds it, heard when it was last heard (review 30,
finding 2): its `online`, retained as it connected, was turned away (`unknown_device`) while it was not registered, and
a pump with presence says nothing more while idle, so it read "Never heard" on every screen for as long as it stayed
idle. Real Mosquitto and a real bridge process; the pumps are registered in this process, as the admin does."""

from datetime import datetime

import pytest

from devices.models import DeadLetter, Device
from devices.services.registration import pump_register
from devices.states import Connectivity, Presence
from tests.factories import make_ward
from tests.support.bridge import PumpClient, PumpWithWill, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def turned_away(device_id: str) -> datetime:
    """When the bridge dead-lettered the unregistered pump's status (the pump was heard just before)."""
    wait_until(lambda: DeadLetter.objects.filter(source=device_id, reason="unknown_device").exists(), timeout=20,
               message=f"{device_id}'s status was never turned away as an unknown pump's")  # fmt: skip
    return DeadLetter.objects.filter(source=device_id, reason="unknown_device").latest("id").received_at


def register(device_id: str, *, has_presence: bool) -> None:
    pump_register(device=Device(device_id=device_id, ward=make_ward("late"), bed="9", has_presence=has_presence))


def test_a_pump_with_presence_registered_while_connected_reads_online_as_last_heard(shared_bridge, broker):
    pump = PumpClient(broker.url, "LATE_ONLINE")
    try:
        pump.publish("status", {"deviceId": "LATE_ONLINE", "status": "online", "firmwareVersion": "3.1"}, retain=True)
        heard = turned_away("LATE_ONLINE")
        register("LATE_ONLINE", has_presence=True)
        wait_until(lambda: Device.objects.get(device_id="LATE_ONLINE").last_seen_at is not None, timeout=20,
                   message="the pump is connected, its `online` retained at the broker, and still reads 'Never heard' "
                           "after its registration")  # fmt: skip
        shown = Device.objects.get(device_id="LATE_ONLINE")
    finally:
        pump.close()
    assert (shown.connectivity(), shown.presence, shown.firmware_version) == (Connectivity.ONLINE, Presence.ONLINE,
                                                                               "3.1")  # fmt: skip
    assert shown.last_seen_at <= heard, (
        f"last heard {shown.last_seen_at}, after the server turned the pump's status away ({heard}) and last heard "
        "the pump itself: the broker's retained copy, read again after the registration, made it look heard anew"
    )


def test_a_pump_of_the_original_firmware_registered_while_connected_is_heard_when_it_last_spoke(
    shared_bridge, broker
):  # fmt: skip
    pump = PumpClient(broker.url, "LATE_LEGACY")
    try:
        pump.publish("status", {"status": "healthy", "timestamp": 5000}, retain=True, topic="device/LATE_LEGACY/status")
        heard = turned_away("LATE_LEGACY")
        register("LATE_LEGACY", has_presence=False)
        wait_until(lambda: Device.objects.get(device_id="LATE_LEGACY").last_seen_at is not None, timeout=20,
                   message="the original firmware's retained status not read again once registered")  # fmt: skip
        shown = Device.objects.get(device_id="LATE_LEGACY")
    finally:
        pump.close()
    assert shown.reported_status == "healthy", f"the retained status read again says {shown.reported_status!r}"
    assert shown.last_seen_at <= heard, (
        f"last heard {shown.last_seen_at}, after the server turned the pump's status away ({heard}) and last heard "
        "the pump itself: the broker's retained copy, read again after the registration, made it look heard anew"
    )


def test_a_pump_that_died_before_it_was_registered_reads_offline_once_registered(shared_bridge, broker):
    """The pump connected (`online`, retained), then its power was cut: the broker published its Last Will,
    `offline`, not retained, and the bridge turned that away too. Registered afterwards, the broker's retained `online`
    read again made it "Online" on every screen, though the server itself had heard it go away."""
    pump = PumpWithWill(broker.url, "LATE_DIED")
    try:
        pump.publish("status", {"deviceId": "LATE_DIED", "status": "online", "firmwareVersion": "3.1"}, retain=True)
        heard = turned_away("LATE_DIED")
        pump.power_off()
        wait_until(lambda: DeadLetter.objects.filter(source="LATE_DIED", reason="unknown_device",
                                                     payload_excerpt__contains="offline").exists(), timeout=20,
                   message="the pump's Will was never turned away as an unknown pump's")  # fmt: skip
        register("LATE_DIED", has_presence=True)
        wait_until(lambda: Device.objects.get(device_id="LATE_DIED").firmware_version == "3.1", timeout=20,
                   message="the pump's retained status was not read again once registered")  # fmt: skip
        shown = Device.objects.get(device_id="LATE_DIED")
    finally:
        cleaner = PumpClient(broker.url, "LATE_DIED")  # its retained `online` cleared, as its own connection is dead
        cleaner.publish("status", b"", retain=True)
        cleaner.close()
    assert (shown.connectivity(), shown.presence) == (Connectivity.OFFLINE, Presence.OFFLINE), (
        f"a pump whose Will the server heard before it was registered reads {shown.connectivity()} (presence "
        f"{shown.presence}): the broker's `online`, retained before it died, read again made it look there"
    )
    assert shown.last_seen_at <= heard, "the copy read again made the dead pump look heard anew"
