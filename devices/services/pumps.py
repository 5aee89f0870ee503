"""What pumps report, applied: presence, status, restarts, progress, errors; silence checked.

The status table lives in `status`; restarts and the idle rule in `restarts`; evidence in `evidence`; confirmations,
completions, actions at the pump and bolus reports in `infusion_reports`.
"""

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from django.db import transaction

from devices.housekeeping_selectors import device_silent_unordered, silent_sessions_filter
from devices.models import Device, InfusionSession
from devices.services.alarms import (
    alarm_clear,
    alarm_is_clearing,
    alarm_is_literal_clearing,
    alarm_raise,
    priority_from_severity,
    types_cleared_by,
)
from devices.services.changes import device_lock, event_record, status_changed
from devices.services.evidence import pending_named_evidence_apply
from devices.services.heard import pump_heard
from devices.services.infusion_reports import (
    action_apply,
    bolus_report_apply,
    completion_apply,
    confirmation_apply,
    confirmation_apply_late,
)
from devices.services.late_reports import (
    alarms_raised_before,
    report_late_record,
    report_overtaken_in_run,
    report_seq_late,
    seq_mark_restart,
    seq_mark_set,
)
from devices.services.progress import progress_apply
from devices.services.restarts import pump_restart_check
from devices.services.sql import model_fields_save
from devices.services.status import STATUS_EFFECTS, progress_completed_apply, progress_paused_apply
from devices.states import AlarmPriority, AlarmSource, AlarmState, Presence
from protocol import topics
from protocol.salvage import refused_fields
from protocol.schemas import PRESENCE_STATUSES, DevicePayload, device_timestamp_parse
from protocol.visible_text import shows_nothing

DEGRADED_STATUSES = ("degraded", "issue")
# Statuses that say nothing of the pump's health: presence says connected or gone (an `online` on reconnecting, the
# Last Will's `offline`), not well, so neither clears a `degraded` the pump reported (review 19)
INFORMATIONAL_STATUSES = ("testing", *DEGRADED_STATUSES, *PRESENCE_STATUSES)
NOT_INFUSING = ("healthy", "idle", "stopped", "completed")  # the pump says it is not delivering


class ReportApplied(NamedTuple):
    """What `pump_report_apply` found: the report told a restart; it came late (`late_reports.py`: numbered below
    a message already applied under its `bootId`; recorded, nothing rewound, an alarm still raised)."""

    restarted: bool = False
    late: bool = False


def pump_report_apply(
    *, device_id: str, kind: str, topic: str, report: DevicePayload, received_at: datetime, retained: bool = False,
    heard_at: datetime | None = None, gone_at: datetime | None = None, news_queued: bool = True,
    held_at: datetime | None = None,
) -> ReportApplied:  # fmt: skip
    """Apply one accepted message from a registered pump; idempotent for replays of the same report. Returns whether
    it told a restart and whether it came late. `heard_at`: the message is the broker's retained copy, read again once
    the pump was registered, and the pump itself was last heard then (`_pump_seen`); `gone_at`: the server heard it
    told gone then, after that (an `offline` turned away before its registration). `news_queued`, for a retained
    copy: what the pump published since the bridge last held the broker was queued for it and came as news (its
    session lasted, the copy is QoS 1), so the copy is no newer than what was applied (`_presence_of_a_copy`).
    `held_at`: a message held and claimed again after a told reboot (the new run's, sent before the status that told
    it), first received then: it moves no `seq` mark, and is late only when a newer message of its kind and run was
    applied before it (`late_reports.report_overtaken_in_run`), never by the run before's mark.

    A non-retained report that shows a restart ends what the pump was doing first (see `restarts`). A live report
    numbered below one applied under its `bootId` is late: written in the pump's log, and only an alarm it raises is
    applied (`late_reports.py`); the status that tells a reboot under a reused `bootId` starts the mark anew.
    Inside a caller's transaction it takes no savepoint of its own (the bridge's per-message savepoint already
    undoes a refused report; on PostgreSQL each savepoint is two more statements per message).
    """
    if kind == topics.PROGRESS and retained:
        return ReportApplied()  # a retained progress copy is state the broker kept, never news: nothing heard
    with transaction.atomic(savepoint=False):
        device = device_lock(device_id=device_id, with_session=True)
        was_connectivity = device.connectivity(now=received_at)
        late, overtaken_by = False, None
        if held_at is not None:  # claimed again after a told reboot: late if a newer one of its run was applied
            overtaken_by = report_overtaken_in_run(device=device, kind=kind, report=report, received_at=received_at,
                                                   held_at=held_at)  # fmt: skip
            late = overtaken_by is not None
        else:
            late = report_seq_late(device=device, kind=kind, report=report, retained=retained, received_at=received_at)
        marked = not late and held_at is None and seq_mark_set(device=device, report=report, retained=retained)
        presence_moved = _pump_seen(device, kind, report, received_at, heard_at, retained=retained, gone_at=gone_at,
                                    news_queued=news_queued, marked=marked)  # fmt: skip
        if kind != topics.PROGRESS or report.status not in (None, "running"):
            _event(device, kind, topic, report, received_at)
        restarted = pump_restart_check(device=device, kind=kind, report=report, retained=retained, now=received_at)
        if restarted:  # the run before's mark retired (a reboot under a reused `bootId` is told by a late status)
            late = False
            if seq_mark_restart(device=device, report=report):
                model_fields_save(device, ("seq_applied",))
        if late:
            visible_change = _late_apply(device, kind, report, received_at, after=overtaken_by)
        else:
            visible_change = REPORT_HANDLERS[kind](device, report, received_at)
        if restarted or visible_change or presence_moved or device.connectivity(now=received_at) != was_connectivity:
            status_changed(device=device, now=received_at)
    return ReportApplied(restarted, late)


