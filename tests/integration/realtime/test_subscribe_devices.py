"""`subscribe:devices` (contract v1.1): one request for many pumps, as if subscribed one by one, under a real
Daphne with a real python-socketio client and a plain WebSocket client of the Channels endpoint."""

import pytest

from devices.models import Device
from protocol import events
from realtime.sio.limits import MAX_DEVICE_SUBSCRIPTIONS
from tests.factories import make_device, make_user, make_ward
from tests.support.changes import changes_commit
from tests.support.sio import ChannelsClient, StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ICU_PUMPS = ["PUMP_0001", "PUMP_0002", "PUMP_0003"]


@pytest.fixture
def icu_nurse():
    icu = make_ward("icu")
    for device_id in ICU_PUMPS:
        make_device(device_id, ward=icu)
    make_device("PUMP_9001", ward=make_ward("maternity"))
    return make_user("nurse", ward=icu)


def subscribed_seqs(log, device_ids: list[str]) -> dict[str, int]:
    """Wait for a `stream:subscribed` of each pump; their `seq`s."""
    for device_id in device_ids:
        log.wait_for(lambda e, d, device_id=device_id: e == events.STREAM_SUBSCRIBED and d["deviceId"] == device_id)
    return {d["deviceId"]: d["seq"] for d in log.named(events.STREAM_SUBSCRIBED)}


def test_one_request_subscribes_each_permitted_pump_and_refuses_the_others_by_name(daphne_server, icu_nurse, clients):
    client = StreamClient(daphne_server.url, cookie=session_cookie(icu_nurse)).connect()
    clients.append(client)
    asked = [*ICU_PUMPS, "PUMP_9001", "PUMP_NONE", "PUMP_0001"]  # a foreign pump, an unknown one, a duplicate
    client.emit(events.SUBSCRIBE_DEVICES, {"deviceIds": asked})
    seqs = subscribed_seqs(client.events, ICU_PUMPS)
    client.events.wait_for(lambda e, d: e == events.ERROR and d.get("deviceId") == "PUMP_NONE")
    errors = {d["deviceId"]: d for d in client.events.named(events.ERROR)}
    assert errors == {
        "PUMP_9001": {"message": "Not permitted to watch this pump", "request": events.SUBSCRIBE_DEVICES,
                      "deviceId": "PUMP_9001"},
        "PUMP_NONE": {"message": "Invalid Device ID", "request": events.SUBSCRIBE_DEVICES, "deviceId": "PUMP_NONE"},
    }  # fmt: skip
    assert len(client.events.named(events.STREAM_SUBSCRIBED)) == len(ICU_PUMPS), "one stream:subscribed per pump"
    assert not client.events.device_events("PUMP_9001"), "no state of a foreign pump may leak"
    for device_id in ICU_PUMPS:  # each pump's snapshot, as after its own subscribe:device
        client.events.wait_for(
            lambda e, d, device_id=device_id: e == events.DEVICE_STATUS and d["deviceId"] == device_id
        )
        snapshot = client.events.device_events(device_id)
        assert snapshot[0][0] == events.DEVICE_STATUS and {d["seq"] for _, d in snapshot} == {seqs[device_id]}

    changes_commit("PUMP_0003", [(events.DEVICE_PROGRESS, {"progress": {"n": 1}})])
    live = client.events.wait_for(lambda e, d: e == events.DEVICE_PROGRESS and d["deviceId"] == "PUMP_0003")
    assert live["seq"] == seqs["PUMP_0003"] + 1 == Device.objects.get(device_id="PUMP_0003").event_seq


def test_malformed_lists_are_strikes_and_the_connection_keeps_serving(daphne_server, icu_nurse, clients):
    client = StreamClient(daphne_server.url, cookie=session_cookie(icu_nurse)).connect()
    clients.append(client)
    too_many = [f"PUMP_{n:04d}" for n in range(MAX_DEVICE_SUBSCRIPTIONS + 1)]
    for bad in ({"deviceIds": "PUMP_0001"}, {"deviceIds": []}, {"deviceIds": ["bad id"]}, {"deviceIds": too_many},
                {"deviceIds": [{"deviceId": "PUMP_0001"}]}, ["PUMP_0001"]):  # fmt: skip
        client.emit(events.SUBSCRIBE_DEVICES, bad)
    client.events.wait_for(lambda e, d: len(client.events.named(events.ERROR)) == 6)
    messages = {d["message"] for d in client.events.named(events.ERROR)}
    assert messages == {f"Expected {{deviceIds: [...]}} with 1 to {MAX_DEVICE_SUBSCRIPTIONS} valid device ids"}
    assert not client.events.named(events.STREAM_SUBSCRIBED), "a malformed list subscribes nothing"
    client.emit(events.SUBSCRIBE_DEVICES, {"deviceIds": ["PUMP_0002"]})
    subscribed_seqs(client.events, ["PUMP_0002"])
    assert client.client.connected


