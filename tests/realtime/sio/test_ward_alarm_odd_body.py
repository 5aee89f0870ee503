"""An alarm change whose recorded body the typed model refuses (a field this version does not know, or lacks)
still reaches the ward's stations and the escalation group: "when in doubt, alarm"."""

import asyncio

from protocol import events
from protocol import payloads as wire
from protocol.events import DeviceChange
from realtime.sio.escalation import escalation_target
from realtime.sio.ward_feed import WardFeed, WardScope
from tests.protocol.test_payloads import alarm


def odd_change() -> DeviceChange:
    """A recorded `device:alarm` change with a field the model does not declare (as a newer writer records)."""
    body = wire.payload_to_wire(wire.AlarmEvent(alarm=alarm()))
    body["alarm"]["newerField"] = 1
    body["escalated"] = {"tier": 2, "group": "charge-nurses"}
    return DeviceChange(device_id="PUMP_1", seq=13, event=events.DEVICE_ALARM, body=body, ward_code="icu")


def test_an_alarm_body_the_model_refuses_still_reaches_the_ward_feed():
    sent: list[tuple[str, dict]] = []

    async def send(event: str, body: dict) -> None:
        sent.append((event, body))

    async def main() -> None:
        feed = WardFeed(tick_s=3600)
        feed._subscribers["station|icu"] = (WardScope(label="icu", codes={"icu"}), send)
        await feed.deliver_alarm(odd_change(), frozenset())

    asyncio.run(main())
    assert [event for event, _ in sent] == [events.WARD_ALARM], "the alarm was lost for its form"
    body = sent[0][1]
    assert (body["ward"], body["deviceId"], body["seq"], body["feed"]) == ("icu", "PUMP_1", 13, "icu")
    assert body["alarm"]["id"] == alarm().id and body["alarm"]["priority"] == alarm().priority


def test_an_escalation_body_the_model_refuses_still_pages_its_group():
    group, ward, body = escalation_target(odd_change())
    assert (group, ward, body["deviceId"], body["escalated"]["tier"]) == ("charge-nurses", "icu", "PUMP_1", 2)
