"""A pump whose snapshot cannot be read (removed since its access was checked, or the database failing) is
refused by name and not counted as subscribed; the request's other pumps are subscribed. Database reads
replaced; the `Subscriber` is the real one."""

import asyncio
from unittest import mock

from django.db import OperationalError

from realtime.sio import subscriptions
from realtime.sio.auth import Principal
from realtime.sio.subscriptions import INVALID_DEVICE, SNAPSHOT_FAILED, Subscriber


def test_a_pump_whose_snapshot_fails_is_named_and_not_counted():
    sent: list[tuple[str, dict]] = []
    joined: set[str] = set()

    async def send(event: str, body: dict) -> None:
        sent.append((event, body))

    async def join(device_id: str) -> None:
        joined.add(device_id)

    async def snapshot_and_join(device_id: str, *, join, **_: object) -> int:
        await asyncio.sleep(0)
        if device_id == "PUMP_GONE":
            raise LookupError(device_id)  # deleted since its access was checked
        if device_id == "PUMP_DB":
            raise OperationalError("database is locked")
        await join()
        return 0

    subscriber = Subscriber(Principal(user=object()), "sid", send, join, join)
    pumps = ["PUMP_GONE", "PUMP_OK", "PUMP_DB"]
    with (
        mock.patch.object(subscriptions, "visible_device_ids", return_value=frozenset(pumps)),
        mock.patch.object(subscriptions, "subscribe_with_snapshot", side_effect=snapshot_and_join),
    ):
        keep = asyncio.run(subscriber.handle("subscribe:devices", {"deviceIds": pumps}))
    assert keep
    assert subscriber.limits.devices == joined == {"PUMP_OK"}, "a pump without its snapshot counted as subscribed"
    assert sorted((body["deviceId"], body["message"]) for _, body in sent) == [
        ("PUMP_DB", SNAPSHOT_FAILED),
        ("PUMP_GONE", INVALID_DEVICE),
    ]