def test_the_channels_endpoint_takes_the_same_request(daphne_server, icu_nurse):
    client = ChannelsClient(daphne_server.url, cookie=session_cookie(icu_nurse))
    try:
        client.emit(events.SUBSCRIBE_DEVICES, {"deviceIds": ["PUMP_0001", "PUMP_0002"]})
        seqs = subscribed_seqs(client.events, ["PUMP_0001", "PUMP_0002"])
        changes_commit("PUMP_0001", [(events.DEVICE_PROGRESS, {"progress": {"n": 2}})])
        live = client.events.wait_for(lambda e, d: e == events.DEVICE_PROGRESS and d["deviceId"] == "PUMP_0001")
        assert live["seq"] == seqs["PUMP_0001"] + 1
    finally:
        client.close()


def test_a_pump_unsubscribed_while_its_snapshot_is_read_sends_nothing_more(daphne_server, icu_nurse, clients):
    """python-socketio runs each request as its own task: an `unsubscribe:device` handled while the pump's
    snapshot is being read must win over the join that follows the read. Joined anyway, the socket carried the
    pump's events without the pump counting toward the cap or being re-checked by `rights` (a pump whose ward
    was taken away kept streaming)."""
    client = StreamClient(daphne_server.url, cookie=session_cookie(icu_nurse)).connect()
    clients.append(client)
    client.subscribe("PUMP_0002")  # the pumps the nurse may watch are now read: the next request reads none
    for _ in range(5):  # each round: subscribed and unsubscribed before its snapshot is read
        client.emit(events.SUBSCRIBE_DEVICES, {"deviceIds": ["PUMP_0001"]})
        client.emit(events.UNSUBSCRIBE_DEVICE, {"deviceId": "PUMP_0001"})
    client.emit(events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_0003"})  # handled after those: its reply follows them
    client.events.wait_for(lambda e, d: e == events.STREAM_SUBSCRIBED and d["deviceId"] == "PUMP_0003")
    start = len(client.events.items)
    changes_commit("PUMP_0001", [(events.DEVICE_PROGRESS, {"progress": {"n": 1}})])
    changes_commit("PUMP_0003", [(events.DEVICE_PROGRESS, {"progress": {"n": 1}})])
    client.events.wait_for(lambda e, d: e == events.DEVICE_PROGRESS and d["deviceId"] == "PUMP_0003", start=start)
    after = [e for e, d in client.events.items[start:] if isinstance(d, dict) and d.get("deviceId") == "PUMP_0001"]
    assert not after, f"an unsubscribed pump's events still reached the socket: {after}"


def test_a_long_polling_client_gets_many_snapshots_flushed_in_one_response(daphne_server, clients):
    """Engine.IO long-polling (the page's fallback): the server answers a poll with everything queued for the
    client, here 12 pumps' `stream:subscribed` and status at once; the client takes them all and stays."""
    ward = make_ward("icu")
    pumps = [f"POLL_{number:02d}" for number in range(12)]
    for device_id in pumps:
        make_device(device_id, ward=ward)
    nurse = make_user("nurse", ward=ward)
    client = StreamClient(daphne_server.url, cookie=session_cookie(nurse), transport="polling").connect()
    clients.append(client)
    client.emit(events.SUBSCRIBE_DEVICES, {"deviceIds": pumps})
    seqs = subscribed_seqs(client.events, pumps)
    changes_commit("POLL_11", [(events.DEVICE_PROGRESS, {"progress": {"n": 1}})])
    live = client.events.wait_for(lambda e, d: e == events.DEVICE_PROGRESS and d["deviceId"] == "POLL_11")
    assert live["seq"] == seqs["POLL_11"] + 1
    assert not client.disconnected.is_set(), "the polling client was cut off by a response of many packets"