def _late_apply(device: Device, kind: str, report: DevicePayload, now: datetime, *, after: int | None = None) -> bool:
    """A late report: recorded in the pump's log (`after`: the `seq` it came after, if not the mark); an alarm it
    raises is raised (or counted on the active one), a clearing clears only what messages numbered below it raised
    (`_late_clearing_apply`), a confirmation's parameters are read back for a session running on the pump's evidence
    (`confirmation_apply_late`), and nothing else is applied (`late_reports.py`)."""
    cleared = kind == topics.ERROR and alarm_is_clearing(report.type) and _late_clearing_apply(device, report, now)
    raised = kind == topics.ERROR and not cleared and _late_alarm_raises(device, report)
    if raised:
        _alarm_raise(device, report, now)
    if kind == topics.INFUSION:
        confirmation_apply_late(device, report, now)  # its own changes recorded, as `confirmation_apply`'s
    report_late_record(device=device, kind=kind, report=report, raised=raised, cleared=cleared, after=after,
                       session_pk=device.active_session_pk, now=now)  # fmt: skip
    return False


def _late_clearing_apply(device: Device, report: DevicePayload, now: datetime) -> bool:
    """A late clearing clears the pump's active alarms it names that only messages of its `bootId` numbered below it
    raised (`late_reports.alarms_raised_before`, review 47 M4); True when it cleared one. One raised or counted again
    by a newer message stays (review 44 F1)."""
    named = device.alarms.filter(type__in=types_cleared_by(report.type), source=AlarmSource.DEVICE,
                                 state=AlarmState.ACTIVE)  # fmt: skip
    if report.errorCode:
        named = named.filter(error_code=report.errorCode)
    older = alarms_raised_before(device=device, alarms=list(named), report=report)
    if not older:
        return False
    return bool(alarm_clear(device=device, types=types_cleared_by(report.type), source=AlarmSource.DEVICE,
                            reason=report.text or report.type, now=now, ids=[alarm.pk for alarm in older]))  # fmt: skip


def pump_mark_stale(*, device_id: str, now: datetime) -> None:
    """Announce that a pump without presence turned stale (its status now shows `degraded`)."""
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        status_changed(device=device, now=now)


def _event(device: Device, kind: str, topic: str, report: DevicePayload, now: datetime) -> None:
    event_record(
        device=device, kind=f"mqtt.{kind}", topic=topic, payload=report.model_dump(mode="json", exclude_none=True),
        session_pk=device.active_session_pk, device_timestamp=report.timestamp,
        device_timestamp_parsed=device_timestamp_parse(report.timestamp), device_seq=report.seq,
        boot_id=report.bootId or "", received_at=now,
    )  # fmt: skip


