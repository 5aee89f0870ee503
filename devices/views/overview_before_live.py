"""The ward overview as the server renders it above and on its cards: what static/js/station.js and overview.js show
at their first render, before the page is live, read from what the script starts from (the pumps' `ward:summary`
rows, their active alarms, the wards' silences as the feed sends them on subscribing), so the pump cards do not move
as the script runs and the page goes live (each card's own figures: `pages.card_before_live` and the template).

The station's banner, its list of the ward's alarms, its sound line and the ward's silence were drawn only by the
script: with an alarm active every card moved down as it ran, 185 px on a laptop, 291 px on a phone, 548 px with two
wards' alarms and a silence, under a finger reaching for one; the ward's counts ("2 pumps" until then) moved them
again where they wrapped. Nothing here is said as live: no pump is counted as infusing, no sound is said to sound (its
line keeps its box, pumpstream.css), the silence button says it silences this screen, and the buttons are disabled
until the script takes them over. The words are the template's (templates/devices/_station.html), the counts' are
SUMMARY_PARTS (which the script reads from the page), the alarms' as station.js `describe` and overview.js
`alarmText` write them.
"""

from collections import Counter
from datetime import datetime
from math import ceil

from devices.alarm_order import alarms_most_urgent_first
from devices.models import Alarm
from devices.views.monitor_before_live import human_type, lasting_for

PRIORITY_LABEL = {"high": "High", "medium": "Medium", "low": "Low"}  # format.js PRIORITY_LABEL
SOUNDED = ("high", "medium")  # the priorities the station sounds (station.js `sound`; an escalated alarm too)
# The ward's counts, in this order, with their words: the pumps by condition and the active alarms by priority
# (overview.js `renderSummary` reads them from the page: one copy).
SUMMARY_PARTS = [
    ["running", "infusing"], ["pending", "waiting for pump"], ["paused", "paused"], ["high", "high alarm"],
    ["medium", "medium alarm"], ["low", "low alarm"], ["stale", "stale"], ["offline", "offline"],
    ["unknown", "never heard"], ["idle", "idle"],
]  # fmt: skip


def summary_before_live(pumps: list[dict], conditions: list[str]) -> list[dict]:
    """overview.js `renderSummary` before the page is live: the pumps by the condition their cards show
    (`conditions`: not heard here, `card_before_live`) and every active alarm by priority, acknowledged or not, as
    `{kind, words}` ("1 high alarm", "2 stale"); none when there are no pumps ("No pumps")."""
    counts = Counter(conditions)
    counts.update(alarm["priority"] for pump in pumps for alarm in pump.get("alarms") or [])
    return [
        {"kind": kind, "words": f"{counts[kind]} {word}{'s' if word.endswith('alarm') and counts[kind] > 1 else ''}"}
        for kind, word in SUMMARY_PARTS
        if counts[kind]
    ]


def alarm_strip(pump: dict, now: datetime) -> str:
    """overview.js `renderAlarm`: the card's most urgent alarm ("HIGH: Line blocked · for 3 min"), how many more."""
    alarm, more = pump.get("topAlarm"), len(pump.get("alarms") or []) - 1
    if not alarm:
        return ""
    lasting = f" · {lasting_for(alarm['raisedAt'], now)}" if alarm.get("raisedAt") else ""
    escalated = _tier(alarm)
    tier = f" · ESCALATED (tier {escalated})" if escalated else ""
    answered = " (acknowledged)" if alarm.get("acknowledged") else ""
    others = f" · +{more} more alarm{'s' if more > 1 else ''}" if more > 0 else ""
    return f"{alarm['priority'].upper()}: {_said(alarm)}{lasting}{tier}{answered}{others}"


def station_before_live(
    pumps: list[dict], alarms: list[Alarm], silences: list[dict], *, wards: list[str], degraded: bool, now: datetime
) -> dict:
    """station.js `update` then `render`: every active alarm of the page's pumps (`alarms`, the rows of their
    summaries' `alarms`), the most urgent first, the first unanswered one in the banner; its technical alarm when
    monitoring is `degraded` (the bridge's word, which bridge_watch.js tells it at once); whether its sound is wanted;
    each ward's silence on now (`silences`: `ward:silence` bodies), the page's sound silenced only while every ward it
    shows (`wards`) is."""
    rows = {alarm["id"]: (alarm, pump) for pump in pumps for alarm in pump.get("alarms") or []}
    listed = [_listed(*rows[alarm.pk], now) for alarm in alarms_most_urgent_first(alarms) if alarm.pk in rows]
    return {
        "alarms": listed,
        "banner": next((alarm for alarm in listed if not alarm["acknowledged"]), None),
        "degraded": degraded,
        "sounding": degraded or any(alarm["sounds"] for alarm in listed),  # a technical alarm sounds too
        "silenced": bool(wards) and set(wards) <= {silence["ward"] for silence in silences},
        "silences": [_silence_said(silence) for silence in silences],
    }


def _listed(alarm: dict, pump: dict, now: datetime) -> dict:
    """One entry of the station's list (station.js `item`) and, the first unanswered, its banner."""
    escalated = _tier(alarm)
    lasting = f" · {lasting_for(alarm['raisedAt'], now)}" if alarm.get("raisedAt") else ""
    tier = f" · ESCALATED to tier {escalated}" if escalated else ""
    return {
        "key": f"{pump['deviceId']}:{alarm['id']}",
        "deviceId": pump["deviceId"],
        "priority": alarm["priority"],
        "label": PRIORITY_LABEL.get(alarm["priority"], alarm["priority"]),
        "acknowledged": bool(alarm.get("acknowledged")),
        "escalated": bool(escalated),
        "sounds": not alarm.get("acknowledged") and (bool(escalated) or alarm["priority"] in SOUNDED),
        "described": f"{where(pump)} · {_said(alarm)}{lasting}{tier}",
    }


def _tier(alarm: dict) -> int | None:
    """The tier an unanswered alarm escalated to; None when it did not, or was acknowledged."""
    return None if alarm.get("acknowledged") else (alarm.get("escalation") or {}).get("level")


def _said(alarm: dict) -> str:
    return alarm.get("message") or human_type(alarm.get("type"))


def where(pump: dict) -> str:
    """station.js `where`: "Bed 4", or the pump's id."""
    return f"Bed {pump['bed']}" if pump.get("bed") else pump["deviceId"]


def _silence_said(silence: dict) -> dict:
    """station.js `renderSilence`'s sentence of one ward's silence: by whom, why, how many seconds are left."""
    return {
        "ward": silence["ward"],
        "by": silence.get("by"),
        "reason": silence.get("reason"),
        "left": max(0, ceil(silence.get("remainingS") or 0)),
    }
