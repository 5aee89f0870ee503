"""The delivered volume a pump reports against its order: `delivery_divergence` (review 19, finding 2).

The read-back compares the rate a pump confirms and reports; this compares the volume it reports delivered
(`deliveredVolumeMl`, else the planned volume less `volumeRemainingMl`) with the order, on every progress report of
the session on the pump (never a retained copy, never a report naming another infusion):

- **beyond the planned volume**: more delivered than the order's planned volume plus its bolus (the original firmware's
  final progress counts the bolus twice: 35 mL of a 30 mL order with a 5 mL bolus, `legacy-firmware.json`) plus
  `VOLUME_TOLERANCE_ML`;
- **faster than its rate**: over a window of at least `WINDOW_S` of running, the delivered volume grew by more than
  the rate times the time (`RATE_MARGIN` over it, plus `SLACK_ML`, plus what of the order's bolus was not yet
  delivered when the window began: the bolus is pushed first). The rate is the highest of the order's, every
  `flowRate` the pump reported in the window, and the rate its confirmation reported (a titration the pump reports
  is the rate mismatch's to alarm, not this). The time is the server's receive span: the pump's own `elapsedTimeMin`
  (pumping time) only narrows it, where it agrees within `CLOCK_AGREEMENT` (a report received late at the window's
  start), never widens it: a pump whose timebase runs fast also pumps fast (review 27, finding 1), and a simulator
  run faster than real time is such a pump. A window starts anew at the session's pause, resume, restart or other move,
  after a silence longer than `HEARTBEAT_TIMEOUT_S`, when the delivered volume goes back, and while reports arrive
  bunched (`BURST_S` apart: queued, received long after they were measured).

Either raises a high `delivery_divergence` for the session (once while active: not counted per report), turns its
read-back to `mismatch` and keeps what raised it on the session (`delivery_divergence`, shown beside the read-back).
Once acknowledged, the active one alerts again (once, with the text of what it saw) at news: more than the whole order
delivered while it told something else (a count that went back: "the pump may give the order again"; a window off its
rate: review 29, finding 1), the count going back again, or the volume delivered in all a further `REALERT_SHARE` of
the whole order beyond the figure it last told (review 31, finding 1: a pump that gave the order a third time alerted
nothing). Still sounding, news is what it says from now on and breaks the ward's silence, its escalation not
restarted. Between alerts its text and details restate the volume delivered in all, to `RESTATE_SHARE` of the order
(`divergence_news.py`).
It is not cleared by the session's end: what was delivered stays delivered, so only a person's resolve clears it
(and the next report still off the order raises it again: when in doubt, alarm).
"""

from datetime import datetime, timedelta

from django.conf import settings

from devices.models import Alarm, Device, InfusionSession
from devices.services.alarms import alarm_raise
from devices.services.changes import session_changed
from devices.services.delivered_in_all import COUNT_WENT_BACK, delivered_count_step, interruption_counted_below
from devices.services.divergence_news import (
    ALERTED_ML,
    BEYOND_PLANNED,
    COUNT_STEP_ML,
    FASTER_THAN_RATE,
    divergence_alerted,
    divergence_news,
    divergence_restated,
    divergence_told_ml,
)
from devices.services.readback import DIVERGENCE_KEY, VOLUME_TOLERANCE_ML
from devices.services.silences import ward_silence_break
from devices.states import AlarmPriority, AlarmSource, AlarmState, ReadBack
from protocol.schemas import DevicePayload

WINDOW_S = 60.0  # a window is judged once it spans this much running: a bolus, a late report or a rounding is small
RATE_MARGIN = 0.25  # pump accuracy (about 5 %) + the window's timing (2 s at each end of 60 s: 7 %), doubled
# A count in steps of up to 0.1 mL is off rate x time by at most one step over a window, whatever the rate (the
# firmwares send 0.01 mL; a pump counting whole mL could exceed it at low rates: a documented limit).
SLACK_ML = COUNT_STEP_ML
# The pump's own pumping time may narrow a window's time by at most this share of the server's span (a report received
# late at its start); beyond it the clocks disagree and the server's is the one judged by.
CLOCK_AGREEMENT = 0.1
BURST_S = 0.25  # reports about 1 s apart arriving closer than this were queued: their receive time says nothing
RUNNING_REPORTS = (None, "running")


