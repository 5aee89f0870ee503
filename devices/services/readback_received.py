"""The order as a pump tells it received it (`received_start_command`'s `currentInfusion`), read back.

Both firmwares send it when START_INFUSION arrives, before anyone accepts the order at the pump: the rate, volume, time
and bolus, the original as `rate`, `volume`, `time`, `bolusEnabled`, `bolusVolume`, the PumpStream firmware by the
contract's names (`flowRateMlMin`, `plannedVolumeMl`, `plannedTimeMin`, `bolusEnabled`, `bolusVolumeMl`). It is what
the pump holds and shows on its confirm screen, so a value off the order beyond a confirmation's tolerance is a high
`parameter_mismatch` as a confirmation's is, and the order that then runs is a mismatch whatever it confirms (the
pump's own reports disagree: a person checks its screen and resolves); a field it leaves out is not compared. Values
that match are not a confirmation: they come before acceptance, so an order running without one stays unverified and
its `parameters_unverified` says what the pump told (`received_note`). The original firmware publishes it at QoS 0
like its confirmation: either may be lost.
"""

from datetime import datetime

from devices.models import Device, InfusionSession
from devices.services.alarms import alarm_active
from devices.services.changes import session_changed
from devices.services.mismatch_alarm import MISMATCH_KEY, RECEIVED, RECEIVED_FIELDS, RECEIVED_PARAMETERS, mismatch_raise
from devices.services.tolerances import parameter_matches
from devices.states import ReadBack
from protocol.schemas import DevicePayload

RATE = "flowRateMlMin"
# Each parameter by the contract's name, then the original firmware's
NAMES = {RATE: (RATE, "rate"), "plannedVolumeMl": ("plannedVolumeMl", "volume"),
         "plannedTimeMin": ("plannedTimeMin", "time"), "bolusEnabled": ("bolusEnabled",),
         "bolusVolumeMl": ("bolusVolumeMl", "bolusVolume")}  # fmt: skip


def received_parameters(report: DevicePayload) -> dict[str, float | bool]:
    """The parameters a `received_start_command` status tells in its `currentInfusion`, by the contract's names (those
    it leaves out, or tells in a form not read, are absent)."""
    current = getattr(report, "currentInfusion", None)
    if not isinstance(current, dict):
        return {}
    told = {}
    for name, spellings in NAMES.items():
        value = next((current[key] for key in spellings if _readable(name, current.get(key))), None)
        if value is not None:
            told[name] = value if isinstance(value, bool) else float(value)
    return told


def _readable(name: str, value: object) -> bool:
    if name == "bolusEnabled":
        return isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf")


def readback_received_record(
    *, device: Device, session: InfusionSession, told: dict[str, float | bool], now: datetime
) -> None:
    """Keep what the pump said it received with `session`'s order (pending); off the order: `parameter_mismatch`
    naming it (`receivedFlowRate`, `receivedParameters`). A copy of the same report changes nothing; a value told off
    the order is kept (`_merged`)."""
    merged = _merged(session, told)
    rate = merged.get(RATE)
    others = {name: value for name, value in merged.items() if name != RATE}
    if rate == session.received_flow_rate_ml_min and others == (session.received_parameters or {}):
        return
    session.received_flow_rate_ml_min, session.received_parameters = rate, others or None
    session.save(update_fields=["received_flow_rate_ml_min", "received_parameters"])
    off = received_off_fields(session)
    if off:
        seen = {"ordered": session.order, "fields": [RECEIVED_FIELDS[name] for name in off]}
        seen |= {RECEIVED: rate} if RATE in off else {}
        seen |= {RECEIVED_PARAMETERS: {name: others[name] for name in off if name != RATE}} if off != [RATE] else {}
        active = alarm_active(device=device, key=MISMATCH_KEY, session=session)
        mismatch_raise(device=device, session=session, active=active, seen=seen, now=now)
    session_changed(device=device, session=session)


