"""Read-back (contract v1.1): the parameters a pump confirms against the order, and what a difference raises.

A confirmation matches when the rate is within 0.5 % of the rate as sent (plus 0.000001 mL/min for
rounding; no floor), volumes within 0.05 mL and time within 0.1 min; a disabled bolus equals a bolus
of 0. A missing `parameters` object or field is `unverified`, never a match; a field out of
tolerance is a `mismatch` whatever else is missing (its alarm names the missing ones too). While an
unverified session runs, a reported `flowRate` beyond the rate tolerance raises `parameter_mismatch`; a confirmation
after it that leaves fields out keeps the mismatch and names them (`_unreported_on_a_mismatch`).

A session's one active `parameter_mismatch` names everything its read-back has seen (the fields a confirmation
reported off the order or left out, the rates seen running): a repeat adds to it, and alerts again when it names a
field or a rate (beyond `RATE_NEWS_TOLERANCE` of those named) not named before (`mismatch_alarm.mismatch_raise`).
"""

from collections.abc import Iterable
from datetime import datetime

from devices.models import Device, InfusionSession
from devices.services.alarms import alarm_active, alarm_raise
from devices.services.changes import session_changed
from devices.services.mismatch_alarm import MISMATCH_KEY, UNREADABLE_FIELDS, mismatch_raise, rates_new, rates_seen
from devices.services.readback_received import readback_received_off, received_note
from devices.services.tolerances import VOLUME_TOLERANCE_ML, parameter_matches, rate_within_tolerance
from devices.states import AlarmPriority, AlarmSource, ReadBack

REQUIRED_FIELDS = ("flowRateMlMin", "plannedVolumeMl", "plannedTimeMin", "bolusEnabled")
DIVERGENCE_KEY = "delivery_divergence"  # the delivered volume off the order (`devices/services/delivery.py`)
UNVERIFIED_KEY = "parameters_unverified"
UNVERIFIED_MESSAGE = "The pump did not report the parameters it runs: check its screen against the order"
UNREADABLE_MESSAGE = "The parameters the pump reported could not be read"  # reported, in a form refused (salvage.py)


def readback_compare(session: InfusionSession, reported: dict | None) -> tuple[ReadBack, list[str]]:
    """The read-back of a confirmation's `parameters`, and the fields that differ (mismatch) or are missing."""
    reported = reported if isinstance(reported, dict) else {}
    missing = readback_missing(session, reported)
    differing = [name for name in _wanted(reported) if name not in missing
                 and not parameter_matches(session, reported, name)]  # fmt: skip
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


def readback_record(
    *, device: Device, session: InfusionSession, reported: dict | None, now: datetime, unreadable: str = ""
) -> ReadBack:
    """Store a session's read-back from its confirmation and raise what it calls for; the caller emits the session.
    `unreadable`: why the `parameters` the pump reported could not be read (the confirmation read in part without
    them): unverified as if left out, its alarm saying they could not be read, never that they were not reported.

    Mismatch: high `parameter_mismatch`, naming the fields that differ and any the confirmation left out (`missing`);
    unverified: medium `parameters_unverified`, naming those left out; both tied to the session.
    A session already seen running off its order (its progress's rate: `readback_progress_check`) stays a mismatch:
    a confirmation that echoes the order, or reports nothing, does not take back what the pump was seen doing; what
    it left out is named all the same (`_unreported_on_a_mismatch`). Nor does one matching the order while the
    session's `delivery_divergence` is active (a run after a restart, confirmed again), nor one of an order the pump
    said it received with another rate, volume, time or bolus (`readback_received`).
    """
    result, fields = readback_compare(session, reported)
    if result != ReadBack.MISMATCH and (session.read_back == ReadBack.MISMATCH or readback_received_off(session)):
        if session.read_back != ReadBack.MISMATCH:  # what it said it received with the order was off it
            session.read_back = ReadBack.MISMATCH
            session.save(update_fields=["read_back"])
        _unreported_on_a_mismatch(device, session, reported, now, unreadable)  # its `parameter_mismatch` stands
        return ReadBack.MISMATCH
    if result == ReadBack.MATCH and alarm_active(device=device, key=DIVERGENCE_KEY, session=session) is not None:
        session.read_back = ReadBack.MISMATCH  # confirmed again after a restart, its delivered volume still alarmed
        session.save(update_fields=["read_back"])  # off the order: never "match" beside that alarm
        return ReadBack.MISMATCH
    session.read_back = result
    session.save(update_fields=["read_back"])
    details = {"ordered": session.order, "reported": reported, "fields": fields}
    if result == ReadBack.MISMATCH:
        missing = readback_missing(session, reported)  # named here too: a mismatch is all its read-back says
        active = alarm_active(device=device, key=MISMATCH_KEY, session=session)
        mismatch_raise(device=device, session=session, active=active, seen={**details, "missing": missing}, now=now)
    elif result == ReadBack.UNVERIFIED:
        _unverified_raise(device, session, details, now, unreadable)
    return result


