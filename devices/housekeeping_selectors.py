"""Selectors of the time-driven checks (the bridge's housekeeping): unconfirmed starts, overdue commands, silent
and stale pumps, pumps online by a presence no broker vouches for, alarms due a reminder or an escalation,
escalation webhooks due a try.

Each takes the moment it judges as of: housekeeping asks with now to act, and with a moment ahead to learn
whether anything falls due before then (`realtime/bridge/housekeeping.py`, an idle bridge's sleep).

The reads the checks run on every round are compiled once per shape (`devices/services/prepared.py`): each query's
builder takes the moments it compares with (a cutoff, not now and a timeout), the settings it depends on as shape
values. A page that leaves out the rows a check skips reads as many more and drops them here (`_kept`), so that the
SQL does not change with them.
"""

from collections.abc import Collection
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import (
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce, Least

from devices.models import Alarm, Command, Device, EscalationDelivery, InfusionSession
from devices.services.prepared import Prepared
from devices.states import (
    AHEAD_TOLERANCE_S,
    ALARM_FLOOD,
    COMMAND_UNSETTLED_STATES,
    FLOOD_COUNTS_EVERY_S,
    FLOOD_COUNTS_HELD,
    FLOOD_COUNTS_SENT,
    FLOOD_NEWS_DEFERRED,
    FLOOD_NEWS_SIGNALLED,
    SESSION_ON_PUMP_STATUSES,
    START_DEADLINE_EXTRA_S,
    UNORDERED_ALARMS,
    AlarmPriority,
    AlarmState,
    CommandKind,
    DeliveryState,
    Presence,
    PumpState,
    ReadBack,
    SessionStatus,
)

WEBHOOK_MAX_RETRY_S = 60.0
REMINDED_PRIORITIES = {AlarmPriority.HIGH: "ALARM_REMINDER_HIGH_S", AlarmPriority.MEDIUM: "ALARM_REMINDER_MEDIUM_S"}
ESCALATION_DELAY_SETTINGS = {AlarmPriority.HIGH: "ESCALATION_HIGH_S", AlarmPriority.MEDIUM: "ESCALATION_MEDIUM_S",
                             AlarmPriority.LOW: "ESCALATION_LOW_S"}  # fmt: skip


def start_waiting_from(lifetime: timedelta | None = None) -> Coalesce:
    """When a pending start's confirmation time began: its START's publication, else the order's creation.

    Publication is when the broker link took it (`published_at`), else the broker's acknowledgement (`sent`), or
    earlier when that PUBACK came late (a START waits for it, `outbox.py`): its deadline, moved to run from its
    publication (`commands._start_deadline_from`), less its lifetime. The earlier of the two: never later than the
    publication, whatever the settings since the order."""
    lifetime = start_lifetime() if lifetime is None else lifetime
    published = Command.objects.filter(Q(sent_at__isnull=False) | Q(published_at__isnull=False), session=OuterRef("pk"),
                                       kind=CommandKind.START_INFUSION)  # fmt: skip
    published = published.annotate(
        went=Coalesce("published_at", "sent_at"),
        began=Least(F("went"), ExpressionWrapper(F("expires_at") - lifetime, output_field=DateTimeField())),
    )
    began = published.order_by("went").values("began")[:1]
    return Coalesce(Subquery(began, output_field=DateTimeField()), F("created_at"), output_field=DateTimeField())


def sessions_unconfirmed_since(
    *, cutoff: datetime, limit: int, after: tuple[datetime, int] | None = None
) -> list[tuple[str, str, datetime, int]]:
    """Pending sessions whose confirmation time began before `cutoff` (`start_waiting_from`), in that order:
    infusion id, pump, that moment, pk. `after` (such a moment and pk): only the ones after it, so a reader going
    through them page by page reaches every one, however many before it are held."""
    if after is None:
        return UNCONFIRMED.rows(cutoff, lifetime=start_lifetime(), limit=limit)
    return UNCONFIRMED.rows(cutoff, after[0], lifetime=start_lifetime(), limit=limit, after_pk=after[1])


def _unconfirmed(cutoff: datetime, after_at: datetime | None = None, *, lifetime: timedelta, limit: int,
                 after_pk: int | None = None) -> QuerySet:  # fmt: skip
    overdue = InfusionSession.objects.filter(status=SessionStatus.PENDING)
    overdue = overdue.annotate(waiting_from=start_waiting_from(lifetime)).filter(waiting_from__lt=cutoff)
    if after_at is not None:
        overdue = overdue.filter(Q(waiting_from__gt=after_at) | Q(waiting_from=after_at, pk__gt=after_pk))
    rows = overdue.order_by("waiting_from", "pk").values_list("infusion_id", "device__device_id", "waiting_from", "pk")
    return rows[:limit]


UNCONFIRMED = Prepared(_unconfirmed)


def sessions_unverified_since(
    *, cutoff: datetime, limit: int, after: tuple[datetime, int] | None = None
) -> list[tuple[int, str, datetime]]:
    """Sessions under way on a pump's evidence alone since before `cutoff` (`unconfirmed_since`: since they ran, first
    or again after their end, with no confirmation read back for this run): read-back unverified, and no
    `parameters_unverified` raised by this check in this run (raised, or resolved by a person, it is not raised again
    until the order runs again after a restart); pk, pump, that moment, oldest first. `after` (such a moment and
    pk): only the ones after it, so that a reader paging through them reaches every one however many before it are
    held (`sessions_unconfirmed_since`)."""
    if after is None:
        return UNVERIFIED.rows(cutoff, limit=limit)
    return UNVERIFIED.rows(cutoff, after[0], limit=limit, after_pk=after[1])


def _unverified(cutoff: datetime, after_at: datetime | None = None, *, limit: int,
                after_pk: int | None = None) -> QuerySet:  # fmt: skip
    waiting = InfusionSession.objects.filter(status__in=SESSION_ON_PUMP_STATUSES,
                                             read_back__in=(ReadBack.UNVERIFIED, ReadBack.MISMATCH),
                                             unconfirmed_since__lt=cutoff, unverified_raised=False)  # fmt: skip
    if after_at is not None:
        waiting = waiting.filter(Q(unconfirmed_since__gt=after_at) | Q(unconfirmed_since=after_at, pk__gt=after_pk))
    return waiting.order_by("unconfirmed_since", "pk").values_list("pk", "device__device_id",
                                                                  "unconfirmed_since")[:limit]  # fmt: skip


UNVERIFIED = Prepared(_unverified)


def heartbeat_cutoff(now: datetime) -> datetime:
    """The moment a pump unheard since before it is silent, as of `now`: the heartbeat timeout earlier."""
    return now - timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"])


def silent_sessions_filter(now: datetime) -> Q:
    """Running sessions unheard (no progress, no state change) for longer than the heartbeat timeout."""
    return silent_sessions_since(heartbeat_cutoff(now))


def silent_sessions_since(cutoff: datetime) -> Q:
    """Running sessions unheard (no progress, no state change) since before `cutoff`."""
    return Q(status=SessionStatus.RUNNING, status_changed_at__lt=cutoff) & (
        Q(device__latest_progress_at__isnull=True) | Q(device__latest_progress_at__lt=cutoff)
    )


def silent_unordered_filter(now: datetime) -> Q:
    """Pumps infusing without an order on the pump (an unordered-infusion alarm active, no session running or paused;
    an order still pending is not on the pump and owns none of its progress) unheard (no progress) for longer than
    the heartbeat timeout since that began: as silent as a running order's pump."""
    return silent_unordered_since(heartbeat_cutoff(now))


def silent_unordered_since(cutoff: datetime) -> Q:
    """Pumps infusing without an order on the pump unheard since before `cutoff`, which that began before."""
    unordered = Alarm.objects.filter(device=OuterRef("pk"), type__in=UNORDERED_ALARMS, state=AlarmState.ACTIVE,
                                     raised_at__lt=cutoff)  # fmt: skip
    on_pump = InfusionSession.objects.filter(device=OuterRef("pk"), status__in=SESSION_ON_PUMP_STATUSES)
    unheard = Q(latest_progress_at__isnull=True) | Q(latest_progress_at__lt=cutoff)
    return Q(pump_state=PumpState.RUNNING) & unheard & Q(Exists(unordered)) & ~Q(Exists(on_pump))


def device_silent_unordered(*, device: Device, now: datetime) -> bool:
    """Whether this pump infuses without an order on it and is unheard past the heartbeat (see above)."""
    return Device.objects.filter(silent_unordered_filter(now), pk=device.pk).exists()


def devices_silent_unalarmed(*, now: datetime, limit: int, offset: int = 0) -> list[str]:
    """Pumps infusing (a running session, or none on the pump: a pending order beside it or not) silent past the
    heartbeat and not yet alarmed `communication_lost`: running orders' pumps (longest unheard first), then pumps
    infusing without one; `offset` of them skipped (a reader going through them page by page reaches every one,
    however many are held)."""
    cutoff = heartbeat_cutoff(now)
    found = [device_id for (device_id,) in SILENT_SESSIONS.rows(cutoff, start=offset, stop=offset + limit)]
    if len(found) < limit:
        skip = max(0, offset - _silent_sessions(cutoff).count()) if not found and offset else 0  # offset past them
        found += [device_id for (device_id,) in SILENT_UNORDERED.rows(cutoff, start=skip,
                                                                      stop=skip + limit - len(found))]  # fmt: skip
    return found


def _silent_sessions(cutoff: datetime, *, start: int = 0, stop: int | None = None) -> QuerySet:
    alarmed = Alarm.objects.filter(device=OuterRef("device"), type="communication_lost", state=AlarmState.ACTIVE)
    silent = InfusionSession.objects.filter(silent_sessions_since(cutoff)).exclude(Exists(alarmed))
    return silent.order_by("status_changed_at", "pk").values_list("device__device_id")[start:stop]


def _silent_unordered(cutoff: datetime, *, start: int, stop: int) -> QuerySet:
    alarmed = Alarm.objects.filter(device=OuterRef("pk"), type="communication_lost", state=AlarmState.ACTIVE)
    unordered = Device.objects.filter(silent_unordered_since(cutoff)).exclude(Exists(alarmed))
    return unordered.order_by("latest_progress_at", "pk").values_list("device_id")[start:stop]


SILENT_SESSIONS, SILENT_UNORDERED = Prepared(_silent_sessions), Prepared(_silent_unordered)


def devices_stale_by_silence(*, cutoff: datetime) -> set[str]:
    """Pumps judged by their silence (without presence, or with a presence not vouched for: `unknown`) last heard
    before `cutoff` and not known offline: they have turned stale (`Device.connectivity`). A pump online by its
    presence is not: its Last Will says when it goes."""
    return {device_id for (device_id,) in STALE.rows(cutoff)}


def _stale(cutoff: datetime) -> QuerySet:
    stale = Device.objects.filter(last_seen_at__lt=cutoff).exclude(presence=Presence.OFFLINE)
    return stale.exclude(has_presence=True, presence=Presence.ONLINE).values_list("device_id")


STALE = Prepared(_stale)


def devices_presence_unvouched(*, started_at: datetime, limit: int, exclude: Collection[str] = ()) -> list[str]:
    """Pumps online by their presence but last heard before the broker now running started (`started_at`): that
    broker holds no Last Will of theirs (`realtime/bridge/broker_start.py`), so nothing would ever say they went."""
    rows = UNVOUCHED.rows(started_at, limit=limit + len(exclude))
    return [device_id for (device_id,) in _kept(rows, exclude, limit)]


def _unvouched(started_at: datetime, *, limit: int) -> QuerySet:
    online = Device.objects.filter(has_presence=True, presence=Presence.ONLINE, last_seen_at__lt=started_at)
    return online.order_by("device_id").values_list("device_id")[:limit]


UNVOUCHED = Prepared(_unvouched)


def _kept(found: list[tuple], exclude: Collection, limit: int) -> list[tuple]:
    """The first `limit` of a page read `len(exclude)` longer, without the rows whose first column is in `exclude`."""
    return [row for row in found if row[0] not in exclude][:limit]


def start_lifetime() -> timedelta:
    """How long a START may take to end: the confirmation timeout + 10 s (from the order; once published, from then)."""
    return timedelta(seconds=settings.PUMPSTREAM["CONFIRMATION_TIMEOUT_S"] + START_DEADLINE_EXTRA_S)


def starts_past_order_deadline(*, by: datetime) -> Q:
    """STARTs whose deadline from the order (its creation + `start_lifetime`) has come by `by`: never published
    after it, whatever `expires_at` says (moved to run from a publication that may not have happened)."""
    return Q(kind=CommandKind.START_INFUSION, created_at__lte=by - start_lifetime())


def commands_overdue(*, by: datetime) -> QuerySet:
    """Commands not yet ended whose deadline has come by `by`, the earliest first."""
    overdue = Command.objects.filter(state__in=COMMAND_UNSETTLED_STATES, expires_at__lte=by)
    return overdue.order_by("expires_at")


def commands_overdue_page(*, by: datetime, limit: int, exclude: Collection[int] = ()) -> list[tuple[int, str]]:
    """(pk, pump) of the first `limit` commands overdue by `by` (`commands_overdue`) but those in `exclude`."""
    rows = OVERDUE_PAGE.rows(by, limit=limit + len(exclude))
    return _kept(rows, exclude, limit)


def _overdue_page(by: datetime, *, limit: int) -> QuerySet:
    return commands_overdue(by=by).values_list("pk", "device__device_id")[:limit]


OVERDUE, OVERDUE_PAGE = Prepared(lambda by: commands_overdue(by=by)), Prepared(_overdue_page)


def escalation_delays(priority: str) -> list[float]:
    """Seconds after alerting at which an unacknowledged alarm of this priority reaches tier 1, 2, ..."""
    return [float(delay) for delay in settings.PUMPSTREAM[ESCALATION_DELAY_SETTINGS[priority]]]


def alarms_unanswered() -> QuerySet:
    """Active alarms nobody has acknowledged."""
    return Alarm.objects.filter(state=AlarmState.ACTIVE, acknowledged_at__isnull=True)


def alarms_unanswered_any() -> bool:
    return UNANSWERED.exists()


def escalation_tiers(by: datetime) -> tuple[tuple[tuple[str, int], ...], list[datetime]]:
    """Every tier of every priority as (priority, level), and for each the moment an alarm alerted by then is due
    it by `by`."""
    delays = [(priority, level, delay) for priority in ESCALATION_DELAY_SETTINGS
              for level, delay in enumerate(escalation_delays(priority))]  # fmt: skip
    tiers = [((priority, level), by - timedelta(seconds=delay)) for priority, level, delay in delays]
    return tuple(tier for tier, _ in tiers), [alerted_by for _, alerted_by in tiers]


def alarms_escalation_page(*, by: datetime, limit: int, exclude: Collection[int] = ()) -> list[tuple[int, str]]:
    """(pk, pump) of the unanswered alarms due their next tier by `by`, the longest waiting first, at most `limit`
    but those in `exclude` (none when no tier is set)."""
    tiers, alerted_by = escalation_tiers(by)
    if not tiers:
        return []
    rows = ESCALATION_DUE.rows(*alerted_by, tiers=tiers, limit=limit + len(exclude))
    return _kept(rows, exclude, limit)


def _escalation_due(*alerted_by: datetime, tiers: tuple[tuple[str, int], ...], limit: int) -> QuerySet:
    due = Q()
    for (priority, level), moment in zip(tiers, alerted_by, strict=True):
        due |= Q(priority=priority, escalation_level=level, alerted_at__lte=moment)
    return alarms_unanswered().filter(due).order_by("alerted_at").values_list("pk", "device__device_id")[:limit]


def alarms_acknowledged_active() -> QuerySet:
    """Active alarms somebody acknowledged (each reminds again after its priority's interval)."""
    return Alarm.objects.filter(state=AlarmState.ACTIVE, acknowledged_at__isnull=False)


def alarms_acknowledged_active_any() -> bool:
    return ACKNOWLEDGED.exists()


def alarms_reminder_page(*, by: datetime, limit: int, exclude: Collection[int] = ()) -> list[tuple[int, str]]:
    """(pk, pump) of the acknowledged alarms still active whose reminder interval has passed by `by`, the oldest
    first, at most `limit` but those in `exclude`."""
    rows = REMINDERS_DUE.rows(*reminder_cutoffs(by), limit=limit + len(exclude))
    return _kept(rows, exclude, limit)


def reminder_cutoffs(by: datetime) -> list[datetime]:
    """Per reminded priority (`REMINDED_PRIORITIES`' order), the moment an alarm acknowledged before is due by `by`."""
    return [by - timedelta(seconds=settings.PUMPSTREAM[setting]) for setting in REMINDED_PRIORITIES.values()]


def _reminders_due(*acknowledged_before: datetime, limit: int) -> QuerySet:
    due = Q()
    for priority, moment in zip(REMINDED_PRIORITIES, acknowledged_before, strict=True):
        due |= Q(priority=priority, acknowledged_at__lt=moment)
    due_rows = alarms_acknowledged_active().filter(due).order_by("acknowledged_at")
    return due_rows.values_list("pk", "device__device_id")[:limit]


UNANSWERED, ACKNOWLEDGED = Prepared(alarms_unanswered), Prepared(alarms_acknowledged_active)
ESCALATION_DUE, REMINDERS_DUE = Prepared(_escalation_due), Prepared(_reminders_due)


def flood_news_interval_over(details: dict, *, at: datetime) -> bool:
    """Whether an `alarm_flood` may signal news beyond the types it remembers at `at`: it never did, or its last
    such signal (`newsSignalledAt`) is `ALARM_FLOOD_NEWS_INTERVAL_S` old."""
    signalled = details.get(FLOOD_NEWS_SIGNALLED)
    if not isinstance(signalled, str):
        return True
    interval = timedelta(seconds=settings.PUMPSTREAM["ALARM_FLOOD_NEWS_INTERVAL_S"])
    return at >= datetime.fromisoformat(signalled) + interval


def alarm_floods_news_due(*, by: datetime) -> list[tuple[int, str]]:
    """(alarm id, device id) of the active `alarm_flood` alarms whose news beyond the types they remember waits
    (`newsDeferredSince`) and may be signalled by `by`, the longest waiting first. The interval is judged in Python:
    few alarms hold such news (one per flooding pump)."""
    rows = FLOODS_NEWS.rows()
    due = [(str(details[FLOOD_NEWS_DEFERRED]), pk, device_id) for pk, device_id, details in rows
           if flood_news_interval_over(details, at=by)]  # fmt: skip
    return [(pk, device_id) for _, pk, device_id in sorted(due)]


def flood_counts_send_due(details: dict, *, at: datetime) -> bool:
    """Whether an `alarm_flood`'s counts may be sent to the screens at `at`: they never were, or last were
    `FLOOD_COUNTS_EVERY_S` ago."""
    sent = details.get(FLOOD_COUNTS_SENT)
    return not isinstance(sent, str) or at >= datetime.fromisoformat(sent) + timedelta(seconds=FLOOD_COUNTS_EVERY_S)


def alarm_floods_counts_due(*, by: datetime) -> list[tuple[int, str]]:
    """(alarm id, device id) of the active `alarm_flood` alarms holding counts not yet sent (`countsHeld`) that may
    be sent by `by`, the longest waiting first (one per flooding pump, judged in Python)."""
    rows = FLOODS_COUNTS.rows()
    due = [(str(details[FLOOD_COUNTS_HELD]["since"]), pk, device_id) for pk, device_id, details in rows
           if flood_counts_send_due(details, at=by)]  # fmt: skip
    return [(pk, device_id) for _, pk, device_id in sorted(due)]


def _floods_holding(key: str) -> QuerySet:
    """(pk, pump, details) of the active `alarm_flood` alarms whose details hold `key`."""
    waiting = Alarm.objects.filter(type=ALARM_FLOOD, state=AlarmState.ACTIVE, details__has_key=key)
    return waiting.values_list("pk", "device__device_id", "details")


FLOODS_NEWS = Prepared(lambda: _floods_holding(FLOOD_NEWS_DEFERRED))
FLOODS_COUNTS = Prepared(lambda: _floods_holding(FLOOD_COUNTS_HELD))


def flood_counts_due_by(moment: datetime) -> bool:
    """A flood alarm's counts not yet sent may be sent by `moment`."""
    return bool(alarm_floods_counts_due(by=moment))


def flood_news_due_by(moment: datetime) -> bool:
    """A flood alarm's waiting news may be signalled by `moment`."""
    return bool(alarm_floods_news_due(by=moment))


def deliveries_pending() -> QuerySet:
    """Escalation webhooks still to be delivered (tried again later, or not yet tried)."""
    return EscalationDelivery.objects.filter(state=DeliveryState.PENDING)


def deliveries_pending_any() -> bool:
    return DELIVERIES_PENDING.exists()


DELIVERIES_PENDING = Prepared(deliveries_pending)


def delivery_retry_delay(tries: int) -> timedelta:
    """How long after a failed try a webhook is tried again: ESCALATION_WEBHOOK_RETRY_S, doubled per try, at most
    WEBHOOK_MAX_RETRY_S (none before the first try)."""
    if tries <= 0:
        return timedelta(0)
    retry_s = settings.PUMPSTREAM["ESCALATION_WEBHOOK_RETRY_S"] * 2 ** (tries - 1)
    return timedelta(seconds=min(WEBHOOK_MAX_RETRY_S, retry_s))


def deliveries_due(*, by: datetime) -> QuerySet:
    """Pending escalation webhooks whose next try has come by `by`, the earliest first; also one whose next try lies
    further from `by` than its retry delay (`deliveries_beyond`): set while the clock ran ahead, it is tried now
    rather than when the wrong clock's moment comes (review 48: the first page of an escalation an hour late)."""
    return deliveries_pending().filter(Q(next_try_at__lte=by) | deliveries_beyond(by)).order_by("next_try_at")


def deliveries_beyond(now: datetime) -> Q:
    """Deliveries whose next try lies more than its retry delay (and AHEAD_TOLERANCE_S) after `now`: no clock could
    have set it so but one that ran ahead (the first try is due when queued, each retry a delay after a failure)."""
    beyond = Q()
    for tries in range(settings.PUMPSTREAM["ESCALATION_WEBHOOK_TRIES"]):
        after = now + timedelta(seconds=AHEAD_TOLERANCE_S) + delivery_retry_delay(tries)
        beyond |= Q(tries=tries, next_try_at__gt=after)
    return beyond


def commands_due_by(moment: datetime) -> bool:
    return OVERDUE.exists(moment)


def reminders_due_by(moment: datetime) -> bool:
    """An acknowledged alarm due its reminder by `moment` (one plain query when none is acknowledged)."""
    return alarms_acknowledged_active_any() and bool(alarms_reminder_page(by=moment, limit=1))


def escalations_due_by(moment: datetime) -> bool:
    """An alarm due its next tier, or an escalation webhook due a try, by `moment` (plain queries when none is)."""
    if alarms_unanswered_any() and alarms_escalation_page(by=moment, limit=1):
        return True
    return deliveries_pending_any() and deliveries_due(by=moment).exists()
