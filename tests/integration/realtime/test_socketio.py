"""The Socket.IO server under a real Daphne, with real python-socketio clients on the websocket transport."""

import pytest
import socketio
from django.conf import settings
from django.db import transaction

from devices.models import Device
from devices.services.accounts import service_account_create, service_account_revoke
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from protocol import events
from realtime.events import INTERNAL_NAMESPACE, INTERNAL_WAKE
from tests.factories import make_device, make_user, make_ward
from tests.support.changes import changes_commit
from tests.support.sio import BrowserSession, StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def icu_nurse():
    icu = make_ward("icu")
    make_device("PUMP_0001", ward=icu)
    make_device("PUMP_9001", ward=make_ward("maternity"))
    return make_user("nurse", ward=icu)


def connected(url: str, clients: list, **kwargs) -> StreamClient:
    client = StreamClient(url, **kwargs)
    clients.append(client)
    return client.connect()


class InternalClient:
    """A stand-in for the bridge: a real client on the "/internal" namespace, which only wakes the publisher."""

    def __init__(self, url: str, secret: str) -> None:
        self.client = socketio.Client(reconnection=False)
        self.client.connect(url, namespaces=[INTERNAL_NAMESPACE], auth={"secret": secret}, transports=["websocket"],
                            wait_timeout=5)  # fmt: skip

    def wake(self, payload: object = None) -> None:
        """Tell Daphne's publisher changes committed (whatever `payload` says, it is not read)."""
        self.client.emit(INTERNAL_WAKE, payload, namespace=INTERNAL_NAMESPACE)

    def close(self) -> None:
        self.client.disconnect()


def test_anonymous_connection_is_refused(daphne_server):
    with pytest.raises(socketio.exceptions.ConnectionError, match="unauthorized"):
        StreamClient(daphne_server.url).connect()


def test_forged_session_cookie_is_refused(daphne_server):
    with pytest.raises(socketio.exceptions.ConnectionError, match="unauthorized"):
        StreamClient(daphne_server.url, cookie=f"{settings.SESSION_COOKIE_NAME}=not-a-session").connect()


def test_service_token_accepted_and_revoked_token_refused(daphne_server, icu_nurse, clients):
    account, token = service_account_create(name="nurse-call", wards=[icu_nurse.wards.get()])
    client = connected(daphne_server.url, clients, token=token)
    kind, reply = client.subscribe("PUMP_0001")
    assert kind == events.STREAM_SUBSCRIBED, f"the integration's token should let it watch its ward: {reply}"
    service_account_revoke(account=account)
    with pytest.raises(socketio.exceptions.ConnectionError, match="unauthorized"):
        StreamClient(daphne_server.url, token=token).connect()


def test_revoking_a_token_in_the_admin_closes_its_open_sockets(daphne_server, icu_nurse, clients):
    make_user("chief", is_staff=True, is_superuser=True)
    account, token = service_account_create(name="integration-engine", wards=[icu_nurse.wards.get()])
    client = connected(daphne_server.url, clients, token=token)
    assert client.subscribe("PUMP_0001")[0] == events.STREAM_SUBSCRIBED
    admin = BrowserSession(daphne_server.url, "chief")
    admin.post("/admin/devices/serviceaccount/", {"action": "revoke", "_selected_action": account.pk},
               expect=(200, 302))  # fmt: skip
    assert client.disconnected.wait(5), "a socket opened with a revoked token must be closed at once"


def test_foreign_origin_is_refused(daphne_server, icu_nurse):
    client = StreamClient(daphne_server.url, cookie=session_cookie(icu_nurse), origin="https://evil.example")
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect()


def test_same_origin_is_accepted(daphne_server, icu_nurse, clients):
    client = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse), origin=daphne_server.url)
    assert client.client.connected


def test_subscribe_replies_with_seq_then_the_snapshot(daphne_server, icu_nurse, clients):
    device = Device.objects.get(device_id="PUMP_0001")
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id="PUMP_0001"), type="occlusion", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE, message="Occlusion")  # fmt: skip
    device.refresh_from_db()
    client = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    kind, reply = client.subscribe("PUMP_0001")
    # the status and the alarm follow: the client knows the snapshot is complete once it has both
    expected = {"deviceId": "PUMP_0001", "room": "device:PUMP_0001", "seq": device.event_seq, "snapshotEvents": 2}
    assert (kind, reply) == (events.STREAM_SUBSCRIBED, expected)
    client.events.wait_for(lambda e, d: e == events.DEVICE_ALARM)
    snapshot = client.events.device_events("PUMP_0001")
    assert [name for name, _ in snapshot] == [events.DEVICE_STATUS, events.DEVICE_ALARM]
    assert all(data["seq"] == device.event_seq for _, data in snapshot), "every snapshot event carries the seq"
    assert snapshot[1][1]["alarm"]["type"] == "occlusion" and snapshot[1][1]["alarm"]["state"] == "active"


