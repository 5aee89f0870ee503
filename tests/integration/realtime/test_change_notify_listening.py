"""Whether a Daphne listens for PostgreSQL's change notifications is on /metrics (`pg_notify.py`): 1 while it does,
again after the database ended its listening connection; no such series on SQLite, where nothing listens."""

import urllib.request

import pytest
from django.db import connection

from tests.factories import make_user
from tests.support.bridge import wait_until
from tests.support.sio import StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SERIES = "pumpstream_realtime_change_notify_listening"


def listening(daphne_server, cookie: str) -> float | None:
    """The series' value on Daphne's /metrics, None when it is not exposed."""
    request = urllib.request.Request(f"{daphne_server.url}/metrics", headers={"Cookie": cookie})
    body = urllib.request.urlopen(request).read().decode()
    return next((float(line.split()[-1]) for line in body.splitlines() if line.startswith(SERIES + " ")), None)


def listeners() -> set[int]:
    """The backends LISTENing on the change channel (Daphne's listener's connection)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN pumpstream_changes%%'")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the listener runs on PostgreSQL only")
def test_a_daphne_says_it_listens_and_listens_again_after_its_connection_is_ended(daphne_server):
    cookie = session_cookie(make_user("ops-notify", is_staff=True))
    StreamClient(daphne_server.url, cookie=cookie).connect().close()  # the first socket starts the listener
    wait_until(lambda: listening(daphne_server, cookie) == 1 and listeners(), timeout=10,
               message=f"{SERIES} never read 1 with a listener connected")  # fmt: skip
    ended = listeners()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(ended)])
    wait_until(lambda: listeners() - ended and listening(daphne_server, cookie) == 1, timeout=10,
               message="the listener never listened again after the database ended its connection")  # fmt: skip


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite has no listener")
def test_no_listening_series_where_nothing_listens(daphne_server):
    cookie = session_cookie(make_user("ops-notify-sqlite", is_staff=True))
    StreamClient(daphne_server.url, cookie=cookie).connect().close()
    assert listening(daphne_server, cookie) is None, f"{SERIES} exposed on SQLite: an alert would read it as down"
