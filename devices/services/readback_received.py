"""The rate a pump tells on receiving an order (`received_start_command`'s `currentInfusion`), read back.

Both firmwares send it when START_INFUSION arrives, before anyone accepts the order at the pump: the original as
`rate`, the PumpStream firmware as `flowRateMlMin` (mL/min). It is what the pump holds and shows on its confirm
screen, so a rate off the order beyond the rate tolerance is a high `parameter_mismatch` as a confirmation's is, and the
order that then runs is a mismatch whatever it confirms (the pump's own reports disagree: a person checks its screen
and resolves). A rate that matches is not a confirmation: it comes before acceptance and names no other parameter, so
an order running without a confirmation stays unverified and its `parameters_unverified` says what the pump told
(`received_note`). The original firmware publishes it at QoS 0 like its confirmation: either may be lost.
"""

from datetime import datetime

from devices.models import Device, InfusionSession
from devices.services.alarms import alarm_active
from devices.services.changes import session_changed
from devices.services.mismatch_alarm import MISMATCH_KEY, RECEIVED, mismatch_raise
from devices.services.tolerances import rate_within_tolerance
from devices.states import ReadBack
from protocol.schemas import DevicePayload

RATE_NAMES = ("flowRateMlMin", "rate")  # the contract's name, then the original firmware's


def received_rate(report: DevicePayload) -> float | None:
    """The rate (mL/min) a `received_start_command` status tells in its `currentInfusion`, if it tells one."""
    current = getattr(report, "currentInfusion", None)
    if not isinstance(current, dict):
        return None
    for name in RATE_NAMES:
        value = current.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf"):
            return float(value)
    return None


def readback_received_record(*, device: Device, session: InfusionSession, rate: float, now: datetime) -> None:
    """Keep the rate the pump said it received with `session`'s order (pending); off the order: `parameter_mismatch`
    naming it (`receivedFlowRate`). A copy of the same report changes nothing."""
    if session.received_flow_rate_ml_min == rate:
        return
    session.received_flow_rate_ml_min = rate
    session.save(update_fields=["received_flow_rate_ml_min"])
    if readback_received_off(session):
        seen = {"ordered": session.order, RECEIVED: rate, "fields": [RECEIVED]}
        active = alarm_active(device=device, key=MISMATCH_KEY, session=session)
        mismatch_raise(device=device, session=session, active=active, seen=seen, now=now)
    session_changed(device=device, session=session)


def readback_received_off(session: InfusionSession) -> bool:
    """Whether the pump said it received the order at a rate beyond the rate tolerance of it."""
    rate = session.received_flow_rate_ml_min
    return rate is not None and not rate_within_tolerance(ordered_ml_min=session.flow_rate_ml_min, reported_ml_min=rate)


def readback_on_evidence(session: InfusionSession) -> ReadBack:
    """The read-back of an order that runs on the pump's evidence, unconfirmed: a mismatch when the pump said it
    received it at another rate, else unverified (a matching received rate is no confirmation)."""
    return ReadBack.MISMATCH if readback_received_off(session) else ReadBack.UNVERIFIED


def received_note(session: InfusionSession) -> str:
    """What a `parameters_unverified` adds when the pump told a rate on receiving the order, else ""."""
    rate = session.received_flow_rate_ml_min
    if rate is None:
        return ""
    said = "the order's rate" if not readback_received_off(session) else "another rate"
    return f" (on receiving the order it showed {rate * 60:g} mL/h, {said}: not a confirmation of what it runs)"