def test_pump_of_another_ward_is_refused(daphne_server, icu_nurse, clients):
    client = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    kind, reply = client.subscribe("PUMP_9001")
    assert kind == events.ERROR and "Not permitted" in reply["message"]
    assert not client.events.named(events.DEVICE_STATUS), "no state of a foreign pump may leak"


def test_unknown_device_gets_the_error(daphne_server, icu_nurse, clients):
    client = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    assert client.subscribe("PUMP_NOPE") == (events.ERROR, {"message": "Invalid Device ID",
                                                             "request": events.SUBSCRIBE_DEVICE,
                                                             "deviceId": "PUMP_NOPE"})  # fmt: skip


def test_malformed_requests_get_errors_and_abusers_are_disconnected(daphne_server, icu_nurse, clients):
    client = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    for bad in (None, "PUMP_0001", {"deviceId": "../etc"}, {"deviceId": "x" * 65}, [1, 2]):
        client.emit(events.SUBSCRIBE_DEVICE, bad)
    client.events.wait_for(lambda e, d: e == events.ERROR)
    assert client.client.connected, "a few bad requests get error replies, not a disconnect"
    for _ in range(20):
        client.emit(events.SUBSCRIBE_DEVICE, {"deviceId": "bad id"})
    assert client.disconnected.wait(5), "a client that keeps sending malformed requests is disconnected"
    healthy = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    assert healthy.subscribe("PUMP_0001")[0] == events.STREAM_SUBSCRIBED, "the server is still serving"


def test_wrong_internal_secret_is_refused(daphne_server):
    with pytest.raises(socketio.exceptions.ConnectionError):
        InternalClient(daphne_server.internal_url, "not-the-secret")


def test_users_cannot_use_the_internal_namespace(daphne_server, icu_nurse):
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(daphne_server.url, namespaces=[INTERNAL_NAMESPACE], transports=["websocket"],
                       headers={"Cookie": session_cookie(icu_nurse)}, wait_timeout=5)  # fmt: skip


def test_changes_committed_elsewhere_arrive_in_order_and_unsubscribe_stops_them(daphne_server, icu_nurse, clients):
    client = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    _, subscribed = client.subscribe("PUMP_0001")
    seq = subscribed["seq"]
    bridge = InternalClient(daphne_server.internal_url, settings.BRIDGE_INTERNAL_SECRET)
    try:
        for first in range(1, 51, 10):  # five commits of another process, each followed by a wake
            changes_commit(
                "PUMP_0001", [(events.DEVICE_PROGRESS, {"progress": {"n": n}}) for n in range(first, first + 10)]
            )
            bridge.wake()
        client.events.wait_for(lambda e, d: e == events.DEVICE_PROGRESS and d["seq"] == seq + 50)
        live = [d["seq"] for e, d in client.events.device_events("PUMP_0001") if e == events.DEVICE_PROGRESS]
        assert live == list(range(seq + 1, seq + 51)), "events arrive in seq order, each seq once"
        client.emit(events.UNSUBSCRIBE_DEVICE, {"deviceId": "PUMP_0001"})
        client.events.wait_for(lambda e, d: True, start=len(client.events.items) - 1)
        marker = StreamClient(daphne_server.url, cookie=session_cookie(icu_nurse))
        clients.append(marker.connect())
        marker.subscribe("PUMP_0001")
        changes_commit("PUMP_0001", [(events.DEVICE_PROGRESS, {"progress": {}})])
        bridge.wake()
        marker.events.wait_for(lambda e, d: d.get("seq") == seq + 51 and e == events.DEVICE_PROGRESS)
        assert not [d for e, d in client.events.items if d and d.get("seq") == seq + 51], "unsubscribed"
    finally:
        bridge.close()


def test_a_fresh_snapshot_holds_a_change_committed_elsewhere(daphne_server, icu_nurse, clients):
    client = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    with transaction.atomic():
        alarm = alarm_raise(device=device_lock(device_id="PUMP_0001"), type="occlusion",
                            priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE)  # fmt: skip
    client.subscribe("PUMP_0001")
    alarm_acknowledge(alarm_id=alarm.pk, user=icu_nurse)
    # Committed in the test process (no sink here): the database is the truth a new subscriber reads.
    fresh = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    fresh.subscribe("PUMP_0001")
    alarm_event = fresh.events.wait_for(lambda e, d: e == events.DEVICE_ALARM)
    assert alarm_event["alarm"]["acknowledged"]["by"] == "nurse"
