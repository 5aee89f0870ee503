"""A session's one `parameter_mismatch`: what it names, when a repeat is news, and its text.

It names everything the read-back has seen off the order (the fields a confirmation reported off it or left out, the
rates seen running, the planned volumes seen running (delivered + remaining: `readback_planned`), the rate the pump
said it received with the order): a repeat adds to it, and alerts again when it names a field, a rate (beyond
`RATE_NEWS_TOLERANCE` of those named) or a planned volume (beyond `PLANNED_NEWS_TOLERANCE_ML`) not named before
(`mismatch_raise`): a second mismatch never hides in the first.
"""

from datetime import datetime

from devices.models import Alarm, Device, InfusionSession
from devices.services.alarms import alarm_raise
from devices.services.silences import ward_silence_break
from devices.services.tolerances import is_figure
from devices.states import AlarmPriority, AlarmSource
from protocol.limits import RATE_ROUNDING_ML_MIN

MISMATCH_KEY = "parameter_mismatch"
MISMATCH_MESSAGE = "The pump is running different parameters from the order"
RECEIVED_AT = "at another rate"  # how "The pump received the order …" names its rate (`readback_received`)
RECEIVED = "receivedFlowRate"  # its details' key for that rate, and its name among the fields
RECEIVED_PARAMETERS = "receivedParameters"  # its details' key for the other parameters received off the order
# Each parameter the pump said it received with the order, by its name among the fields
RECEIVED_FIELDS = {"flowRateMlMin": RECEIVED, "plannedVolumeMl": "receivedPlannedVolumeMl",
                   "plannedTimeMin": "receivedPlannedTimeMin", "bolusEnabled": "receivedBolusEnabled",
                   "bolusVolumeMl": "receivedBolusVolumeMl"}  # fmt: skip
# How the alarm names each: its words, and the received and ordered values' text (`_received_clauses`)
RECEIVED_WORDS = {"plannedVolumeMl": ("planned volume", "mL"), "plannedTimeMin": ("planned time", "min"),
                  "bolusEnabled": ("bolus", "mL"), "bolusVolumeMl": ("bolus", "mL")}  # fmt: skip
UNREADABLE_FIELDS = "unreadableFields"  # the parameters a confirmation reported in a form refused (`unreadable`: why)
RATES_NAMED = 10  # the rates seen running a mismatch alarm's text names, the newest
RATES_REMEMBERED = 256  # the rates its details keep, so that one pushed out of the text is no news again (review 16)
# A rate within 10 % of one a mismatch alarm names is that wrong rate again, not news: a pump's reported rate may
# wander by its accuracy (about 5 %), and a nurse who read "1200 mL/h" does nothing else at 1,250
# (test_readback_rules.py: 2.5 then 2.6 mL/min for an order of 2, "raised once, not at every report"); 1,800 mL/h,
# or a rate under the order after one over it, is news.
RATE_NEWS_TOLERANCE = 0.1
PLANNED_FIELD = "plannedVolume"  # a running progress's delivered + remaining off the order, among the fields
PLANNED_SEEN = "reportedPlannedVolumesMl"  # its details' planned volumes seen running, first seen first
PLANNED_LATEST = (
    "reportedPlannedVolume"  # and the latest: {"plannedVolumeMl", "deliveredVolumeMl", "volumeRemainingMl"}
)
# A planned volume within this of one named is that wrong program again (its two figures each counted in steps of up
# to 0.1 mL, plus the confirmation's tolerance): 60.0 then 59.97 mL is not news, 90 mL after 60 mL is.
PLANNED_NEWS_TOLERANCE_ML = 0.15


def mismatch_raise(
    *, device: Device, session: InfusionSession, active: Alarm | None, seen: dict, now: datetime
) -> Alarm:
    """Raise `parameter_mismatch` naming what `seen` saw, or add it to the session's `active` one (`_mismatch_merged`:
    it keeps everything it named; its message names it all). A repeat naming a field or a rate not named before is
    news: an acknowledged alarm alerts again (when in doubt, alarm); one still sounding is not re-alerted (as
    `alarm_flood`: an acknowledgement on its way is not refused, its escalation not restarted) but its text names the
    news and its ward's silence is broken. A repeat naming nothing new is counted."""
    news = active is not None and _mismatch_news(active.details, seen)
    details = _mismatch_merged(active.details if active is not None else {}, seen)
    alarm = alarm_raise(device=device, session=session, type=MISMATCH_KEY, priority=AlarmPriority.HIGH,
                        source=AlarmSource.SERVER, now=now, details=details, message=_mismatch_message(details),
                        realert=news and active.acknowledged_at is not None)  # fmt: skip
    if news and active.acknowledged_at is None:  # still sounding: heard through a silence
        ward_silence_break(device=device, alarm=alarm, now=now)
    return alarm


