"""Rights withdrawn anywhere close or trim a user's sockets on every Daphne at once, through Redis.

The Daphne processes re-check rights every `RIGHTS_RECHECK_S`; here that is 30 s, longer than any wait below,
so whatever closes within the bound was closed by the nudge through Redis (`realtime/cluster.py`), which names
whom to re-read and lets the database decide. The last test measures the time to close with and without Redis
at the default 2 s re-check and logs it.
"""

import logging
import time
from contextlib import contextmanager

import pytest
from django.db import connection

from devices.services.accounts import service_account_create, service_account_revoke
from protocol import events
from realtime.rights_signals import rights_signals_connect
from tests.factories import make_device, make_user, make_ward
from tests.integration.scaleout.conftest import wait_for_listeners
from tests.support.daphne import DaphneServer
from tests.support.redis import RedisServer
from tests.support.sio import BrowserSession, ChannelsClient, StreamClient, session_cookie

logger = logging.getLogger(__name__)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="several Daphne need PostgreSQL (make test-postgres)"),
]
RECHECK_S = "30"  # never within these tests' waits: only a nudge can act in time
BOUND_S = 5.0


@pytest.fixture
def two_daphnes(broker, daphnes_on_redis):
    return daphnes_on_redis(2, MQTT_URL=broker.url, RIGHTS_RECHECK_S=RECHECK_S)


@pytest.fixture
def icu():
    """A ward with one pump."""
    ward = make_ward("icu")
    make_device("PUMP_0001", ward=ward)
    return ward


@contextmanager
def sockets_on_both(servers: list[DaphneServer], redis_server: RedisServer, cookie: str):
    """One socket on each Daphne subscribed to PUMP_0001, once both processes listen on Redis; closed after."""
    sockets = [StreamClient(server.url, cookie=cookie).connect() for server in servers]
    try:
        for client in sockets:
            assert client.subscribe("PUMP_0001")[0] == events.STREAM_SUBSCRIBED
        wait_for_listeners(redis_server.url, len(servers))
        yield sockets
    finally:
        for client in sockets:
            client.close()


def seconds_until_closed(sockets: list[StreamClient], since: float, bound: float = BOUND_S) -> list[float]:
    """How long after `since` each socket was closed by the server (AssertionError past `bound`)."""
    closed = []
    for name, client in zip("AB", sockets, strict=True):
        assert client.disconnected.wait(max(0.0, since + bound - time.monotonic())), (
            f"the socket on Daphne {name} was still open {bound}s after the revocation"
        )
        closed.append(time.monotonic() - since)
    return closed


def test_deactivating_a_user_closes_its_sockets_on_both_processes_at_once(two_daphnes, nudging, icu):
    nurse = make_user("leaver", ward=icu)
    with sockets_on_both(two_daphnes, nudging, session_cookie(nurse)) as sockets:
        revoked_at = time.monotonic()
        nurse.is_active = False
        nurse.save(update_fields=["is_active"])  # as the admin would, in a process that serves no socket
        closed = seconds_until_closed(sockets, revoked_at)
        for client in sockets:
            assert {"message": "Account deactivated"} in client.events.named(events.ERROR)
    logger.info("deactivation closed the sockets on A and B after %.3f s and %.3f s", *closed)


