"""Review 7, D: the old registration's `device:removed` reaching a subscriber that already holds a snapshot of the pump
registered again under that id ends its subscription of the NEW pump.

Order in one Daphne: the pump (row 3) is deleted (device:removed, seq 7) and registered again (row 4, its status at
seq 8) by another process; before this publisher delivers seq 7, a client subscribes to the id: its snapshot is of
row 4 at seq 8, and `delivered_since` accepts it (a newer registration: nothing missed). Then the fan-out delivers
the old row's removal: `_subscribers_ahead_of` does not skip it (another registration), so the client gets
device:removed (live.js stops the pump for good: "Pump removed … no longer monitored"), and `RightsRegistry.
pump_removed` unsubscribes it: the new pump, registered and watched, is no longer sent to it.

Registration ids only grow: a change of an older registration than a subscriber's snapshot is held by it (skipped),
and each subscriber records which registration it joined, so `pump_removed` ignores an older pump's removal.
"""

import asyncio

from protocol import events
from protocol.events import DeviceChange
from realtime.fanout import FanOut
from realtime.sio import snapshot as snapshot_module
from realtime.sio.rights import LiveConnection, RightsRegistry
from realtime.sio.snapshot import Snapshot
from tests.realtime.sio.fake_transport import FakeTransport

OLD_REMOVED = DeviceChange("ANEW", 7, events.DEVICE_REMOVED, {"removed": {"reason": "deleted"}}, "icu", 3)


async def _closed() -> None:
    return None


def test_a_snapshot_of_the_pump_registered_again_is_not_ended_by_the_old_pumps_removal():
    fan = FanOut()
    fan.note_snapshot("ANEW", 8, "sid", registration=4)  # it holds the new pump (row 4) up to seq 8
    assert "sid" in fan._subscribers_ahead_of(OLD_REMOVED), (
        "the old pump's device:removed (row 3, seq 7) is sent to a subscriber holding the new pump's state at seq 8"
    )


def test_the_old_pumps_removal_does_not_unsubscribe_a_watcher_of_the_new_pump():
    registry, transport = RightsRegistry(), FakeTransport()

    async def main() -> None:
        subscriber = transport.subscriber()
        subscriber.limits.devices.add("ANEW")
        registry.connections["c"] = LiveConnection(subscriber, _closed)
        await subscriber._join("ANEW", 4)  # its snapshot of the new registration (row 4) was sent: in the room
        await registry.pump_removed(OLD_REMOVED)
        return subscriber

    subscriber = asyncio.run(main())
    assert "ANEW" in subscriber.limits.devices, "the watcher of the pump registered again was unsubscribed"


def test_the_removal_of_the_registration_joined_still_ends_the_subscription():
    registry, transport = RightsRegistry(), FakeTransport()

    async def main() -> None:
        subscriber = transport.subscriber()
        subscriber.limits.devices.add("ANEW")
        registry.connections["c"] = LiveConnection(subscriber, _closed)
        await subscriber._join("ANEW", 3)  # it holds the old pump (row 3): its removal is news
        await registry.pump_removed(OLD_REMOVED)
        return subscriber

    subscriber = asyncio.run(main())
    assert "ANEW" not in subscriber.limits.devices and not transport.joined, "a removed pump is still watched"


def test_a_snapshot_of_the_old_registration_gets_the_new_ones_changes():
    fan = FanOut()
    fan.note_snapshot("ANEW", 8, "sid", registration=3)
    new_status = DeviceChange("ANEW", 8, events.DEVICE_STATUS, {"status": {}}, "icu", 4)
    assert "sid" not in fan._subscribers_ahead_of(new_status), "the new pump's first change was skipped"


NEW_STATUS = DeviceChange("ANEW", 8, events.DEVICE_STATUS, {"status": {"bed": "12"}}, "icu", 4)


class _Ready:
    async def ready(self) -> None:
        return None


def test_old_removal_delivered_while_the_new_registrations_snapshot_is_read_does_not_end_the_subscription(
    monkeypatch,
):
    registry, transport = RightsRegistry(), FakeTransport()
    monkeypatch.setattr(snapshot_module, "publisher", _Ready())
    monkeypatch.setattr(snapshot_module, "fanout", FanOut())

    class Reads:
        async def read(self, device_id: str, shared: bool = True) -> Snapshot:
            # while row 4's snapshot is read, this process's fan-out delivers row 3's removal and calls its
            # delivered listener (`rights.pump_removed`), as realtime/sio/server.py wires it
            await registry.pump_removed(OLD_REMOVED)
            return Snapshot("ANEW", 8, [NEW_STATUS], registration=4)

    monkeypatch.setattr(snapshot_module, "snapshot_reads", Reads())

    async def main():
        subscriber = transport.subscriber()
        subscriber.limits.devices.add("ANEW")  # admitted (`_admit`): its snapshot is being read
        registry.connections["c"] = LiveConnection(subscriber, _closed)
        await subscriber._snapshot_and_join("ANEW", events.SUBSCRIBE_DEVICE)
        return subscriber

    subscriber = asyncio.run(main())
    sent = [event for event, _ in transport.sent]
    assert events.ERROR not in sent, f"told the pump registered anew (row 4) was removed: {transport.sent}"
    assert "ANEW" in subscriber.limits.devices and "ANEW" in transport.joined, (
        f"the live pump registered anew is not watched: devices={subscriber.limits.devices}, rooms={transport.joined}"
    )
