"""Read-back (contract v1.1): the parameters a pump confirms against the order, and what a difference raises.

A confirmation matches when the rate is within 0.5 % of the rate as sent (plus 0.000001 mL/min for
rounding; no floor), volumes within 0.05 mL and time within 0.1 min; a disabled bolus equals a bolus
of 0. A missing `parameters` object or field is `unverified`, never a match; a field out of
tolerance is a `mismatch` whatever else is missing (its alarm names the missing ones too). While an
unverified session runs, a reported `flowRate` beyond the rate tolerance raises `parameter_mismatch`.
"""

from collections.abc import Iterable
from datetime import datetime

from devices.models import Device, InfusionSession
from devices.services.alarms import alarm_active, alarm_raise
from devices.services.changes import session_changed
from devices.states import AlarmPriority, AlarmSource, ReadBack
from protocol.limits import RATE_DECIMALS

RATE_TOLERANCE = 0.005
RATE_ROUNDING_ML_MIN = 0.000001
VOLUME_TOLERANCE_ML = 0.05
TIME_TOLERANCE_MIN = 0.1
REQUIRED_FIELDS = ("flowRateMlMin", "plannedVolumeMl", "plannedTimeMin", "bolusEnabled")
MISMATCH_KEY = "parameter_mismatch"
UNVERIFIED_KEY = "parameters_unverified"
MISMATCH_MESSAGE = "The pump is running different parameters from the order"
UNVERIFIED_MESSAGE = "The pump did not report the parameters it runs: check its screen against the order"


def rate_within_tolerance(*, ordered_ml_min: float, reported_ml_min: float) -> bool:
    """Whether a reported rate is within 0.5 % of the ordered rate as sent (6 decimals), plus rounding."""
    sent = round(ordered_ml_min, RATE_DECIMALS)
    return abs(reported_ml_min - sent) <= RATE_TOLERANCE * sent + RATE_ROUNDING_ML_MIN


def readback_compare(session: InfusionSession, reported: dict | None) -> tuple[ReadBack, list[str]]:
    """The read-back of a confirmation's `parameters`, and the fields that differ (mismatch) or are missing."""
    reported = reported if isinstance(reported, dict) else {}
    missing = readback_missing(session, reported)
    differing = [name for name in _wanted(reported) if name not in missing
                 and not _field_matches(session, reported, name)]  # fmt: skip
    if differing:
        return ReadBack.MISMATCH, differing
    return (ReadBack.UNVERIFIED, missing) if missing else (ReadBack.MATCH, [])


def readback_missing(session: InfusionSession, reported: dict | None) -> list[str]:
    """The parameters a confirmation left out (none: it reported every one the order needs compared)."""
    reported = reported if isinstance(reported, dict) else {}
    return [name for name in _wanted(reported) if not _is_value(reported.get(name))]


def _wanted(reported: dict) -> list[str]:
    """The parameters compared: the required ones, and the bolus volume when the pump reports a bolus."""
    return list(REQUIRED_FIELDS) + (["bolusVolumeMl"] if reported.get("bolusEnabled") is True else [])


def _is_value(value: object) -> bool:
    return isinstance(value, bool | int | float) and value == value


def _field_matches(session: InfusionSession, reported: dict, name: str) -> bool:
    value = reported[name]
    ordered_bolus = session.bolus_volume_ml if session.bolus_enabled else 0.0
    if name == "bolusEnabled":  # enabled: compared as `bolusVolumeMl`; disabled equals a bolus of 0
        return value is True or ordered_bolus <= VOLUME_TOLERANCE_ML
    if isinstance(value, bool):
        return False
    if name == "flowRateMlMin":
        return rate_within_tolerance(ordered_ml_min=session.flow_rate_ml_min, reported_ml_min=value)
    if name == "plannedTimeMin":
        return abs(value - session.planned_time_min) <= TIME_TOLERANCE_MIN
    if name == "plannedVolumeMl":
        return abs(value - session.planned_volume_ml) <= VOLUME_TOLERANCE_ML
    return abs(value - ordered_bolus) <= VOLUME_TOLERANCE_ML


