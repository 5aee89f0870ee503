"""The socket cap and rights withdrawn hold across two Daphne processes on one database.

On PostgreSQL the cap (`SOCKETS_PER_PRINCIPAL`) counts a user's sockets on every process (a `LiveSocket` row
per socket; SQLite runs one Daphne and counts in memory). A sign-out handled by one process closes the
user's sockets on the other too, on either engine (its rights re-check reads the database).
"""

import pytest
import socketio
from django.db import connection

from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.daphne import DaphneServer
from tests.support.sio import BrowserSession, StreamClient, session_cookie, stream_client_once_admitted

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
CAP = 2
BOUND_S = 5.0


@pytest.fixture
def two_daphnes(django_db_setup, django_db_blocker, broker, artifacts_dir):
    servers = [DaphneServer(artifacts_dir, MQTT_URL=broker.url, SOCKETS_PER_PRINCIPAL=str(CAP),
                            RIGHTS_RECHECK_S="0.5") for _ in range(2)]  # fmt: skip
    for server in servers:
        server.start()
    yield servers
    for server in servers:
        server.stop()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite runs one Daphne: the cap counts in memory")
def test_the_socket_cap_counts_a_users_sockets_on_both_processes(two_daphnes):
    daphne_a, daphne_b = two_daphnes
    icu = make_ward("icu")
    nurse, colleague = make_user("cap-nurse", ward=icu), make_user("cap-colleague", ward=icu)
    opened = [StreamClient(daphne_a.url, cookie=session_cookie(nurse)).connect() for _ in range(CAP)]
    try:
        with pytest.raises(socketio.exceptions.ConnectionError, match=f"At most {CAP} connections"):
            StreamClient(daphne_b.url, cookie=session_cookie(nurse)).connect()
        opened.append(StreamClient(daphne_b.url, cookie=session_cookie(colleague)).connect())
        opened.pop(0).close()
        opened.append(stream_client_once_admitted(daphne_b.url, session_cookie(nurse), timeout=BOUND_S))
        with pytest.raises(socketio.exceptions.ConnectionError, match=f"At most {CAP} connections"):
            StreamClient(daphne_a.url, cookie=session_cookie(nurse)).connect()
    finally:
        for client in opened:
            client.close()


def test_signing_out_on_one_process_closes_the_sessions_sockets_on_both(two_daphnes):
    daphne_a, daphne_b = two_daphnes
    icu = make_ward("icu")
    make_device("PUMP_0001", ward=icu)
    make_user("signout-nurse", ward=icu)
    browser = BrowserSession(daphne_a.url, "signout-nurse")
    sockets = [StreamClient(url, cookie=browser.cookie_header).connect() for url in (daphne_a.url, daphne_b.url)]
    try:
        for client in sockets:
            assert client.subscribe("PUMP_0001")[0] == events.STREAM_SUBSCRIBED
        browser.sign_out()
        for name, client in zip("AB", sockets, strict=True):
            assert client.disconnected.wait(BOUND_S), f"the socket on Daphne {name} was still open after {BOUND_S}s"
    finally:
        for client in sockets:
            client.close()
