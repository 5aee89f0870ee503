"""The alarm the server raises when a pump floods it: what its budgets shed, summed up in one `alarm_flood`."""

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from functools import partial

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from devices import payloads
from devices.housekeeping_selectors import (
    alarm_floods_counts_due,
    alarm_floods_news_due,
    flood_counts_send_due,
    flood_news_interval_over,
)
from devices.models import Alarm, Device
from devices.services.alarm_keys import alarm_is_literal_clearing
from devices.services.alarms import alarm_held_counts_fold, alarm_raise, alarm_realert_mark
from devices.services.changes import change_record, device_lock, event_record
from devices.services.rows import RowRun, row_run_plain
from devices.services.silences import ward_silence_break
from devices.states import (
    ALARM_FLOOD,
    ALARM_PRIORITY_RANK,
    FLOOD_COUNTS_HELD,
    FLOOD_COUNTS_SENT,
    FLOOD_NEWS_DEFERRED,
    FLOOD_NEWS_SIGNALLED,
    AlarmPriority,
    AlarmSource,
    AlarmState,
)
from protocol import events

TYPES_NAMED = 10
TYPE_NAMED_MAX = 64
TYPES_REMEMBERED = 256  # the types named since the alarm was raised, kept to tell news (beyond: news, rate-limited)
PER_TICK = 20  # flood alarms whose waiting news the housekeeping signals per tick


def alarm_flood_raise(
    *,
    device_id: str,
    shed: dict[str, int],
    alarm_types: Mapping[str, str] | Sequence[str] = (),
    more_types: bool = False,
    now: datetime | None = None,
) -> bool:
    """One high `alarm_flood` for messages shed over the pump's budgets (a repeat adds to its counts); False if unknown.

    `alarm_types`: the shed alarms' types with their priorities (a plain list: high, as an alarm of unknown severity
    is); `more_types`: more types were shed than given. Its details hold the messages shed per topic kind since it
    was raised and the `TYPES_NAMED` alarm types among them of the highest priority, the newest first within one
    (its message names them, so an alarm shed in a burst is still named), and every type it named since it was raised
    (`typesSeen`, at most `TYPES_REMEMBERED`). A repeat that names an alarm type it never named before, or at a
    higher priority than ever named, brings news: an acknowledged flood alarm alerts again
    (notification, sound, escalation from its start, the ward's silence broken); one still unacknowledged (still
    sounding) breaks the ward's silence. Beyond the types remembered, a type new to its text is news too, signalled
    at most once per `ALARM_FLOOD_NEWS_INTERVAL_S` (`flood_news_signal`). A repeat without news within
    `FLOOD_COUNTS_EVERY_S` of the last change sent is held (`_counts_hold`): its counts reach the screens
    with the next change, at the latest that interval later (`alarm_floods_counts_send`; review 23: a pump pacing its
    alarms one per batch had one `ward:alarm` per shed alarm sent to every screen). The server clears it never by
    itself: a user resolves it once the pump has been checked (docs/clinical-rules.md).
    """
    now = now or timezone.now()
    with transaction.atomic():
        if not Device.objects.filter(device_id=device_id).exists():
            return False
        device = device_lock(device_id=device_id)
        active = Alarm.objects.filter(device=device, type=ALARM_FLOOD, state=AlarmState.ACTIVE)
        found = active.values_list("pk", "details", "acknowledged_at").first()
        alarm_pk, earlier, acknowledged_at = found or (None, {}, None)
        total = Counter(earlier.get("shed", {})) + Counter(shed)
        shown = _types_named(earlier)
        named, dropped = shed_types_named(shown, _types_given(alarm_types))
        seen = dict(earlier["typesSeen"] if "typesSeen" in earlier else shown)  # raised before it: what it names
        news, beyond = shed_types_remember(seen, named, before=shown)
        signal, timing = flood_news_signal(
            earlier, news=bool(news), beyond=bool(beyond), acknowledged_at=acknowledged_at, now=now
        )
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(total.items()))
        others = earlier.get("otherTypes", False) or dropped or more_types
        listed = f" (alarms: {', '.join(named)}{', and others' if others else ''})" if named else ""
        message = f"The pump sent far more messages than a pump does; not shown: {kinds}{listed}. Check the pump."
        details = {"shed": dict(total), "alarmTypes": list(named), "alarmPriorities": named, "otherTypes": others,
                   "typesSeen": seen, "typesNotRemembered": earlier.get("typesNotRemembered", 0) + len(beyond),
                   **timing}  # fmt: skip
        if alarm_pk is not None and not signal and not flood_counts_send_due(earlier, at=now):
            _counts_hold(alarm_pk, earlier.get(FLOOD_COUNTS_HELD), message=message, now=now,
                         details={**details, FLOOD_COUNTS_SENT: earlier.get(FLOOD_COUNTS_SENT)})  # fmt: skip
            return True
        if alarm_pk is not None and FLOOD_COUNTS_HELD in earlier:  # sent now, with this repeat's change
            Alarm.objects.filter(pk=alarm_pk).update(count=F("count") + earlier[FLOOD_COUNTS_HELD]["repeats"])
        alarm = alarm_raise(
            device=device, type=ALARM_FLOOD, priority=AlarmPriority.HIGH, source=AlarmSource.SERVER, message=message,
            details={**details, FLOOD_COUNTS_SENT: payloads.iso(now)}, now=now,
            realert=signal and acknowledged_at is not None,
        )  # fmt: skip
        if signal and found is not None and acknowledged_at is None:  # still sounding: heard through a silence
            _silence_break(device, alarm, earlier=earlier, now=now)
    return True


