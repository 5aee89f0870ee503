"""One connection's requests run concurrently (python-socketio starts a task per event): the device cap holds
whatever the interleaving. The snapshot and the database reads are replaced; the `Subscriber` is the real one."""

import asyncio
from unittest import mock

from realtime.sio import subscriptions
from realtime.sio.limits import MAX_DEVICE_SUBSCRIPTIONS
from tests.realtime.sio.fake_transport import FakeTransport, snapshot_and_join

PUMPS = [f"PUMP_{n:04d}" for n in range(MAX_DEVICE_SUBSCRIPTIONS + 5)]


def test_requests_sent_at_once_cannot_pass_the_device_cap_together():
    transport = FakeTransport()
    subscriber = transport.subscriber()

    async def main() -> None:
        requests = [subscriber.handle("subscribe:device", {"deviceId": device_id}) for device_id in PUMPS]
        await asyncio.gather(*requests)  # as python-socketio runs them: the first read of the visible pumps yields

    with (
        mock.patch.object(subscriptions, "visible_device_ids", return_value=frozenset(PUMPS)),
        mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=snapshot_and_join),
    ):
        asyncio.run(main())
    assert len(subscriber.limits.devices) == MAX_DEVICE_SUBSCRIPTIONS, (
        f"{len(subscriber.limits.devices)} pumps subscribed past the cap of {MAX_DEVICE_SUBSCRIPTIONS}"
    )
    assert len(transport.joined) == MAX_DEVICE_SUBSCRIPTIONS
    assert transport.messages() == [
        f"At most {MAX_DEVICE_SUBSCRIPTIONS} device subscriptions per connection; use subscribe:ward"
    ] * (len(PUMPS) - MAX_DEVICE_SUBSCRIPTIONS)
