"""Snapshot reads in batches, on a thread of their own: a storm of subscriptions costs a few queries per batch.

Requests queue while a batch is being read; the next batch takes every pump asked for meanwhile (up to
`BATCH_MAX`) and reads them in one go (`realtime.sio.snapshot.read_snapshots`: one read transaction, one
query per kind of row). A request for a pump already in the batch being read, or in the next one, shares
that read (`shared=True`): every snapshot is checked under the pump's lock against what the fan-out
delivered meanwhile, so sharing an earlier read is safe. `shared=False` waits for a read that starts after
the request. Never the shared thread of `sync_to_async` (sign-in, pages), and never under a pump's lock.

A batch's waiters are woken `WAKE_CHUNK` pumps at a time, the loop's other work let in between: waking the
2,000 subscribers of a storm's batch at once put every one of their sends ahead of the live events queued
behind them on the event loop (issue 17).
"""

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError

from realtime.sio.database import on_usable_connection

logger = logging.getLogger(__name__)

BATCH_MAX = 500  # pumps per batch (one IN list per query)
WAKE_CHUNK = 10  # pumps whose waiters are woken before the loop's other work gets a turn (half a page's 20 requests)


class SnapshotReads:
    """Batched, shared reads of pumps' snapshots; `read` from the server's event loop."""

    def __init__(self, reader: Callable[[list[str]], dict]) -> None:
        self._reader = reader  # device ids -> {device id: snapshot}; absent ids are unknown pumps
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="snapshot-reader")
        self._waiting: dict[str, asyncio.Future] = {}  # the next batch
        self._reading: dict[str, asyncio.Future] = {}  # the batch being read
        self._task: asyncio.Task | None = None
        self.batches = 0
        self.offload = self._on_own_thread  # (function, ids) -> awaitable; tests run it where their transaction is

    async def read(self, device_id: str, *, shared: bool = True):
        """The pump's snapshot (`LookupError` for an unknown pump)."""
        future = self._reading.get(device_id) if shared else None
        if future is None:
            future = self._waiting.get(device_id)
        if future is None:
            future = self._waiting[device_id] = asyncio.get_running_loop().create_future()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while self._waiting:
            ids = list(self._waiting)[:BATCH_MAX]
            self._reading = {device_id: self._waiting.pop(device_id) for device_id in ids}
            try:
                snapshots = await self.offload(self._read, ids)
            except Exception as error:  # every waiter gets the error; the next batch is read afresh
                logger.exception("snapshot read failed")
                for future in self._reading.values():
                    if not future.done():
                        future.set_exception(error)
            else:
                self.batches += 1
                await self._wake(snapshots)
            finally:
                for future in self._reading.values():  # only when this task was cancelled: no waiter hangs
                    if not future.done():
                        future.set_exception(DatabaseError("the snapshot read was abandoned"))
                self._reading = {}

    async def _wake(self, snapshots: dict) -> None:
        for number, (device_id, future) in enumerate(list(self._reading.items()), start=1):
            if not future.done():
                if device_id in snapshots:
                    future.set_result(snapshots[device_id])
                else:
                    future.set_exception(LookupError(device_id))
            if number % WAKE_CHUNK == 0:
                await asyncio.sleep(0)  # these pumps' subscribers run, and whatever else is queued, first

    def _on_own_thread(self, function: Callable, device_ids: list[str]) -> asyncio.Future:
        return asyncio.get_running_loop().run_in_executor(self._executor, function, device_ids)

    def _read(self, device_ids: list[str]) -> dict:
        # this thread's connection, kept between reads; one broken (a database restart) is replaced before the read
        return on_usable_connection(self._reader, device_ids)