def _mismatch_news(earlier: dict, seen: dict) -> bool:
    """Whether `seen` names what a mismatch alarm's `earlier` details do not: a field off the order or not reported,
    or a rate (seen running, confirmed, or received with the order) not within `RATE_NEWS_TOLERANCE` of any named."""
    by_value = {"flowRate", RECEIVED, PLANNED_FIELD} | ({"flowRateMlMin"} if _rate_confirmed(seen) else set())
    fields = set(seen.get("fields", [])) - by_value - set(earlier.get("fields", []))
    missing = set(seen.get("missing", [])) - set(earlier.get("missing", []))
    missing |= set(seen.get(UNREADABLE_FIELDS, [])) - set(earlier.get(UNREADABLE_FIELDS, []))
    named = rates_seen(earlier) + _rate_confirmed(earlier) + _rate_received(earlier)
    planned = planned_new(planned_seen(earlier), planned_seen(seen))
    return bool(fields or missing or planned
                or rates_new(named, rates_seen(seen) + _rate_confirmed(seen) + _rate_received(seen)))  # fmt: skip


def _mismatch_merged(earlier: dict, seen: dict) -> dict:
    """A mismatch alarm's details once `seen` is added: fields and missing ones joined, the rates seen running joined
    (`reportedFlowRates`, first seen first, the newest `RATES_NAMED`; `reportedFlowRate` the latest seen), the latest
    confirmation's `reported` (a confirmation's keys replace the earlier's, a progress's keep them)."""
    merged = {
        **earlier,
        **{key: value for key, value in seen.items() if key not in ("reportedFlowRates", PLANNED_SEEN)},
    }
    merged["fields"] = list(dict.fromkeys([*earlier.get("fields", []), *seen.get("fields", [])]))
    received = {**earlier.get(RECEIVED_PARAMETERS, {}), **seen.get(RECEIVED_PARAMETERS, {})}
    if received:
        merged[RECEIVED_PARAMETERS] = received
    for key in ("missing", UNREADABLE_FIELDS):
        if key in merged:
            merged[key] = list(dict.fromkeys([*earlier.get(key, []), *seen.get(key, [])]))
    rates, running = rates_seen(earlier), rates_seen(seen)
    rates += rates_new(rates, running)
    if rates:
        merged["reportedFlowRates"] = rates[-RATES_REMEMBERED:]
    if running:
        merged["reportedFlowRate"] = running[-1]
    planned = planned_seen(earlier)
    planned += planned_new(planned, planned_seen(seen))
    if planned:
        merged[PLANNED_SEEN] = planned[-RATES_REMEMBERED:]
    return merged


def _mismatch_message(details: dict) -> str:
    """The alarm's text: the fields a confirmation reported off the order, those it left out or reported unreadably
    (`UNREADABLE_FIELDS`, never named "not reported"), and the rates seen
    running (the latest first): `… (plannedVolumeMl): it reports 1800 mL/h (earlier 1200 mL/h)`; the rate the pump said
    it received with the order (`receivedFlowRate`), alone: `The pump received the order at another rate: …`."""
    fields = [name for name in details.get("fields", [])
              if name not in ("flowRate", PLANNED_FIELD, *RECEIVED_FIELDS.values())]  # fmt: skip
    missing = details.get("missing") or []
    unreadable = details.get(UNREADABLE_FIELDS) or []
    missing = [name for name in missing if name not in unreadable]
    parts = ([", ".join(fields)] if fields else []) + ([f"not reported: {', '.join(missing)}"] if missing else [])
    if unreadable:
        why = details.get("unreadable") or "refused"
        parts.append(f"reported but could not be read: {', '.join(unreadable)}, as {why}")
    if planned := _planned_clause(details):
        parts.append(planned)
    rates, received = rates_seen(details)[-RATES_NAMED:], _received_clauses(details)
    if received and not parts and not rates:
        if len(received) == 1:
            head, value, ordered = received[0]
            return f"The pump received the order {head}: it reports {value}{ordered}: check its screen"
        told = "; ".join(f"{head.split(' ', 2)[-1]} {value}{ordered}" for head, value, ordered in received)
        return f"The pump received the order with other parameters: {told}: check its screen"
    if received:
        at = [f"at {value}" for head, value, _ in received if head == RECEIVED_AT]
        told = at + [f"{head.split(' ', 2)[-1]} {value}" for head, value, _ in received if head != RECEIVED_AT]
        parts.append(f"received with the order {', '.join(told)}")
    named = f" ({'; '.join(parts)})" if parts else ""
    if not rates:
        return f"{MISMATCH_MESSAGE}{named}"
    latest = details.get("reportedFlowRate", rates[-1])
    others = [rate for rate in rates if not _same_rate(rate, latest)]
    before = f" (earlier {', '.join(f'{rate * 60:g}' for rate in others)} mL/h)" if others else ""
    return f"{MISMATCH_MESSAGE}{named}: it reports {latest * 60:g} mL/h{before}"


