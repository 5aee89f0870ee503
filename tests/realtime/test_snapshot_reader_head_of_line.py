"""On PostgreSQL one pump's row lock held elsewhere held back every pump's snapshot in this Daphne (review 10).

`read_snapshots` on PostgreSQL locks each pump (`_one_locked` -> `device_lock`, FOR UPDATE), pump by pump, on the one
snapshot-reader thread (`SnapshotReads`, `max_workers=1`). While pump A's lock is held by another transaction (a long
admin transaction, an idle-in-transaction session, a slow batch), a subscriber of pump B — not locked by anyone —
gets no `stream:subscribed` either: B's read queues behind A's.
"""

import asyncio
import threading

import pytest
from django.db import connection, transaction

from devices.services.changes import device_lock
from realtime.sio.snapshot import read_snapshots
from realtime.sio.snapshot_reads import SnapshotReads
from tests.factories import make_device

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's row locks"),
]


def test_a_pump_locked_elsewhere_does_not_hold_back_another_pumps_snapshot():
    make_device("LOCKED")
    make_device("FREE")
    held, release = threading.Event(), threading.Event()

    def long_transaction() -> None:
        try:
            with transaction.atomic():
                device_lock(device_id="LOCKED")
                held.set()
                release.wait(15)
        finally:
            held.set()
            connection.close()

    holder = threading.Thread(target=long_transaction)
    holder.start()
    assert held.wait(10)
    reads = SnapshotReads(read_snapshots)  # its own thread, as in Daphne (not the test's transaction)
    outcome: list[str] = []

    async def main() -> None:
        locked = asyncio.ensure_future(reads.read("LOCKED"))
        await asyncio.sleep(0.2)  # its batch is being read (waiting for the lock)
        try:
            snapshot = await asyncio.wait_for(reads.read("FREE"), timeout=3)
            outcome.append(f"FREE read at seq {snapshot.seq}")
        except TimeoutError:
            outcome.append("FREE not read within 3 s")
        release.set()
        await locked
        await reads.read("FREE")  # let its batch finish before the loop closes
        await asyncio.get_running_loop().run_in_executor(reads._executor, lambda: connection.close())  # its own

    try:
        asyncio.run(main())
    finally:
        release.set()
        holder.join()
    assert outcome[0].startswith("FREE read"), (
        f"{outcome[0]}: pump FREE's snapshot waited behind pump LOCKED's row lock, held by another transaction"
    )
