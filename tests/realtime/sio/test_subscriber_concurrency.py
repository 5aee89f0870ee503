"""One connection's requests run concurrently (python-socketio starts a task per event): the device cap holds
whatever the interleaving. The snapshot and the database reads are replaced; the `Subscriber` is the real one."""

import asyncio
from unittest import mock

from realtime.sio import subscriptions
from realtime.sio.auth import Principal
from realtime.sio.limits import MAX_DEVICE_SUBSCRIPTIONS
from realtime.sio.subscriptions import Subscriber

PUMPS = [f"PUMP_{n:04d}" for n in range(MAX_DEVICE_SUBSCRIPTIONS + 5)]


def test_requests_sent_at_once_cannot_pass_the_device_cap_together():
    sent: list[tuple[str, dict]] = []
    joined: set[str] = set()

    async def send(event: str, body: dict) -> None:
        sent.append((event, body))

    async def join(device_id: str) -> None:
        joined.add(device_id)

    async def leave(device_id: str) -> None:
        joined.discard(device_id)

    async def snapshot_and_join(device_id: str, *, join, **_: object) -> int:
        await join()
        return 0

    async def main() -> Subscriber:
        subscriber = Subscriber(Principal(user=object()), "sid", send, join, leave)
        requests = [subscriber.handle("subscribe:device", {"deviceId": device_id}) for device_id in PUMPS]
        await asyncio.gather(*requests)  # as python-socketio runs them: the first read of the visible pumps yields
        return subscriber

    with (
        mock.patch.object(subscriptions, "visible_device_ids", return_value=frozenset(PUMPS)),
        mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=snapshot_and_join),
    ):
        subscriber = asyncio.run(main())
    assert len(subscriber.limits.devices) == MAX_DEVICE_SUBSCRIPTIONS, (
        f"{len(subscriber.limits.devices)} pumps subscribed past the cap of {MAX_DEVICE_SUBSCRIPTIONS}"
    )
    assert len(joined) == MAX_DEVICE_SUBSCRIPTIONS
    assert [body["message"] for _, body in sent] == [
        f"At most {MAX_DEVICE_SUBSCRIPTIONS} device subscriptions per connection; use subscribe:ward"
    ] * (len(PUMPS) - MAX_DEVICE_SUBSCRIPTIONS)