def _counts_hold(alarm_pk: int, held: dict | None, *, details: dict, message: str, now: datetime) -> None:
    """A repeat without news within `FLOOD_COUNTS_EVERY_S` of the last change sent: its details (never sent to a
    screen) take it in, and what the screens show of it (count, text, last raised) waits in `FLOOD_COUNTS_HELD`,
    exactly and in the batch's transaction (a retried batch counts the same). The row's own count, text and last
    raised stay those of its last change: a snapshot read meanwhile shows what the live screens were sent (ci48: held
    counts written on the row showed a fresh snapshot a count no live screen had at the same change)."""
    repeats = held["repeats"] if held else 0
    since = held["since"] if held else payloads.iso(now)
    waiting = {"since": since, "repeats": repeats + 1, "message": message[:500], "lastRaisedAt": payloads.iso(now)}
    Alarm.objects.filter(pk=alarm_pk).update(details={**details, FLOOD_COUNTS_HELD: waiting})


def alarm_floods_counts_send(
    *, now: datetime | None = None, limit: int = PER_TICK, exclude: Collection[int] = (), run: RowRun = row_run_plain
) -> int:
    """Send the counts flood alarms hold unsent once `FLOOD_COUNTS_EVERY_S` has passed since their last change, the
    longest waiting first, at most `limit` but those in `exclude`, each through `run` (the bridge's housekeeping: a
    pump that stopped flooding sends no next flood to carry them); how many were sent."""
    now = now or timezone.now()
    due = [(alarm_id, device_id) for alarm_id, device_id in alarm_floods_counts_due(by=now) if alarm_id not in exclude]
    return sum(run("flood_counts", alarm_id, partial(_counts_send, alarm_id, device_id, now))
               for alarm_id, device_id in due[:limit])  # fmt: skip


def _counts_send(alarm_id: int, device_id: str, now: datetime) -> int:
    """One flood alarm's counts held unsent: folded into its row, its change recorded (every screen), and a row in
    the pump's log."""
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        found = Alarm.objects.filter(pk=alarm_id, state=AlarmState.ACTIVE)
        alarm = found.select_related("session", "acknowledged_by", "resolved_by").first()
        if alarm is None or not alarm_held_counts_fold(alarm):
            return 0
        alarm.details = {**alarm.details, FLOOD_COUNTS_SENT: payloads.iso(now)}
        alarm.save(update_fields=["count", "message", "last_raised_at", "details"])
        event_record(device=device, kind="alarm.flood_counted", received_at=now,
                     payload={"alarmId": alarm.pk, "type": alarm.type, "message": alarm.message, "count": alarm.count,
                              "shed": alarm.details.get("shed")})  # fmt: skip
        change_record(device=device, event=events.DEVICE_ALARM, body=payloads.alarm_body(alarm))
    return 1