def _late_alarm_raises(device: Device, report: DevicePayload) -> bool:
    """Whether a late `error` is raised: an alarm is; a clearing is not, unless it would clear nothing and is not
    literally `X_cleared` ("Occlusion not cleared" is the alarm it says it is, review 15: `_clearing_apply`)."""
    if not alarm_is_clearing(report.type):
        return True
    if alarm_is_literal_clearing(report.type):
        return False
    would_clear = device.alarms.filter(type__in=types_cleared_by(report.type), source=AlarmSource.DEVICE,
                                       state=AlarmState.ACTIVE)  # fmt: skip
    if report.errorCode:
        would_clear = would_clear.filter(error_code=report.errorCode)
    return not would_clear.exists()


def _pump_seen(
    device: Device, kind: str, report: DevicePayload, now: datetime, heard_at: datetime | None = None, *,
    retained: bool = False, gone_at: datetime | None = None, news_queued: bool = True, marked: bool = False,
) -> bool:  # fmt: skip
    """Heard (`heard.pump_heard`: last heard never moved back) and presence, stored in one UPDATE; True when presence
    moved. A silence alarm clears on progress or a move of the infusion, not here.

    A retained copy the broker handed over on a subscription is what it kept, of an unknown age, not the pump heard
    now: it moves neither last heard nor presence back from `offline` (`_presence_of_a_copy`), or a switched-off pump's
    `online` brought back by a crashed broker's store (review 34, finding 4) or by the bridge's next subscription after
    a Will the pump did not retain (review 44, F4) would look just heard, or online. Only for a pump never heard (not
    told gone by a Will either) is its arrival the moment heard, and its `online` its presence: a pump that connected
    before it was registered and says nothing more while idle (`docs/protocol.md`, "A pump registered while it is
    connected").

    A retained status read again for a pump registered after the bridge turned its messages away (`heard_at`,
    `realtime/bridge/rereads.py`) is the broker's copy, not the pump heard now: its last heard is when the server last
    received a message of the pump itself then, whatever the copy says (an `offline` too: the broker's). When the
    server then heard the pump told gone (`gone_at`: its Last Will, not retained, turned away as an unknown pump's)
    and has not heard it since, the copy is applied as after that `offline`, as it would have been had the pump been
    registered: its retained `online` is older than the Will, and makes it neither online nor heard
    (`_presence_of_a_copy`); it read "Online" though the server had heard it go away.

    `marked`: the pump's `seq` mark moved (`late_reports.seq_mark_set`, never for a retained copy), stored in the same
    UPDATE. A late message is heard as any live message is (its pump's stack sent it now, on a live connection),
    though what it says is not applied (but its presence: a live `online` is the pump there now)."""
    presence_before = device.presence
    if gone_at is not None and (device.last_seen_at is None or device.last_seen_at < gone_at):
        device.presence = Presence.OFFLINE  # told gone before it was registered, and not heard since
    first_contact = device.presence == Presence.UNKNOWN and (device.last_seen_at is None or heard_at is not None)
    says = report.status if kind == topics.STATUS else None
    mark = ("seq_applied",) if marked else ()
    fields: tuple[str, ...] = mark
    if heard_at is not None:
        fields = (*pump_heard(device=device, received_at=heard_at, live=False), *mark)
    elif not retained or (device.last_seen_at is None and device.presence != Presence.OFFLINE):
        fields = (*pump_heard(device=device, received_at=now, says_offline=says == "offline", live=not retained), *mark)
    if says in PRESENCE_STATUSES:
        device.presence = _presence_said(device, says, copy=retained, first_contact=first_contact,
                                         news_queued=news_queued)  # fmt: skip
    if device.presence != presence_before:
        fields = tuple(dict.fromkeys((*fields, "presence")))
    if fields:
        model_fields_save(device, fields)  # every live message: an UPDATE written once per shape
    return device.presence != presence_before


def _presence_said(device: Device, says: str, *, copy: bool, first_contact: bool, news_queued: bool) -> str:
    """The presence after an `online`/`offline` status: what it says, but for a retained `online` of a pump heard
    before (`_presence_of_a_copy`). A retained `offline` (a retained Will missed while away) is applied: it can make
    a pump look gone, never look there."""
    if says == "offline":
        return Presence.OFFLINE
    if not copy or first_contact:
        return Presence.ONLINE
    return _presence_of_a_copy(device, news_queued=news_queued)


