"""The Channels endpoint skips only what its snapshot holds of the same row of the pump, as Socket.IO rooms do.

Review 3, suspicion (b), second half, confirmed: the endpoint kept its own map of each pump's snapshot `seq` and
skipped every change at or below it. A pump deleted and registered anew under the same id (within one rights
re-check, so the subscription stays) counts `seq` from 1 again: all of the new row's changes up to the old
snapshot's `seq` were dropped for that connection, silently. It now uses the fan-out's `skip`, which knows the row.

The first half (a connection subscribing again to a pump it already watches gets the changes delivered during the
read live, then again after `stream:subscribed`) is the contract on both transports: the client starts again from
the snapshot at `stream:subscribed`, and those changes come after it; the first copies belonged to the old stream.
"""

import asyncio
from types import SimpleNamespace

from protocol import events
from protocol.events import DeviceChange
from realtime.consumers import DeviceStreamConsumer, deliver_to_watchers, device_watchers
from realtime.fanout import FanOut


def endpoint_connection(sent: list[dict]) -> DeviceStreamConsumer:
    consumer = DeviceStreamConsumer()
    consumer.channel_name = "endpoint-1"
    consumer.watching = set()
    consumer.snapshot_seq = {}  # what `connect` set up before (the old code's own map)
    consumer.subscriber = SimpleNamespace(limits=SimpleNamespace(devices={"ANEW"}))

    async def send_json(content: dict, close: bool = False) -> None:
        sent.append(content)

    consumer.send_json = send_json
    return consumer


def status_change(seq: int, registration: int) -> DeviceChange:
    return DeviceChange("ANEW", seq, events.DEVICE_STATUS, {"status": {"n": seq}}, "icu", registration)


def test_a_pump_registered_anew_reaches_a_connection_that_watched_the_old_one():
    sent: list[dict] = []

    async def main() -> None:
        fan = FanOut()
        fan.targets.append(deliver_to_watchers)
        consumer = endpoint_connection(sent)
        try:
            # subscribed to the old row (registration 1) with a snapshot at seq 500, as `_snapshot_send` does
            await consumer._send_event(
                events.STREAM_SUBSCRIBED, {"deviceId": "ANEW", "room": "device:ANEW", "seq": 500}
            )
            await consumer._join("ANEW")
            fan.note_snapshot("ANEW", 500, consumer.channel_name, registration=1)
            fan.publish(status_change(500, 1))  # still on its way: the snapshot holds it
            for seq in (1, 2, 3):  # deleted and registered anew (row 2): its own seq from 1
                fan.publish(status_change(seq, 2))
            for _ in range(20):
                await asyncio.sleep(0)
        finally:
            device_watchers.pop("ANEW", None)

    asyncio.run(main())
    delivered = [(frame["event"], frame["data"]["seq"]) for frame in sent if frame["event"] == events.DEVICE_STATUS]
    assert delivered == [(events.DEVICE_STATUS, 1), (events.DEVICE_STATUS, 2), (events.DEVICE_STATUS, 3)], (
        f"the new pump's changes were skipped for the old one's snapshot (seq 500): got {delivered}"
    )
