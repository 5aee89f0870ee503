"""Which infusion a pump's report is about: the one it names, never whichever happens to be on the pump now.

A report naming another infusion of this pump than the one on it (a late QoS 1 copy of the previous infusion's
completion, an older retained action handed back by a broker) changes nothing: it is audited as
`pump.report_for_other_infusion` (but for a status about an infusion the server had ended while no order is on the
pump: `evidence.ended_infusion_status_apply`; the audit and the log then say what was applied; and a MANUAL_RESUME of
an interrupted infusion, which moves nothing but is kept as evidence of a person's resume: they say so). A report
naming nothing (the original firmware) is about the one on the pump.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from devices.models import Device, InfusionSession
from devices.services.changes import event_record

logger = logging.getLogger(__name__)

REPORT_FOR_OTHER_INFUSION = "pump.report_for_other_infusion"


def session_named(*, device: Device, infusion_id: str | None) -> InfusionSession | None:
    """This pump's session that `infusion_id` names, whatever its status; None when none is named or known."""
    if not infusion_id:
        return None
    return InfusionSession.objects.filter(device=device, infusion_id=infusion_id).first()


def names_another(*, device: Device, infusion_id: str | None, current: InfusionSession | None) -> bool:
    """Whether a report naming `infusion_id` is about another infusion than `current` (the one it would act on).

    With nothing current, only a session this pump had counts as another: an id the server never gave is the
    pump's own infusion (infusing without an order).
    """
    if not infusion_id:
        return False
    if current is not None:
        return infusion_id != current.infusion_id
    return session_named(device=device, infusion_id=infusion_id) is not None


def other_infusion_reported(
    *, device: Device, kind: str, what: str, infusion_id: str | None, current: InfusionSession | None, now: datetime,
    kept: Callable[[InfusionSession | None], str] | None = None,
) -> bool:  # fmt: skip
    """True when the report is about another infusion than `current` (`names_another`): then it is audited as
    `pump.report_for_other_infusion` and the caller changes nothing. `kept`: given the session it names, what the
    report still counts for though nothing moves ("" for nothing), told in the audit and the log as applied."""
    if not names_another(device=device, infusion_id=infusion_id, current=current):
        return False
    applied = kept(session_named(device=device, infusion_id=infusion_id)) if kept else ""
    other_infusion_audit(device=device, kind=kind, what=what, infusion_id=infusion_id, current=current, now=now,
                         applied=applied)  # fmt: skip
    return True


def other_infusion_audit(
    *, device: Device, kind: str, what: str, infusion_id: str | None, current: InfusionSession | None, now: datetime,
    applied: str = "",
) -> None:  # fmt: skip
    """Audit (`pump.report_for_other_infusion`) and log a report about another infusion; `applied`: what of it the
    caller applied all the same (a status about an infusion the server had ended: the pump's state and its alarm; a
    MANUAL_RESUME of an interrupted infusion, kept as evidence of a resume), "" for nothing. The log says which, never
    "not applied" for a report that changed the pump or counts for something."""
    named = session_named(device=device, infusion_id=infusion_id)
    payload = {"topic": kind, "report": what, "infusionId": infusion_id,
               "namedStatus": named.status if named else None,
               "current": current.infusion_id if current else None, "applied": applied or None}  # fmt: skip
    event_record(device=device, kind=REPORT_FOR_OTHER_INFUSION, session=named, payload=payload, received_at=now)
    if applied:
        logger.info("report names another infusion; its session left as recorded, applied: %s", applied,
                    extra={"device_id": device.device_id, **payload})  # fmt: skip
    else:
        logger.info("report names another infusion; not applied", extra={"device_id": device.device_id, **payload})
