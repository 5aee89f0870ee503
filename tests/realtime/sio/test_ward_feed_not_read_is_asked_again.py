"""A station whose ward subscription could not be read (the database away for a moment) is told so by name, and
its subscription asked again once the database is back gets the ward.

`WardFeed.subscribe` lists a subscription at once and passes it by in every tick until its full summary is sent
(88e2e8c). When its full read failed, the subscription stayed listed, awaiting a full summary no one would send,
for the life of the connection, and the server's catch-all answered "Internal error" without naming the ward, so
`live.js` could not ask again: the station said "Not live: waiting for the server's answer…" and raised its
technical alarm after 10 s, and kept doing so after the database was back, until someone reloaded (review 40, F2).
A failed read (the ward's pumps, or its silence states after them) now leaves nothing of the subscription, and its
`error` names the ward with "subscribe again", which the page asks again on (`live.js` `stopWard`). The
`Subscriber` and the feed are the real ones, on the real database; one read fails.
"""

import asyncio

import pytest
from django.db import OperationalError, connections
from django.utils import timezone

from protocol import events
from realtime.sio import subscriptions as subscriptions_module
from realtime.sio import ward_feed as ward_feed_module
from realtime.sio.auth import Principal
from realtime.sio.database import db_thread
from realtime.sio.server import client_namespace
from realtime.sio.subscriptions import WARD_READ_FAILED
from realtime.sio.ward_feed import WardFeed
from tests.factories import make_device, make_user, make_ward, raise_high_alarm
from tests.realtime.sio.fake_transport import FakeTransport
from tests.support.sio import page_asks_again

pytestmark = pytest.mark.django_db(transaction=True)


def _failing_once(monkeypatch, read_name: str) -> None:
    """`ward_feed.<read_name>` raises once, as when the database goes away for a moment, then reads again."""
    real_read = getattr(ward_feed_module, read_name)
    failures = {"left": 1}

    def read(*args):
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("server closed the connection unexpectedly")
        return real_read(*args)

    monkeypatch.setattr(ward_feed_module, read_name, read)


@pytest.mark.parametrize("failing_read", ["pump_summaries", "silence_states"])
def test_a_station_whose_subscription_was_not_read_is_told_by_name_and_gets_its_ward_when_it_asks_again(
    monkeypatch, failing_read
):
    ward = make_ward("r40fail")
    make_device("R40_FAIL_PUMP", ward=ward, last_seen_at=timezone.now())
    nurse = make_user("r40-nurse", ward=ward)
    feed = WardFeed(tick_s=3600)
    monkeypatch.setattr(subscriptions_module, "ward_feed", feed)
    _failing_once(monkeypatch, failing_read)
    transport = FakeTransport()
    subscriber = transport.subscriber(Principal(user=nurse))
    client_namespace.subscribers["r40-sid"] = subscriber
    left_after_the_failure: dict[str, object] = {}

    async def main() -> None:
        try:
            await client_namespace.trigger_event(events.SUBSCRIBE_WARD, "r40-sid", {"ward": "r40fail"})
            left_after_the_failure.update(subscribers=dict(feed._subscribers), awaiting=set(feed._awaiting_full),
                                          wards=set(subscriber.limits.wards))  # fmt: skip
            await asyncio.to_thread(raise_high_alarm, "R40_FAIL_PUMP")  # the database is back; a pump changes
            # the page asks again ("subscribe again": `live.js` `stopWard`, about 3 s later)
            await client_namespace.trigger_event(events.SUBSCRIBE_WARD, "r40-sid", {"ward": "r40fail"})
            feed._dirty.add("R40_FAIL_PUMP")
            await feed.tick()
        finally:
            client_namespace.subscribers.pop("r40-sid", None)
            subscriber.close()
            if feed._task is not None:
                feed._task.cancel()
            await db_thread(connections.close_all)()  # the realtime thread's connection: the test database is dropped

    asyncio.run(main())
    errors = [body for event, body in transport.sent if event == events.ERROR]
    assert errors == [{"message": WARD_READ_FAILED, "request": events.SUBSCRIBE_WARD, "ward": "r40fail"}], (
        f"the failed subscription was answered {errors}: without the ward named and 'subscribe again', the page "
        "never asks again ('Not live' and a technical alarm until someone reloads)"
    )
    assert page_asks_again(WARD_READ_FAILED)
    assert left_after_the_failure == {"subscribers": {}, "awaiting": set(), "wards": set()}, (
        "the failed subscription was left half-registered (listed, awaiting a full summary no tick sends)"
    )
    summaries = [body for event, body in transport.sent if event == events.WARD_SUMMARY]
    asked_again = summaries[-2:] if failing_read == "silence_states" else summaries
    assert [body["full"] for body in asked_again] == [True, False], f"asked again, the station got {summaries}"
    occluded = [pump for pump in asked_again[0]["pumps"] if pump["deviceId"] == "R40_FAIL_PUMP"]
    assert occluded and occluded[0]["alarms"], "the subscription asked again did not carry the occlusion"
