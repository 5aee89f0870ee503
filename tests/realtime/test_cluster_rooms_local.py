"""With Redis (several Daphne), joining or leaving a pump's room for a socket that has just gone publishes
to Redis — under the pump's lock.

`ClusterManager` ("emits stay local; the channel carries nudges only") inherits python-socketio's
`AsyncPubSubManager.enter_room`/`leave_room`, which, for a sid not connected to this process, publish an
`enter_room`/`leave_room` message to the channel (the other processes drop it: `ClusterManager.receive`). Those
calls come from `Subscriber._join` (inside `subscribe_with_snapshot`, holding the fan-out's pump lock) when the client
left while its snapshot was read or sent, and from `rights.pump_removed` (a fan-out listener, under the lock too).
A Redis that is slow or unreachable (a blackholed connection: redis-py waits without a socket timeout) then holds
that pump's deliveries for as long.
"""

import asyncio

from realtime.cluster import ClusterManager


def test_a_room_change_for_a_socket_gone_never_goes_to_redis():
    manager = ClusterManager("redis://:pw@127.0.0.1:1/0")  # never connected
    published: list[dict] = []

    async def publish(message: dict) -> None:
        published.append(message)

    manager._publish = publish

    async def main() -> None:
        await manager.enter_room("gone-sid", "/", "device:CALM")
        await manager.leave_room("gone-sid", "/", "device:CALM")

    asyncio.run(main())
    assert published == [], f"room changes of a socket gone went to Redis (under the pump's lock): {published}"