def delivery_check(
    *,
    device: Device,
    session: InfusionSession,
    reports: list[tuple[DevicePayload, datetime]],
    previous_at: datetime | None,
    divergent: set[int],
) -> None:
    """Compare each report's delivered volume with `session`'s order, in arrival order (`previous_at`: when the pump's
    progress before them was received); `divergent` holds the sessions whose `delivery_divergence` is active (not
    raised again, and one raised here is added). `session` may be the bulk path's partly loaded row: its window
    columns are updated in place and stored by the caller."""
    for report, received_at in reports:
        delivered = _delivered(session, report)
        if delivered is not None:
            went_back = delivered_count_step(session=session, report=report, delivered=delivered,
                                             received_at=received_at)  # fmt: skip
            if went_back is not None:
                went_back["limitMl"] = _whole_order_ml(session)
                interruption_counted_below(device=device, session=session, seen=went_back, previous_at=previous_at,
                                           now=received_at)  # fmt: skip
            seen = went_back or _beyond_planned(session, report, delivered, received_at)
            window = _window_step(session, report, delivered, received_at, previous_at)
            seen = seen or window
            if seen is not None and session.pk not in divergent and _still_off(session, seen):
                _divergence_raise(device=device, session=session, seen=divergence_alerted(seen), now=received_at)
                divergent.add(session.pk)
            elif seen is not None and seen["kind"] != FASTER_THAN_RATE:  # the active one: news, or its figure moved
                _divergence_followed(device=device, session=session, seen=seen, now=received_at)
        previous_at = received_at


def _delivered(session: InfusionSession, report: DevicePayload) -> float | None:
    """The volume the report says was delivered: `deliveredVolumeMl`, else the planned volume less what remains."""
    if report.deliveredVolumeMl is not None:
        return float(report.deliveredVolumeMl)
    if report.volumeRemainingMl is not None:
        return session.planned_volume_ml - float(report.volumeRemainingMl)
    return None


def _ordered_bolus(session: InfusionSession) -> float:
    return session.bolus_volume_ml if session.bolus_enabled else 0.0


def _whole_order_ml(session: InfusionSession) -> float:
    """The most an order may deliver: its planned volume, its bolus (counted twice by the original firmware's final
    progress, so added) and `VOLUME_TOLERANCE_ML`."""
    return round(session.planned_volume_ml + _ordered_bolus(session) + VOLUME_TOLERANCE_ML, 3)


def _beyond_planned(
    session: InfusionSession, report: DevicePayload, delivered: float, received_at: datetime
) -> dict | None:
    """More delivered in all (this run's count on top of the runs before it) than the whole order."""
    before = session.delivered_before_run_ml
    limit = _whole_order_ml(session)
    if before + delivered <= limit:
        return None
    seen = {"kind": BEYOND_PLANNED, "deliveredVolumeMl": round(before + delivered, 3), "limitMl": limit,
            "status": report.status or "running", "receivedAt": received_at.isoformat()}  # fmt: skip
    return {**seen, "deliveredBeforeMl": round(before, 3)} if before else seen


def _window_step(
    session: InfusionSession, report: DevicePayload, delivered: float, received_at: datetime,
    previous_at: datetime | None,
) -> dict | None:  # fmt: skip
    """Move the session's window by one report: start it anew, widen it, or judge it once it spans `WINDOW_S` (and
    start the next at this report). Returns what a judged window saw off its rate, else None."""
    if report.status not in RUNNING_REPORTS:
        return None  # paused or completed: no delivery expected; the session's move starts the next window
    start = session.delivery_window_at
    gap = timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"])
    if (start is None or previous_at is None or session.status_changed_at > start or received_at - previous_at > gap
            or delivered < session.delivery_window_ml
            or (previous_at == start and received_at - previous_at < timedelta(seconds=BURST_S))):  # fmt: skip
        _window_start(session, report, delivered, received_at)
        return None
    if report.flowRate is not None:
        session.delivery_window_rate_ml_min = max(report.flowRate, session.delivery_window_rate_ml_min or 0.0)
    span_s = (received_at - start).total_seconds()
    if span_s < WINDOW_S:
        return None
    seen = _window_judged(session, report, delivered, span_s, received_at)
    _window_start(session, report, delivered, received_at)
    return seen


