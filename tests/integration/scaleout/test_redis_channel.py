"""What Redis lets through between the Daphne processes: nothing without its password, and with it only nudges.

A message on the Socket.IO channel reaches every Daphne, so Redis requires a password (`deploy/redis/`); and a
message forged by someone who has it is still no event for a browser: `ClusterManager` acts on nudges only.
"""

import json
import time

import pytest
import redis
import socketio
from django.db import connection

from protocol import events
from realtime.cluster import CHANNEL
from tests.factories import make_device, make_user, make_ward
from tests.integration.scaleout.conftest import wait_for_listeners
from tests.support.daphne import DaphneServer
from tests.support.sio import ChannelsClient, StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
CAP = 2
FORGED_ALARM = {"deviceId": "PUMP_0001", "seq": 999, "alarm": {"id": 1, "type": "forged", "priority": "high"}}
DROPPED = "dropped a message on the Redis channel"


def forged_emit(room: str) -> str:
    """python-socketio's own cross-process `emit` message, as a stock AsyncRedisManager would act on it."""
    message = {"method": "emit", "event": events.DEVICE_ALARM, "data": [FORGED_ALARM], "binary": False}
    return json.dumps({**message, "namespace": "/", "room": room, "skip_sid": None, "callback": None, "host_id": "x"})


def test_without_the_password_redis_refuses_to_publish_or_listen(redis_server):
    anonymous = redis.Redis.from_url(redis_server.url_without_password, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.publish(CHANNEL, forged_emit("device:PUMP_0001"))
    with pytest.raises(redis.AuthenticationError):
        anonymous.pubsub().subscribe(CHANNEL)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(redis_server.url.replace(redis_server.password, "wrong-password")).ping()


def all_read(servers: list[DaphneServer]) -> bool:
    """Whether every Daphne logged that it dropped a message on the channel."""
    return all(DROPPED in server.log_path.read_text() for server in servers)


def forged_arrived(client: StreamClient) -> bool:
    return any(d.get("seq") == FORGED_ALARM["seq"] for d in client.events.named(events.DEVICE_ALARM))


def test_pumpstreams_redis_user_may_touch_only_pumpstreams_keys_and_channels(redis_server):
    """deploy/redis/pumpstream.conf's ACL, as the tests' Redis runs it: no admin command, no other key or channel."""
    pumpstream = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    assert pumpstream.publish(CHANNEL, "{}") >= 0
    with pytest.raises(redis.exceptions.NoPermissionError):
        pumpstream.config_get("requirepass")
    with pytest.raises(redis.exceptions.NoPermissionError):
        pumpstream.flushall()
    with pytest.raises(redis.exceptions.NoPermissionError):
        pumpstream.set("someone-elses-key", "1")
    with pytest.raises(redis.exceptions.NoPermissionError):
        pumpstream.publish("someone-elses-channel", "{}")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="several Daphne need PostgreSQL (make test-postgres)")
def test_a_forged_emit_on_the_channel_reaches_no_socket(broker, redis_server, daphnes_on_redis):
    icu = make_ward("icu")
    make_device("PUMP_0001", ward=icu)
    nurse = make_user("nurse", ward=icu)
    servers = daphnes_on_redis(2, MQTT_URL=broker.url)
    sockets = [StreamClient(server.url, cookie=session_cookie(nurse)) for server in servers]
    try:
        for client in sockets:
            client.connect()
        for client in sockets:
            assert client.subscribe("PUMP_0001")[0] == events.STREAM_SUBSCRIBED
        wait_for_listeners(redis_server.url, 2)
        redis.Redis.from_url(redis_server.url).publish(CHANNEL, forged_emit("device:PUMP_0001"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (all_read(servers) or any(map(forged_arrived, sockets))):
            time.sleep(0.05)
        for name, client in zip("AB", sockets, strict=True):
            assert not forged_arrived(client), f"the forged alarm reached the socket on Daphne {name}"
        assert all_read(servers), "a Daphne never read the forged message"
    finally:
        for client in sockets:
            client.close()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="several Daphne need PostgreSQL (make test-postgres)")
def test_the_socket_cap_counts_both_transports_on_both_processes(broker, daphnes_on_redis):
    nurse = make_user("cap-nurse", ward=make_ward("icu"))
    servers = daphnes_on_redis(2, MQTT_URL=broker.url, SOCKETS_PER_PRINCIPAL=str(CAP))
    daphne_a, daphne_b = servers
    opened_a = StreamClient(daphne_a.url, cookie=session_cookie(nurse)).connect()
    endpoint_b = ChannelsClient(daphne_b.url, cookie=session_cookie(nurse))
    try:
        endpoint_b.emit(events.SUBSCRIBE_WARD, {"ward": "icu"})
        endpoint_b.events.wait_for(lambda e, d: e == events.WARD_SUMMARY, timeout=10)  # admitted and serving
        for server in servers:
            with pytest.raises(socketio.exceptions.ConnectionError, match=f"At most {CAP} connections"):
                StreamClient(server.url, cookie=session_cookie(nurse)).connect()
    finally:
        opened_a.close()
        endpoint_b.close()
