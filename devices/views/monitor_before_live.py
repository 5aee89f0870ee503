"""The pump monitor as the server renders it: what static/js/monitor.js shows at its first render, before the page is
live, read from the same `monitor_state` the script starts from, so the page does not move when the script runs.

On a tablet or a phone the order, its read-back, the figures and the alarms are above the controls: rendered only by
the script, they pushed Pause and Stop down about 280 px (500 px with a read-back on a phone) as it ran, under a
finger about to press. Nothing here is said as live: the pump is "Stale" unless the server knows it offline or never
heard (`card_before_live`), the panel greyed as not current (pumpstream.css), the controls disabled; the words are the
template's (templates/devices/_monitor_panel.html), only figures and times are formatted here, by format.js's rules.
"""

import math
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from devices.states import ACTIVE_SESSION_STATUSES, PUMP_INFUSING_STATES, SESSION_ON_PUMP_STATUSES

ACTIVE = {status.value for status in ACTIVE_SESSION_STATUSES}
ON_PUMP = {status.value for status in SESSION_ON_PUMP_STATUSES}
INFUSING = {state.value for state in PUMP_INFUSING_STATES}


def monitor_before_live(monitor: dict) -> dict:
    """The monitor's session, order, read-back, figures and buttons as the script first renders them (its
    `renderSession`, `renderReadBack`, `renderProgress`, `MonitorControls.render`), from `monitor_state`."""
    status = monitor["status"] or {}
    unordered = is_unordered(monitor["session"], status.get("pumpState"))
    held = monitor["session"]  # the controls and the read-back are the held session's, beside an unordered infusion too
    session = None if unordered else held
    active = bool(held) and held["status"] in ACTIVE
    return {
        "unordered": unordered,
        "session": session,
        "pending_beside": unordered and (held or {}).get("status") == "pending",
        "pending_drug": ((held or {}).get("order") or {}).get("drug"),
        "session_status": (held or {}).get("status"),
        "reason": _reason_said(session),
        "ordered": _ordered_text((session or {}).get("order")),
        "readback": readback_shown(held) if active else None,
        "charted": bool(session and session.get("order") and (session.get("confirmedAt") or session.get("createdAt"))),
        "active": active,
        "battery": status.get("batteryLevel"),
        "last_heard_at": clock(status["lastSeenAt"]) if status.get("lastSeenAt") else None,
    }


def is_unordered(session: dict | None, pump_state: str | None) -> bool:
    """format.js `isUnordered`: the pump infuses and no order is on it."""
    on_pump = bool(session) and session["status"] in ON_PUMP
    return not on_pump and pump_state in INFUSING


def _reason_said(session: dict | None) -> str:
    """Who moved it, once it is no longer simply pending or confirmed (monitor.js `renderSession`)."""
    if not session or not session.get("reason"):
        return ""
    status, reason = session["status"], session["reason"]
    said = status not in ("pending", "running") or (status == "running" and reason != "confirmed")
    return f" — {reason}" if said else ""


def _ordered_text(order: dict | None) -> str:
    """The "Ordered" line's figures: "60.0 mL/h · 100.0 mL · 1 h 40 min" (monitor.js `renderSession`)."""
    if not order:
        return "—"
    bolus = order.get("bolus") or {}
    text = (
        f"{exact(_ml_h(order.get('flowRateMlMin')), 'mL/h')} · {exact(order.get('plannedVolumeMl'), 'mL')} · "
        f"{duration(order.get('plannedTimeMin'))}"
    )
    return f"{text} · bolus {exact(bolus.get('volumeMl'), 'mL')}" if bolus.get("enabled") else text


def readback_shown(session: dict) -> dict | None:
    """readback.js `renderReadBack`'s verdict, rows, received rate and notes; None while it shows none."""
    verdict = session.get("readBack") or ("unverified" if session["status"] in ON_PUMP else None)
    if not verdict:
        return None
    order = session.get("order") or {}
    restarted = bool(session.get("unconfirmedSince") and session.get("reportedParameters"))
    reported = {} if session.get("unconfirmedSince") else (session.get("reportedParameters") or {})
    unreadable = session.get("parametersUnreadable") is True
    unreported = "restart" if restarted else "unreadable" if unreadable else "none"
    bolus = order.get("bolus") or {}
    seen = session.get("progressMismatch") if verdict == "mismatch" else None
    rows = [
        ("Rate", _rate(order.get("flowRateMlMin")), _said(reported.get("flowRateMlMin"), _rate)),
        ("Volume", fixed(order.get("plannedVolumeMl"), 2, "mL"), _said(reported.get("plannedVolumeMl"), _ml)),
        ("Time", duration(order.get("plannedTimeMin")), _said(reported.get("plannedTimeMin"), duration)),
        ("Bolus", fixed(bolus.get("volumeMl") if bolus.get("enabled") else 0, 2, "mL"),
         _said(_reported_bolus(reported), _ml)),
    ]  # fmt: skip
    if seen:
        rows[0] = ("Rate", rows[0][1], _seen_running(seen, rows[0][2]))
    received = session.get("receivedFlowRateMlMin")
    return {
        "verdict": verdict,
        "unreadable": verdict == "unverified" and unreadable,
        "rows": rows,
        "unreported": unreported,
        "received": (_rate(order.get("flowRateMlMin")), _rate(received), _clock_or_none(session.get("deliveredAt")))
        if received is not None
        else None,
        "restarted_at": clock(session["unconfirmedSince"]) if restarted else None,
        "divergence": divergence_text(session.get("deliveryDivergence")),
    }