def rates_seen(details: dict) -> list[float]:
    """The rates seen running a mismatch alarm's details name (an alarm raised before the list: its one rate)."""
    rates = details.get("reportedFlowRates")
    if rates is None:
        rates = [details["reportedFlowRate"]] if "reportedFlowRate" in details else []
    return [rate for rate in rates if is_figure(rate)]


def planned_seen(details: dict) -> list[float]:
    """The planned volumes (delivered + remaining) seen running that a mismatch alarm's details name."""
    return [volume for volume in details.get(PLANNED_SEEN) or [] if is_figure(volume)]


def planned_new(named: list[float], volumes: list[float]) -> list[float]:
    """The `volumes` not within `PLANNED_NEWS_TOLERANCE_ML` of any `named` (nor of each other), first seen first."""
    new: list[float] = []
    for volume in volumes:
        if not any(abs(volume - known) <= PLANNED_NEWS_TOLERANCE_ML for known in [*named, *new]):
            new.append(volume)
    return new


def _planned_clause(details: dict) -> str:
    """How the alarm names the planned volume seen running: `it reports 60 mL to give (6 mL delivered + 54 mL
    remaining), not the order's 30 mL (earlier 90 mL)`; "" when it names none."""
    latest, volumes = details.get(PLANNED_LATEST) or {}, planned_seen(details)
    total = latest.get("plannedVolumeMl", volumes[-1] if volumes else None)
    if not is_figure(total):
        return ""
    figures = ""
    if is_figure(latest.get("deliveredVolumeMl")) and is_figure(latest.get("volumeRemainingMl")):
        figures = f" ({latest['deliveredVolumeMl']:g} mL delivered + {latest['volumeRemainingMl']:g} mL remaining)"
    sent = (details.get("ordered") or {}).get("plannedVolumeMl")
    of_order = f", not the order's {sent:g} mL" if is_figure(sent) else ""
    others = [volume for volume in volumes if abs(volume - total) > PLANNED_NEWS_TOLERANCE_ML]
    before = f" (earlier {', '.join(f'{volume:g}' for volume in others)} mL)" if others else ""
    return f"it reports {total:g} mL to give{figures}{of_order}{before}"


def _received_clauses(details: dict) -> list[tuple[str, str, str]]:
    """What a mismatch alarm's details say the pump received off the order: per parameter its words ("at another rate",
    "with another planned volume"), the value received and ", not the order's …" (empty when the order is unknown)."""
    ordered = details.get("ordered") or {}
    clauses = []
    for rate in _rate_received(details):
        sent = ordered.get("flowRateMlMin")
        clauses.append((RECEIVED_AT, f"{rate * 60:g} mL/h", f", not the order's {sent * 60:g} mL/h" if is_figure(sent)
                        else ""))  # fmt: skip
    for name, value in (details.get(RECEIVED_PARAMETERS) or {}).items():
        words, unit = RECEIVED_WORDS.get(name, (name, ""))
        bolus = name.startswith("bolus")  # none (disabled, or 0 mL) is said so
        sent = (ordered.get("bolus") or {}).get("volumeMl") if bolus else ordered.get(name)
        told = "none" if bolus and not value else f"{value:g} {unit}"
        ordered_told = ("none" if bolus and not sent else f"{sent:g} {unit}") if is_figure(sent) else ""
        of_order = f", not the order's {ordered_told}" if ordered_told else ""
        clauses.append((f"with another {words}", told, of_order))
    return clauses


def _rate_received(details: dict) -> list[float]:
    """The rate the pump said it received with the order, when a mismatch alarm's details name it (off the order)."""
    return [details[RECEIVED]] if is_figure(details.get(RECEIVED)) else []


def _rate_confirmed(details: dict) -> list[float]:
    """The rate a confirmation reported off the order, when its details name one."""
    reported = details.get("reported")
    if "flowRateMlMin" not in details.get("fields", []) or not isinstance(reported, dict):
        return []
    return [reported["flowRateMlMin"]] if is_figure(reported.get("flowRateMlMin")) else []


def rates_new(named: list[float], rates: list[float]) -> list[float]:
    """The `rates` not the same wrong rate as any `named` (nor as each other: `_same_rate`), first seen first."""
    new: list[float] = []
    for rate in rates:
        if not any(_same_rate(known, rate) for known in [*named, *new]):
            new.append(rate)
    return new


def _same_rate(known: float, rate: float) -> bool:
    """Whether `rate` is the wrong rate `known` again (within `RATE_NEWS_TOLERANCE` of it), not news."""
    return abs(rate - known) <= RATE_NEWS_TOLERANCE * abs(known) + RATE_ROUNDING_ML_MIN
