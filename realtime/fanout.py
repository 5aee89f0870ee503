"""The one fan-out: every committed change reaches Socket.IO rooms, Channels endpoint connections and ward feeds here.

`publish(change)` is called on the server's event loop by the publisher (`realtime/publisher.py`), which
reads the change log in commit order, so changes arrive here already in `seq` order per pump: nothing is
held, re-ordered or waited for. Deliveries for one pump run under that pump's lock, which the snapshot
also takes, so a subscriber's snapshot and its first live event never overlap or leave a hole: a
subscriber whose snapshot holds `seq` S is skipped for the pump's changes up to S still queued here.
Every target delivers to this process's own connections: each Daphne runs its own publisher, so nothing here
goes through Redis (`realtime/cluster.py` says what does).
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from protocol.events import DeviceChange

logger = logging.getLogger(__name__)

DeliveryTarget = Callable[[DeviceChange, frozenset[str]], Awaitable[None]]


class FanOut:
    """Per-pump locking and delivery of changes, in the order published, to the registered targets."""

    def __init__(self) -> None:
        self.targets: list[DeliveryTarget] = []
        self.release_listeners: list[Callable[[DeviceChange], None]] = []
        # called once every target delivered a change, still under the pump's lock (a removal ends subscriptions)
        self.delivered_listeners: list[Callable[[DeviceChange], Awaitable[None]]] = []
        self._queues: dict[str, deque[tuple[float, DeviceChange]]] = {}  # pump -> (accepted at, monotonic; change)
        self._draining: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._joiners: dict[str, dict[str, tuple[int | None, int]]] = {}  # pump -> sid -> (registration, seq)
        self._delivered: dict[str, tuple[int, int]] = {}  # pump -> (registration, seq) of its last delivered change
        self._pending: dict[str, int] = {}  # pump -> subscribers reading its snapshot
        self._recent: dict[str, list[DeviceChange]] = {}  # pump -> changes delivered while one was pending
        self.published = 0

    def pump_lock(self, device_id: str) -> asyncio.Lock:
        """The lock a snapshot holds so that no change of this pump is delivered meanwhile."""
        return self._locks.setdefault(device_id, asyncio.Lock())

    def publish(self, change: DeviceChange) -> None:
        """Accept one committed change (on the event loop); delivered after the pump's earlier ones."""
        for listener in self.release_listeners:
            listener(change)
        self._queues.setdefault(change.device_id, deque()).append((time.monotonic(), change))
        if change.device_id not in self._draining:
            self._draining.add(change.device_id)
            asyncio.get_running_loop().create_task(self._drain(change.device_id))

    def backlog(self) -> tuple[int, float]:
        """Changes accepted and not yet delivered, and how long the oldest of them has waited (seconds): a pump's
        deliveries that stopped (a target that never returns) show here, while its screens would still say live."""
        now = time.monotonic()
        queued = sum(map(len, self._queues.values()))
        oldest = min((queue[0][0] for queue in self._queues.values() if queue), default=now)
        return queued, now - oldest

    def note_snapshot(self, device_id: str, seq: int, subscriber: str, registration: int | None = None) -> None:
        """`subscriber` now holds the pump's state up to `seq`: skip it for that pump row's changes up to `seq`.

        `registration` is the pump's row id: a snapshot of a pump deleted since says nothing about the changes of
        one registered anew under its id (which go on from its `seq`); a snapshot of the pump registered anew holds
        every change of an older row still on its way (its `device:removed` included): skipped too.
        """
        self._joiners.setdefault(device_id, {})[subscriber] = (registration, seq)

    def snapshot_pending(self, device_id: str) -> None:
        """A subscriber is reading the pump's snapshot: keep what is delivered meanwhile (`delivered_since`)."""
        self._pending[device_id] = self._pending.get(device_id, 0) + 1

    def snapshot_done(self, device_id: str) -> None:
        """That subscriber is done; the changes kept for the pump go when no snapshot of it is pending."""
        left = self._pending.pop(device_id, 1) - 1
        if left > 0:
            self._pending[device_id] = left
        else:
            self._recent.pop(device_id, None)

    def delivered_since(self, device_id: str, seq: int, registration: int | None) -> list[DeviceChange] | None:
        """The pump's changes past a snapshot at (`registration`, `seq`) already delivered, in order.

        Called under the pump's lock, between `snapshot_pending` (taken before the read was asked for) and
        `snapshot_done`: a snapshot read without the lock is good when followed by these (what is queued or
        not yet published is skipped or delivered after the join). None when they are not all known (a
        pump registered anew): read again.
        """
        delivered = self._delivered.get(device_id)
        if delivered is None:
            return []
        if registration is None or delivered[0] != registration:
            return [] if registration is not None and delivered[0] < registration else None
        if delivered[1] <= seq:
            return []
        missed = [change for change in self._recent.get(device_id, ())
                  if change.registration == registration and change.seq > seq]  # fmt: skip
        return missed if [change.seq for change in missed] == list(range(seq + 1, delivered[1] + 1)) else None

    async def _drain(self, device_id: str) -> None:
        queue = self._queues[device_id]
        delivering = False
        try:
            async with self.pump_lock(device_id):
                while queue:
                    delivering = True
                    await self._deliver(queue[0][1])
                    queue.popleft()  # after its delivery: one that hangs still counts in `backlog()`
                    delivering = False
        finally:  # whatever escaped (a BaseException), the pump's later changes are still drained
            self._draining.discard(device_id)
            if delivering:
                queue.popleft()  # the change whose delivery failed
            if queue:
                self._draining.add(device_id)
                asyncio.get_running_loop().create_task(self._drain(device_id))
            else:
                self._queues.pop(device_id, None)

    async def _deliver(self, change: DeviceChange) -> None:
        skip = self._subscribers_ahead_of(change)
        for target in self.targets:
            try:
                await target(change, skip)
            except (Exception, asyncio.CancelledError):  # one failing target must not stop the pump's stream
                if asyncio.current_task().cancelling():
                    raise  # this task is being cancelled, not only a future the target awaited
                logger.exception("fan-out target failed", extra={"device_id": change.device_id, "seq": change.seq})
        for listener in self.delivered_listeners:
            try:
                await listener(change)
            except (Exception, asyncio.CancelledError):  # as a target's: the pump's stream goes on
                if asyncio.current_task().cancelling():
                    raise
                logger.exception("fan-out listener failed", extra={"device_id": change.device_id, "seq": change.seq})
        self.published += 1
        if change.registration is not None:
            self._delivered[change.device_id] = (change.registration, change.seq)
        if change.device_id in self._pending:
            self._recent.setdefault(change.device_id, []).append(change)

    def _subscribers_ahead_of(self, change: DeviceChange) -> frozenset[str]:
        joiners = self._joiners.get(change.device_id)
        if not joiners:
            return frozenset()
        holds = {sid: _holds(registration, seq, change) for sid, (registration, seq) in joiners.items()}
        for sid in [sid for sid, held in holds.items() if not held]:
            del joiners[sid]  # its snapshot is older than this change: from now on it gets every change
        if not joiners:
            del self._joiners[change.device_id]
        return frozenset(sid for sid, held in holds.items() if held)


def _holds(registration: int | None, seq: int, change: DeviceChange) -> bool:
    """Whether a snapshot of the pump's row `registration` at `seq` already holds `change`: one of the same row up to
    `seq`, or one of an older row (registration ids only grow: a pump registered anew under the id holds none of the
    deleted one's changes, its removal included, which are no news to it)."""
    if registration is None or change.registration is None:
        return registration == change.registration and seq >= change.seq
    return registration > change.registration or (registration == change.registration and seq >= change.seq)


fanout = FanOut()


def publish(change: DeviceChange) -> None:
    """THE fan-out: hand one committed change to every Socket.IO room, Channels endpoint connection and ward feed."""
    fanout.publish(change)
