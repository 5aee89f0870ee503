"""The realtime side's database road (`realtime/sio/database.py`): a connection the server ended is replaced, and
`/readyz`'s probe reaches that thread, not the request's own.

Under Daphne a Django request runs its sync code on a thread of its own (`ThreadSensitiveContext`), with a connection
of its own; Socket.IO handlers, ward feeds and escalations read on asgiref's one shared thread. `/readyz` said ok
while that thread's connection was dead (review 38, F1): a probe run in the request's context would ask the wrong
connection.
"""

import asyncio
import threading

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.db import DatabaseError, connection

from realtime.sio import database


def test_the_readiness_probe_runs_where_the_socketio_handlers_read_not_on_the_requests_thread(monkeypatch):
    probed: list[int] = []
    monkeypatch.setattr(database, "_select_one", lambda: probed.append(threading.get_ident()))

    async def main() -> tuple[int, int, bool]:
        handlers = await database.db_thread(threading.get_ident)()  # as a Socket.IO handler's read
        async with ThreadSensitiveContext():  # as Django's handler serves `/readyz`
            request = await sync_to_async(threading.get_ident)()
            answered = await database.db_thread_answers(5.0)
        return handlers, request, answered

    handlers, request, answered = asyncio.run(main())
    assert answered, "the probe did not answer"
    assert request != handlers, "the test's request context shared the handlers' thread: it proves nothing"
    assert probed == [handlers], (
        f"the probe ran on thread {probed}, the Socket.IO handlers read on {handlers} (the request's: {request})"
    )


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate(pid: int) -> None:
    """What a PostgreSQL restart or failover does to the realtime thread's connection, from this test's own."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def _on_the_road(function):
    return asyncio.run(database.db_thread(function)())


@pytest.fixture
def road_closed_after():
    """The road's thread's connection closed after the test (else it holds the test database open)."""
    yield
    _on_the_road(lambda: connection.close())


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL ends a backend; SQLite has none")
def test_a_connection_the_server_ended_while_idle_is_replaced_before_the_next_read(monkeypatch, road_closed_after):
    """An idle connection is asked before a read (the threshold made 0 here: any pause counts as idle)."""
    monkeypatch.setattr(database, "IDLE_CHECK_S", 0.0)
    before = _on_the_road(_backend_pid)
    _terminate(before)
    after = _on_the_road(_backend_pid)
    assert after != before, "the read after the server ended the connection did not get a fresh one"


@pytest.mark.django_db
@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL ends a backend; SQLite has none")
def test_a_connection_the_server_ended_while_in_use_fails_one_read_only(monkeypatch, road_closed_after):
    """One in steady use is not asked before each read: its first read fails, and it is closed for the next."""
    monkeypatch.setattr(database, "IDLE_CHECK_S", 3600.0)
    before = _on_the_road(_backend_pid)
    _terminate(before)
    with pytest.raises(DatabaseError):
        _on_the_road(_backend_pid)
    after = _on_the_road(_backend_pid)  # raised for good before review 38's fix (F1)
    assert after != before, "the connection that failed was kept"
