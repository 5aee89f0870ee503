"""The alarm the server raises when a pump floods it: what its budgets shed, summed up in one `alarm_flood`."""

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, Device
from devices.services.alarms import CLEARED_SUFFIX, alarm_raise, alarm_type_key
from devices.services.changes import device_lock
from devices.services.silences import ward_silence_break
from devices.states import ALARM_PRIORITY_RANK, AlarmPriority, AlarmSource, AlarmState

ALARM_FLOOD = "alarm_flood"
TYPES_NAMED = 10
TYPE_NAMED_MAX = 64
TYPES_REMEMBERED = 256  # the types named since the alarm was raised, kept to tell news (beyond: counted, no news)


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
    sounding) breaks the ward's silence. The server clears it never by itself: a user resolves it once the pump has
    been checked (docs/clinical-rules.md).
    """
    now = now or timezone.now()
    with transaction.atomic():
        if not Device.objects.filter(device_id=device_id).exists():
            return False
        device = device_lock(device_id=device_id)
        active = Alarm.objects.filter(device=device, type=ALARM_FLOOD, state=AlarmState.ACTIVE)
        found = active.values_list("details", "acknowledged_at").first()
        earlier, acknowledged_at = found or ({}, None)
        total = Counter(earlier.get("shed", {})) + Counter(shed)
        shown = _types_named(earlier)
        named, dropped = shed_types_named(shown, _types_given(alarm_types))
        seen = dict(earlier["typesSeen"] if "typesSeen" in earlier else shown)  # raised before it: what it names
        news, not_remembered = shed_types_remember(seen, named, before=shown)
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(total.items()))
        others = earlier.get("otherTypes", False) or dropped or more_types
        listed = f" (alarms: {', '.join(named)}{', and others' if others else ''})" if named else ""
        alarm = alarm_raise(
            device=device, type=ALARM_FLOOD, priority=AlarmPriority.HIGH, source=AlarmSource.SERVER,
            message=f"The pump sent far more messages than a pump does; not shown: {kinds}{listed}. Check the pump.",
            details={"shed": dict(total), "alarmTypes": list(named), "alarmPriorities": named, "otherTypes": others,
                     "typesSeen": seen, "typesNotRemembered": earlier.get("typesNotRemembered", 0) + not_remembered},
            now=now, realert=bool(news) and acknowledged_at is not None,
        )  # fmt: skip
        if news and found is not None and acknowledged_at is None:  # still sounding: heard through a silence
            ward_silence_break(device=device, alarm=alarm, now=now)
    return True


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
) -> tuple[list[str], int]:
    """Add the types `named` now to those `seen` (named since the alarm was raised, their highest priority; updated
    in place); the news among them (never named before, or at a higher priority than ever; a clearing is none) and
    how many types new to the text (not in `before`, the types it named until now) could not be remembered
    (`TYPES_REMEMBERED` full: counted, never news, so a pump cycling through ever new types cannot re-alert the
    acknowledged alarm for ever)."""
    news: list[str] = []
    not_remembered = 0
    for alarm_type, priority in named.items():
        if alarm_type_key(alarm_type).endswith(CLEARED_SUFFIX):
            continue
        remembered = seen.get(alarm_type)
        if remembered is None and len(seen) >= TYPES_REMEMBERED:
            not_remembered += alarm_type not in before
        elif ALARM_PRIORITY_RANK[priority] > ALARM_PRIORITY_RANK.get(remembered, 0):
            seen[alarm_type] = priority
            news.append(alarm_type)
    return news, not_remembered


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
