"""The Redis channel between Daphne processes carries nudges only (`realtime/cluster.py`), unit level."""

import json

import pytest
from asgiref.sync import async_to_sync

from realtime.cluster import RECHECK, SILENCE, ClusterManager, nudge_message


@pytest.fixture
def manager() -> tuple[ClusterManager, list]:
    manager = ClusterManager("redis://:pw@127.0.0.1:1/0")  # never connected: `receive` is fed directly
    received: list = []
    manager.handlers[RECHECK] = lambda names: received.append((RECHECK, names))
    manager.handlers[SILENCE] = lambda names: received.append((SILENCE, names))
    return manager, received


def test_a_nudge_reaches_its_handler_with_its_names(manager):
    cluster, received = manager
    cluster.receive(json.dumps(nudge_message(RECHECK, ["user:5", "session:abc", "user:5"])).encode())
    assert received == [(RECHECK, ["session:abc", "user:5"])]
    assert (cluster.received, cluster.dropped) == (1, 0)


@pytest.mark.parametrize(
    "forged",
    [
        {"method": "emit", "event": "device:alarm", "data": [{"deviceId": "PUMP_0001"}], "room": "device:PUMP_0001",
         "namespace": "/", "host_id": "x"},
        {"method": "enter_room", "sid": "abc", "room": "device:PUMP_0001", "namespace": "/", "host_id": "x"},
        {"method": "disconnect", "sid": "abc", "namespace": "/", "host_id": "x"},
        {"method": RECHECK, "names": "user:5"},
        {"method": RECHECK, "names": ["x" * 81]},
        {"method": RECHECK, "names": [f"user:{n}" for n in range(201)]},
        "not json {",
    ],
)  # fmt: skip
def test_anything_but_a_well_formed_nudge_is_dropped(manager, forged):
    cluster, received = manager
    cluster.receive(forged if isinstance(forged, str) else json.dumps(forged))
    assert received == [], f"a forged message was acted on: {forged}"
    assert cluster.dropped == 1


def test_every_emit_stays_in_this_process(manager, monkeypatch):
    cluster, _ = manager
    published: list = []

    async def publish(data):
        published.append(data)

    monkeypatch.setattr(cluster, "_publish", publish)
    cluster.server = type("Server", (), {"_send_packet": None})()
    async_to_sync(cluster.emit)("device:progress", {"deviceId": "PUMP_0001"}, namespace="/", room="device:PUMP_0001")
    assert published == [], "an emit went to Redis: every other process would deliver it a second time"
