"""Ward feeds: a coalesced `ward:summary` a second with only the pumps that changed, and `ward:alarm` at once.

A subscription's first summary lists every pump of the feed (`full`); a pump that then leaves the feed (moved
to another ward in the admin, its ward deleted, or itself deleted: its `device:removed`) is named in the next
summary's `left`, so no station keeps showing, and sounding the alarms of, a pump that is no longer its ward's.
That first summary is never preceded by a tick's summary of only the pumps that changed: a screen takes its feed as
received again at its full summary (`static/js/live.js`), and a partial one first would show the others as before a
loss (review 39, finding 3). A subscription is listed at once (its pumps' changes are marked from then on, and a
connection that closes meanwhile takes it away), but ticks pass it by until its full summary is sent; its read and
send and a tick's read and sends take turns (`_turns`), so every change a tick passed it by for was in its full read,
and every change after that read comes in a tick after it. One whose read fails is taken away again (its page,
told by name, asks again: review 40, F2).

`ward:alarm` carries every alarm change (raised, re-alerted, escalated, acknowledged, cleared, resolved) of a
pump of the ward, in the pump's `seq` order, to each feed that covers the pump's ward: a station never waits
for the coalesced summary to learn of an alarm.

A subscription (a station's first, or its resubscription after a lost connection) is also sent the silence state of
every ward the feed covers, on or not (`silence_states`): a silence that ended while a station was away ends there
too, though the `ward:silence` announcing its end went to the station's old socket.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from devices import payloads
from devices.selectors import alarms_active_by_device, devices_for_ward_feed, sessions_current_by_device
from devices.silence_selectors import ward_silence_latest, ward_silences_current, ward_silences_latest
from devices.ward_payloads import silence_body, ward_pump_body
from protocol import events
from protocol.events import DeviceChange
from protocol.payload_codec import payload_to_wire
from protocol.ward_payloads import WardPump, WardSummary, ward_alarm_body
from realtime.sio.database import db_thread

logger = logging.getLogger(__name__)

ALL_WARDS = "*"
TICK_S = 1.0

Send = Callable[[str, dict], Awaitable[None]]


@dataclass(frozen=True)
class WardScope:
    """What one ward subscription covers: `codes` None means every pump (staff, all-ward accounts)."""

    label: str
    codes: set[str] | None

    @property
    def key(self) -> tuple[str, frozenset[str] | None]:
        """Feeds with equal keys carry the same summaries (`*` covers different wards for different users)."""
        return self.label, None if self.codes is None else frozenset(self.codes)

    def covers(self, ward_code: str | None) -> bool:
        """Whether a pump of this ward belongs to the feed."""
        return self.codes is None or ward_code in self.codes


def pump_summaries(device_ids: list[str] | None = None, codes: set[str] | None = None) -> dict[str, tuple]:
    """`{deviceId: (ward code, WardPump)}` for these pumps (or every pump of these wards), read now."""
    devices = devices_for_ward_feed(device_ids=device_ids, codes=codes)
    sessions = sessions_current_by_device(devices)
    alarms = alarms_active_by_device(devices)
    return {
        device.device_id: (device.ward.code if device.ward_id else None,
                           ward_pump_body(device, sessions.get(device.pk), alarms.get(device.pk, [])))
        for device in devices
    }  # fmt: skip


def summary_body(label: str, pumps: list[WardPump], *, full: bool = False, left: list[str] | None = None) -> dict:
    """A `ward:summary` on the wire: the feed's label, its pumps (all of them when `full`), those that left it."""
    return payload_to_wire(WardSummary(ward=label, pumps=pumps, full=full, left=left or []))


def silence_states(codes: set[str] | None) -> list[dict]:
    """`ward:silence` bodies of the silence state of each of these wards (every ward when None), on or not: a silence
    on now, else `active: false` with how the ward's last silence ended (`ended` null if it never had one)."""
    now = timezone.now()
    return [
        payload_to_wire(silence_body(code, silence, now=now))
        for code, silence in sorted(ward_silences_latest(codes=codes).items())
    ]


def silence_changes(announced: dict[str, str]) -> tuple[list[dict], list[dict]]:
    """Bodies of silences on now but not announced as such, and of announced ones that have ended."""
    now = timezone.now()
    current = ward_silences_current(now=now)
    started = [payload_to_wire(silence_body(code, s, now=now)) for code, s in current.items()
               if announced.get(code) != payloads.iso(s.until)]  # fmt: skip
    ended = [
        payload_to_wire(silence_body(code, ward_silence_latest(code), now=now))
        for code in announced
        if code not in current
    ]
    return started, ended


