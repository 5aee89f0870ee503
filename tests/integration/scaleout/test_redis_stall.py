"""A Redis that stalls for longer than the channel layer's 5 s wait does not take the endpoint's connections down.

Every Channels connection waits on Redis in 5 s blocking reads; with redis-py's default 5 s read timeout a stall
(a slow host, a long fork, a loaded machine) ended each read in a timeout that killed the connection ("Exception
inside application: Timeout reading from ..."). The settings give the layer's reads 30 s.
"""

import time

import pytest

from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.sio import ChannelsClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
STALL_S = 7.0  # longer than the 5 s blocking read and redis-py's default 5 s read timeout


def test_the_endpoints_connection_outlives_a_redis_stall(broker, redis_server, daphnes_on_redis):
    icu = make_ward("icu")
    make_device("PUMP_0001", ward=icu)
    make_device("PUMP_0002", ward=icu)
    cookie = session_cookie(make_user("nurse", ward=icu))
    (daphne,) = daphnes_on_redis(1, MQTT_URL=broker.url)
    endpoint = ChannelsClient(daphne.url, cookie=cookie)
    try:
        endpoint.emit(events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_0001"})
        endpoint.events.wait_for(lambda e, d: e == events.STREAM_SUBSCRIBED, timeout=10)
        time.sleep(1.0)  # the connection's blocking read on Redis is under way
        redis_server.pause()
        try:
            closed = endpoint.closed.wait(STALL_S)
        finally:
            redis_server.resume()
        assert not closed, f"the connection was closed while Redis stalled:\n{daphne.log_tail(20)}"
        start = len(endpoint.events.items)
        endpoint.emit(events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_0002"})
        endpoint.events.wait_for(lambda e, d: e == events.STREAM_SUBSCRIBED and d["deviceId"] == "PUMP_0002",
                                 timeout=10, start=start)  # fmt: skip
        time.sleep(2.0)
        assert not endpoint.closed.is_set(), f"the connection died after the stall:\n{daphne.log_tail(20)}"
    finally:
        endpoint.close()
