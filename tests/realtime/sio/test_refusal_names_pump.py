"""A refused request that named a pump says which pump in its `error`, whatever refused it (the rate limit, the
cap, access): a page that waits for the pump's stream then knows it is not coming. Database reads replaced; the
`Subscriber` is the real one."""

import asyncio
import time
from types import SimpleNamespace
from unittest import mock

from realtime.sio import limits, subscriptions
from realtime.sio.limits import MAX_DEVICE_SUBSCRIPTIONS
from tests.realtime.sio.fake_transport import FakeTransport, snapshot_and_join


def refused(request: str, data: object, *, tokens: float = 0.0) -> list[dict]:
    """The `error` bodies a subscriber with `tokens` request tokens left sends for one request.

    The bucket's clock stands still meanwhile: it refills 20 tokens a second, so a slow machine taking 50 ms from
    here to the request gave it the token the test had taken away (a full run under load once subscribed PUMP_1)."""
    transport = FakeTransport()
    subscriber = transport.subscriber()
    now = time.monotonic()
    subscriber.limits.tokens, subscriber.limits.refilled_at = tokens, now
    with (
        mock.patch.object(limits, "time", SimpleNamespace(monotonic=lambda: now)),
        mock.patch.object(subscriptions, "visible_device_ids", return_value=frozenset({"PUMP_1", "PUMP_2"})),
        mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=snapshot_and_join),
    ):
        assert asyncio.run(subscriber.handle(request, data)), "one refusal closed the connection"
    assert not transport.joined, "a refused request subscribed a pump"
    return [body for event, body in transport.sent if event == "error"]


def test_a_rate_limited_subscribe_names_its_pump():
    errors = refused("subscribe:device", {"deviceId": "PUMP_1"})
    assert [(body["message"], body.get("deviceId")) for body in errors] == [("Too many requests", "PUMP_1")], errors
    assert errors[0]["request"] == "subscribe:device"


def test_a_rate_limited_unsubscribe_names_its_pump():
    errors = refused("unsubscribe:device", {"deviceId": "PUMP_1"})
    assert [body.get("deviceId") for body in errors] == ["PUMP_1"], errors


def test_a_rate_limited_batch_names_each_pump():
    errors = refused("subscribe:devices", {"deviceIds": ["PUMP_1", "PUMP_2", "PUMP_1"]}, tokens=1.0)
    assert [(body["message"], body.get("deviceId")) for body in errors] == [
        ("Too many requests", "PUMP_1"),
        ("Too many requests", "PUMP_2"),
    ], errors


def test_a_pump_refused_access_by_subscribe_device_is_named():
    with mock.patch.object(subscriptions, "device_access", return_value="Not permitted to watch this pump"):
        errors = refused("subscribe:device", {"deviceId": "PUMP_9"}, tokens=10.0)
    assert [(body["message"], body.get("deviceId")) for body in errors] == [
        ("Not permitted to watch this pump", "PUMP_9")
    ], errors


def test_a_malformed_or_oversized_request_names_no_pump():
    assert [body.get("deviceId") for body in refused("subscribe:device", {"deviceId": "bad id"})] == [None]
    too_many = {"deviceIds": [f"PUMP_{n}" for n in range(MAX_DEVICE_SUBSCRIPTIONS + 1)]}
    assert [body.get("deviceId") for body in refused("subscribe:devices", too_many, tokens=60.0)] == [None]
    assert [body.get("deviceId") for body in refused("subscribe:ward", {"ward": "bad ward"})] == [None]


def test_a_refused_ward_subscription_names_its_ward():
    """A station reconnecting after its ward was taken from it was refused without the ward: it stayed "Live",
    silent; named, its page raises "Not receiving the ward's alarms"."""
    with mock.patch.object(subscriptions, "ward_scope", return_value="Not permitted to watch this ward"):
        errors = refused("subscribe:ward", {"ward": "icu"}, tokens=10.0)
    assert [(body["message"], body.get("ward")) for body in errors] == [("Not permitted to watch this ward", "icu")]
    assert [body.get("ward") for body in refused("subscribe:ward", {"ward": "icu"})] == ["icu"], "rate limit"
    assert [body.get("ward") for body in refused("unsubscribe:ward", {"ward": "*"})] == ["*"]
    assert [body.get("ward") for body in refused("silence:ward", {"ward": "icu"})] == [None], "a silence stops no feed"


def test_a_refused_ward_silence_names_its_ward_as_the_request_s():
    """A station of several wards asks each for its silence: its refusal line says which ward was not silenced."""
    assert [body.get("requestWard") for body in refused("silence:ward", {"ward": "icu"})] == ["icu"]
    assert [body.get("requestWard") for body in refused("silence:ward", {"ward": "bad ward"})] == [None]