def readback_record(*, device: Device, session: InfusionSession, reported: dict | None, now: datetime) -> ReadBack:
    """Store a session's read-back from its confirmation and raise what it calls for; the caller emits the session.

    Mismatch: high `parameter_mismatch`, naming the fields that differ and any the confirmation left out (`missing`);
    unverified: medium `parameters_unverified`; both tied to the session.
    A session already seen running off its order (its progress's rate: `readback_progress_check`) stays a mismatch:
    a confirmation that echoes the order, or reports nothing, does not take back what the pump was seen doing.
    """
    result, fields = readback_compare(session, reported)
    if session.read_back == ReadBack.MISMATCH and result != ReadBack.MISMATCH:
        return ReadBack.MISMATCH  # its `parameter_mismatch` stands (review 12)
    session.read_back = result
    session.save(update_fields=["read_back"])
    details = {"ordered": session.order, "reported": reported, "fields": fields}
    if result == ReadBack.MISMATCH:
        missing = readback_missing(session, reported)  # named here too: a mismatch is all its read-back says
        unreported = f"; not reported: {', '.join(missing)}" if missing else ""
        alarm_raise(device=device, session=session, type=MISMATCH_KEY, priority=AlarmPriority.HIGH,
                    source=AlarmSource.SERVER, now=now, details={**details, "missing": missing},
                    message=f"{MISMATCH_MESSAGE} ({', '.join(fields)}{unreported})")  # fmt: skip
    elif result == ReadBack.UNVERIFIED:
        _unverified_raise(device, session, details, now)
    return result


def readback_unverified_raise(*, device: Device, session: InfusionSession, now: datetime) -> None:
    """A session under way on the pump's evidence, its confirmation not come within its grace
    (`EVIDENCE_CONFIRMATION_GRACE_S`, the bridge's housekeeping): `parameters_unverified`."""
    _, fields = readback_compare(session, None)
    _unverified_raise(device, session, {"ordered": session.order, "reported": None, "fields": fields}, now)


def _unverified_raise(device: Device, session: InfusionSession, details: dict, now: datetime) -> None:
    alarm_raise(device=device, session=session, type=UNVERIFIED_KEY, priority=AlarmPriority.MEDIUM,
                source=AlarmSource.SERVER, now=now, details=details, message=UNVERIFIED_MESSAGE)  # fmt: skip


def readback_progress_check(
    *, device: Device, session: InfusionSession, rates: Iterable[float | None], now: datetime
) -> bool:
    """While an unverified session runs, a reported `flowRate` beyond tolerance raises `parameter_mismatch`; while a
    mismatched one runs beyond it still, it is raised again once the last was resolved (when in doubt, alarm: a rate
    changed at the bedside on purpose is a new order, not a resolve; review 14 found a remembered "resolved at this
    rate" silencing a 10x rate in the same batch, and the same wrong rate coming back after a correction).

    `rates` are those of running progress only: a paused or completed pump's rate of 0 is no mismatch.

    The rate raised for is kept on the session (`mismatch_flow_rate_ml_min`, `mismatch_seen_at`): the read-back
    panels show it as what the pump runs, not a confirmation (from before a restart, or one echoing the order).

    `session` may be a partly loaded row (the bulk progress path): it is re-read whole to be recorded.
    """
    if session.read_back not in (ReadBack.UNVERIFIED, ReadBack.MISMATCH):
        return False
    beyond = [rate for rate in rates if rate is not None
              and not rate_within_tolerance(ordered_ml_min=session.flow_rate_ml_min, reported_ml_min=rate)]  # fmt: skip
    if not beyond:
        return False
    if session.read_back == ReadBack.MISMATCH and alarm_active(device=device, key=MISMATCH_KEY, session=session):
        return False  # said already, and still said
    whole = InfusionSession.objects.get(pk=session.pk)
    whole.read_back = session.read_back = ReadBack.MISMATCH
    for row in (whole, session):  # the caller's row too: a later save of it in the batch keeps what was seen
        row.mismatch_flow_rate_ml_min, row.mismatch_seen_at = beyond[-1], now  # shown as what the pump runs
    whole.save(update_fields=["read_back", "mismatch_flow_rate_ml_min", "mismatch_seen_at"])
    alarm_raise(device=device, session=whole, type=MISMATCH_KEY, priority=AlarmPriority.HIGH,
                source=AlarmSource.SERVER, now=now,
                details={"ordered": whole.order, "reportedFlowRate": beyond[-1], "fields": ["flowRate"]},
                message=f"{MISMATCH_MESSAGE}: it reports {beyond[-1] * 60:g} mL/h")  # fmt: skip
    session_changed(device=device, session=whole)
    return True