def test_deactivating_a_user_closes_her_endpoint_connections_on_both_processes(two_daphnes, nudging, icu):
    """Processes that serve only Channels endpoint connections (no Socket.IO yet) listen for nudges too."""
    nurse = make_user("integration-user", ward=icu)
    endpoints = [ChannelsClient(server.url, cookie=session_cookie(nurse)) for server in two_daphnes]
    try:
        for endpoint in endpoints:
            endpoint.emit(events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_0001"})
            endpoint.events.wait_for(lambda e, d: e == events.STREAM_SUBSCRIBED, timeout=10)
        wait_for_listeners(nudging.url, 2)
        nurse.is_active = False
        nurse.save(update_fields=["is_active"])
        for name, endpoint in zip("AB", endpoints, strict=True):
            assert endpoint.closed.wait(BOUND_S), f"the endpoint connection on Daphne {name} was still open"
    finally:
        for endpoint in endpoints:
            endpoint.close()


def test_signing_out_on_b_closes_the_sessions_socket_on_a_at_once(two_daphnes, redis_server, icu):
    make_user("signout-nurse", ward=icu)
    browser = BrowserSession(two_daphnes[1].url, "signout-nurse")
    endpoint_on_a = ChannelsClient(two_daphnes[0].url, cookie=browser.cookie_header)
    with sockets_on_both(two_daphnes, redis_server, browser.cookie_header) as sockets:
        signed_out_at = time.monotonic()
        browser.sign_out()  # a page on B: the session's row is deleted there, and B nudges every Daphne
        closed = seconds_until_closed(sockets, signed_out_at)
        assert endpoint_on_a.closed.wait(BOUND_S), "the session's Channels connection on A was still open"
    endpoint_on_a.close()
    logger.info("sign-out on B closed the session's sockets on A and B after %.3f s and %.3f s", *closed)


def test_revoking_a_service_account_closes_its_token_sockets_on_both_processes_at_once(two_daphnes, nudging, icu):
    account, token = service_account_create(name="central monitor", wards=[icu])
    sockets = [StreamClient(server.url, token=token).connect() for server in two_daphnes]
    try:
        wait_for_listeners(nudging.url, 2)
        revoked_at = time.monotonic()
        service_account_revoke(account=account)
        closed = seconds_until_closed(sockets, revoked_at)
    finally:
        for client in sockets:
            client.close()
    logger.info("revoking the token closed its sockets on A and B after %.3f s and %.3f s", *closed)


def test_removing_a_ward_member_drops_its_pumps_on_both_processes_at_once(two_daphnes, nudging, icu):
    nurse = make_user("moved-nurse", ward=icu)
    with sockets_on_both(two_daphnes, nudging, session_cookie(nurse)) as sockets:
        icu.members.remove(nurse)
        dropped = {"message": "No longer permitted to watch this pump", "deviceId": "PUMP_0001"}
        for name, client in zip("AB", sockets, strict=True):
            client.events.wait_for(lambda e, d: e == events.ERROR and d == dropped, timeout=BOUND_S)
            assert not client.disconnected.is_set(), f"the nurse's socket on {name} was closed, not trimmed"


ROUNDS = 3


@pytest.mark.parametrize("with_redis", [True, False], ids=["redis", "recheck-only"])
def test_time_to_close_a_deactivated_users_sockets_at_the_default_recheck(
    broker, redis_server, daphnes_on_redis, settings, icu, with_redis
):
    """Measured, not bounded tighter than BOUND_S: with Redis the nudge, without it the 2 s re-check closes them."""
    settings.REDIS_URL = redis_server.url if with_redis else ""
    rights_signals_connect()
    servers = daphnes_on_redis(2, with_redis=with_redis, MQTT_URL=broker.url)
    slowest = []
    for round_ in range(ROUNDS):
        nurse = make_user(f"timed-{round_}", ward=icu)
        sockets = [StreamClient(server.url, cookie=session_cookie(nurse)).connect() for server in servers]
        for client in sockets:
            assert client.subscribe("PUMP_0001")[0] == events.STREAM_SUBSCRIBED
        if with_redis:
            wait_for_listeners(redis_server.url, 2)
        revoked_at = time.monotonic()
        nurse.is_active = False
        nurse.save(update_fields=["is_active"])
        slowest.append(max(seconds_until_closed(sockets, revoked_at)))
    layout = "Redis nudge" if with_redis else "re-check only"
    times = ", ".join(f"{seconds:.3f}" for seconds in slowest)
    logger.warning("deactivation to both sockets closed (%s, RIGHTS_RECHECK_S=2): %s s", layout, times)