def _window_start(session: InfusionSession, report: DevicePayload, delivered: float, received_at: datetime) -> None:
    session.delivery_window_at, session.delivery_window_ml = received_at, delivered
    session.delivery_window_elapsed_min = report.elapsedTimeMin
    session.delivery_window_rate_ml_min = report.flowRate


def _window_judged(
    session: InfusionSession, report: DevicePayload, delivered: float, span_s: float, received_at: datetime
) -> dict | None:
    """The window's growth against the highest rate it may have run at over the time the server saw it run."""
    minutes = _window_minutes(session, report, span_s)
    grown = delivered - session.delivery_window_ml
    rate = max(session.flow_rate_ml_min, session.delivery_window_rate_ml_min or 0.0)
    bolus_left = max(0.0, _ordered_bolus(session) - session.delivery_window_ml)
    allowed = _allowed(rate, minutes, bolus_left)
    if grown <= allowed:
        return None
    return {"kind": FASTER_THAN_RATE, "deliveredVolumeMl": delivered, "grewMl": round(grown, 3),
            "overMin": round(minutes, 3), "flowRateMlMin": rate, "bolusLeftMl": round(bolus_left, 3),
            "limitMl": round(allowed, 3), "receivedAt": received_at.isoformat()}  # fmt: skip


def _window_minutes(session: InfusionSession, report: DevicePayload, span_s: float) -> float:
    """The window's time: the server's receive span, or the pump's own pumping time where it agrees with that span
    and is shorter (a report received late at the window's start). Never longer: a pump whose timebase runs fast
    also pumps fast, and its clock would excuse exactly the overspeed it causes (review 27, finding 1)."""
    minutes = span_s / 60
    if report.elapsedTimeMin is None or session.delivery_window_elapsed_min is None:
        return minutes
    pumped = report.elapsedTimeMin - session.delivery_window_elapsed_min
    return pumped if minutes * (1 - CLOCK_AGREEMENT) <= pumped < minutes else minutes


def _allowed(rate_ml_min: float, minutes: float, bolus_left_ml: float) -> float:
    return rate_ml_min * minutes * (1 + RATE_MARGIN) + SLACK_ML + bolus_left_ml


def _still_off(session: InfusionSession, seen: dict) -> bool:
    """A window off its rate is still off at the rate the pump's confirmation reported (read only then: rare)."""
    if seen["kind"] != FASTER_THAN_RATE:
        return True
    reported = InfusionSession.objects.values_list("reported_parameters", flat=True).get(pk=session.pk)
    confirmed = reported.get("flowRateMlMin") if isinstance(reported, dict) else None
    if not isinstance(confirmed, int | float) or isinstance(confirmed, bool) or confirmed <= seen["flowRateMlMin"]:
        return True
    return seen["grewMl"] > _allowed(confirmed, seen["overMin"], seen["bolusLeftMl"])


