"""Routine progress, applied in bulk: many pumps' progress reports in a handful of queries.

Progress is routine, not an event-log entry (no `DeviceEvent`). Per pump, in arrival order, every
report is considered for the sampled history (`PROGRESS_SAMPLE_INTERVAL_S`); the newest becomes the
latest progress of the pump and of its active session, and is recorded as ONE `device:progress`
change (one `seq`). Older reports of the same pump in the same call are coalesced: a client sees the
newest values, which is all a progress bar shows.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from django.conf import settings

from devices import payloads
from devices.models import Alarm, Device, InfusionSession, ProgressSample
from devices.services.alarms import alarm_clear
from devices.services.changelog import change_log_append
from devices.services.changes import change_record, status_changed
from devices.services.delivery import DIVERGENCE_KEY, delivery_check
from devices.services.evidence import (
    ended_session_named,
    infusion_evidence_apply,
    is_evidence_for,
    unordered_infusion_alarm,
    unordered_infusion_ended,
)
from devices.services.heard import pump_heard
from devices.services.late_reports import report_late_record, report_seq_late, seq_mark_restart, seq_mark_set
from devices.services.named import session_named
from devices.services.progress_lock import (
    ACTIVE,
    DELIVERED_FIELDS,
    DELIVERY_WINDOW_FIELDS,
    SERVER_ALARMS_WATCHED,
    ProgressPump,
)
from devices.services.pump_state import pump_state_set
from devices.services.readback import readback_progress_check
from devices.services.readback_planned import readback_planned_check
from devices.services.restarts import pump_restart_detect, pump_restarted
from devices.services.running_reports import running_rates
from devices.services.sql import HotCursor, hot_cursor, insert_sql, rows_update
from devices.services.status import progress_resumed_apply
from devices.states import ACTIVE_SESSION_STATUSES, UNORDERED_ALARMS, AlarmState, PumpState, SessionStatus
from protocol import events, topics
from protocol.events import DeviceChange
from protocol.schemas import DevicePayload

PROGRESS_EXCLUDED_FIELDS = {"deviceId", "seq", "bootId", "infusionId"}
ROUTINE_STATUSES = (None, "running")
DEVICE_FIELDS = (
    "last_seen_at", "presence", "latest_progress", "latest_progress_at", "event_seq", "pump_state", "boot_id",
    "last_uptime_ms", "last_uptime_at", "seq_applied",
)  # fmt: skip
# in the model's order, as `sql` wants them
SESSION_FIELDS = (*DELIVERY_WINDOW_FIELDS, *DELIVERED_FIELDS, "last_sampled_at")
SAMPLE_COLUMNS = ("session", "recorded_at", "status", "delivered_volume_ml", "volume_remaining_ml",
                  "time_remaining_min", "progress_percent", "flow_rate_ml_min")  # fmt: skip
# A history point as `samples_insert` stores it: the session's pk, when, status, then the floats in that order.
Sample = tuple[int, datetime, str, float | None, float | None, float | None, float | None, float | None]


class ProgressApplied(NamedTuple):
    """What `progress_apply_many` did: the changes recorded, and the reports that came late (`late_reports.py`)."""

    changes: int
    late: int


@dataclass(frozen=True)
class ProgressReport:
    """One progress message from a registered pump, as received."""

    device_id: str
    report: DevicePayload
    received_at: datetime
    retained: bool = False


def progress_fields(report: DevicePayload) -> dict:
    """The progress as stored and forwarded: the report's fields without the identifiers."""
    return report.model_dump(mode="json", exclude_none=True, exclude=PROGRESS_EXCLUDED_FIELDS)


