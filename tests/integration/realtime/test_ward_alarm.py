"""`ward:alarm` (contract v1.1): every alarm change of a ward's pump reaches the ward's feeds at once.

Real parts: a pump publishes on Mosquitto, the real bridge commits and forwards into the real Daphne, and
real python-socketio clients subscribed to ward feeds receive the events.
"""

import pytest

from devices.models import Alarm
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until
from tests.support.sio import BrowserSession, StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def wards():
    """Ward w1 with a pump and a nurse; ward w2 with a nurse of its own."""
    w1, w2 = make_ward("w1"), make_ward("w2")
    make_device("WA_PUMP_1", ward=w1, bed="4")
    make_device("WA_PUMP_2", ward=w1, bed="5")  # a pump per test: Daphne's fan-out remembers each pump's seq
    return {"nurse": make_user("w1-nurse", ward=w1), "other": make_user("w2-nurse", ward=w2)}


def ward_client(url: str, user, ward: str, clients: list) -> StreamClient:
    """A connected client subscribed to `ward`'s feed (its first `ward:summary` received)."""
    client = StreamClient(url, cookie=session_cookie(user)).connect()
    clients.append(client)
    client.emit(events.SUBSCRIBE_WARD, {"ward": ward})
    client.events.wait_for(lambda e, d: e in (events.WARD_SUMMARY, events.ERROR))
    return client


def alarm_event(client: StreamClient, predicate, *, timeout: float = 5.0) -> dict:
    return client.events.wait_for(lambda e, d: e == events.WARD_ALARM and predicate(d), timeout=timeout)


def test_every_alarm_change_reaches_the_ward_feed_at_once(daphne_server, realtime_broker, realtime_bridge, wards,
                                                          clients):  # fmt: skip
    station = ward_client(daphne_server.url, wards["nurse"], "w1", clients)
    everywhere = ward_client(daphne_server.url, wards["nurse"], "*", clients)
    pump = PumpClient(realtime_broker.url, "WA_PUMP_1")
    try:
        pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Line blocked"})
        raised = alarm_event(station, lambda d: d["alarm"]["state"] == "active")
        assert raised["ward"] == "w1" and raised["deviceId"] == "WA_PUMP_1", raised
        assert raised["alarm"]["key"] == "occlusion" and raised["alarm"]["priority"] == "high", raised
        assert raised["feed"] == "w1"
        assert alarm_event(everywhere, lambda d: d["alarm"]["state"] == "active")["feed"] == "*"
        alarm_id = raised["alarm"]["id"]

        BrowserSession(daphne_server.url, "w1-nurse").post(f"/api/alarms/{alarm_id}/acknowledge/")
        acknowledged = alarm_event(station, lambda d: d["alarm"]["acknowledged"] is not None)
        assert acknowledged["alarm"]["acknowledged"]["by"] == "w1-nurse", acknowledged

        pump.publish("error", {"type": "occlusion_cleared", "severity": "info"})
        alarm_event(station, lambda d: d["alarm"]["state"] == "cleared")
        wait_until(lambda: Alarm.objects.filter(pk=alarm_id, state="cleared").exists(), message="not cleared")
        changes = [d["alarm"]["state"] for d in station.events.named(events.WARD_ALARM)]
        assert changes == ["active", "active", "cleared"], f"one ward:alarm per change, none coalesced: {changes}"
        seqs = [d["seq"] for d in station.events.named(events.WARD_ALARM)]
        assert seqs == sorted(seqs), f"ward:alarm in the pump's seq order: {seqs}"
    finally:
        pump.close()


def test_a_nurse_of_another_ward_sees_no_ward_alarm(daphne_server, realtime_broker, realtime_bridge, wards,
                                                    clients):  # fmt: skip
    station = ward_client(daphne_server.url, wards["nurse"], "w1", clients)
    intruder = StreamClient(daphne_server.url, cookie=session_cookie(wards["other"])).connect()
    clients.append(intruder)
    intruder.emit(events.SUBSCRIBE_WARD, {"ward": "w1"})
    refused = intruder.events.wait_for(lambda e, d: e == events.ERROR)
    assert refused["message"] == "Not permitted to watch this ward", refused
    intruder.emit(events.SUBSCRIBE_WARD, {"ward": "*"})  # "every pump I may see": none of w1's
    intruder.events.wait_for(lambda e, d: e == events.WARD_SUMMARY)
    pump = PumpClient(realtime_broker.url, "WA_PUMP_2")
    try:
        start = len(station.events.items)
        pump.publish("error", {"type": "air_in_line", "severity": "high", "message": "Air"})
        alarm_event(station, lambda d: d["alarm"]["key"] == "air_in_line")
        station.events.wait_for(lambda e, d: e == events.WARD_SUMMARY, timeout=10, start=start)  # a tick later
        assert intruder.events.named(events.WARD_ALARM) == [], "another ward's nurse received this ward's alarm"
    finally:
        pump.close()