def _presence_of_a_copy(device: Device, *, news_queued: bool) -> str:
    """The presence after the broker's retained `online` of a pump heard before: a copy of unknown age vouches for
    nothing now (review 44, F4). Online stays online, unknown (not vouched for: review 34) stays unknown. Offline (a
    Will the pump did not retain leaves its older `online` retained, handed over on every subscription) stays
    offline when what the pump published since would have come as news (`news_queued`): the copy is older than that
    Will. Otherwise (the bridge's session expired, or the copy is QoS 0, never queued) the pump may have come back
    while the bridge was away: presence not vouched for (unknown), so it reads stale by its last heard, not offline
    for ever, until it is heard live."""
    if device.presence == Presence.OFFLINE and not news_queued:
        return Presence.UNKNOWN
    return device.presence


def _server_alarm(
    device: Device, type: str, priority: AlarmPriority, message: str, now: datetime, session: InfusionSession | None
) -> None:
    """Raise a server alarm (of `session`) once; while it is active, repeats of its cause are not news."""
    if not device.alarms.filter(type=type, error_code="", state=AlarmState.ACTIVE).exists():
        alarm_raise(device=device, type=type, priority=priority, source=AlarmSource.SERVER, message=message,
                    session=session, now=now)  # fmt: skip


def _status(device: Device, report: DevicePayload, now: datetime) -> bool:
    pump_state_before = device.pump_state
    if not STATUS_EFFECTS[report.status](device, report, now):  # about another infusion: not the pump's state now
        return _status_fields(device, report, about_now=False)
    visible = _status_fields(device, report)
    if report.status in DEGRADED_STATUSES:
        _server_alarm(device, "device_degraded", AlarmPriority.MEDIUM, f"The pump reports {report.status}", now,
                      device.active_session)  # fmt: skip
    elif report.status not in INFORMATIONAL_STATUSES:
        alarm_clear(device=device, types=["device_degraded"], reason=f"the pump reports {report.status}", now=now)
    if report.status in NOT_INFUSING:
        alarm_clear(device=device, types=["infusing_without_order"], source=AlarmSource.SERVER,
                    reason=f"the pump reports {report.status}", now=now)  # fmt: skip
    return visible or device.pump_state != pump_state_before


def _status_fields(device: Device, report: DevicePayload, *, about_now: bool = True) -> bool:
    """Store what a status message says about the pump (its presence: `_pump_seen`); True when something shown changed.

    A status about another infusion than the current one (`about_now` False) keeps the reported status shown.
    """
    wanted = {"reported_status": report.status} if about_now else {}
    if report.batteryLevel is not None:
        wanted["battery_level"] = round(report.batteryLevel)
    elif "batteryLevel" in refused_fields(report):  # read in part: its battery unreadable, the old one no longer true
        wanted["battery_level"] = None
    if report.firmwareVersion:
        wanted["firmware_version"] = report.firmwareVersion
    changed = [name for name, value in wanted.items() if getattr(device, name) != value]
    for name in changed:
        setattr(device, name, wanted[name])
    if changed:
        device.save(update_fields=changed)
    return bool(changed)


# ---- progress -------------------------------------------------------------------------------------------


def _progress(device: Device, report: DevicePayload, now: datetime) -> bool:
    """Progress on the one-message path (paused or completed progress; routine progress comes in bulk).

    Paused progress pauses the infusion it is about first (`progress_paused_apply`), so it is stored as that
    paused session's progress. Completed progress completes it after it is stored (`progress_completed_apply`), so
    it is that session's final progress; a pending order it names ran first (evidence), as for a completion."""
    if report.status == "paused":
        progress_paused_apply(device=device, report=report, now=now)
    elif report.status == "completed":
        pending_named_evidence_apply(device=device, infusion_id=report.infusionId, why="progress completed", now=now)
    progress_apply(device=device, report=report, received_at=now)
    if report.status == "completed":
        progress_completed_apply(device=device, report=report, now=now)
    return False


# ---- errors (confirmations, completion, actions and bolus reports: `infusion_reports`) ---------------


def _error(device: Device, report: DevicePayload, now: datetime) -> bool:
    """An alarm at the pump; `X_cleared` clears the pump's own `X`/`X_detected`, never a server alarm (v1.1); a
    clearing that clears nothing and is not literally `X_cleared` is raised as an alarm (`_clearing_apply`)."""
    if alarm_is_clearing(report.type) and _clearing_apply(device, report, report.errorCode or "", now):
        return False
    _alarm_raise(device, report, now)
    return False