class WardFeed:
    """Subscribers of ward overviews and the pumps changed since the last tick."""

    def __init__(self, *, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self._subscribers: dict[str, tuple[WardScope, Send]] = {}
        self._dirty: set[str] = set()
        self._task: asyncio.Task | None = None
        self._silenced: dict[str, str] = {}  # ward code -> `until` of the silence last announced as on
        self._shown: dict[tuple, set[str]] = {}  # feed key -> pumps its screens were sent (told when one leaves)
        self._awaiting_full: set[str] = set()  # subscriptions listed whose full summary is not sent yet
        self._turns = asyncio.Lock()  # a subscription's full read and send, or a tick's read and sends

    def mark_changed(self, change: DeviceChange) -> None:
        """Remember that a pump changed (called for every released change; cheap)."""
        if self._subscribers:
            self._dirty.add(change.device_id)

    async def deliver_alarm(self, change: DeviceChange, skip: frozenset[str]) -> None:
        """Fan-out target: an alarm change goes at once to every feed covering its ward (never coalesced)."""
        if change.event != events.DEVICE_ALARM or not self._subscribers:
            return
        alarm = ward_alarm_body(change)  # the recorded body when the model refuses it: never lost for its form
        bodies: dict[str, dict] = {}  # one encoding per feed label, however many screens follow it
        for scope, send in list(self._subscribers.values()):
            if scope.covers(change.ward_code):
                if scope.label not in bodies:
                    bodies[scope.label] = {**alarm, "feed": scope.label}
                await _send_guarded(send, events.WARD_ALARM, bodies[scope.label])
        if change.ward_code in self._silenced:  # the alarm may have broken the ward's silence
            await self.refresh_silences()

    async def announce_silence(self, body: dict) -> None:
        """Send a ward's silence (on, or ended) to every feed covering the ward, and remember it."""
        ward = body["ward"]
        if body["active"]:
            self._silenced[ward] = body["until"]
        else:
            self._silenced.pop(ward, None)
        for scope, send in list(self._subscribers.values()):
            if scope.covers(ward):
                await _send_guarded(send, events.WARD_SILENCE, body)

    async def refresh_silences(self) -> None:
        """Announce the silences that began, changed or ended since last announced (any process may change them)."""
        current, ended = await db_thread(silence_changes)(dict(self._silenced))
        for body in [*current, *ended]:
            await self.announce_silence(body)

    async def subscribe(self, key: str, scope: WardScope, send: Send) -> None:
        """Send the feed's full summary now, then only changes, at most once a tick (never one before the full).

        When a read or send of the subscription fails (the database away for a moment), it raises and leaves the
        feed as before the request: a subscription left listed would wait for a full summary that no tick sends, and
        its station would say "Not live" for the life of its connection (review 40, F2). The caller tells the page,
        which asks again.
        """
        subscription = (scope, send)
        self._subscribers[key] = subscription
        self._awaiting_full.add(key)
        try:
            await self._send_full(key, subscription)
        except BaseException:
            if self._subscribers.get(key) is subscription:  # not subscribed anew meanwhile (that one stays)
                self.unsubscribe(key)
            raise
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _send_full(self, key: str, subscription: tuple[WardScope, Send]) -> None:
        """The subscription's full summary, taking its turn with the ticks, then its wards' silence states."""
        scope, send = subscription
        async with self._turns:  # a tick under way ends first: its changes are all in the read below
            summaries = await db_thread(pump_summaries)(None, scope.codes)
            self._shown.setdefault(scope.key, set()).update(summaries)
            pumps = [pump for _, pump in summaries.values()]
            await send(events.WARD_SUMMARY, summary_body(scope.label, pumps, full=True))
            if self._subscribers.get(key) is subscription:  # a newer subscription of the key awaits its own
                self._awaiting_full.discard(key)
        for body in await db_thread(silence_states)(scope.codes):  # on or not: a station may hold an old one
            await send(events.WARD_SILENCE, body)

    def unsubscribe(self, key: str) -> None:
        """Stop one feed."""
        stopped = self._subscribers.pop(key, None)
        self._awaiting_full.discard(key)
        if stopped is not None and all(scope.key != stopped[0].key for scope, _ in self._subscribers.values()):
            self._shown.pop(stopped[0].key, None)

    async def _run(self) -> None:
        while self._subscribers:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
                await self.refresh_silences()
            except Exception:  # the feed must survive a failed read; the next tick tries again
                logger.exception("ward feed tick failed")
        self._dirty.clear()
        self._shown.clear()

    async def tick(self) -> None:
        """Send each subscriber the summaries of its pumps that changed since the last tick, and those that left
        (not yet to one whose full summary is still to come: that summary's read follows this tick's)."""
        async with self._turns:
            await self._send_changes()

    async def _send_changes(self) -> None:
        if not self._dirty:
            return
        dirty, self._dirty = sorted(self._dirty), set()
        try:
            summaries = await db_thread(pump_summaries)(dirty)
        except Exception:
            self._dirty.update(dirty)  # a failed read (the database restarting) forgets none: the next tick sends them
            raise
        bodies: dict[tuple, dict | None] = {}  # one encoding per feed (every station of a ward shares one)
        for key, (scope, send) in list(self._subscribers.items()):
            if key in self._awaiting_full:
                continue
            if scope.key not in bodies:
                bodies[scope.key] = self._changes_body(scope, dirty, summaries)
            if bodies[scope.key] is not None:
                await _send_guarded(send, events.WARD_SUMMARY, bodies[scope.key])

    def _changes_body(self, scope: WardScope, dirty: list[str], summaries: dict[str, tuple]) -> dict | None:
        """One feed's summary of the changed pumps it covers and of those it showed that are no longer its own."""
        covered = {device_id for device_id, (ward, _) in summaries.items() if scope.covers(ward)}
        shown = self._shown.setdefault(scope.key, set())
        left = [device_id for device_id in dirty if device_id in shown and device_id not in covered]
        shown.difference_update(left)
        shown.update(covered)
        pumps = [pump for device_id, (_, pump) in summaries.items() if device_id in covered]
        return summary_body(scope.label, pumps, left=left) if pumps or left else None


async def _send_guarded(send: Send, event: str, body: dict) -> None:
    """Send to one station; its failure is logged and never keeps the event from the stations after it."""
    try:
        await send(event, body)
    except Exception:
        logger.exception("ward feed event not sent to one station", extra={"event": event})


ward_feed = WardFeed(tick_s=settings.PUMPSTREAM["WARD_FEED_TICK_S"])