def progress_apply_many(
    *, pumps: dict[str, ProgressPump], reports: Sequence[ProgressReport], cursor: HotCursor | None = None
) -> ProgressApplied:
    """Apply progress reports of locked pumps inside the caller's transaction; returns the changes recorded and how
    many reports came late (`late_reports.py`: recorded, not applied). `cursor`: the caller's, shared by its
    statements (`hot_cursor`)."""
    by_pump: dict[str, list[ProgressReport]] = defaultdict(list)
    for item in reports:
        by_pump[item.device_id].append(item)
    samples: list[Sample] = []
    late: list[ProgressReport] = []
    changes = [(pumps[device_id].device.pk, _pump_progress(pumps[device_id], pump_reports, samples, late=late))
               for device_id, pump_reports in by_pump.items()]  # fmt: skip
    logged = [(device_pk, change) for device_pk, change in changes if change is not None]
    touched = [pumps[device_id] for device_id in by_pump]
    with hot_cursor(cursor) as cursor:  # its `prepared`: a receive time adapted for the receipts is not again here
        rows_update([pump.device for pump in touched], DEVICE_FIELDS, cursor.prepared, cursor)
        change_log_append(entries=logged, cursor=cursor)
        rows_update([pump.session for pump in touched if pump.session is not None], SESSION_FIELDS, cursor.prepared,
                    cursor)  # fmt: skip
        samples_insert(samples, cursor)
    return ProgressApplied(len(logged), len(late))


def progress_apply(*, device: Device, report: DevicePayload, received_at: datetime) -> None:
    """Apply one progress report to an already locked pump (the one-message path for non-routine progress; a
    retained copy never comes here: `pump_report_apply` drops it as no news)."""
    pump = _pump_for(device)
    samples: list[Sample] = []
    change = _pump_progress(pump, [ProgressReport(device.device_id, report, received_at)], samples, seen_already=True)
    if change is not None:
        change_log_append(entries=[(device.pk, change)])
    device.save(update_fields=["latest_progress", "latest_progress_at", "event_seq", "pump_state", "boot_id",
                               "last_uptime_ms", "last_uptime_at"])  # fmt: skip
    if pump.session is not None:
        pump.session.save(update_fields=SESSION_FIELDS)
    samples_insert(samples)


def _pump_for(device: Device) -> ProgressPump:
    session = InfusionSession.objects.filter(device=device, status__in=ACTIVE_SESSION_STATUSES).first()
    watched = Alarm.objects.filter(device=device, type__in=SERVER_ALARMS_WATCHED, state=AlarmState.ACTIVE)
    rows = list(watched.values_list("type", "error_code", "session"))
    divergent = {session_pk for alarm_type, _, session_pk in rows if alarm_type == DIVERGENCE_KEY}
    return ProgressPump(device, session, {(alarm_type, code) for alarm_type, code, _ in rows}, divergent)


def _pump_progress(
    pump: ProgressPump,
    reports: list[ProgressReport],
    samples: list[Sample],
    *,
    seen_already: bool = False,
    late: list[ProgressReport] | None = None,
) -> DeviceChange | None:
    """One pump's reports in arrival order: heard, restarts, late ones left out, evidence, sampled, the newest as one
    change.

    Returns that change, its `seq` taken but not yet stored or logged: the caller does both (it is the
    pump's last change in this call, so its log entry still follows the pump's other entries). None when the
    newest report is about another infusion than the one on the pump: it is heard, never shown as that one's; None
    too when every report came late (`late_reports.py`: each recorded in the pump's log and put in `late`).
    """
    fresh = [item for item in reports if not item.retained]  # a retained copy is state, never news (review 16)
    if not fresh:
        return None  # a retained copy is state the broker kept, not news from the pump: nothing heard (review 16)
    device = pump.device
    if not seen_already:  # the one-message path's caller heard the pump, looked for a restart and judged it in order
        _pump_heard(pump, fresh[-1].received_at)
        fresh = [item for item in fresh if _in_order(pump, item, late if late is not None else [])]
        if not fresh:
            return None
    newest = fresh[-1]
    now = newest.received_at
    _evidence_check(pump, newest)
    paused_before = pump.session is not None and pump.session.status == SessionStatus.PAUSED
    resumed = progress_resumed_apply(device=device, session=pump.session, report=newest.report, now=now)
    pump.session = resumed or pump.session
    on_pump = pump.session if pump.session is not None and pump.session.status != SessionStatus.PENDING else None
    if on_pump is not None:  # each report judged by the infusion it names, not by the batch's newest (review 16)
        named = [item for item in fresh if item.report.infusionId in (None, on_pump.infusion_id)]
        before = device.latest_progress if paused_before else None  # not loaded on the bulk path: read when needed
        flowing = running_rates([item.report for item in named], before=before, paused_before=paused_before,
                                paused_after=on_pump.status == SessionStatus.PAUSED)  # fmt: skip
        readback_progress_check(device=device, session=on_pump, rates=flowing, now=now)  # paused, completed: 0
        readback_planned_check(device=device, session=on_pump, reports=[item.report for item in named], now=now)
        about = [(item.report, item.received_at) for item in named]
        delivery_check(device=device, session=on_pump, reports=about, previous_at=device.latest_progress_at,
                       divergent=pump.divergent)  # fmt: skip
    session = _session_owning(pump, newest.report)
    if session is None and pump.session is not None and pump.session.status != SessionStatus.PENDING:
        return None  # about another infusion than the one on the pump (a late copy): heard, nothing shown
    progress = progress_fields(newest.report)
    device.latest_progress, device.latest_progress_at = progress, now
    _silence_ended(pump, now)  # the moment the silence check measures from, on either path
    if session is not None:
        samples.extend(_samples(session, fresh))
    else:
        _unordered_progress(pump, newest.report, now)
    infusion_id = session.infusion_id if session else None  # no order: the snapshot holds it the same way
    return change_record(device=device, event=events.DEVICE_PROGRESS, store_seq=False,
                         body=payloads.progress_body(progress, infusion_id=infusion_id, received_at=now,
                                                     session=session))  # fmt: skip


