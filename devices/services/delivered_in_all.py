"""The volume an infusion delivered in all, across runs of its pump's delivered count (review 27, finding 2).

A pump's `deliveredVolumeMl` counts one run: a pump that reboots and runs the same infusion again counting from 0 (a
firmware that keeps the order across a power loss but not its count), or that re-primes and resets its count under
the same boot, reports less than was delivered, and could give the whole order again with every report "within the
order". What was delivered stays delivered: a run ends when the count goes back (by more than
`VOLUME_TOLERANCE_ML`), its highest count is kept as delivered (`delivered_before_run_ml`), and the next run counts on
top of it (`delivered_run_peak_ml`: `InfusionSession.delivered_in_all_ml`). A count going back is told
(`delivery_divergence`, `count_went_back`: `delivery.py` raises it), and a restart's `infusion_interrupted` cleared
because the pump reported the infusion running again "as it was" is raised again when its first count since the
restart is below what was delivered: it was not as it was.
"""

from datetime import datetime

from devices.models import Alarm, Device, InfusionSession
from devices.services.alarms import alarm_raise
from devices.services.paused_runs_again import INTERRUPTED, interruption_latest
from devices.services.readback import VOLUME_TOLERANCE_ML
from devices.states import AlarmPriority, AlarmSource, AlarmState
from protocol.schemas import DevicePayload

COUNT_WENT_BACK = "count_went_back"
COUNTED_BELOW_AT = "countedBelowAt"  # set on a re-raised interruption: told once


def delivered_count_step(
    *, session: InfusionSession, report: DevicePayload, delivered: float, received_at: datetime
) -> dict | None:
    """Move `session`'s runs by one report's count (its columns updated in place, stored by the caller): a count
    under this run's highest ends the run and starts the next. Returns what a count going back showed, else None."""
    peak = session.delivered_run_peak_ml
    if peak is None or delivered >= peak - VOLUME_TOLERANCE_ML:
        session.delivered_run_peak_ml = delivered if peak is None else max(peak, delivered)
        return None
    before = session.delivered_before_run_ml + peak
    session.delivered_before_run_ml, session.delivered_run_peak_ml = before, delivered
    return {"kind": COUNT_WENT_BACK, "deliveredVolumeMl": delivered, "deliveredBeforeMl": round(before, 3),
            "status": report.status or "running", "receivedAt": received_at.isoformat()}  # fmt: skip


def interruption_counted_below(
    *, device: Device, session: InfusionSession, seen: dict, previous_at: datetime | None, now: datetime
) -> None:
    """The first count since a restart is below what was delivered: the restart's `infusion_interrupted`, cleared as
    "running again as it was", is raised again naming both figures (once; one still active or a person's resolve
    stands as it is)."""
    interruption = interruption_latest(session)
    if not _cleared_as_it_was(interruption) or COUNTED_BELOW_AT in interruption.details:
        return
    if previous_at is not None and previous_at > interruption.last_raised_at:
        return  # counted since the restart already: the count went back later, `delivery_divergence` tells it
    details = {**interruption.details, COUNTED_BELOW_AT: now.isoformat(), "countedMl": seen["deliveredVolumeMl"],
               "deliveredBeforeMl": seen["deliveredBeforeMl"]}  # fmt: skip
    alarm_raise(  # a new alarm (the cleared one stays as it ended), heard through a silence as any new one
        device=device, session=session, type=INTERRUPTED, priority=AlarmPriority.HIGH, source=AlarmSource.SERVER,
        now=now, details=details,
        message=(f"Infusion {session.infusion_id} was interrupted: {interruption.details.get('reason')}. The pump "
                 f"runs it again counting {seen['deliveredVolumeMl']:g} mL delivered where "
                 f"{seen['deliveredBeforeMl']:g} mL had been delivered: it may give the order again. Check the pump "
                 "and the patient"),
    )  # fmt: skip


def _cleared_as_it_was(interruption: Alarm | None) -> bool:
    return (interruption is not None and interruption.state == AlarmState.CLEARED
            and interruption.resolved_at is None)  # fmt: skip