def _alarm_raise(device: Device, report: DevicePayload, now: datetime) -> None:
    """The pump's alarm raised, or counted on the active one of its key."""
    error_code = report.errorCode or ""
    alarm_raise(
        device=device, type=report.type, error_code=error_code, priority=priority_from_severity(report.severity),
        source=AlarmSource.DEVICE, message=_message_shown(report.text), severity_reported=report.severity or "",
        details=report.details, session=device.active_session, device_timestamp=report.timestamp, now=now,
    )  # fmt: skip


def _message_shown(text: str) -> str:
    """The alarm's message, or none when a screen draws nothing of it (zero-width characters only): the pages then name
    the alarm by its type, never by a blank (review 36)."""
    return "" if shows_nothing(text) else text


def _clearing_apply(device: Device, report: DevicePayload, error_code: str, now: datetime) -> bool:
    """Clear what a clearing names; False when it cleared nothing and is not literally `X_cleared`: then it is
    raised as the alarm it says it is ("Occlusion not cleared" is no clearing of `occlusion_not`, which nothing
    raised: review 15). The contract's `X_cleared` that cleared nothing is written in the pump's log
    (`alarm.clearing_unmatched`: already resolved by a person, shed in a flood, another `errorCode`)."""
    keys = types_cleared_by(report.type)
    if alarm_clear(device=device, types=keys, error_code=error_code or None, source=AlarmSource.DEVICE,
                   reason=report.text or report.type, now=now):  # fmt: skip
        return True
    if not alarm_is_literal_clearing(report.type):
        return False
    event_record(device=device, kind="alarm.clearing_unmatched", session_pk=device.active_session_pk, received_at=now,
                 payload={"type": report.type, "keys": keys, "errorCode": error_code})  # fmt: skip
    return True


def _recorded_only(device: Device, report: DevicePayload, now: datetime) -> bool:
    """Test messages: the audit event (and the restart they announce) is all they change."""
    return False


REPORT_HANDLERS: dict[str, Callable[[Device, DevicePayload, datetime], bool]] = {
    topics.STATUS: _status,
    topics.PROGRESS: _progress,
    topics.INFUSION: confirmation_apply,
    topics.COMPLETION: completion_apply,
    topics.ACTIONS: action_apply,
    topics.ERROR: _error,
    topics.BOLUS: bolus_report_apply,
    topics.TEST: _recorded_only,
}


def pump_presence_unvouched(*, device_id: str, broker_started_at: datetime, now: datetime) -> bool:
    """The pump's `online` no longer stands: it was last heard before the broker now running started, which holds no
    Last Will of its (`realtime/bridge/broker_start.py`). Its presence goes back to unknown, so it reads stale by its
    age until it is heard again (a live pump reconnecting says `online`). Returns whether it changed: the pump may
    have been heard since it was selected."""
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        last_seen_at = device.last_seen_at
        if device.presence != Presence.ONLINE or last_seen_at is None or last_seen_at >= broker_started_at:
            return False
        device.presence = Presence.UNKNOWN
        model_fields_save(device, ("presence",))
        status_changed(device=device, now=now)
    return True


def pump_silence_check(*, device_id: str, now: datetime) -> bool:
    """Raise `communication_lost` once if the pump's running session is silent past the heartbeat timeout, or
    the pump infuses with no order on record and sends no progress (a pump heard only by its presence must not
    look healthy while its infusion is unobserved).

    Silence is measured from the session's last progress or state change (an unordered infusion: from its last
    progress and the moment its alarm was raised), and only those end it (progress shown, `progress._silence_ended`;
    a move of the session; the pump reporting its own infusion ended), so other messages (a heartbeat status, an
    error) neither hide it nor end it: at most one alarm per silence. The alarm of an unordered infusion belongs to
    no session: an order pending beside it is not on the pump, and its end (cancelled, timed out) says nothing of
    the pump's silence.
    """
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        session = InfusionSession.objects.filter(silent_sessions_filter(now), device=device).first()
        if session is not None:
            last = max(moment for moment in (session.progress_at_on(device), session.status_changed_at) if moment)
            message = f"No progress from the pump for {(now - last).total_seconds():.0f} s while infusing"
        elif device_silent_unordered(device=device, now=now):
            message = "No progress from the pump while it infuses without an order"
        else:
            return False
        _server_alarm(device, "communication_lost", AlarmPriority.HIGH, message, now, session)
        return True
