"""The planned volume a running pump reports, read back against the order (review 44, F5).

A running progress carrying both `deliveredVolumeMl` and `volumeRemainingMl` states what the pump is programmed to give:
their sum. Off the order's planned volume by more than `PLANNED_TOLERANCE_ML` below, or by more than the order's bolus
plus it above (the original firmware's final progress counts the bolus twice: 35 of 30 mL, `legacy-firmware.json`),
it is the pump running another order than the one confirmed (its volume to be infused changed at the bedside, or lost
by its firmware): a high `parameter_mismatch`, as a rate off the order is at the first progress
(`readback.readback_progress_check`), the read-back `mismatch`. A report without one of the two figures (a pump that
reports only what it delivered) tells no planned volume and is not compared.

One alarm per distinct mismatch: the session's one `parameter_mismatch` names each planned volume seen (beyond
`PLANNED_NEWS_TOLERANCE_ML` of those named) and alerts again for a new one (`mismatch_alarm.mismatch_raise`), also one
that comes while it names a rate; the same wrong program reported every second is neither counted nor raised again.
"""

from collections.abc import Iterable
from datetime import datetime

from devices.models import Device, InfusionSession
from devices.services.alarms import alarm_active
from devices.services.changes import session_changed
from devices.services.divergence_news import COUNT_STEP_ML
from devices.services.mismatch_alarm import (
    MISMATCH_KEY,
    PLANNED_FIELD,
    PLANNED_LATEST,
    PLANNED_SEEN,
    mismatch_raise,
    planned_new,
    planned_seen,
)
from devices.services.tolerances import VOLUME_TOLERANCE_ML, is_figure
from devices.states import ReadBack
from protocol.schemas import DevicePayload

# The confirmation's volume tolerance, plus one count step: the two figures are each counted (in steps of up to
# 0.1 mL), and the original firmware's running figures add up to 0.11 mL under the order (5.07 + 24.82 of 30 mL).
PLANNED_TOLERANCE_ML = round(VOLUME_TOLERANCE_ML + COUNT_STEP_ML, 3)
RUNNING_REPORTS = (None, "running")
COMPARED = (ReadBack.UNVERIFIED, ReadBack.MISMATCH, ReadBack.MATCH)  # as the rate: a confirmed order is compared too


def planned_volume_reported(report: DevicePayload) -> float | None:
    """The volume a progress report says the pump is programmed to give (delivered + remaining); None without both."""
    delivered, remaining = report.deliveredVolumeMl, report.volumeRemainingMl
    if not (is_figure(delivered) and is_figure(remaining)):
        return None
    return round(delivered + remaining, 3)


def planned_volume_matches(session: InfusionSession, planned: float) -> bool:
    """Whether `planned` is `session`'s order: no more than `PLANNED_TOLERANCE_ML` under its planned volume, nor more
    than its bolus (counted twice by the original firmware) plus that tolerance over it."""
    ordered = session.planned_volume_ml
    bolus = session.bolus_volume_ml if session.bolus_enabled else 0.0
    return ordered - PLANNED_TOLERANCE_ML <= planned <= ordered + bolus + PLANNED_TOLERANCE_ML


def readback_planned_check(
    *, device: Device, session: InfusionSession, reports: Iterable[DevicePayload], now: datetime
) -> bool:
    """Raise `parameter_mismatch` for the running `reports` (about the session on the pump, in arrival order) whose
    planned volume is off the order and not named by its active one already; True if raised. Nothing is read from the
    database unless one is off. `session` may be the bulk path's partly loaded row: it is re-read whole to be stored."""
    if session.read_back not in COMPARED:
        return False
    off = [(planned, report) for report in reports if report.status in RUNNING_REPORTS
           and (planned := planned_volume_reported(report)) is not None
           and not planned_volume_matches(session, planned)]  # fmt: skip
    if not off:
        return False
    active = alarm_active(device=device, key=MISMATCH_KEY, session=session)
    volumes = [planned for planned, _ in off]
    if active is not None and not planned_new(planned_seen(active.details), volumes):
        return False  # said already, and still said
    whole = InfusionSession.objects.get(pk=session.pk)
    whole.read_back = session.read_back = ReadBack.MISMATCH
    whole.save(update_fields=["read_back"])
    planned, latest = off[-1]
    figures = {"plannedVolumeMl": planned, "deliveredVolumeMl": latest.deliveredVolumeMl,
               "volumeRemainingMl": latest.volumeRemainingMl}  # fmt: skip
    seen = {"ordered": whole.order, "fields": [PLANNED_FIELD], PLANNED_SEEN: volumes, PLANNED_LATEST: figures}
    mismatch_raise(device=device, session=whole, active=active, seen=seen, now=now)
    session_changed(device=device, session=whole)
    return True
