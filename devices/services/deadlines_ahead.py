"""Deadlines stamped while the server's clock ran ahead, brought back once it is put right (review 48, time).

A moment written on a clock that ran ahead (a wrong NTP source, a VM restored with its host's clock ahead) and then
put right lies ahead, and what is timed from it waits for the wrong clock's moment: an alarm unanswered escalates, an
acknowledged one reminds, a Stop never acted on ends (`command_not_carried_out`), a ward's silence ends, only that much
later (an hour). Review 29 brought back the pumps' moments of hearing (`heard.py`); the same housekeeping step brings
back every moment a deadline is timed from, so that the deadline lies at most its own length after now. The true
moment is unknown (at most now); the error is on the side of the alarm: an escalation or a reminder sooner, a command
ending sooner, a silence shorter, never later.

- active alarms: `raised_at`, `last_raised_at`, `alerted_at` (escalation, and an unordered infusion's silence),
  `acknowledged_at` (the reminder), `escalated_at` (shown): back by the step the clock was put back, when the bridge
  measured it (`step`: its worker saw the wall clock go back while the monotonic clock went on), no later than now;
  to now when the step is unknown (the bridge started after the correction). Taken to now, an alarm's ladder started
  again at the correction (review 49: a tier due 20 s later came 120 s later; screens said "for 0 min"). A flood
  alarm's moments in its details (`countsSentAt`, `newsSignalledAt`, `newsDeferredSince`, and its held counts'
  `since` and `lastRaisedAt`) ahead go back the same way (left, its counts stayed frozen on the screens for the hour:
  review 49; a held `lastRaisedAt` ahead became the alarm's last raised once sent; to now while the acknowledgement
  went back by the step, read news came after it and alerted again: review 51). Each alarm moved is told
  (`device:alarm`);
- commands under way: `expires_at` at most now + the kind's lifetime (`command_lifetime`), `created_at` (a START's
  deadline from the order) and `published_at` (a START published again keeps its first deadline) back to now; each
  told (`device:command`: pages time "overdue" and the start's wait from `expiresAt`);
- active orders: `created_at` of one pending (its confirmation time, the START unpublished) and `unconfirmed_since`
  (the read-back's grace) back to now;
- open ward silences: one begun ahead ends now (how much was left is unknown: the alarm sounds), any other lasts
  no longer than `WARD_SILENCE_MAX_S`;
- live sockets' `seen_at` (the per-principal socket cap counts the fresh ones) back to now.

An escalation webhook's next try is judged where it is read (`housekeeping_selectors.deliveries_due`). One read (a
UNION of the rows ahead, the moments of hearing with them: `moments_ahead`) finds nothing on a clock never ahead.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Least
from django.utils.dateparse import parse_datetime

from devices import payloads
from devices.housekeeping_selectors import start_lifetime
from devices.models import Alarm, Command, InfusionSession, LiveSocket, WardSilence
from devices.services.changes import change_record, device_lock
from devices.services.heard import any_after, hearing_ahead
from devices.services.prepared import Prepared
from devices.states import (
    AHEAD_TOLERANCE_S,
    ALARM_FLOOD,
    COMMAND_UNSETTLED_STATES,
    FLOOD_COUNTS_HELD,
    FLOOD_COUNTS_SENT,
    FLOOD_NEWS_DEFERRED,
    FLOOD_NEWS_SIGNALLED,
    SESSION_ON_PUMP_STATUSES,
    AlarmState,
    CommandKind,
    SessionStatus,
)
from protocol import events

ALARM_MOMENTS = ("raised_at", "last_raised_at", "alerted_at", "acknowledged_at", "escalated_at")
FLOOD_MOMENTS = (FLOOD_COUNTS_SENT, FLOOD_NEWS_SIGNALLED, FLOOD_NEWS_DEFERRED)
HELD_MOMENTS = ("since", "lastRaisedAt")
COMMAND_MOMENTS = ("created_at", "published_at")


def moments_ahead(*, now: datetime) -> bool:
    """Whether any moment of hearing or of a deadline lies ahead of `now` (beyond AHEAD_TOLERANCE_S, or a deadline
    beyond its own length): one read, the rows' UNION, compiled once (`Prepared`: built each time, this read cost the
    idle bridge about 10 ms every HEARD_AHEAD_EVERY_S, issue 17)."""
    after = now + timedelta(seconds=AHEAD_TOLERANCE_S)
    return _ANY_AHEAD.exists(now, after, *_commands_beyond(after), silence_max_s=_silence_max_s())


def _any_ahead(now: datetime, after: datetime, start_beyond: datetime, other_beyond: datetime, *,
               silence_max_s: float) -> QuerySet:  # fmt: skip
    ahead = [*hearing_ahead(after), _alarms_ahead(after), _commands_ahead(after, start_beyond, other_beyond),
             _sessions_ahead(after), _silences_ahead(now, after, timedelta(seconds=silence_max_s)),
             _sockets_ahead(after)]  # fmt: skip
    first, *rest = (rows.values_list(Value(1)) for rows in ahead)
    return first.union(*rest, all=True)


_ANY_AHEAD = Prepared(_any_ahead)


def deadlines_pull_back(*, now: datetime, step: timedelta | None = None) -> int:
    """Every deadline's moment still to come brought back (see the module), alarms' by `step` if known; returns how
    many rows moved. Each kind is read first and written only when something lies ahead (SQLite takes its write lock
    for an UPDATE matching nothing)."""
    after = now + timedelta(seconds=AHEAD_TOLERANCE_S)
    moved = _alarms_pull_back(now, after, step) + _commands_pull_back(now, after)
    moved += _sessions_pull_back(now, after) + _silences_pull_back(now, after)
    if _sockets_ahead(after).exists():
        moved += _sockets_ahead(after).update(seen_at=now)
    return moved


def _alarms_ahead(after: datetime) -> QuerySet:
    return Alarm.objects.filter(any_after(ALARM_MOMENTS, after), state=AlarmState.ACTIVE)


def _alarms_pull_back(now: datetime, after: datetime, step: timedelta | None) -> int:
    """Active alarms' moments ahead brought back, then each told (`device:alarm`: open screens show how long it has
    lasted and when it escalated from them; untold, they kept the wrong clock's until the alarm next changed)."""
    ahead = list(_alarms_ahead(after).values_list("pk", "device__device_id"))
    if not ahead:
        return 0
    _flood_details_pull_back([pk for pk, _ in ahead], now, after, step)
    active = Alarm.objects.filter(state=AlarmState.ACTIVE)
    moved = 0
    for field in ALARM_MOMENTS:
        back = Least(F(field) - step, Value(now)) if step else Value(now)
        moved += active.filter(**{f"{field}__gt": after}).update(**{field: back})
    for pk, device_id in ahead:
        with transaction.atomic():
            device = device_lock(device_id=device_id)
            alarm = Alarm.objects.select_related("session", "acknowledged_by").filter(pk=pk).first()
            if alarm is not None:
                change_record(device=device, event=events.DEVICE_ALARM, body=payloads.alarm_body(alarm))
    return moved


