"""A monitor whose pump subscription could not be read (the database away for a moment, at its access read) is
told so by name, and the pump asked again once the database is back is subscribed.

The access reads of `subscribe:device` and `subscribe:devices` (the pumps the principal may watch, then why not)
raised into the server's catch-all, whose "Internal error" names no pump: `live.js` kept waiting for a snapshot
that was never coming, the monitor "Not live: waiting for the server's answer…" and its notice after 10 s, until
someone reloaded (review 40, held note). Such a pump now gets the `error` of a snapshot not read, naming it with
"subscribe again" (`live.js` `subscribeLater`), and is not counted. Database reads replaced; the `Subscriber` is
the real one, behind the server's real request handler.
"""

import asyncio
from unittest import mock

from django.db import OperationalError

from protocol import events
from realtime.sio import subscriptions
from realtime.sio.server import client_namespace
from realtime.sio.subscriptions import SNAPSHOT_FAILED
from tests.realtime.sio.fake_transport import FakeTransport, snapshot_and_join
from tests.support.sio import page_asks_again

PUMPS = frozenset({"PUMP_1", "PUMP_2"})


def _requests(requests: list[tuple[str, dict]], *, visible, access=None) -> tuple[FakeTransport, set[str]]:
    """Run these requests of one connection through the server's handler; what was sent, and the pumps counted."""
    transport = FakeTransport()
    subscriber = transport.subscriber()
    client_namespace.subscribers["not-read-sid"] = subscriber

    async def main() -> None:
        for event, data in requests:
            await client_namespace.trigger_event(event, "not-read-sid", data)

    try:
        with (
            mock.patch.object(subscriptions, "visible_device_ids", side_effect=visible),
            mock.patch.object(subscriptions, "device_access", side_effect=access or (lambda principal, pump: None)),
            mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=snapshot_and_join),
        ):
            asyncio.run(main())
    finally:
        client_namespace.subscribers.pop("not-read-sid", None)
    return transport, set(subscriber.limits.devices)


def _errors(transport: FakeTransport) -> list[tuple[str | None, str]]:
    return [(body.get("deviceId"), body["message"]) for event, body in transport.sent if event == events.ERROR]


def test_a_monitor_whose_subscription_was_not_read_is_told_by_name_and_subscribed_when_it_asks_again():
    reads = iter([OperationalError("server closed the connection unexpectedly"), PUMPS])

    def visible(principal):
        answer = next(reads)
        if isinstance(answer, Exception):
            raise answer
        return answer

    subscribe = (events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_1"})
    transport, counted = _requests([subscribe, subscribe], visible=visible)  # the second: the page asking again
    assert _errors(transport) == [("PUMP_1", SNAPSHOT_FAILED)], (
        "a subscription whose access read failed was not answered by an error naming its pump with 'subscribe "
        "again': the monitor waits for a snapshot never coming, 'Not live' until someone reloads"
    )
    assert page_asks_again(SNAPSHOT_FAILED)
    assert transport.joined == counted == {"PUMP_1"}, "the pump asked again was not subscribed"


def test_a_batch_whose_access_read_failed_names_each_pump_and_counts_none():
    def visible(principal):
        raise OperationalError("server closed the connection unexpectedly")

    transport, counted = _requests([(events.SUBSCRIBE_DEVICES, {"deviceIds": ["PUMP_1", "PUMP_2"]})], visible=visible)
    assert _errors(transport) == [("PUMP_1", SNAPSHOT_FAILED), ("PUMP_2", SNAPSHOT_FAILED)]
    assert not counted and not transport.joined


def test_a_batch_pump_whose_own_access_read_failed_is_named_and_the_others_subscribed():
    def access(principal, device_id):
        if device_id == "PUMP_3":  # not among the visible pumps: why not is read, and that read fails
            raise OperationalError("server closed the connection unexpectedly")
        return None

    transport, counted = _requests([(events.SUBSCRIBE_DEVICES, {"deviceIds": ["PUMP_1", "PUMP_3", "PUMP_2"]})],
                                   visible=lambda principal: PUMPS, access=access)  # fmt: skip
    assert _errors(transport) == [("PUMP_3", SNAPSHOT_FAILED)]
    assert transport.joined == counted == {"PUMP_1", "PUMP_2"}