def _unreported_on_a_mismatch(
    device: Device, session: InfusionSession, reported: dict | None, now: datetime, unreadable: str = ""
) -> None:
    """A confirmation differing from the order in nothing it reports, on a session seen running off it, that leaves
    parameters out (none at all): its active `parameter_mismatch` names them as not reported
    (`missing`: news, so an acknowledged one alerts again); once that alarm was resolved, nothing off the order was
    reported since, and `parameters_unverified` names them (the confirmation cleared `unconfirmed_since`: the evidence
    grace will not)."""
    missing = readback_missing(session, reported)
    if not missing:
        return
    details = {"ordered": session.order, "reported": reported, "fields": []}
    active = alarm_active(device=device, key=MISMATCH_KEY, session=session)
    if active is None:
        _unverified_raise(device, session, {**details, "fields": missing}, now, unreadable)
    elif unreadable:  # reported, in a form refused: never "not reported"
        seen = {**details, UNREADABLE_FIELDS: missing, "unreadable": unreadable}
        mismatch_raise(device=device, session=session, active=active, seen=seen, now=now)
    else:
        mismatch_raise(device=device, session=session, active=active, seen={**details, "missing": missing}, now=now)


def readback_unverified_raise(*, device: Device, session: InfusionSession, now: datetime) -> None:
    """A session under way on the pump's evidence, its confirmation not come within its grace
    (`EVIDENCE_CONFIRMATION_GRACE_S`, the bridge's housekeeping): `parameters_unverified`."""
    if session.read_back == ReadBack.MISMATCH:  # seen running off the order within the grace (review 16): what was
        _unreported_on_a_mismatch(device, session, None, now)  # never reported is named all the same
        return
    _, fields = readback_compare(session, None)
    _unverified_raise(device, session, {"ordered": session.order, "reported": None, "fields": fields}, now)


def _unverified_raise(
    device: Device, session: InfusionSession, details: dict, now: datetime, unreadable: str = ""
) -> None:
    """`parameters_unverified`; its message names the parameters not reported (`details["fields"]`) when the pump
    reported some (with none reported, it says so); parameters reported unreadably (`unreadable`: why) are said so."""
    some = set(REQUIRED_FIELDS) - set(details["fields"])
    unreported = f" (not reported: {', '.join(details['fields'])})" if some and details["fields"] else ""
    message = f"{UNVERIFIED_MESSAGE}{unreported}{received_note(session)}"
    if session.received_flow_rate_ml_min is not None:
        details = {**details, "receivedFlowRate": session.received_flow_rate_ml_min}
    if session.received_parameters:
        details = {**details, "receivedParameters": session.received_parameters}
    if unreadable:
        details = {**details, "unreadable": unreadable}
        message = f"{UNREADABLE_MESSAGE} ({unreadable}): check its screen against the order{received_note(session)}"
    alarm_raise(device=device, session=session, type=UNVERIFIED_KEY, priority=AlarmPriority.MEDIUM,
                source=AlarmSource.SERVER, now=now, details=details, message=message)  # fmt: skip