def divergence_text(seen: dict | None) -> str | None:
    """readback.js `deliveryDivergenceText`: what the delivered volume said against the order, or None."""
    if not seen:
        return None
    at = f"seen in its progress at {clock(seen.get('receivedAt'))}"
    delivered, limit = _ml(seen.get("deliveredVolumeMl")), _ml(seen.get("limitMl"))
    before = seen.get("deliveredBeforeMl")
    if seen.get("kind") == "count_went_back":
        return (
            f"DELIVERED COUNT WENT BACK: the pump counts {delivered} delivered where {_ml(before)} "
            f"had been delivered; it may give the order again (the whole order is {limit}; {at})."
        )
    if seen.get("kind") == "beyond_planned":
        before = f" in all ({_ml(before)} before its count went back)" if before else ""
        return (
            f"DELIVERED VOLUME OFF THE ORDER: the pump reports {delivered} delivered{before}, "
            f"more than the whole order ({limit} with its bolus; {at})."
        )
    return (
        f"DELIVERED VOLUME OFF THE ORDER: {_ml(seen.get('grewMl'))} delivered in "
        f"{fixed(seen.get('overMin'), 1, 'min')}, more than {limit} at {_rate(seen.get('flowRateMlMin'))} ({at})."
    )


def alarms_shown(alarms: list[dict], now: datetime) -> list[dict]:
    """monitor_alarms.js `row` for each active alarm (already the most urgent first): its type, what it said, how
    long it has lasted, its escalation tier while unacknowledged, when it was acknowledged."""
    return [_alarm_shown(alarm, now) for alarm in alarms]


def _alarm_shown(alarm: dict, now: datetime) -> dict:
    count = f" · ×{alarm['count']}" if (alarm.get("count") or 0) > 1 else ""
    acknowledged = alarm.get("acknowledged")
    return {
        "id": alarm["id"],
        "alerts": alarm.get("alerts"),
        "raised_at": alarm.get("raisedAt"),
        "priority": alarm["priority"],
        "type": _human_type(alarm.get("type")),
        "said": f"{alarm.get('message') or ''} (raised {clock(alarm.get('raisedAt'))}{count}) ",
        "lasting": _lasting(alarm.get("raisedAt"), now),
        "escalated": None if acknowledged else (alarm.get("escalation") or {}).get("level"),
        "acknowledged": acknowledged,
        "acknowledged_at": clock((acknowledged or {}).get("at")),
    }


def _human_type(kind: str | None) -> str:
    """format.js `humanType`: "occlusion" -> "Occlusion", "low_battery" -> "Low battery"."""
    text = str(kind or "alarm").replace("_", " ")
    return text[:1].upper() + text[1:]


def _lasting(since: str | None, now: datetime) -> str:
    """format.js `lastingFor`: "for 14 s"."""
    try:
        moment = datetime.fromisoformat(since) if isinstance(since, str) else None
    except ValueError:
        moment = None
    return f"for {span((now - moment).total_seconds())}" if moment else ""


def span(seconds: float) -> str:
    """format.js `span`: "14 s", "3 min", "2 h 05 min"."""
    whole = max(0, math.floor(seconds))
    if whole < 90:
        return f"{whole} s"
    if whole < 5400:
        return f"{whole // 60} min"
    minutes = whole // 60
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _reported_bolus(reported: dict) -> float | None:
    if reported.get("bolusEnabled") is False:
        return 0
    return reported.get("bolusVolumeMl") if reported.get("bolusEnabled") is True else None


def _said(value: float | None, show) -> str | None:
    return None if value is None else show(value)


def _seen_running(seen: dict, confirmed: str | None) -> str:
    """readback.js `seenRunningText`."""
    text = f"{_rate(seen.get('flowRateMlMin'))} (seen in its progress at {clock(seen.get('receivedAt'))})"
    if seen.get("matchedSince"):
        text = f"{text}; now reports the order's rate (since {clock(seen['matchedSince'])})"
    return f"{text}; confirmed {confirmed}" if confirmed else text


def _rate(ml_min: float | None) -> str:
    return fixed(_ml_h(ml_min), 3, "mL/h")


def _ml(value: float | None) -> str:
    return fixed(value, 2, "mL")


def _ml_h(ml_min: float | None) -> float | None:
    return ml_min * 60 if _number(ml_min) else None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def fixed(value: float | None, digits: int, unit: str = "") -> str:
    """format.js `fixed`: `digits` decimals, grouped, halves away from zero as the browser's `toLocaleString`."""
    if not _number(value):
        return "—"
    rounded = Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    text = f"{rounded:,.{digits}f}"
    return f"{text} {unit}" if unit else text


def exact(value: float | None, unit: str = "") -> str:
    """format.js `exact`: one to three decimals."""
    if not _number(value):
        return fixed(value, 1, unit)
    whole, _, decimals = fixed(value, 3).partition(".")
    text = f"{whole}.{decimals.rstrip('0') or '0'}"
    return f"{text} {unit}" if unit else text


def duration(minutes: float | None) -> str:
    """format.js `duration`: "45 min", "1 h 05 min", "< 1 min"."""
    if not _number(minutes):
        return "—"
    total = max(0, int(Decimal(repr(minutes)).quantize(Decimal(1), rounding=ROUND_HALF_UP)))
    hours, rest = divmod(total, 60)
    if hours == 0:
        return "< 1 min" if 0 < minutes < 1 else f"{rest} min"
    return f"{hours} h {rest:02d} min"


def clock(iso: str | None) -> str:
    """format.js `clock`: HH:MM:SS in the server's zone; "—" for anything else."""
    if not isinstance(iso, str):
        return "—"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return "—"
    return timezone.localtime(moment).strftime("%H:%M:%S")


def _clock_or_none(iso: str | None) -> str | None:
    return clock(iso) if iso else None
