"""A station whose client has left (or whose send fails) never keeps a ward's alarm from the stations after it."""

import asyncio

import pytest
from autobahn.exception import Disconnected

from protocol import events
from realtime.consumers import DeviceStreamConsumer
from realtime.sio.ward_feed import WardFeed, WardScope
from tests.realtime.sio.test_ward_alarm_odd_body import odd_change


def test_a_station_failing_mid_send_keeps_the_alarm_from_no_other_station():
    sent: list[str] = []

    async def broken(event: str, body: dict) -> None:
        raise Disconnected("Attempt to send on a closed protocol")

    async def working(event: str, body: dict) -> None:
        sent.append(event)

    async def main() -> None:
        feed = WardFeed(tick_s=3600)
        feed._subscribers["left|icu"] = (WardScope(label="icu", codes={"icu"}), broken)
        feed._subscribers["station|icu"] = (WardScope(label="icu", codes={"icu"}), working)
        await feed.deliver_alarm(odd_change(), frozenset())

    asyncio.run(main())
    assert sent == [events.WARD_ALARM], "the station after the broken one did not get the alarm"


def test_the_endpoint_sends_nothing_and_raises_nothing_once_its_client_has_left():
    """Daphne raises on a send to a closed WebSocket; the endpoint's send returns, its `disconnect` follows."""
    consumer = DeviceStreamConsumer()
    consumer.snapshot_seq = {}

    async def closed(content: dict, close: bool = False) -> None:
        raise Disconnected("Attempt to send on a closed protocol")

    consumer.send_json = closed
    asyncio.run(consumer._send_event(events.WARD_ALARM, {"ward": "icu"}))


@pytest.mark.django_db(transaction=True)  # the old code started the feed: its first summary reads the pumps
def test_a_connection_closed_while_its_feed_was_being_started_leaves_no_feed_behind():
    """The rights re-check (or a `subscribe:ward` request) awaits reads; the client may leave meanwhile. A feed
    started after its close would be sent to for ever, every send swallowed (a reviewer's finding)."""
    from realtime.sio.auth import Principal
    from realtime.sio.subscriptions import Subscriber
    from realtime.sio.ward_feed import ward_feed

    async def nothing(*args) -> None:
        return None

    subscriber = Subscriber(Principal(), "gone-sid", nothing, nothing, nothing)
    subscriber.close()  # the transport's disconnect ran while the re-check awaited its read
    asyncio.run(subscriber.subscribe_ward_scope("icu", WardScope(label="icu", codes={"icu"})))
    assert not [key for key in ward_feed._subscribers if key.startswith("gone-sid|")], "a feed for a closed socket"
