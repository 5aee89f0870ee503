"""The original firmware's answers to a START that name no infusion (`received_start_command`, `rejected`): whether
they are about the order waiting.

Such an answer is the pump's word on the START it holds. It is about the pending order only if the pump can have had
that order's START, as a Pause or Stop answer is (`commands.command_answered`: one never sent answers nothing): its
START handed to the broker before the answer was received. Otherwise it is an earlier order's, late (a bridge held
up, a backlog): it is audited as `pump.report_for_other_infusion` with why, logged, and applied to nothing; the order
waits on for its own answer (review 33, finding 1: a colleague's Reject of a cancelled order rejected the corrected
order that had never left the server).

What the pump sends is in order: an earlier order's answers come before it cleared that order's screen, before the
newer START reached it, before that START's answers. So once the newer START went out, an answer may still be the
earlier order's, late. Then (the safe reading, `docs/clinical-rules.md`):
- a `rejected` applies only after this order's own `received_start_command` (the firmware sends it first, on
  receiving the START): before it, the rejection may be the earlier order's; applied to this one, the order would
  read "rejected, nothing runs" while it waits on the pump's confirm screen, where it can still be accepted. Unapplied,
  this order, if it was its own, times out and its STOP clears the pump's screen. A lost receipt (QoS 0) costs the same.
- a `received_start_command` whose figures (`currentInfusion`) are the earlier order's (its START went out, it ended
  cancelled or timed out) and not this order's is the earlier order's: applied, it would mark this order delivered and
  raise a false `parameter_mismatch` against figures never its own. One telling no figures, or this order's, or
  neither order's (the pump holds this order with other figures: its mismatch is raised) is this order's.
"""

import logging
from datetime import datetime

from django.db.models import Q

from devices.models import Command, Device, InfusionSession
from devices.services.changes import event_record
from devices.services.commands import command_answered, handed
from devices.services.named import REPORT_FOR_OTHER_INFUSION
from devices.services.readback_received import received_parameters, told_as_ordered
from devices.states import CommandKind, SessionStatus
from protocol.schemas import DevicePayload

logger = logging.getLogger(__name__)

# An order ended without the pump's answer: a late answer of the pump's may still be its
ENDED_UNANSWERED = (SessionStatus.CANCELLED, SessionStatus.TIMED_OUT)
NOT_SENT = "its START had not left the server when the pump sent this"
NOT_RECEIVED = "the pump had not reported receiving its START: the rejection may be of an earlier order"


def bare_start_answer_matches(
    *, device: Device, session: InfusionSession, report: DevicePayload, now: datetime
) -> bool:
    """Whether an answer to a START naming no infusion, received at `now`, is about the pending `session`; if not, it
    is audited and logged, and the caller applies nothing."""
    why = _not_about(device, session, report, now)
    if why:
        _unmatched_record(device, session, report, why, now)
    return not why


def _not_about(device: Device, session: InfusionSession, report: DevicePayload, now: datetime) -> str:
    """Why the answer cannot be the pending order's ("" when it is)."""
    start = command_answered(device, session, CommandKind.START_INFUSION, now)
    if start is None or _went_out_after(start, now):
        return NOT_SENT
    if report.status == "rejected" and session.delivered_at is None:
        return NOT_RECEIVED
    if report.status == "received_start_command":
        earlier = _earlier_order_told(device, session, received_parameters(report))
        if earlier is not None:
            return f"it tells the figures of the earlier order {earlier.infusion_id}, not this order's"
    return ""


def _went_out_after(start: Command, now: datetime) -> bool:
    """Whether the START was first handed to the broker after `now` (a report received before cannot be about it)."""
    moments = [moment for moment in (start.published_at, start.handed_at) if moment is not None]
    return bool(moments) and min(moments) > now


def _earlier_order_told(
    device: Device, session: InfusionSession, told: dict[str, float | bool]
) -> InfusionSession | None:
    """The order before `session`, ended unanswered with its START gone out, whose figures a receipt tells (`told`)
    when they are not `session`'s: the receipt is that order's, late; else None."""
    if not told or told_as_ordered(session, told):
        return None
    earlier = InfusionSession.objects.filter(device=device, created_at__lt=session.created_at)
    earlier = earlier.order_by("-created_at", "-pk").first()
    if earlier is None or earlier.status not in ENDED_UNANSWERED or not told_as_ordered(earlier, told):
        return None
    went_out = Command.objects.filter(handed() | Q(sent_at__isnull=False), session=earlier,
                                      kind=CommandKind.START_INFUSION)  # fmt: skip
    return earlier if went_out.exists() else None


def _unmatched_record(device: Device, session: InfusionSession, report: DevicePayload, why: str, now: datetime) -> None:
    """Audit (`pump.report_for_other_infusion`, with the order waiting and why) and log an answer applied to nothing."""
    payload = {"topic": "status", "report": report.status, "infusionId": None, "namedStatus": None,
               "current": session.infusion_id, "applied": None, "why": why}  # fmt: skip
    event_record(device=device, kind=REPORT_FOR_OTHER_INFUSION, session=session, payload=payload, received_at=now)
    logger.info("an answer to a start naming no infusion is not about the order waiting; not applied: %s", why,
                extra={"device_id": device.device_id, **payload})  # fmt: skip
