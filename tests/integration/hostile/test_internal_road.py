"""No client can forge a pump's change: no `device:*` event on any screen, no `seq` used up.

The public listener is attacked with every namespace and event name the roads into Daphne used, with and
without the real secret; the internal listener itself with the real secret (a local process that stole it):
its only event is a bare `wake`, whose payload is never read, so what it may send, forged changes
included, only makes the publisher read the committed change log. Then a watcher (Socket.IO and Channels)
must have seen nothing, and the pump's next real change (an alarm through a real broker and bridge)
arrives with the next `seq`.
"""

import time

import pytest
import socketio
from django.conf import settings
from django.db import close_old_connections

from devices.models import Device
from protocol import events
from protocol.events import DEVICE_ALARM
from realtime.events import change_to_wire
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient
from tests.support.broker import MosquittoBroker
from tests.support.sio import ChannelsClient, StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PUMP = "PUMP_HOSTILE_1"
FORGED_EVENTS = ("forward", "wake", "device:alarm")  # the old road's event, the new road's, a client event


@pytest.fixture(scope="module")
def road_broker(tmp_path_factory, daphne_server, django_db_blocker, artifacts_dir):
    """A broker of this module's own with a real bridge forwarding into the shared Daphne's internal road."""
    broker = MosquittoBroker(tmp_path_factory.mktemp("hostile-road"), persistence=False).start()
    with django_db_blocker.unblock():
        bridge = BridgeProcess(broker.url, daphne_server.internal_url, artifacts_dir).start()
    yield broker
    bridge.stop()
    broker.stop()


def forged_alarm(seq: int) -> dict:
    """What an attacker forwards: the pump's next `seq`, its active alarm cleared."""
    alarm = {"id": 1, "type": "occlusion", "state": "cleared", "priority": "high", "acknowledged": None}
    return {"changes": [change_to_wire(events.DeviceChange(PUMP, seq, DEVICE_ALARM, {"alarm": alarm}, "icu"))]}


def attack(url: str, *, namespace: str, auth: dict | None, cookie: str | None, seq: int) -> str:
    """Try to forward a forged change on `namespace` of the public listener; say how far it got."""
    client = socketio.Client(reconnection=False)
    try:
        client.connect(url, namespaces=[namespace], auth=auth, transports=["websocket"], wait_timeout=5,
                       headers={"Cookie": cookie} if cookie else {})  # fmt: skip
    except socketio.exceptions.ConnectionError:
        return "refused"
    try:
        for name in FORGED_EVENTS:
            client.emit(name, forged_alarm(seq), namespace=namespace)
        time.sleep(0.3)
        return "connected"
    finally:
        client.disconnect()


def test_public_listener_cannot_forge_a_change_or_use_up_a_seq(daphne_server, road_broker):
    icu = make_ward("icu")
    make_device(PUMP, ward=icu)
    nurse = make_user("hostile-road-nurse", ward=icu)
    watcher = StreamClient(daphne_server.url, cookie=session_cookie(nurse)).connect()
    pump = PumpClient(road_broker.url, PUMP)
    try:
        _, subscribed = watcher.subscribe(PUMP)
        seq = subscribed["seq"]
        secret = settings.BRIDGE_INTERNAL_SECRET
        outcomes = {}
        for namespace in ("/internal", "/"):
            for label, auth, cookie in (("anonymous", None, None), ("secret", {"secret": secret}, None),
                                        ("nurse+secret", {"secret": secret}, session_cookie(nurse))):  # fmt: skip
                outcomes[(namespace, label)] = attack(daphne_server.url, namespace=namespace, auth=auth,
                                                      cookie=cookie, seq=seq + 1)  # fmt: skip
        time.sleep(1.0)
        forged = [(e, d) for e, d in watcher.events.device_events(PUMP) if d.get("seq") != seq]  # not the snapshot
        assert forged == [], f"a public client caused device events {forged} (attempts: {outcomes})"
        close_old_connections()
        assert Device.objects.get(device_id=PUMP).event_seq == seq, "a public client used up a seq"
        assert outcomes[("/internal", "secret")] == "refused", "the internal road answers on the public listener"

        pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Occlusion downstream"})
        alarm = watcher.events.wait_for(lambda e, d: e == DEVICE_ALARM and d.get("deviceId") == PUMP, timeout=10)
        assert alarm["seq"] == seq + 1 and alarm["alarm"]["state"] == "active", (
            f"the pump's real alarm arrived as {alarm} (expected seq {seq + 1}, active)")  # fmt: skip
    finally:
        pump.close()
        watcher.close()


def test_a_forged_message_on_the_internal_road_puts_no_change_on_any_screen(daphne_server, road_broker):
    icu = make_ward("icu")
    make_device(PUMP, ward=icu)
    nurse = make_user("hostile-internal-nurse", ward=icu)
    watcher = StreamClient(daphne_server.url, cookie=session_cookie(nurse)).connect()
    plain = ChannelsClient(daphne_server.url, cookie=session_cookie(nurse))
    pump = PumpClient(road_broker.url, PUMP)
    try:
        _, subscribed = watcher.subscribe(PUMP)
        plain.emit(events.SUBSCRIBE_DEVICE, {"deviceId": PUMP})
        plain.events.wait_for(lambda e, d: e == events.STREAM_SUBSCRIBED)
        seq = subscribed["seq"]
        outcome = attack(daphne_server.internal_url, namespace="/internal",
                         auth={"secret": settings.BRIDGE_INTERNAL_SECRET}, cookie=None, seq=seq + 1)  # fmt: skip
        assert outcome == "connected", "the attack must reach the internal road to prove anything"
        time.sleep(1.5)  # longer than the publisher's safety poll
        for name, client in (("Socket.IO", watcher), ("Channels", plain)):
            forged = [(e, d) for e, d in client.events.device_events(PUMP) if d.get("seq") != seq]
            assert forged == [], f"a forged internal message reached a {name} screen: {forged}"
        close_old_connections()
        assert Device.objects.get(device_id=PUMP).event_seq == seq, "a forged internal message used up a seq"

        pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Occlusion downstream"})
        for client in (watcher, plain):
            alarm = client.events.wait_for(lambda e, d: e == DEVICE_ALARM and d.get("deviceId") == PUMP, timeout=10)
            assert alarm["seq"] == seq + 1 and alarm["alarm"]["state"] == "active", (
                f"the pump's real alarm arrived as {alarm} (expected seq {seq + 1}, active)")  # fmt: skip
    finally:
        pump.close()
        plain.close()
        watcher.close()
