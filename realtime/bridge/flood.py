"""Per-pump flood limiting: a pump far above its normal progress rate has its excess routine progress shed.

A token bucket per pump, filled at `rate_per_s` up to `burst`, paid by each routine progress message on
its receive time. Only routine progress can be shed, and the test is made on the raw message before any
parsing, conservatively: `devices/{id}/progress` whose payload does not mention `paused` or `completed`.
Status, alarms, confirmations, completions and actions always pass. A shed message is acknowledged
(shedding is a deliberate, counted rejection), counted in `pumpstream_bridge_progress_shed_total` and in
the heartbeat's `shed`, and logged once a minute per pump. A shed message is not parsed, so a
malformed one among the excess is counted as shed, not dead-lettered.
The newest routine progress of a pump in an intake passes beyond the bucket at most once per `EXEMPT_EVERY_S`
(a pump pacing its progress one per intake passed it whole); a newest one over the bucket within that second is
*held back* (`HELD`), neither admitted nor shed, as the report budgets hold theirs (`budgets.py`, `fair.py`): shed
when a newer routine progress of its pump comes, else applied once its second is over, or at once ahead of an alarm
of its pump that passes; so the screen shows a flooding pump's last progress once the flood stops.
"""

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from protocol import topics
from realtime import metrics
from realtime.bridge.ingest import InboundMessage

logger = logging.getLogger(__name__)

MAX_PUMPS_TRACKED = 20_000  # the least recently heard are forgotten (a full bucket again)
NOT_ROUTINE_MARKERS = (b"paused", b"completed")
LOG_EVERY_S = 60.0
EXEMPT_EVERY_S = 1.0  # the newest of a pump's messages over its budget passes at most this often (per kind)
HELD = None  # an `admit_batch` verdict: held back for a later turn, neither admitted nor shed


TIME_AWAY_MAX_S = 3600.0  # credit for at most an hour away; beyond it the broker's own queue limit bounds a backlog
# The credit may be spent for as long as the time away lasted, at least BACKLOG_MIN_S and at most BACKLOG_MAX_S
# after the reconnection: the broker hands a backlog over in seconds, and a pump flooding later is a flood.
BACKLOG_MIN_S = 30.0
BACKLOG_MAX_S = 120.0


@dataclass(frozen=True)
class TimeAway:
    """The bridge was away from the broker `seconds` until `at` (epoch seconds). The pumps' messages of that time
    waited at the broker and arrive at once: each pump's bucket is credited that long's budget, to be spent on
    what it receives until `until` (the backlog), so a backlog is not taken for a flood (issue 15: nothing a
    well-behaved pump sent while the bridge was away is shed, and no `alarm_flood` is raised for it)."""

    at: float
    seconds: float
    until: float

    @classmethod
    def since(cls, seconds: float, *, at: float) -> "TimeAway":
        seconds = min(max(0.0, seconds), TIME_AWAY_MAX_S)
        return cls(at=at, seconds=seconds, until=at + min(BACKLOG_MAX_S, max(BACKLOG_MIN_S, seconds)))


def times_away_open(times: Sequence[TimeAway], new: TimeAway) -> tuple[TimeAway, ...]:
    """The times away whose backlog may still arrive, with `new` (a second one while the first's backlog still
    arrives, as in a link flap or another slot's reconnection, adds its credit; it never replaces the first's)."""
    return (*(away for away in times if away.until >= new.at), new)


