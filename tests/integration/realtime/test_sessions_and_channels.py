"""Sign-out closes sockets; the Channels endpoint speaks the same protocol; ward feeds coalesce."""

import pytest
import websocket

from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.integration.realtime.test_socketio import InternalClient, connected
from tests.support.changes import changes_commit
from tests.support.sio import BrowserSession, ChannelsClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def icu_nurse():
    icu = make_ward("icu")
    make_device("PUMP_0001", ward=icu)
    make_device("PUMP_0002", ward=icu)
    make_device("PUMP_9001", ward=make_ward("maternity"))
    return make_user("nurse", ward=icu)


@pytest.fixture
def clients():
    opened: list = []
    yield opened
    for client in opened:
        client.close()


def test_sign_out_closes_the_socket(daphne_server, icu_nurse, clients):
    browser = BrowserSession(daphne_server.url, "nurse")
    client = connected(daphne_server.url, clients, cookie=browser.cookie_header)
    other = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    assert browser.sign_out() == 200
    assert client.disconnected.wait(5), "the signed-out session's socket must be closed"
    assert other.client.connected, "another session of the same user keeps its socket"


def test_channels_endpoint_refuses_anonymous_and_foreign_origin(daphne_server, icu_nurse):
    url = daphne_server.url.replace("http://", "ws://") + "/ws/devices/"
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(url, timeout=5)
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(url, timeout=5, header=[f"Cookie: {session_cookie(icu_nurse)}"],
                                    origin="https://evil.example")  # fmt: skip


def test_a_websocket_to_any_other_path_is_refused_quietly(daphne_server):
    """Channels' router raised for a path it has no route for, and Daphne logged a traceback per connection: anyone,
    signed in or not, could write tracebacks as fast as they could open sockets (review 15). Now refused, logged
    as nothing worse than the access line."""
    base = daphne_server.url.replace("http://", "ws://")
    before = daphne_server.log_path.read_text(errors="replace").count("Traceback")
    for path in ("/ws/anything-else/", "/ws/devices/x/", "/", "/admin/"):
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(base + path, timeout=5)
    with pytest.raises(websocket.WebSocketBadStatusException):  # an answered request after them: their logs are out
        websocket.create_connection(base + "/ws/devices/", timeout=5)
    log = daphne_server.log_path.read_text(errors="replace")
    assert log.count("Traceback") == before, f"Daphne logged a traceback:\n{daphne_server.log_tail()}"
    assert "No route found" not in log


def test_channels_endpoint_delivers_the_same_events(daphne_server, icu_nurse, clients, settings):
    sio_client = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    plain = ChannelsClient(daphne_server.url, cookie=session_cookie(icu_nurse))
    clients.append(plain)
    _, subscribed = sio_client.subscribe("PUMP_0001")
    plain.emit(events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_0001"})
    plain_subscribed = plain.events.wait_for(lambda e, d: e == events.STREAM_SUBSCRIBED)
    assert plain_subscribed == subscribed
    seq = subscribed["seq"]
    bridge = InternalClient(daphne_server.internal_url, settings.BRIDGE_INTERNAL_SECRET)
    try:
        changes_commit("PUMP_0001", [(events.DEVICE_STATUS, {"status": {"n": n}}) for n in (1, 2, 3)])
        bridge.wake()
        for log in (sio_client.events, plain.events):
            log.wait_for(lambda e, d: d.get("seq") == seq + 3)
    finally:
        bridge.close()
    assert plain.events.device_events("PUMP_0001") == sio_client.events.device_events("PUMP_0001"), (
        "both endpoints deliver the same snapshot and events with the same payloads"
    )
    plain.emit(events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_9001"})
    assert "Not permitted" in plain.events.wait_for(lambda e, d: e == events.ERROR)["message"]
    plain.socket.send("not json")
    plain.events.wait_for(lambda e, d: e == events.ERROR and "Unknown request" in d["message"])


def test_channels_endpoint_accepts_a_bearer_token(daphne_server, icu_nurse, clients):
    from devices.services.accounts import service_account_create

    _, token = service_account_create(name="engine", all_wards=True)
    plain = ChannelsClient(daphne_server.url, token=token)
    clients.append(plain)
    plain.emit(events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_9001"})
    assert plain.events.wait_for(lambda e, d: e == events.STREAM_SUBSCRIBED)["deviceId"] == "PUMP_9001"


def test_ward_feed_sends_one_coalesced_summary_with_only_changed_pumps(daphne_server, icu_nurse, clients, settings):
    client = connected(daphne_server.url, clients, cookie=session_cookie(icu_nurse))
    client.emit(events.SUBSCRIBE_WARD, {"ward": "*"})
    first = client.events.wait_for(lambda e, d: e == events.WARD_SUMMARY)
    assert sorted(p["deviceId"] for p in first["pumps"]) == ["PUMP_0001", "PUMP_0002"], "only the nurse's ward"
    start = len(client.events.items)
    make_device("PUMP_0042", ward=make_ward("icu"))
    bridge = InternalClient(daphne_server.internal_url, settings.BRIDGE_INTERNAL_SECRET)
    try:
        changes_commit("PUMP_0042", [(events.DEVICE_PROGRESS, {"progress": {}}) for n in range(30)])
        bridge.wake()
        update = client.events.wait_for(lambda e, d: e == events.WARD_SUMMARY, start=start, timeout=10)
    finally:
        bridge.close()
    assert [p["deviceId"] for p in update["pumps"]] == ["PUMP_0042"], "only the pump that changed"
    summaries = [d for e, d in client.events.items[start:] if e == events.WARD_SUMMARY]
    assert len(summaries) == 1, f"30 changes coalesce into one summary, got {len(summaries)}"
    client.emit(events.SUBSCRIBE_WARD, {"ward": "maternity"})
    assert "Not permitted" in client.events.wait_for(lambda e, d: e == events.ERROR)["message"]
