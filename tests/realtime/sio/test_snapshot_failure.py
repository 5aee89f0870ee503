"""A pump whose snapshot cannot be read (removed since its access was checked, or the database failing) is
refused by name and not counted as subscribed; the request's other pumps are subscribed. Database reads
replaced; the `Subscriber` is the real one."""

import asyncio
from unittest import mock

from django.db import OperationalError

from realtime.sio import subscriptions
from realtime.sio.access import INVALID_DEVICE
from realtime.sio.subscriptions import SNAPSHOT_FAILED
from tests.realtime.sio.fake_transport import FakeTransport, snapshot_and_join


async def failing_snapshot(device_id: str, **kwargs: object) -> int:
    await asyncio.sleep(0)
    if device_id == "PUMP_GONE":
        raise LookupError(device_id)  # deleted since its access was checked
    if device_id == "PUMP_DB":
        raise OperationalError("database is locked")
    return await snapshot_and_join(device_id, **kwargs)


def test_a_pump_whose_snapshot_fails_is_named_and_not_counted():
    transport = FakeTransport()
    subscriber = transport.subscriber()
    pumps = ["PUMP_GONE", "PUMP_OK", "PUMP_DB"]
    with (
        mock.patch.object(subscriptions, "visible_device_ids", return_value=frozenset(pumps)),
        mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=failing_snapshot),
    ):
        keep = asyncio.run(subscriber.handle("subscribe:devices", {"deviceIds": pumps}))
    assert keep
    assert subscriber.limits.devices == transport.joined == {"PUMP_OK"}, "a pump without its snapshot was counted"
    assert sorted((body["deviceId"], body["message"]) for _, body in transport.sent) == [
        ("PUMP_DB", SNAPSHOT_FAILED),
        ("PUMP_GONE", INVALID_DEVICE),
    ]