def _merged(session: InfusionSession, told: dict[str, float | bool]) -> dict[str, float | bool]:
    """What the pump said it received, `told` over what it said before, but for a value told off the order: a later
    one within tolerance does not take it back (review 23: a redelivered START's second receipt as ordered erased that
    the pump first held 300 mL of a 30 mL order, and the order then read back `match` beside the active mismatch)."""
    before = _received(session)
    merged = {**before, **told}
    for name, value in before.items():
        if name in told and _is_off(session, before, name) and not _is_off(session, merged, name):
            merged[name] = value
    return merged


def _is_off(session: InfusionSession, told: dict[str, float | bool], name: str) -> bool:
    """Whether `told[name]` is beyond its tolerance of the order (a disabled bolus's volume is not compared)."""
    if name == "bolusVolumeMl" and told.get("bolusEnabled") is False:
        return False
    return not parameter_matches(session, told, name)


def _received(session: InfusionSession) -> dict[str, float | bool]:
    """Everything the pump said it received with the order, by the contract's names, in the contract's order (as
    `NAMES`: PostgreSQL's jsonb keeps a JSON object's keys in an order of its own, so the alarm's text and the fields it
    names would read differently on each database; ci41)."""
    told = {RATE: session.received_flow_rate_ml_min, **(session.received_parameters or {})}
    return {name: told[name] for name in NAMES if told.get(name) is not None}


def received_off_fields(session: InfusionSession) -> list[str]:
    """The parameters the pump said it received beyond their tolerance of the order (a disabled bolus's volume is not
    compared: it gives none)."""
    told = _received(session)
    return [name for name in told if _is_off(session, told, name)]


def told_as_ordered(session: InfusionSession, told: dict[str, float | bool]) -> bool:
    """Whether every parameter a receipt tells (`received_parameters`) is within its tolerance of `session`'s order."""
    return not any(_is_off(session, told, name) for name in told)


def readback_received_off(session: InfusionSession) -> bool:
    """Whether the pump said it received the order with a parameter beyond its tolerance of it."""
    return bool(received_off_fields(session))


def _told_any(session: InfusionSession) -> bool:
    return session.received_flow_rate_ml_min is not None or bool(session.received_parameters)


def readback_on_evidence(session: InfusionSession) -> ReadBack:
    """The read-back of an order that runs on the pump's evidence, unconfirmed: a mismatch when the pump said it
    received it with another parameter, else unverified (matching received values are no confirmation)."""
    return ReadBack.MISMATCH if readback_received_off(session) else ReadBack.UNVERIFIED


def received_note(session: InfusionSession) -> str:
    """What a `parameters_unverified` adds when the pump told what it received with the order, else ""."""
    if not _told_any(session):
        return ""
    told, off = _received(session), received_off_fields(session)
    if list(told) == [RATE]:
        shown, said = f"{told[RATE] * 60:g} mL/h", "the order's rate" if not off else "another rate"
        return f" (on receiving the order it showed {shown}, {said}: not a confirmation of what it runs)"
    if told.get("bolusEnabled") is False:
        told.pop("bolusVolumeMl", None)  # a disabled bolus: none given, whatever volume it holds
    shown = ", ".join(filter(None, (_shown(name, value) for name, value in told.items())))
    said = "as ordered" if not off else "not all as ordered"
    return f" (on receiving the order it showed {shown}, {said}: not a confirmation of what it runs)"


def _shown(name: str, value: float | bool) -> str:
    """One received parameter as a `parameters_unverified` names it (a bolus's flag only when it says none)."""
    if name == RATE:
        return f"{value * 60:g} mL/h"
    if name == "bolusEnabled":
        return "no bolus" if value is False else ""
    unit = {"plannedVolumeMl": "mL", "plannedTimeMin": "min"}.get(name)
    return f"{value:g} {unit}" if unit else f"a bolus of {value:g} mL"
