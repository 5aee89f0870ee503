"""One connection's requests run concurrently (python-socketio starts a task per event): the device and ward caps
hold whatever the interleaving (the ward cap was checked only before the ward's access read: 20 requests sent together
started 20 feeds, review 27). The snapshot and the database reads are replaced; the `Subscriber` is the real one."""

import asyncio
from unittest import mock

from realtime.sio import subscriptions
from realtime.sio.limits import MAX_DEVICE_SUBSCRIPTIONS, MAX_WARD_SUBSCRIPTIONS
from realtime.sio.ward_feed import WardScope
from tests.realtime.sio.fake_transport import FakeTransport, snapshot_and_join

PUMPS = [f"PUMP_{n:04d}" for n in range(MAX_DEVICE_SUBSCRIPTIONS + 5)]
WARDS = [f"ward-{n:02d}" for n in range(2 * MAX_WARD_SUBSCRIPTIONS)]


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


def test_ward_requests_sent_at_once_cannot_pass_the_ward_cap_together():
    transport = FakeTransport()
    subscriber = transport.subscriber()
    feeds_started: list[str] = []

    async def feed_subscribe(key: str, scope: WardScope, send) -> None:
        feeds_started.append(scope.label)

    async def main() -> None:
        await asyncio.gather(*(subscriber.handle("subscribe:ward", {"ward": ward}) for ward in WARDS))

    with (
        mock.patch.object(subscriptions, "ward_scope", side_effect=lambda principal, ward: WardScope(ward, {ward})),
        mock.patch.object(subscriptions.ward_feed, "subscribe", side_effect=feed_subscribe),
    ):
        asyncio.run(main())
    assert len(feeds_started) == MAX_WARD_SUBSCRIPTIONS, f"{len(feeds_started)} ward feeds started past the cap"
    assert len(subscriber.limits.wards) == MAX_WARD_SUBSCRIPTIONS
    assert transport.messages() == [f"At most {MAX_WARD_SUBSCRIPTIONS} ward subscriptions per connection"] * (
        len(WARDS) - MAX_WARD_SUBSCRIPTIONS
    )


def _slow_visible_read(pumps: frozenset[str]):
    """The visible pumps read on the database thread: the request awaits it, and the connection's next request runs."""

    async def read(principal) -> frozenset[str]:
        await asyncio.sleep(0.01)
        return pumps

    return mock.patch.object(subscriptions, "db_thread", side_effect=lambda function: read)


def test_an_unsubscribe_sent_after_a_subscribe_whose_read_awaits_wins():
    """review 48: the rights re-check forgets the visible pumps (every 2 s); a `subscribe:device` then awaits their
    read, the `unsubscribe:device` the page sent after it ran first, and the pump ended subscribed (ci on 1449031)."""
    for subscribe in (
        ("subscribe:device", {"deviceId": "PUMP_0001"}),
        ("subscribe:devices", {"deviceIds": ["PUMP_0001"]}),
    ):
        transport = FakeTransport()
        subscriber = transport.subscriber()

        async def main(subscribe=subscribe, subscriber=subscriber) -> None:
            await asyncio.gather(
                subscriber.handle(*subscribe), subscriber.handle("unsubscribe:device", {"deviceId": "PUMP_0001"})
            )

        with (
            _slow_visible_read(frozenset({"PUMP_0001"})),
            mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=snapshot_and_join),
        ):
            asyncio.run(main())
        assert transport.joined == set(), f"{subscribe[0]} then unsubscribe:device left the pump subscribed"
        assert subscriber.limits.devices == set()
        assert subscriber._asked == {}, "a finished request left its mark"


def test_a_subscribe_sent_after_the_unsubscribe_still_subscribes():
    transport = FakeTransport()
    subscriber = transport.subscriber()
    pump = {"deviceId": "PUMP_0001"}

    async def main() -> None:
        await asyncio.gather(
            subscriber.handle("subscribe:device", pump),
            subscriber.handle("unsubscribe:device", pump),
            subscriber.handle("subscribe:device", pump),
        )

    with (
        _slow_visible_read(frozenset({"PUMP_0001"})),
        mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=snapshot_and_join),
    ):
        asyncio.run(main())
    assert transport.joined == {"PUMP_0001"}
    assert subscriber.limits.devices == {"PUMP_0001"}


def test_an_unsubscribe_ward_sent_after_a_subscribe_ward_whose_read_awaits_wins():
    transport = FakeTransport()
    subscriber = transport.subscriber()
    feeds_started: list[str] = []

    async def scope_read(principal, ward) -> WardScope:
        await asyncio.sleep(0.01)
        return WardScope(ward, {ward})

    async def feed_subscribe(key: str, scope: WardScope, send) -> None:
        feeds_started.append(scope.label)

    async def main() -> None:
        await asyncio.gather(
            subscriber.handle("subscribe:ward", {"ward": "icu"}), subscriber.handle("unsubscribe:ward", {"ward": "icu"})
        )

    with (
        mock.patch.object(subscriptions, "db_thread", side_effect=lambda function: scope_read),
        mock.patch.object(subscriptions.ward_feed, "subscribe", side_effect=feed_subscribe),
    ):
        asyncio.run(main())
    assert feeds_started == [], "subscribe:ward then unsubscribe:ward started the ward's feed"
    assert subscriber.limits.wards == set()
