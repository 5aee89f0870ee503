"""The pump monitor as the server renders it: what static/js/monitor.js shows at its first render, before the page is
live, read from the same `monitor_state` the script starts from, so the page does not move when the script runs.

On a tablet or a phone the order, its read-back, the figures and the alarms are above the controls: rendered only by
the script, they pushed Pause and Stop down about 280 px (500 px with a read-back on a phone) as it ran, under a
finger about to press. Nothing here is said as live: the pump is "Stale" unless the server knows it offline or never
heard (`card_before_live`), the panel greyed as not current (pumpstream.css), the controls disabled; the words are the
template's (templates/devices/_monitor_panel.html), only figures and times are formatted here, by format.js's rules.
"""

from datetime import datetime

from devices.states import ACTIVE_SESSION_STATUSES, PUMP_INFUSING_STATES, SESSION_ON_PUMP_STATUSES
from devices.templatetags.units import (
    clock,
    decimals_for,
    duration,
    exact,
    fixed,
    rounded,
    shown,
    significant,
    span,
    with_unit,
)

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
        "facts": progress_facts(monitor["progress"] or {}, held, status.get("pumpState") if unordered else None),
        "battery": status.get("batteryLevel"),
        "last_heard_at": clock(status["lastSeenAt"]) if status.get("lastSeenAt") else None,
    }


def progress_facts(progress: dict, session: dict | None, unordered_state: str | None) -> dict:
    """monitor.js `renderProgress`: infused, remaining, progress, and a running pump's time left and rate; a pump not
    running says its state there instead (`state`, the template's words). `unordered_state`: the pump's own state
    while it infuses without an order, else None (the session's status is said)."""
    facts = volume_facts(progress) | (delivered_in_all_facts(progress, session) or {})
    state = unordered_state or (session or {}).get("status")
    running = state == "running"
    return {
        **facts,
        "state": None if running else state,
        "time_left": duration(progress.get("timeRemainingMin")) if running else None,
        "rate": f"{significant(_ml_h(progress.get('flowRate')))} mL/h"
        if running and shown(progress.get("flowRate"))
        else "—",
    }


def volume_facts(progress: dict) -> dict:
    """format.js `volumeFacts`: the remaining volume shown as what the order holds less what is shown infused."""
    delivered, remaining = progress.get("deliveredVolumeMl"), progress.get("volumeRemainingMl")
    percent = progress.get("progressPercent")
    if isinstance(percent, dict):
        percent = percent.get("volume", percent.get("time"))
    percent_text = fixed(max(0, min(100, percent)), 0, "%") if shown(percent) else "—"
    if not shown(delivered) or not shown(remaining):
        return {"infused": _significant_ml(delivered), "remaining": _significant_ml(remaining), "percent": percent_text}
    digits = decimals_for(delivered + remaining)
    shown_remaining = round(rounded(delivered + remaining, digits) - rounded(delivered, digits), digits)
    infused = fixed(delivered, digits, "mL")
    return {"infused": infused, "remaining": fixed(shown_remaining, digits, "mL"), "percent": percent_text}


def delivered_in_all_facts(progress: dict, session: dict | None) -> dict | None:
    """format.js `deliveredInAllFacts`: once the pump's count went back, what was delivered in all, and what of the
    order that leaves; None otherwise."""
    before, in_all = (session or {}).get("deliveredBeforeRunMl"), progress.get("deliveredInAllMl")
    if not shown(before) or not shown(in_all) or progress.get("infusionId") != session.get("infusionId"):
        return None
    planned = (session.get("order") or {}).get("plannedVolumeMl")
    if not shown(planned) or planned <= 0:
        return None
    over = f" ({_significant_ml(in_all - planned)} over it)" if in_all > planned else ""
    return {
        "percent": fixed(min(100, 100 * in_all / planned), 0, "%"),
        "infused": f"{_significant_ml(in_all)} in all ({_significant_ml(before)} before the pump's count went back, "
        f"{_significant_ml(max(0, in_all - before))} counted since)",
        "remaining": f"{_significant_ml(max(0, planned - in_all))} of the order{over}",
    }


def _significant_ml(value: float | None) -> str:
    return with_unit(significant(value), "mL")


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
        f"{with_unit(exact(_ml_h(order.get('flowRateMlMin'))), 'mL/h')} · "
        f"{with_unit(exact(order.get('plannedVolumeMl')), 'mL')} · {duration(order.get('plannedTimeMin'))}"
    )
    return f"{text} · bolus {with_unit(exact(bolus.get('volumeMl')), 'mL')}" if bolus.get("enabled") else text


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
        "type": human_type(alarm.get("type")),
        "said": f"{alarm.get('message') or ''} (raised {clock(alarm.get('raisedAt'))}{count}) ",
        "lasting": lasting_for(alarm.get("raisedAt"), now),
        "escalated": None if acknowledged else (alarm.get("escalation") or {}).get("level"),
        "acknowledged": acknowledged,
        "acknowledged_at": clock((acknowledged or {}).get("at")),
    }


def human_type(kind: str | None) -> str:
    """format.js `humanType`: "occlusion" -> "Occlusion", "low_battery" -> "Low battery"."""
    text = str(kind or "alarm").replace("_", " ")
    return text[:1].upper() + text[1:]


def lasting_for(since: str | None, now: datetime) -> str:
    """format.js `lastingFor`: "for 14 s"."""
    try:
        moment = datetime.fromisoformat(since) if isinstance(since, str) else None
    except ValueError:
        moment = None
    return f"for {span((now - moment).total_seconds())}" if moment else ""


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
    return ml_min * 60 if shown(ml_min) else None


def _clock_or_none(iso: str | None) -> str | None:
    return clock(iso) if iso else None