@dataclass
class TokenBucket:
    tokens: float
    refilled_at: float
    shed: int = 0
    logged_at: float = float("-inf")
    credited_at: float = float("-inf")  # the latest `TimeAway` it was credited for
    credit_until: float = float("-inf")  # until when credit above `burst` may be kept
    exempt_at: float = float("-inf")  # when the newest of a batch last passed over this bucket (the progress guard)

    def take(
        self, clock: float, *, rate_per_s: float, burst: float, away: Sequence[TimeAway] = (), cost: float = 1.0
    ) -> bool:
        """Refill up to `clock` at `rate_per_s` (at most `burst`), then take `cost` tokens (one message, or a
        payload's bytes) if there are as many.

        Within a time away's backlog the bucket also holds that time's credit (each time away once), above
        `burst` until spent; after the backlog what is left of it lapses.
        """
        refilled = self.tokens + (clock - self.refilled_at) * rate_per_s
        self.refilled_at = clock
        kept = clock <= self.credit_until  # credit alive: what is above the burst stays
        self.tokens = max(self.tokens, min(burst, refilled)) if kept else min(burst, refilled)
        for time_away in away:
            if time_away.at > self.credited_at and time_away.at <= clock <= time_away.until:
                self.credited_at, self.credit_until = time_away.at, max(self.credit_until, time_away.until)
                self.tokens += time_away.seconds * rate_per_s
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class ProgressFloodGuard:
    """Admits routine progress per pump at `rate_per_s` on average with bursts of `burst`; 0 turns it off."""

    def __init__(self, *, rate_per_s: float, burst: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1.0, burst)
        self.buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.shed_total = 0
        self.away: tuple[TimeAway, ...] = ()  # the bridge's times away whose backlog may still arrive (the worker's)
        self.held: dict[str, InboundMessage] = {}  # per pump, its newest routine progress held back

    def admit_batch(self, batch: list[InboundMessage], *, now: float | None = None, hold: bool = True) -> list:
        """Per message, True (admitted), False (shed: routine progress of a pump that used up its bucket) or `HELD`.

        The newest routine progress of each pump in the batch passes over the bucket at most once per
        `EXEMPT_EVERY_S`; within that second it is held back (given again with the next intake, ahead of it: it pays
        nothing again, is shed if a newer one of its pump came, else passes once the exemption does, `now` being the
        turn's clock). `hold=False` (a batch run on its own, no later turn): it passes.
        """
        if self.rate_per_s <= 0:
            return [True] * len(batch)
        senders = [routine_progress_sender(message) for message in batch]
        newest = {device_id: index for index, device_id in enumerate(senders) if device_id is not None}
        admitted: list[bool | None] = []
        for index, (message, device_id) in enumerate(zip(batch, senders, strict=True)):
            if device_id is None:
                admitted.append(True)
            elif self.held and self.held.get(device_id) is message:
                del self.held[device_id]  # held before: it paid then
                admitted.append(self._over(device_id, message, newest[device_id] == index, now=now, hold=hold))
            elif self._take(device_id, message):
                admitted.append(True)
            else:
                admitted.append(self._over(device_id, message, newest[device_id] == index, now=now, hold=hold))
        return admitted

    def _over(
        self, device_id: str, message: InboundMessage, newest: bool, *, now: float | None, hold: bool
    ) -> bool | None:
        """The verdict on routine progress over its pump's bucket: the newest passes once a second, else is held."""
        clock = max(message.received_at.timestamp(), now or 0.0)
        bucket = self._bucket(device_id, clock)
        if newest and (clock - bucket.exempt_at >= EXEMPT_EVERY_S or not hold):
            bucket.exempt_at = clock
            return True
        if newest:
            self.held[device_id] = message
            return HELD
        self._shed(device_id, clock)
        return False

    def release_before_alarms(self, batch: list[InboundMessage], guarded: list, budgeted: list) -> None:
        """A held progress passes at once (`guarded` set True) when an alarm of its pump the budgets let through
        (`budgeted`) comes after it in the batch: an alarm never waits behind it, and its order is kept."""
        alarms = {sender: index for index, (message, passed) in enumerate(zip(batch, budgeted, strict=True))
                  if passed and (sender := alarm_sender(message))}  # fmt: skip
        for index, (message, verdict) in enumerate(zip(batch, guarded, strict=True)):
            device_id = routine_progress_sender(message) if verdict is HELD else None
            if device_id and alarms.get(device_id, -1) > index and self.held.get(device_id) is message:
                del self.held[device_id]
                self._bucket(device_id, message.received_at.timestamp()).exempt_at = message.received_at.timestamp()
                guarded[index] = True

    def _take(self, device_id: str, message: InboundMessage) -> bool:
        """Take a token from the pump's bucket, refilled up to the message's receive time."""
        clock = message.received_at.timestamp()
        return self._bucket(device_id, clock).take(clock, rate_per_s=self.rate_per_s, burst=self.burst, away=self.away)

    def _bucket(self, device_id: str, clock: float) -> TokenBucket:
        bucket = self.buckets.pop(device_id, None) or TokenBucket(tokens=self.burst, refilled_at=clock)
        self.buckets[device_id] = bucket
        if len(self.buckets) > MAX_PUMPS_TRACKED:
            self.buckets.popitem(last=False)
        return bucket

    def _shed(self, device_id: str, clock: float) -> None:
        bucket = self.buckets[device_id]
        bucket.shed += 1
        self.shed_total += 1
        metrics.PROGRESS_SHED.inc()
        if clock - bucket.logged_at >= LOG_EVERY_S:
            bucket.logged_at = clock
            logger.warning(
                "pump flooding: routine progress above %.0f/s shed (%d so far)", self.rate_per_s, bucket.shed,
                extra={"device_id": device_id, "reason": "progress_flood"},
            )  # fmt: skip


def routine_progress_sender(message: InboundMessage) -> str | None:
    """The device id when the raw message is routine progress on a well-formed topic, else None."""
    try:
        parsed = topics.parse_device_topic(message.topic)
    except topics.TopicError:
        return None
    if parsed.kind != topics.PROGRESS or any(marker in message.payload for marker in NOT_ROUTINE_MARKERS):
        return None
    return parsed.device_id


def alarm_sender(message: InboundMessage) -> str | None:
    """The device id when the raw message is an alarm (`devices/{id}/error`) on a well-formed topic, else None."""
    try:
        parsed = topics.parse_device_topic(message.topic)
    except topics.TopicError:
        return None
    return parsed.device_id if parsed.kind == topics.ERROR else None
