"""A pump deleted ends every subscription of it in the process, right after its `device:removed` was delivered.

A subscriber in the pump's room got the removal as its last event and is only unsubscribed; one still waiting for its
snapshot (not in the room: the removal never reached it) is left to that snapshot: of the removed registration, it is
told by an `error` naming the pump when the snapshot would join; of a newer registration (review 8: the pump registered
anew under the id), it watches that pump. (The whole road, with real Daphne and clients: tests/integration/realtime/
test_pump_removed.py.)
"""

import asyncio

import pytest

from protocol import events
from protocol.events import DeviceChange
from realtime.fanout import FanOut
from realtime.sio.auth import Principal
from realtime.sio.rights import LiveConnection, RightsRegistry, verdicts_for
from realtime.sio.subscriptions import PUMP_REMOVED
from tests.factories import make_device, make_user, make_ward
from tests.realtime.sio.fake_transport import FakeTransport
from tests.support.sio import session_cookie

REMOVED = DeviceChange("GONE", 7, events.DEVICE_REMOVED, {"removed": {"reason": "deleted"}}, "icu", 3)


async def _closed() -> None:
    return None


def registered(registry: RightsRegistry, name: str, transport: FakeTransport, watching: list[str]):
    subscriber = transport.subscriber()
    subscriber.limits.devices.update(watching)
    registry.connections[name] = LiveConnection(subscriber, _closed)
    return subscriber


def test_the_removal_ends_every_subscription_of_the_pump_and_tells_one_awaiting_its_snapshot():
    registry = RightsRegistry()
    in_room, waiting, other = FakeTransport(), FakeTransport(), FakeTransport()

    async def main() -> None:
        watcher = registered(registry, "in-room", in_room, ["GONE", "KEPT"])
        await watcher._join("GONE")
        await watcher._join("KEPT")
        registered(registry, "waiting", waiting, ["GONE"])  # its snapshot not sent yet: not in the room
        registered(registry, "other", other, ["KEPT"])
        await registry.pump_removed(DeviceChange("GONE", 6, events.DEVICE_STATUS, {}, "icu", 3))  # not a removal
        assert registry.connections["in-room"].subscriber.limits.devices == {"GONE", "KEPT"}
        await registry.pump_removed(REMOVED)

    asyncio.run(main())
    assert in_room.sent == [] and in_room.joined == {"KEPT"}, (in_room.sent, in_room.joined)
    assert registry.connections["in-room"].subscriber.limits.devices == {"KEPT"}
    assert waiting.sent == [], "its snapshot decides"
    asyncio.run(registry.connections["waiting"].subscriber._join("GONE", 3))  # its snapshot was of the removed row
    assert waiting.sent == [(events.ERROR, {"message": PUMP_REMOVED, "deviceId": "GONE"})], waiting.sent
    assert registry.connections["waiting"].subscriber.limits.devices == set(), "still counted as watching it"
    assert waiting.joined == set(), "joined a removed pump's room"
    assert other.sent == [] and registry.connections["other"].subscriber.limits.devices == {"KEPT"}


def test_the_fan_out_ends_subscriptions_only_after_every_target_delivered_the_removal():
    fan, order = FanOut(), []

    async def target(change: DeviceChange, skip: frozenset[str]) -> None:
        order.append(("delivered", change.seq))

    async def listener(change: DeviceChange) -> None:
        order.append(("ended", change.seq))

    async def main() -> None:
        fan.targets.extend([target, target])
        fan.delivered_listeners.append(listener)
        fan.publish(REMOVED)
        for _ in range(10):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert order == [("delivered", 7), ("delivered", 7), ("ended", 7)], order


@pytest.mark.django_db
def test_the_rights_re_check_tells_a_deleted_pump_as_removed_not_as_refused():
    """Deleted by another process, a pump may be found gone by the rights re-check before its `device:removed` is
    published here: the watcher is then told it was removed, never that it may no longer watch it."""
    icu = make_ward("icu")
    make_device("KEPT", ward=icu)
    make_device("MOVED", ward=make_ward("er"))
    nurse = make_user("nurse", ward=icu)
    key = session_cookie(nurse).split("=", 1)[1]
    verdict = verdicts_for({key: (Principal(user=nurse, session_key=key), {"KEPT", "MOVED", "GONE"}, set())})[key]
    assert (verdict.lost_devices, verdict.removed_devices) == ({"MOVED", "GONE"}, {"GONE"}), verdict

    transport = FakeTransport()
    subscriber = transport.subscriber(Principal(user=nurse, session_key=key))
    subscriber.limits.devices.update({"KEPT", "MOVED", "GONE"})
    asyncio.run(RightsRegistry()._apply("sid", LiveConnection(subscriber, _closed), verdict))
    assert transport.sent == [
        (events.ERROR, {"message": PUMP_REMOVED, "deviceId": "GONE"}),
        (events.ERROR, {"message": "No longer permitted to watch this pump", "deviceId": "MOVED"}),
    ], transport.sent
    assert subscriber.limits.devices == {"KEPT"}