def _session_owning(pump: ProgressPump, report: DevicePayload) -> InfusionSession | None:
    """The session this progress belongs to: the one on the pump, unless the report names another infusion.

    A pending order owns no progress: progress that shows the pump infusing it made it run (`_evidence_check`);
    any other progress while it waits is the pump's own infusion, without an order.
    """
    session = pump.session
    if session is None or session.status == SessionStatus.PENDING:
        return None
    if report.infusionId and report.infusionId != session.infusion_id:
        return None
    return session


def _in_order(pump: ProgressPump, item: ProgressReport, late: list[ProgressReport]) -> bool:
    """Whether a report is applied: not late by its `seq` under the pump's `bootId` (`late_reports.py`), or one that
    told a restart (its `bootId` new: the mark starts at it). The mark moves with each report in order; a late one
    is recorded in the pump's log and put in `late`. Its restart looked for in either case, in arrival order."""
    device, report = pump.device, item.report
    is_late = report_seq_late(device=device, kind=topics.PROGRESS, report=report, retained=False,
                              received_at=item.received_at)  # fmt: skip
    if not is_late:
        seq_mark_set(device=device, report=report, retained=False)
    if _restart_check(pump, item):
        is_late = False
        seq_mark_restart(device=device, report=report)
    if is_late:
        report_late_record(device=device, kind="progress", report=report, raised=False, now=item.received_at,
                           session_pk=pump.session.pk if pump.session is not None else None)  # fmt: skip
        late.append(item)
    return not is_late


def _restart_check(pump: ProgressPump, item: ProgressReport) -> bool:
    """A progress report from a new boot (or with uptime gone back) ends what the pump was doing; True if it did."""
    report = item.report
    why = pump_restart_detect(device=pump.device, boot_id=report.bootId, timestamp=report.timestamp,
                              kind="progress", retained=item.retained, received_at=item.received_at)  # fmt: skip
    if why:
        pump_restarted(device=pump.device, why=why, now=item.received_at)
        pump.session = None
        status_changed(device=pump.device, now=item.received_at)
    return bool(why)


def _evidence_check(pump: ProgressPump, newest: ProgressReport) -> None:
    """Running progress for a pending order, or for one the server had ended, makes it run: evidence wins.

    Progress naming an infusion other than the active session goes to the one it names (never onto the session).
    """
    report, session = newest.report, pump.session
    if report.status not in ROUTINE_STATUSES or (session is not None and session.status != SessionStatus.PENDING
                                                 and report.infusionId in (None, session.infusion_id)):  # fmt: skip
        return
    named_other = report.infusionId and (session is None or report.infusionId != session.infusion_id)
    if named_other:
        if session is None and pump.alarms & {(name, "") for name in UNORDERED_ALARMS}:
            return  # already known to infuse without an order: no look-up per report
        candidate = ended_session_named(device=pump.device, infusion_id=report.infusionId)
    elif session is None:
        return
    else:
        candidate = InfusionSession.objects.get(pk=session.pk)  # the pending row, whole: it is about to change
    if candidate is not None and is_evidence_for(candidate, infusion_id=report.infusionId, status=report.status,
                                                 kind="progress"):  # fmt: skip
        infusion_evidence_apply(device=pump.device, session=candidate, why="progress", now=newest.received_at)
        if candidate.status in ACTIVE_SESSION_STATUSES:
            pump.session = candidate


