"""The one fan-out: every committed change reaches Socket.IO rooms, Channels groups and ward feeds from here.

`publish(change)` is called on the server's event loop, both for changes the bridge forwards over the
internal namespace and for changes committed inside the Daphne process itself. Per pump it releases
changes in `seq` order: a change that arrives ahead of the next expected `seq` is held for up to
`REORDER_WINDOW_S` (setting) waiting for the missing ones (the two sources race: a Daphne-side change
can commit right after a bridge change that is still on its way over the internal namespace), then
released anyway; clients see the gap and subscribe again. Gaps given up and changes that arrive after
their gap was given up are logged and counted. Deliveries for one pump run under that pump's lock, which the
snapshot also takes, so a subscriber's snapshot and its first live event never overlap or leave a hole.
A later issue can put python-socketio's Redis manager and channels-redis behind the targets.
"""

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from django.conf import settings

from realtime import server_metrics
from realtime.events import DeviceChange

logger = logging.getLogger(__name__)

MAX_REMEMBERED_SKIPS = 1_000  # per pump: seqs given up on, to recognise (and count) their late arrival

DeliveryTarget = Callable[[DeviceChange, frozenset[str]], Awaitable[None]]


class FanOut:
    """Per-pump ordering, locking and delivery of changes to the registered targets."""

    def __init__(self, *, reorder_window_s: float | None = None) -> None:
        self._reorder_window_s = reorder_window_s
        self.targets: list[DeliveryTarget] = []
        self.release_listeners: list[Callable[[DeviceChange], None]] = []
        self._last: dict[str, int] = {}
        self._registrations: dict[str, int] = {}
        self._held: dict[str, dict[int, DeviceChange]] = {}
        self._gap_timers: dict[str, asyncio.TimerHandle] = {}
        self._queues: dict[str, deque[DeviceChange]] = {}
        self._draining: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._joiners: dict[str, dict[str, int]] = {}
        self._skipped: dict[str, deque[int]] = {}
        self.published = 0
        self.gaps = 0
        self.late = 0

    @property
    def reorder_window_s(self) -> float:
        if self._reorder_window_s is None:
            return settings.PUMPSTREAM["REORDER_WINDOW_S"]
        return self._reorder_window_s

    def pump_lock(self, device_id: str) -> asyncio.Lock:
        """The lock a snapshot holds so that no change of this pump is delivered meanwhile."""
        return self._locks.setdefault(device_id, asyncio.Lock())

    def publish(self, change: DeviceChange) -> None:
        """Accept one committed change (on the event loop); it is delivered in `seq` order per pump."""
        self._follow_registration(change)
        last = self._last.get(change.device_id)
        if last is not None and change.seq <= last:
            if change.seq in self._skipped.get(change.device_id, ()):
                self.late += 1
                server_metrics.LATE_CHANGES.inc()
                logger.warning("change arrived after its gap was given up; its subscribers resynchronise",
                               extra={"device_id": change.device_id, "seq": change.seq})  # fmt: skip
            else:
                logger.debug("change already published", extra={"device_id": change.device_id, "seq": change.seq})
            return
        if last is None or change.seq == last + 1:
            self._release(change)
            self._release_held(change.device_id)
            return
        self._held.setdefault(change.device_id, {})[change.seq] = change
        if change.device_id not in self._gap_timers:
            loop = asyncio.get_running_loop()
            self._gap_timers[change.device_id] = loop.call_later(
                self.reorder_window_s, self._give_up_waiting, change.device_id
            )

    def note_snapshot(self, device_id: str, seq: int, subscriber: str | None = None) -> None:
        """A subscriber now holds the pump's state up to `seq`: skip it for changes up to `seq`."""
        last = self._last.get(device_id)
        if last is None:
            self._last[device_id] = seq  # every current subscriber's snapshot is at least this recent
        elif seq < last:
            self._restart_counter(device_id, seq)  # the database's counter is behind: the pump was registered anew
        if subscriber is not None:
            self._joiners.setdefault(device_id, {})[subscriber] = seq

    def _follow_registration(self, change: DeviceChange) -> None:
        """A pump deleted and registered anew (a new row) counts `seq` from 0 again: start its order afresh."""
        if change.registration is None:
            return
        known = self._registrations.get(change.device_id)
        self._registrations[change.device_id] = change.registration
        if known is None or known == change.registration:
            return
        logger.warning("a pump was registered anew; its seq starts afresh", extra={"device_id": change.device_id})
        self._last.pop(change.device_id, None)
        self._held.pop(change.device_id, None)
        self._skipped.pop(change.device_id, None)
        timer = self._gap_timers.pop(change.device_id, None)
        if timer is not None:
            timer.cancel()

    def _restart_counter(self, device_id: str, seq: int) -> None:
        logger.warning("a pump's seq went backwards; following the database", extra={"device_id": device_id})
        self._last[device_id] = seq
        self._held.pop(device_id, None)
        timer = self._gap_timers.pop(device_id, None)
        if timer is not None:
            timer.cancel()

    def last_published(self, device_id: str) -> int | None:
        """The highest `seq` released for this pump, if any."""
        return self._last.get(device_id)

    def _release(self, change: DeviceChange) -> None:
        self._last[change.device_id] = change.seq
        for listener in self.release_listeners:
            listener(change)
        self._queues.setdefault(change.device_id, deque()).append(change)
        if change.device_id not in self._draining:
            self._draining.add(change.device_id)
            asyncio.get_running_loop().create_task(self._drain(change.device_id))

    def _release_held(self, device_id: str) -> None:
        held = self._held.get(device_id)
        while held and self._last[device_id] + 1 in held:
            self._release(held.pop(self._last[device_id] + 1))
        if not held:
            self._held.pop(device_id, None)
            timer = self._gap_timers.pop(device_id, None)
            if timer is not None:
                timer.cancel()

    def _give_up_waiting(self, device_id: str) -> None:
        self._gap_timers.pop(device_id, None)
        held = self._held.get(device_id)
        if not held:
            return
        first = min(held)
        logger.warning(
            "gap in a pump's changes; releasing what followed it",
            extra={"device_id": device_id, "missing_from": self._last[device_id] + 1, "released_from": first},
        )
        self.gaps += 1
        server_metrics.GAPS_GIVEN_UP.inc()
        skipped = self._skipped.setdefault(device_id, deque(maxlen=MAX_REMEMBERED_SKIPS))
        skipped.extend(range(max(self._last[device_id] + 1, first - MAX_REMEMBERED_SKIPS), first))
        self._last[device_id] = first - 1
        self._release_held(device_id)
        if self._held.get(device_id):
            loop = asyncio.get_running_loop()
            self._gap_timers[device_id] = loop.call_later(self.reorder_window_s, self._give_up_waiting, device_id)

    async def _drain(self, device_id: str) -> None:
        queue = self._queues[device_id]
        async with self.pump_lock(device_id):
            while queue:
                change = queue.popleft()
                await self._deliver(change)
            self._draining.discard(device_id)

    async def _deliver(self, change: DeviceChange) -> None:
        skip = self._subscribers_ahead_of(change)
        for target in self.targets:
            try:
                await target(change, skip)
            except Exception:  # one failing target must not starve the others or stop the pump's stream
                logger.exception("fan-out target failed", extra={"device_id": change.device_id, "seq": change.seq})
        self.published += 1

    def _subscribers_ahead_of(self, change: DeviceChange) -> frozenset[str]:
        joiners = self._joiners.get(change.device_id)
        if not joiners:
            return frozenset()
        ahead = frozenset(sid for sid, seq in joiners.items() if seq >= change.seq)
        for sid in [sid for sid, seq in joiners.items() if seq < change.seq]:
            del joiners[sid]
        if not joiners:
            del self._joiners[change.device_id]
        return ahead


fanout = FanOut()


def publish(change: DeviceChange) -> None:
    """THE fan-out: hand one committed change to every Socket.IO room, Channels group and ward feed."""
    fanout.publish(change)
