"""A ward silenced at a station on Daphne B is announced at once to the ward's stations on Daphne A (Redis).

The ward feeds re-read the silences every `WARD_FEED_TICK_S`; here 30 s on both processes, longer than the test
waits, so the silence reaches A's station through B's nudge on Redis or not at all.
"""

import logging
import time

import pytest
from django.db import connection

from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.integration.scaleout.conftest import wait_for_listeners
from tests.support.sio import StreamClient, session_cookie

logger = logging.getLogger(__name__)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="several Daphne need PostgreSQL (make test-postgres)"),
]
BOUND_S = 5.0


def test_a_silence_on_b_reaches_the_wards_station_on_a_at_once(broker, redis_server, daphnes_on_redis):
    ward = make_ward("s1")
    make_device("SIL_PUMP_1", ward=ward)
    stations = [session_cookie(make_user(name, ward=ward)) for name in ("s1-nurse-a", "s1-nurse-b")]
    servers = daphnes_on_redis(2, MQTT_URL=broker.url, WARD_FEED_TICK_S="30")
    clients = [StreamClient(server.url, cookie=cookie) for server, cookie in zip(servers, stations, strict=True)]
    try:
        for client in clients:
            client.connect()
        for client in clients:
            client.emit(events.SUBSCRIBE_WARD, {"ward": "s1"})
            client.events.wait_for(lambda e, d: e == events.WARD_SUMMARY, timeout=10)
        wait_for_listeners(redis_server.url, 2)
        on_a, on_b = clients
        silenced_at = time.monotonic()
        on_b.emit(
            events.SILENCE_WARD,
            {"ward": "s1", "seconds": 60, "reason": "Attending bed 1", "seen": on_b.events.alarms_shown()},
        )
        silence = on_a.events.wait_for(lambda e, d: e == events.WARD_SILENCE and d["active"], timeout=BOUND_S)
        seconds = time.monotonic() - silenced_at
    finally:
        for client in clients:
            client.close()
    assert silence["ward"] == "s1" and silence["by"] == "s1-nurse-b", silence
    logger.info("a silence on B reached the ward's station on A after %.3f s", seconds)
