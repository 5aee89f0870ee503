"""Redis + PostgreSQL + two Daphne + the bridge: a subscriber on A sees every change of its pump, in order.

The changes come from a pump through the bridge (which wakes B) and from a nurse's page on B; a subscriber on A,
on Socket.IO and on the Channels endpoint, must get each `seq` once, in order, without a gap. With Redis in the
layout the road of a change is still the change log (A's publisher LISTENs), and no change arrives twice
(every emit stays in its process; the endpoint's pump changes never go through channels-redis).
"""

import time

import pytest
from django.db import close_old_connections, connection

from devices.models import Alarm, Device
from devices.states import AlarmState
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.broker import MosquittoBroker
from tests.support.sio import BrowserSession, ChannelsClient, StreamClient, session_cookie

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="several Daphne need PostgreSQL (make test-postgres)"),
]
DEVICE = "PUMP_0001"
PROGRESS = 40  # progress messages (the bridge records some: there is no infusion to follow)
ALARMS = 4


@pytest.fixture
def layout(tmp_path, artifacts_dir, daphnes_on_redis):
    """Mosquitto, Daphne A and B on Redis, and the bridge forwarding its wake to B."""
    broker = MosquittoBroker(tmp_path / "mosquitto", persistence=False).start()
    bridge = None
    try:
        daphne_a, daphne_b = daphnes_on_redis(2, MQTT_URL=broker.url)
        bridge = BridgeProcess(broker.url, daphne_b.internal_url, artifacts_dir).start()
        yield broker, daphne_a, daphne_b
    finally:
        if bridge is not None:
            bridge.stop()
        broker.stop()


def wait_for_seq(client: StreamClient | ChannelsClient, seq: int, timeout: float = 15.0) -> list[int]:
    """The pump's seqs the client got, once `seq` is among them or after `timeout`."""
    deadline = time.monotonic() + timeout
    while seq not in (seen := seqs_after(client.events.device_events(DEVICE), 0)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return seen


def seqs_after(device_events: list[tuple[str, dict]], since: int) -> list[int]:
    return [data["seq"] for _, data in device_events if data["seq"] > since]


@pytest.fixture
def watchers_on_a(layout):
    """A nurse's Socket.IO socket and Channels connection on A, both subscribed to the pump: (client, its seq)."""
    ward = make_ward("icu")
    make_device(DEVICE, ward=ward)
    cookie = session_cookie(make_user("nurse", ward=ward))
    url_a = layout[1].url
    on_a, endpoint_on_a = StreamClient(url_a, cookie=cookie).connect(), ChannelsClient(url_a, cookie=cookie)
    try:
        reply, snapshot = on_a.subscribe(DEVICE)
        assert reply == events.STREAM_SUBSCRIBED, snapshot
        endpoint_on_a.emit(events.SUBSCRIBE_DEVICE, {"deviceId": DEVICE})
        endpoint_snapshot = endpoint_on_a.events.wait_for(lambda e, d: e == events.STREAM_SUBSCRIBED, timeout=10)
        yield [(on_a, snapshot["seq"]), (endpoint_on_a, endpoint_snapshot["seq"])]
    finally:
        on_a.close()
        endpoint_on_a.close()


def test_a_subscriber_on_a_sees_the_bridges_and_bs_changes_in_order_without_gaps(layout, watchers_on_a):
    broker, _, daphne_b = layout
    pump = PumpClient(broker.url, DEVICE)
    try:
        browser_on_b = BrowserSession(daphne_b.url, "nurse")
        for step in range(PROGRESS):
            pump.publish("progress", {"progressPercent": step, "timeRemainingMin": 10.0, "flowRate": 2.0,
                                      "status": "running", "infusionId": None})  # fmt: skip
            if step % (PROGRESS // ALARMS) == 0:
                pump.publish("error", {"type": f"occlusion_{step}", "severity": "high"})
                alarm = wait_until(lambda step=step: Alarm.objects.filter(type=f"occlusion_{step}",
                                                                          state=AlarmState.ACTIVE).first(),
                                   timeout=10, message="the bridge never raised the alarm")  # fmt: skip
                browser_on_b.post(f"/api/alarms/{alarm.pk}/acknowledge/", {}, expect=(200,))
        close_old_connections()
        last = wait_until(lambda: Device.objects.get(device_id=DEVICE).event_seq or None, timeout=5)
        for (client, _), name in zip(watchers_on_a, ("Socket.IO", "the endpoint"), strict=True):
            seen = wait_for_seq(client, last)
            assert last in seen, f"{name} on A never got seq {last} within 15 s; its last: {seen[-5:]}"
    finally:
        pump.close()
    for (client, since), name in zip(watchers_on_a, ("Socket.IO", "the endpoint"), strict=True):
        seqs = seqs_after(client.events.device_events(DEVICE), since)  # up to `last`, and any change after it
        assert seqs == list(range(since + 1, since + 1 + len(seqs))), f"{name} on A, snapshot at {since}: {seqs}"
    on_a = watchers_on_a[0][0]
    acknowledged = [d for d in on_a.events.named(events.DEVICE_ALARM) if d["alarm"].get("acknowledged")]
    assert len(acknowledged) >= ALARMS, "the acknowledgements made on B did not all reach A"
    assert on_a.events.named(events.DEVICE_PROGRESS, device_id=DEVICE), "no progress from the bridge reached A"
