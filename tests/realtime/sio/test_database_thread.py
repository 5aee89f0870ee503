"""`/readyz`'s probe of the realtime side's database thread reaches that thread, not the request's own.

Under Daphne a Django request runs its sync code on a thread of its own (`ThreadSensitiveContext`), with a connection
of its own; Socket.IO handlers, ward feeds and escalations read on asgiref's one shared thread. `/readyz` said ok
while that thread's connection was dead (review 38, F1): a probe run in the request's context would ask the wrong
connection.
"""

import asyncio
import threading

from asgiref.sync import ThreadSensitiveContext, sync_to_async

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