def readback_progress_check(
    *, device: Device, session: InfusionSession, rates: Iterable[float | None], now: datetime
) -> bool:
    """While an unverified session runs, a reported `flowRate` beyond tolerance raises `parameter_mismatch`; while a
    mismatched one runs beyond it still, it is raised again once the last was resolved (when in doubt, alarm: a rate
    changed at the bedside on purpose is a new order, not a resolve; review 14 found a remembered "resolved at this
    rate" silencing a 10x rate in the same batch, and the same wrong rate coming back after a correction).

    While its alarm is active, a rate it names as seen running already (within `RATE_NEWS_TOLERANCE`) is neither
    counted nor shown again per progress; another is added to it and kept as the session's (`mismatch_raise`: it alerts
    again unless the rate is one a confirmation reported), whatever raised it.

    `rates` are those of running progress only: a paused or completed pump's rate of 0 is no mismatch.

    The rate raised for is kept on the session (`mismatch_flow_rate_ml_min`, `mismatch_seen_at`): the read-back
    panels show it as what the pump runs, not a confirmation (from before a restart, or one echoing the order); once
    the pump reports running at the order's rate again, since when (`rate_matched_at`, `_rate_matched_record`).

    `session` may be a partly loaded row (the bulk progress path): it is re-read whole to be recorded.
    """
    if session.read_back not in (ReadBack.UNVERIFIED, ReadBack.MISMATCH, ReadBack.MATCH):
        return False  # a confirmed order is compared too: a rate changed at the pump's screen is not the order
    rates = list(rates)
    beyond = [rate for rate in rates if rate is not None
              and not rate_within_tolerance(ordered_ml_min=session.flow_rate_ml_min, reported_ml_min=rate)]  # fmt: skip
    raised = bool(beyond) and _beyond_record(device, session, beyond, now)
    latest = next((rate for rate in reversed(rates) if rate is not None), None)
    if latest is not None and rate_within_tolerance(ordered_ml_min=session.flow_rate_ml_min, reported_ml_min=latest):
        _rate_matched_record(device, session, now)  # the batch's last running rate is the order's
    return raised


def _beyond_record(device: Device, session: InfusionSession, beyond: list[float], now: datetime) -> bool:
    """Rates seen running off the order: kept as the session's and raised (`readback_progress_check`)."""
    active = alarm_active(device=device, key=MISMATCH_KEY, session=session)
    if active is not None and not rates_new(rates_seen(active.details), beyond) and session.rate_matched_at is None:
        return False  # said already, and still said (after the order's rate was shown as reported: said again)
    whole = InfusionSession.objects.get(pk=session.pk)
    whole.read_back = session.read_back = ReadBack.MISMATCH
    for row in (whole, session):  # the caller's row too: a later save of it in the batch keeps what was seen
        row.mismatch_flow_rate_ml_min, row.mismatch_seen_at = beyond[-1], now  # shown as what the pump runs
        row.rate_matched_at = None
    whole.save(update_fields=["read_back", "mismatch_flow_rate_ml_min", "mismatch_seen_at", "rate_matched_at"])
    seen = {"ordered": whole.order, "reportedFlowRates": beyond, "fields": ["flowRate"]}
    mismatch_raise(device=device, session=whole, active=active, seen=seen, now=now)
    session_changed(device=device, session=whole)
    return True


def _rate_matched_record(device: Device, session: InfusionSession, now: datetime) -> None:
    """A session seen running off its order's rate now reports running at the order's rate: since when, so the panels
    say so beside the rate seen before (`progressMismatch.matchedSince`). Its `parameter_mismatch` stays: only a
    person's resolve ends it (what the pump was seen doing is not taken back). Recorded at the first such report."""
    if session.mismatch_flow_rate_ml_min is None or session.rate_matched_at is not None:
        return
    whole = InfusionSession.objects.get(pk=session.pk)
    whole.rate_matched_at = session.rate_matched_at = now
    whole.save(update_fields=["rate_matched_at"])
    session_changed(device=device, session=whole)


def readback_bolus_check(*, device: Device, session: InfusionSession, delivered: float | None, now: datetime) -> bool:
    """A bolus report's `bolusDelivered` beyond VOLUME_TOLERANCE_ML of the order's bolus (0 when disabled) is a
    mismatch whatever the session's read-back: `parameter_mismatch`, naming `bolusDelivered`. True if raised."""
    ordered = session.bolus_volume_ml if session.bolus_enabled else 0.0
    if not _is_rate(delivered) or abs(delivered - ordered) <= VOLUME_TOLERANCE_ML:
        return False
    session.read_back = ReadBack.MISMATCH
    session.save(update_fields=["read_back"])
    active = alarm_active(device=device, key=MISMATCH_KEY, session=session)
    seen = {"ordered": session.order, "reportedBolusDeliveredMl": delivered, "fields": ["bolusDelivered"]}
    mismatch_raise(device=device, session=session, active=active, seen=seen, now=now)
    session_changed(device=device, session=session)
    return True


def _is_rate(value: object) -> bool:
    return _is_value(value) and not isinstance(value, bool)
