"""The bodies of the ward feeds (`ward:summary`'s pumps, `ward:silence`), built from the models as the typed payloads
of `protocol/ward_payloads.py`; the overview page renders the same rows before its feed starts."""

from datetime import datetime

from django.conf import settings

from devices.models import Alarm, Device, InfusionSession, WardSilence
from devices.payloads import delivered_in_all_told, escalation_of, percent_of, unordered_progress
from protocol import ward_payloads as ward_wire
from protocol.limits import MINUTES_PER_HOUR


def silence_body(ward_code: str, silence: WardSilence | None, *, now: datetime) -> ward_wire.WardSilence:
    """`ward:silence`: the ward's silence now (`until` null when its sound is not silenced)."""
    if silence is None or not silence.is_active(now):
        return ward_wire.WardSilence(ward=ward_code, until=None, by=None, active=False, ended=_silence_end(silence))
    return ward_wire.WardSilence(
        ward=ward_code,
        until=silence.until,
        by=silence.started_by.get_username() if silence.started_by_id else None,
        active=True,
        startedAt=silence.started_at,
        remainingS=round(min((silence.until - now).total_seconds(), settings.PUMPSTREAM["WARD_SILENCE_MAX_S"]), 1),
        reason=silence.reason or None,
        priority=silence.priority or None,
    )


def _silence_end(silence: WardSilence | None) -> ward_wire.SilenceEnd | None:
    """How a silence ended: `reason` (`expired`, `ended`, `broken`, `renewed`), by whom, and the breaking alarm."""
    if silence is None:
        return None
    broken_by = None
    if silence.broken_by_id:
        alarm = silence.broken_by
        broken_by = ward_wire.SilenceBreaker(alarmId=alarm.pk, deviceId=alarm.device.device_id, priority=alarm.priority,
                                        type=alarm.type_shown)  # fmt: skip
    by = silence.ended_by.get_username() if silence.ended_by_id else None
    return ward_wire.SilenceEnd(reason=silence.end_reason or "expired", at=silence.ended_at or silence.until, by=by,
                           brokenBy=broken_by)  # fmt: skip


def top_alarm_body(alarm: Alarm | None) -> ward_wire.TopAlarm | None:
    """A pump's active alarm as overviews show it (its most urgent one is `topAlarm`)."""
    if alarm is None:
        return None
    return ward_wire.TopAlarm(id=alarm.pk, type=alarm.type_shown, key=alarm.type, priority=alarm.priority,
                         message=alarm.message, acknowledged=alarm.acknowledged_at is not None,
                         raisedAt=alarm.raised_at, lastRaisedAt=alarm.last_raised_at, alerts=alarm.alerts,
                         escalation=escalation_of(alarm))  # fmt: skip


def ml_h(rate_ml_min: float | None) -> float | None:
    """A rate in mL/h, unrounded: the very product the monitor computes (format.js `mlMinToMlH`), so the overview and
    the station round the same number the same way (three significant figures; an order's as typed). Rounded to two
    decimals here, 0.125 mL/h read "0.12 mL/h" on the overview beside the monitor's "0.125" (review 28, finding 2)."""
    return rate_ml_min * MINUTES_PER_HOUR if rate_ml_min is not None else None


def ward_pump_body(device: Device, session: InfusionSession | None, alarms: list[Alarm]) -> ward_wire.WardPump:
    """One pump of `ward:summary` (the overview page renders the same rows before the feed starts).

    `alarms`: the pump's active alarms, the most urgent first (`devices/alarm_order.py`: highest priority, then
    unacknowledged, then higher escalation tier, then newest); `topAlarm` is the first, the one the card shows, and
    `alarms` lists them all, so a station shows a medium alarm (a failed page) beside the pump's high one.
    A pump infusing without an order shows what it reports (`unordered`: true, its own rate and volumes), never
    "idle", also while an order waits for it (`sessionStatus` pending, `drug`: the waiting order, shown beside it),
    as the monitor shows it: the infusion the pump runs is the more important truth.
    `rateMlH` is only ever the rate the pump reported (none before its first progress, or when its progress leaves
    `flowRate` out); the order's is `orderedRateMlH`, which the card labels as ordered (review 19: the order's rate
    stood where the pump's goes, under "Pump reports running", while the monitor showed "—").
    """
    unordered = unordered_progress(device, session)
    progress = (unordered if unordered is not None else session.progress_on(device) if session else None) or {}
    rate = progress.get("flowRate") if isinstance(progress.get("flowRate"), int | float) else None  # the pump's only
    ordered = session.flow_rate_ml_min if session is not None else None  # `orderedRateMlH`: labelled as the order's
    return ward_wire.WardPump(
        deviceId=device.device_id,
        seq=device.event_seq,
        connectivity=device.connectivity(),
        lastSeenAt=device.last_seen_at,  # the overview derives staleness from it too
        hasPresence=device.has_presence,
        pumpState=device.pump_state if device.last_seen_at else None,
        drug=session.drug if session else None,
        infusionId=session.infusion_id if session else None,
        sessionStatus=session.status if session else None,
        unordered=unordered is not None,
        rateMlH=ml_h(rate),
        orderedRateMlH=ml_h(ordered),
        deliveredBeforeRunMl=_delivered_before_run(session, unordered),
        deliveredInAllMl=delivered_in_all_told(session) if unordered is None else None,
        progressPercent=percent_of(progress),
        timeRemainingMin=progress.get("timeRemainingMin"),
        deliveredVolumeMl=progress.get("deliveredVolumeMl"),
        volumeRemainingMl=progress.get("volumeRemainingMl"),
        topAlarm=top_alarm_body(alarms[0] if alarms else None),
        alarms=[top_alarm_body(alarm) for alarm in alarms],
        bed=device.bed or None,
    )


def _delivered_before_run(session: InfusionSession | None, unordered: dict | None) -> float | None:
    """What the order delivered before the pump's count went back, beside the order's own progress only."""
    if session is None or unordered is not None or not session.delivered_before_run_ml:
        return None
    return round(session.delivered_before_run_ml, 3)