def _divergence_followed(*, device: Device, session: InfusionSession, seen: dict, now: datetime) -> None:
    """The active divergence against what this report saw (more than the whole order, or a count gone back). News
    (`divergence_news`) alerts it again once acknowledged; while it still sounds, news is what its text says from now
    on, heard through the ward's silence, its escalation not restarted (as `alarm_flood`'s: an acknowledgement on its
    way is not refused). Else its figure is restated when it fell behind (`divergence_restated`). Reads the session's
    row and the alarm's, only then: a count gone back, or a report beyond the order."""
    kept = InfusionSession.objects.values_list("delivery_divergence", flat=True).get(pk=session.pk)
    kept, whole_order = (kept if isinstance(kept, dict) else {}), _whole_order_ml(session)
    news = divergence_news(kept, seen, whole_order)
    if not news and not divergence_restated(kept, seen, whole_order):
        return
    sounding = Alarm.objects.filter(session_id=session.pk, type=DIVERGENCE_KEY, state=AlarmState.ACTIVE,
                                    acknowledged_at__isnull=True).exists()  # fmt: skip
    # what a sounding alarm says is told; an acknowledged one restated keeps the figure it last told
    told = divergence_alerted(seen) if news or sounding else {**seen, ALERTED_ML: divergence_told_ml(kept)}
    alarm = _divergence_told(device=device, session=session, seen=told, now=now, realert=news and not sounding)
    if news and sounding:
        ward_silence_break(device=device, alarm=alarm, now=now)


def _divergence_raise(*, device: Device, session: InfusionSession, seen: dict, now: datetime) -> None:
    """High `delivery_divergence` for the session, its read-back a mismatch, what raised it kept and shown."""
    session.read_back = ReadBack.MISMATCH
    _divergence_told(device=device, session=session, seen=seen, now=now, mismatch=True)


def _divergence_told(
    *, device: Device, session: InfusionSession, seen: dict, now: datetime, realert: bool = False,
    mismatch: bool = False,
) -> Alarm:  # fmt: skip
    """The session's `delivery_divergence` says `seen` (kept and shown); `realert`: the active one alerts again
    (unacknowledged) with it; `mismatch`: the read-back turns to mismatch (at its raise; a follow-up leaves the
    read-back as it is: a restart's `unverified` stays so). Returns the alarm."""
    whole = _whole(session)
    whole.delivery_divergence = seen
    if mismatch:
        whole.read_back = ReadBack.MISMATCH
    whole.save(update_fields=["read_back", "delivery_divergence"] if mismatch else ["delivery_divergence"])
    alarm = alarm_raise(device=device, session=whole, type=DIVERGENCE_KEY, priority=AlarmPriority.HIGH,
                        source=AlarmSource.SERVER, now=now, details=seen, message=divergence_message(seen),
                        realert=realert)  # fmt: skip
    session_changed(device=device, session=whole)
    return alarm


def _whole(session: InfusionSession) -> InfusionSession:
    """`session`'s whole row (the bulk path's is partly loaded), with the delivered volume this report moved."""
    whole = InfusionSession.objects.get(pk=session.pk)
    whole.delivered_before_run_ml, whole.delivered_run_peak_ml = (session.delivered_before_run_ml,
                                                                  session.delivered_run_peak_ml)  # fmt: skip
    return whole


def divergence_message(seen: dict) -> str:
    """The alarm's text: what was delivered against what the order allows, and what to do."""
    if seen["kind"] == COUNT_WENT_BACK:
        beyond = ", more than the whole order" if seen["deliveredBeforeMl"] > seen["limitMl"] else ""
        return (f"The pump's delivered count went back to {seen['deliveredVolumeMl']:g} mL where "
                f"{seen['deliveredBeforeMl']:g} mL had been delivered{beyond}: what was delivered stays delivered, "
                f"and the pump may give the order again (the whole order is {seen['limitMl']:g} mL). Check the pump "
                "and the patient")  # fmt: skip
    if seen["kind"] == BEYOND_PLANNED:
        still = " and is still infusing" if seen.get("status") != "completed" else ""
        before = seen.get("deliveredBeforeMl")
        counted = f" in all ({before:g} mL before its count went back)" if before else ""
        return (f"The pump reports {seen['deliveredVolumeMl']:g} mL delivered{counted}, more than the whole order "
                f"({seen['limitMl']:g} mL with its bolus){still}: check the pump and the patient")  # fmt: skip
    return (f"The pump's delivered volume grew {seen['grewMl']:g} mL in {seen['overMin']:.1f} min, more than "
            f"{seen['limitMl']:g} mL at {seen['flowRateMlMin'] * 60:g} mL/h: it delivers faster than the rate it "
            "reports. Check the pump and the patient")  # fmt: skip