def _flood_details_pull_back(ahead: list[int], now: datetime, after: datetime, step: timedelta | None) -> None:
    """The flood alarms among `ahead` (written on the clock ahead, their `last_raised_at` ahead too): their details'
    moments back as the alarm's own (by `step`, no later than now; to now when unknown), and those of the counts they
    hold unsent (`countsHeld`: `since` orders the sending, `lastRaisedAt` is shown once sent). By the same step as the
    acknowledgement, news waiting (`newsDeferredSince`) stays before or after it as it was (review 51: taken to now,
    news the nurse acknowledged after it came read as come after, and alerted the alarm again)."""
    for alarm in Alarm.objects.filter(pk__in=ahead, type=ALARM_FLOOD):
        details = _moments_back(alarm.details, FLOOD_MOMENTS, now, after, step)
        if isinstance(details.get(FLOOD_COUNTS_HELD), dict):
            details[FLOOD_COUNTS_HELD] = _moments_back(details[FLOOD_COUNTS_HELD], HELD_MOMENTS, now, after, step)
        if details != alarm.details:
            Alarm.objects.filter(pk=alarm.pk).update(details=details)


def _moments_back(details: dict, keys: tuple[str, ...], now: datetime, after: datetime, step: timedelta | None) -> dict:
    """`details` with each of its moments under `keys` that lies beyond `after` brought back by `step`, no later than
    `now` (to `now` with no step)."""
    moved = dict(details)
    for key in keys:
        moment = parse_datetime(moved[key]) if isinstance(moved.get(key), str) else None
        if moment is not None and moment > after:
            moved[key] = payloads.iso(min(moment - step, now) if step else now)
    return moved


def _commands_beyond(after: datetime) -> tuple[datetime, datetime]:
    """The moments after which a START's deadline, and any other command's, lies beyond its own length."""
    return after + start_lifetime(), after + _expiry()