def _unordered_progress(pump: ProgressPump, report: DevicePayload, now: datetime) -> None:
    """Progress with no order: the pump's state as reported, and the unordered-infusion alarm once (tied to the
    ended infusion the report names, if any: the pump's own end of that infusion clears it)."""
    device, status = pump.device, report.status
    state = PumpState.PAUSED if status == "paused" else PumpState.IDLE if status == "completed" else PumpState.RUNNING
    if state == PumpState.IDLE:
        unordered_infusion_ended(device=device, reason="the pump reports completed", now=now)
        pump.alarms -= {(name, "") for name in UNORDERED_ALARMS}
    elif not pump.alarms & {(name, "") for name in UNORDERED_ALARMS}:
        named = session_named(device=device, infusion_id=report.infusionId)
        ended = named if named is not None and named.status not in ACTIVE else None
        pump.alarms.add((unordered_infusion_alarm(device=device, now=now, session=ended), ""))
    if pump_state_set(device=device, state=state, save=False):  # stored with the pump's row (`DEVICE_FIELDS`)
        status_changed(device=device, now=now)


def _pump_heard(pump: ProgressPump, now: datetime) -> None:
    """`last_seen_at` (never moved back: `heard.pump_heard`), presence back online, and `device:status` if that shows
    (the silence ends only with progress stored as the pump's latest: `_silence_ended`)."""
    device = pump.device
    was_connectivity = device.connectivity(now=now)
    pump_heard(device=device, received_at=now)  # stored with the pump's row (`DEVICE_FIELDS`)
    if device.connectivity(now=now) != was_connectivity:
        status_changed(device=device, now=now)


def _silence_ended(pump: ProgressPump, now: datetime) -> None:
    """Progress stored as the pump's latest ends a silence: its `communication_lost` is cleared. Progress about
    another infusion than the one on the pump (not shown) ends none: the check measures from `latest_progress_at`,
    which it leaves as it was, so clearing there raised a new alarm at the next tick."""
    if any(alarm_type == "communication_lost" for alarm_type, _ in pump.alarms):
        alarm_clear(device=pump.device, types=["communication_lost"], reason="the pump is heard again", now=now)
        pump.alarms = {key for key in pump.alarms if key[0] != "communication_lost"}


def _samples(session: InfusionSession, reports: list[ProgressReport]) -> list[Sample]:
    """A history point whenever PROGRESS_SAMPLE_INTERVAL_S has passed since the session's last one."""
    interval = timedelta(seconds=settings.PUMPSTREAM["PROGRESS_SAMPLE_INTERVAL_S"])
    samples = []
    for item in reports:
        if session.last_sampled_at is not None and item.received_at - session.last_sampled_at < interval:
            continue
        report = item.report
        samples.append((session.pk, item.received_at, report.status or session.status, report.deliveredVolumeMl,
                        report.volumeRemainingMl, report.timeRemainingMin, report.progressPercent,
                        report.flowRate))  # fmt: skip
        session.last_sampled_at = item.received_at
    return samples


def samples_insert(samples: list[Sample], cursor: HotCursor | None = None) -> None:
    """Store history points with one prepared INSERT (executemany), each value as its field's own preparation
    gives it: `bulk_create` compiled the INSERT and built a model per point, on a fifth of the bridge's batches.
    `cursor`: the caller's, shared by its statements (`hot_cursor`)."""
    if not samples:
        return
    with hot_cursor(cursor) as cursor:
        adapt = cursor.wrapper.ops.adapt_datetimefield_value
        rows = [(session_pk, adapt(recorded_at), str(status), *map(_float_or_none, values))
                for session_pk, recorded_at, status, *values in samples]  # fmt: skip
        cursor.executemany(insert_sql(ProgressSample, SAMPLE_COLUMNS), rows)


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)  # as FloatField's preparation