def shed_types_named(named: dict[str, str], shed: dict[str, str]) -> tuple[dict[str, str], bool]:
    """The alarm types to name once `shed` (type: priority, oldest first) joins those `named` (oldest first): at most
    `TYPES_NAMED`, the highest priority first, the newest first within one; and whether any was left unnamed."""
    merged = dict(named)
    for alarm_type, priority in shed.items():
        before = merged.pop(alarm_type, priority)  # re-inserted: the newest
        merged[alarm_type] = max(before, priority, key=ALARM_PRIORITY_RANK.__getitem__)
    ranked = sorted(enumerate(merged.items()), key=lambda item: (ALARM_PRIORITY_RANK[item[1][1]], item[0]))
    kept = dict(pair for _, pair in reversed(ranked[-TYPES_NAMED:]))
    return kept, len(merged) > len(kept)


def shed_types_remember(
    seen: dict[str, str], named: dict[str, str], *, before: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Add the types `named` now to those `seen` (named since the alarm was raised, their highest priority; updated
    in place); the news among them (never named before, or at a higher priority than ever; a clearing literally
    `X_cleared` is none), and the news that could not be remembered (`TYPES_REMEMBERED` full): a type new to the
    text (not in `before`, the types it named until now) or named there at a lower priority. That is news all the
    same, for a real alarm may come among a broken pump's ever new junk types, but it is signalled at most once an
    interval (`flood_news_signal`), so such a pump cannot re-alert the acknowledged alarm for ever."""
    news: list[str] = []
    beyond: list[str] = []
    for alarm_type, priority in named.items():
        if alarm_is_literal_clearing(alarm_type):
            continue
        remembered = seen.get(alarm_type)
        if remembered is None and len(seen) >= TYPES_REMEMBERED:
            if ALARM_PRIORITY_RANK[priority] > ALARM_PRIORITY_RANK.get(before.get(alarm_type), 0):
                beyond.append(alarm_type)
        elif ALARM_PRIORITY_RANK[priority] > ALARM_PRIORITY_RANK.get(remembered, 0):
            seen[alarm_type] = priority
            news.append(alarm_type)
    return news, beyond


def flood_news_signal(
    earlier: dict, *, news: bool, beyond: bool, acknowledged_at: datetime | None, now: datetime
) -> tuple[bool, dict]:
    """Whether a flood alarm signals news now (re-alerted once acknowledged; else the ward's silence broken), and its
    details' keys timing the news beyond the types it remembers (`beyond` now, or waiting since an earlier flood).

    Such news is signalled at once when the last such signal is `ALARM_FLOOD_NEWS_INTERVAL_S` old (or none was), else
    it waits (`newsDeferredSince`) for the interval's end: the next flood, or the housekeeping
    (`alarm_floods_news_signal`) for a pump that stopped flooding. News within the types remembered is signalled at
    once, and carries what waits. Waiting news the nurse acknowledged after it was named is no news any more: she
    read the alarm's text after it came. Acknowledged at the same moment is not after: a clock put right brings both
    moments to now (`deadlines_ahead.py`), and the news was then dropped unsignalled. The timing returned is the
    signal's: one that interrupted nobody (the alarm still sounding, no silence on) restarts no interval
    (`_silence_break`).
    """
    waiting_since = earlier.get(FLOOD_NEWS_DEFERRED)
    if waiting_since and acknowledged_at is not None and acknowledged_at > datetime.fromisoformat(waiting_since):
        waiting_since = None
    waiting = beyond or waiting_since is not None
    if news or (waiting and flood_news_interval_over(earlier, at=now)):
        return True, ({FLOOD_NEWS_SIGNALLED: payloads.iso(now)} if waiting else _interval_kept(earlier))
    if waiting:
        return False, {**_interval_kept(earlier), FLOOD_NEWS_DEFERRED: waiting_since or payloads.iso(now)}
    return False, _interval_kept(earlier)


def _interval_kept(earlier: dict) -> dict:
    """The timing of a flood alarm whose news interval goes on as it was, nothing waiting."""
    return {FLOOD_NEWS_SIGNALLED: earlier[FLOOD_NEWS_SIGNALLED]} if earlier.get(FLOOD_NEWS_SIGNALLED) else {}


def _timed(details: dict, timing: dict) -> dict:
    """A flood alarm's details with this news timing instead of the one they held."""
    untimed = {key: value for key, value in details.items() if key not in (FLOOD_NEWS_DEFERRED, FLOOD_NEWS_SIGNALLED)}
    return {**untimed, **timing}


def _silence_break(device: Device, alarm: Alarm, *, earlier: dict, now: datetime) -> None:
    """A sounding flood alarm's news: its ward's silence broken. With none on, it interrupted nobody (the alarm is
    heard, its text names the news): its interval does not restart, and nothing waits."""
    if ward_silence_break(device=device, alarm=alarm, now=now) is None:
        alarm.details = _timed(alarm.details, _interval_kept(earlier))
        alarm.save(update_fields=["details"])


def alarm_floods_news_signal(
    *, now: datetime | None = None, limit: int = PER_TICK, exclude: Collection[int] = (), run: RowRun = row_run_plain
) -> int:
    """Signal the news beyond the types remembered that waits on flood alarms whose interval has ended, the longest
    waiting first, at most `limit` but those in `exclude`, each through `run` (the bridge's housekeeping: a pump that
    stopped flooding sends no next flood to carry it); how many were signalled."""
    now = now or timezone.now()
    due = [(alarm_id, device_id) for alarm_id, device_id in alarm_floods_news_due(by=now) if alarm_id not in exclude]
    return sum(run("flood_news", alarm_id, partial(_news_signal, alarm_id, device_id, now))
               for alarm_id, device_id in due[:limit])  # fmt: skip


def _news_signal(alarm_id: int, device_id: str, now: datetime) -> int:
    """One flood alarm's waiting news: re-alerted if acknowledged before it came, else its ward's silence broken."""
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        alarm = Alarm.objects.filter(pk=alarm_id, state=AlarmState.ACTIVE).first()
        if alarm is None or FLOOD_NEWS_DEFERRED not in alarm.details:
            return 0
        earlier, acknowledged_at = alarm.details, alarm.acknowledged_at
        signal, timing = flood_news_signal(earlier, news=False, beyond=False, acknowledged_at=acknowledged_at, now=now)
        if not signal and FLOOD_NEWS_DEFERRED in timing:
            return 0  # not due yet: a later flood signalled news and restarted the interval
        alarm.details = _timed(earlier, timing)
        if not signal or acknowledged_at is None:  # acknowledged after it came, or still sounding
            alarm.save(update_fields=["details"])
            if signal:
                _silence_break(device, alarm, earlier=earlier, now=now)
            return int(signal)
        alarm_realert_mark(alarm, now=now)
        alarm.save()
        event_record(device=device, kind="alarm.flood_news", received_at=now,
                     payload={"alarmId": alarm.pk, "type": alarm.type, "alarmTypes": alarm.details.get("alarmTypes"),
                              "acknowledgedAt": payloads.iso(acknowledged_at)})  # fmt: skip
        change_record(device=device, event=events.DEVICE_ALARM, body=payloads.alarm_body(alarm))
        change_record(device=device, event=events.DEVICE_NOTIFICATION, body=payloads.notification_body(alarm))
        ward_silence_break(device=device, alarm=alarm, now=now)
    return 1


def _types_named(details: dict) -> dict[str, str]:
    """The types an `alarm_flood` names, oldest first (its list is newest first); high when stored without one."""
    priorities = details.get("alarmPriorities", {})
    return {name: _priority(priorities.get(name)) for name in reversed(details.get("alarmTypes", []))}


def _types_given(alarm_types: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    if isinstance(alarm_types, Mapping):
        return {str(name)[:TYPE_NAMED_MAX]: _priority(priority) for name, priority in alarm_types.items()}
    return {str(name)[:TYPE_NAMED_MAX]: AlarmPriority.HIGH for name in alarm_types}


def _priority(priority: str | None) -> str:
    return priority if priority in ALARM_PRIORITY_RANK else AlarmPriority.HIGH