def _commands_ahead(after: datetime, start_beyond: datetime, other_beyond: datetime) -> QuerySet:
    start = Q(kind=CommandKind.START_INFUSION)
    beyond = (start & Q(expires_at__gt=start_beyond)) | (~start & Q(expires_at__gt=other_beyond))
    moments = Q(created_at__gt=after) | Q(published_at__gt=after)
    return Command.objects.filter(beyond | moments, state__in=COMMAND_UNSETTLED_STATES)


def _commands_pull_back(now: datetime, after: datetime) -> int:
    """Each command ahead brought back under its pump's lock and told (rare: only after a clock ran ahead)."""
    moved = 0
    for pk, device_id in _commands_ahead(after, *_commands_beyond(after)).values_list("pk", "device__device_id"):
        with transaction.atomic():
            device = device_lock(device_id=device_id)
            command = Command.objects.filter(pk=pk, state__in=COMMAND_UNSETTLED_STATES).first()
            if command is None:
                continue
            lifetime = start_lifetime() if command.kind == CommandKind.START_INFUSION else _expiry()
            command.expires_at = min(command.expires_at, now + lifetime)
            for field in COMMAND_MOMENTS:
                if getattr(command, field) is not None and getattr(command, field) > after:
                    setattr(command, field, now)
            command.save(update_fields=["expires_at", *COMMAND_MOMENTS])
            stored = Command.objects.select_related("session", "created_by").get(pk=pk)
            change_record(device=device, event=events.DEVICE_COMMAND, body=payloads.command_body(stored))
            moved += 1
    return moved


def command_deadline_ahead(command: Command, *, now: datetime) -> bool:
    """Whether a command's deadline lies beyond its own lifetime after `now` (stamped on a clock that ran ahead): the
    outbox holds it until the pull-back brings it back, rather than tell the pump and the broker the wrong clock's
    deadline (review 49: a Stop queued then went out with `expiresAt` an hour on)."""
    lifetime = start_lifetime() if command.kind == CommandKind.START_INFUSION else _expiry()
    return command.expires_at > now + timedelta(seconds=AHEAD_TOLERANCE_S) + lifetime


def _expiry() -> timedelta:
    return timedelta(seconds=settings.PUMPSTREAM["COMMAND_EXPIRY_S"])


def _sessions_ahead(after: datetime) -> QuerySet:
    pending = Q(status=SessionStatus.PENDING, created_at__gt=after)
    unconfirmed = Q(status__in=SESSION_ON_PUMP_STATUSES, unconfirmed_since__gt=after)
    return InfusionSession.objects.filter(pending | unconfirmed)


def _sessions_pull_back(now: datetime, after: datetime) -> int:
    if not _sessions_ahead(after).exists():
        return 0
    pending = InfusionSession.objects.filter(status=SessionStatus.PENDING, created_at__gt=after)
    on_pump = InfusionSession.objects.filter(status__in=SESSION_ON_PUMP_STATUSES, unconfirmed_since__gt=after)
    return pending.update(created_at=now) + on_pump.update(unconfirmed_since=now)


def _silence_max_s() -> float:
    return settings.PUMPSTREAM["WARD_SILENCE_MAX_S"]


def _silences_ahead(now: datetime, after: datetime, longest: timedelta) -> QuerySet:
    beyond = Q(started_at__gt=after) | Q(until__gt=F("started_at") + longest)
    return WardSilence.objects.filter(beyond, ended_at__isnull=True, until__gt=now)


def _silences_pull_back(now: datetime, after: datetime) -> int:
    """Open silences begun on a clock ahead end now: how much of them was left is unknown (begun at now and kept
    their length, one with 20 s left silenced the ward 120 s more: review 49), and when in doubt the alarm sounds.
    Any other ends no later than WARD_SILENCE_MAX_S after it began."""
    longest = timedelta(seconds=_silence_max_s())
    moved = 0
    for silence in _silences_ahead(now, after, longest):
        started_at = min(silence.started_at, now)
        until = now if silence.started_at > after else min(silence.until, started_at + longest)
        moved += WardSilence.objects.filter(pk=silence.pk, ended_at__isnull=True).update(started_at=started_at,
                                                                                       until=until)  # fmt: skip
    return moved


def _sockets_ahead(after: datetime) -> QuerySet:
    return LiveSocket.objects.filter(seen_at__gt=after)
