"""`stream:subscribed` says how many events its snapshot has, so a client knows when it holds the whole snapshot
(and can replace what it held), even when changes delivered while the snapshot was read follow at once."""

import asyncio

from protocol import events
from protocol.events import DeviceChange
from realtime.fanout import fanout
from realtime.sio.snapshot import Snapshot, _snapshot_send


def change(seq: int, event: str) -> DeviceChange:
    return DeviceChange("PUMP_COUNT", seq, event, {})


def test_subscribed_counts_the_snapshot_events_that_follow_it():
    snapshot = Snapshot("PUMP_COUNT", 7, [change(7, events.DEVICE_STATUS), change(7, events.DEVICE_SESSION),
                                          change(7, events.DEVICE_ALARM)])  # fmt: skip
    missed = [change(8, events.DEVICE_PROGRESS)]  # delivered while the snapshot was read: sent as a live event
    sent: list[tuple[str, dict]] = []

    async def send(event: str, body: dict) -> None:
        sent.append((event, body))

    async def join(registration: int | None) -> None:
        return None

    try:
        asyncio.run(_snapshot_send("PUMP_COUNT", snapshot, missed, send=send, send_change=_via(send), join=join,
                                   subscriber="sid", room="device:PUMP_COUNT", wanted=lambda: True))  # fmt: skip
    finally:
        fanout._joiners.pop("PUMP_COUNT", None)
    (first, subscribed), *after = sent
    assert first == events.STREAM_SUBSCRIBED
    assert subscribed["snapshotEvents"] == 3, f"the count must be the snapshot's own events: {subscribed}"
    counted = after[: subscribed["snapshotEvents"]]
    assert [body["seq"] for _, body in counted] == [7, 7, 7], "the counted events are the snapshot's"
    assert [body["seq"] for _, body in after[subscribed["snapshotEvents"] :]] == [8], "then the live ones"


def _via(send):
    async def send_change(change: DeviceChange) -> None:
        await send(change.event, change.wire_payload())

    return send_change
