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
- a `received_start_command` may be an earlier order's while one still owes its receipt (ended cancelled or timed
  out, its START gone out, no receipt heard of it or of an order after it): it is taken for the oldest such order whose
  figures (`currentInfusion`) it tells, audited with `earlier` naming it. Applied, a receipt telling that order's
  figures and not this one's would mark this order delivered and raise a false `parameter_mismatch`; one telling
  figures of both (the waiting window's Retry places the very figures of the order it retries) would open the way to
  the earlier order's Reject, or its `started`, both held in the bridge with it: "rejected, nothing runs" or "running"
  while this order waits on the pump's confirm screen (review 36, finding 1). When no order owes one, a receipt of this
  order's figures, or neither order's (the pump holds this order with other figures: its mismatch is raised), is this
  order's.

An "earlier" order is one placed before (a smaller `pk`: a pump's orders are placed under its lock, one after another),
never one with an earlier `created_at`: an order placed while the server's clock ran ahead keeps that moment once the
clock is put right, and its late Reject then rejected the corrected order (review 49).
"""

import logging
from datetime import datetime, timedelta

from devices.models import Command, Device, DeviceEvent, InfusionSession
from devices.services.changes import event_record, session_changed
from devices.services.commands import command_answered
from devices.services.named import REPORT_FOR_OTHER_INFUSION
from devices.services.readback_received import received_parameters, told_as_ordered
from devices.states import CommandKind, SessionStatus
from protocol.schemas import DevicePayload

logger = logging.getLogger(__name__)

RECEIPT = "received_start_command"
# An order ended without the pump's answer: a late answer of the pump's may still be its
ENDED_UNANSWERED = (SessionStatus.CANCELLED, SessionStatus.TIMED_OUT)
NOT_SENT = "its START had not left the server when the pump sent this"
NOT_RECEIVED = "the pump had not reported receiving its START: the rejection may be of an earlier order"
# How many orders back a receipt may be owed (each ended unanswered since the last heard: a bound on the query, far
# beyond a nurse's retries)
ORDERS_OWING_AT_MOST = 20
# A report received this long after the broker surely had a START (its PUBACK) was sent after the pump had it
# (delivery and the firmware's turn take well under a second); one received sooner may have been on its way before the
# START arrived
HAD_IT_AFTER_S = 5
MAY_BE = "it may be the earlier order"
MAY_BE_EARLIER = "its START went out and the pump was not heard receiving it, and it had this order's figures"


def bare_start_answer_matches(
    *, device: Device, session: InfusionSession, report: DevicePayload, now: datetime
) -> bool:
    """Whether an answer to a START naming no infusion, received at `now`, is about the pending `session`; if not, it
    is audited and logged (a receipt with the earlier order it is taken for), kept on `session` if it may be its own
    after all (`answer_in_doubt`), and the caller applies nothing."""
    told = received_parameters(report) if report.status == RECEIPT else {}
    earlier = _receipt_taken_for(device, session, told) if report.status == RECEIPT else None
    why = _not_about(device, session, report, earlier, told, now)
    if why:
        _unmatched_record(device, session, report, why, earlier, now)
    if _may_be_this_orders(why):
        _doubt_say(device, session, report.status)
    return not why


def _may_be_this_orders(why: str) -> bool:
    """Whether an answer not applied for `why` may be the order waiting's after all (not an order never sent)."""
    return why == NOT_RECEIVED or why.startswith(MAY_BE)


def _doubt_say(device: Device, session: InfusionSession, answer: str) -> None:
    """Keep on the order waiting the pump's answer that may be its own (`answer_in_doubt`), for its waiting window to
    say: a Reject it may not show as such, a receipt it may not count (sent with the session's next change)."""
    if session.answer_in_doubt == "rejected":
        return  # a Reject in doubt says more than a receipt in doubt: kept until the order's own receipt applies
    session.answer_in_doubt = answer
    session.save(update_fields=["answer_in_doubt"])
    session_changed(device=device, session=session)


def _not_about(device: Device, session: InfusionSession, report: DevicePayload, earlier: InfusionSession | None,
               told: dict[str, float | bool], now: datetime) -> str:  # fmt: skip
    """Why the answer cannot be taken for the pending order's ("" when it is)."""
    start = command_answered(device, session, CommandKind.START_INFUSION, now)
    if start is None or _went_out_after(start, now):
        return NOT_SENT
    if report.status == "rejected" and session.delivered_at is None and _an_earlier_order_may_answer(device, session):
        return NOT_RECEIVED
    if earlier is None:
        return ""
    if told and not told_as_ordered(session, told):
        return f"it tells the figures of the earlier order {earlier.infusion_id}, not this order's"
    return f"{MAY_BE} {earlier.infusion_id}'s: {MAY_BE_EARLIER}"


def _went_out_after(start: Command, now: datetime) -> bool:
    """Whether the START was first handed to the broker after `now` (a report received before cannot be about it)."""
    moments = [moment for moment in (start.published_at, start.handed_at) if moment is not None]
    return bool(moments) and min(moments) > now


def _receipt_taken_for(
    device: Device, session: InfusionSession, told: dict[str, float | bool]
) -> InfusionSession | None:
    """The earlier order a receipt (`told`: its figures) is or may be, before `session`'s: one that may still owe it
    (`_receipt_owed`), else the order just before whose figures, not `session`'s, it tells. None: `session`'s."""
    return _receipt_owed(device, session, told) or _earlier_order_told(device, session, told)


def _receipt_owed(device: Device, session: InfusionSession, told: dict[str, float | bool]) -> InfusionSession | None:
    """The earliest order before `session` that may still owe the pump's receipt this one can be (`told`: its figures,
    empty when it tells none): ended unanswered, its START gone out, its figures told, and no receipt heard of it or
    of any order after it (the pump receives STARTs and answers them in order: once a later order's receipt is heard,
    an earlier one's can no longer come). None: the receipt can be no earlier order's."""
    for earlier in _orders_since_last_heard(device, session):
        if _start_went_out(earlier) and (not told or told_as_ordered(earlier, told)):
            return earlier
    return None


def _orders_since_last_heard(device: Device, session: InfusionSession) -> list[InfusionSession]:
    """The orders before `session` ended unanswered after the last one the pump was heard receiving or answering,
    oldest first: a receipt applied (`delivered_at`) or taken as its own (audited `earlier`), or any other ending.

    Nor any order the pump was heard from once it surely had its START (`_heard_or_booted_since_its_start`) and before
    `session`'s went out, or that the pump booted after (review 37, findings 1-3): the pump answers in order, so what
    it said after having that START (its answer to the STOP that cleared the order's screen, a status) came after any
    receipt of it, which was then heard or lost (QoS 0) and will never come; a pump that booted since holds nothing of
    it. Only answers held up together (a bridge or a broker backlog, all received after `session`'s START went out:
    review 36's finding 1) keep an order owing. Without this, one lost receipt held every later order's own answers in
    doubt, and a retry accepted at the pump after a reboot was never shown running."""
    before = InfusionSession.objects.filter(device=device, pk__lt=session.pk)
    owing = []
    for earlier in before.order_by("-pk")[:ORDERS_OWING_AT_MOST]:
        if earlier.status not in ENDED_UNANSWERED or earlier.delivered_at is not None:
            break
        owing.append(earlier)
    heard = _receipts_taken_as_of(device, [earlier.infusion_id for earlier in owing])
    owing = owing[: next((index for index, earlier in enumerate(owing) if earlier.infusion_id in heard), len(owing))]
    this_start_out = _start_out_at(session)
    answered = next((index for index, earlier in enumerate(owing)
                     if _heard_or_booted_since_its_start(device, earlier, this_start_out)), len(owing))  # fmt: skip
    return owing[:answered][::-1]


def _an_earlier_order_may_answer(device: Device, session: InfusionSession) -> bool:
    """Whether a Reject naming no infusion may be an earlier order's (a Reject before the order waiting's own receipt):
    one ended unanswered (its receipt heard or not: the Reject comes after it) whose START went out, the pump not heard
    since it had it nor booted (`_heard_or_booted_since_its_start`). None such, the Reject can only be this order's: a
    pump's first order, or one after an answered order, rejected with its receipt lost (review 37, finding 7)."""
    this_start_out = _start_out_at(session)
    before = InfusionSession.objects.filter(device=device, pk__lt=session.pk)
    for earlier in before.order_by("-pk")[:ORDERS_OWING_AT_MOST]:
        if earlier.status not in ENDED_UNANSWERED:
            return False
        if _heard_or_booted_since_its_start(device, earlier, this_start_out):
            return False  # this one's answers, and those of any order before it, came before what was heard
        if _start_went_out(earlier):
            return True
    return False


def _start_out_at(session: InfusionSession) -> datetime | None:
    """When the order's START was first handed to the broker (None: never)."""
    start = Command.objects.filter(session=session, kind=CommandKind.START_INFUSION).first()
    if start is None:
        return None
    moments = [moment for moment in (start.handed_at, start.published_at, start.sent_at) if moment is not None]
    return min(moments, default=None)


def _start_surely_out_at(session: InfusionSession) -> datetime | None:
    """The latest moment the order's START can have left for the pump: the broker's PUBACK (`sent_at`), or the pump's
    word that it had it (`delivered_at`, `done_at`) when that came first (None: neither yet, it may still be on its
    way). Not when it was first handed (`_start_out_at`): paho may hold it, or resend it, until the broker has it, so
    the pump may get it only then (a late PUBACK: the broker slow, paho's in-flight window full; review 39)."""
    start = Command.objects.filter(session=session, kind=CommandKind.START_INFUSION).first()
    if start is None:
        return None
    moments = [moment for moment in (start.sent_at, start.delivered_at, start.done_at) if moment is not None]
    return min(moments, default=None)


def _heard_or_booted_since_its_start(device: Device, earlier: InfusionSession, until: datetime | None) -> bool:
    """Whether the pump booted after `earlier`'s START surely left for it (`_start_surely_out_at`), or was heard (a
    status, an alarm: every report but running progress is recorded) once it had it (`HAD_IT_AFTER_S` after that) and
    before `until` (the order waiting's START went out). Counted from when the START was first handed, a report sent
    before the START reached the pump, or a reboot before it, was taken for the pump having had it: the earlier order's
    Reject, late, rejected the retry still on the pump's confirm screen (review 39, finding 0)."""
    surely_out = _start_surely_out_at(earlier)
    if surely_out is None:
        return False
    if device.booted_at is not None and device.booted_at > surely_out:
        return True
    had_it = surely_out + timedelta(seconds=HAD_IT_AFTER_S)
    heard = DeviceEvent.objects.filter(device=device, kind__startswith="mqtt.", received_at__gt=had_it)
    return heard.filter(received_at__lt=until).exists() if until is not None else heard.exists()


def _receipts_taken_as_of(device: Device, infusion_ids: list[str]) -> set[str]:
    """Those of `infusion_ids` whose late receipt was heard (taken as theirs: audited with `earlier`)."""
    if not infusion_ids:
        return set()
    records = DeviceEvent.objects.filter(device=device, kind=REPORT_FOR_OTHER_INFUSION, payload__report=RECEIPT,
                                         payload__earlier__in=infusion_ids)  # fmt: skip
    return set(records.values_list("payload__earlier", flat=True))


def _earlier_order_told(
    device: Device, session: InfusionSession, told: dict[str, float | bool]
) -> InfusionSession | None:
    """The order before `session`, ended unanswered with its START gone out, whose figures a receipt tells (`told`)
    when they are not `session`'s, though a receipt of it was heard (a START delivered twice): that order's, late."""
    if not told or told_as_ordered(session, told):
        return None
    earlier = InfusionSession.objects.filter(device=device, pk__lt=session.pk)
    earlier = earlier.order_by("-pk").first()
    if earlier is None or earlier.status not in ENDED_UNANSWERED or not told_as_ordered(earlier, told):
        return None
    return earlier if _start_went_out(earlier) else None


def _start_went_out(session: InfusionSession) -> bool:
    """Whether the order's START was handed to the broker (the pump can have it)."""
    return _start_out_at(session) is not None


def _unmatched_record(device: Device, session: InfusionSession, report: DevicePayload, why: str,
                      earlier: InfusionSession | None, now: datetime) -> None:  # fmt: skip
    """Audit (`pump.report_for_other_infusion`, with the order waiting, the earlier order a receipt is taken for, why,
    and whether it may be the order waiting's after all: `mayBeCurrent`) and log an answer applied to nothing."""
    payload = {"topic": "status", "report": report.status, "infusionId": None, "namedStatus": None,
               "current": session.infusion_id, "applied": None, "why": why,
               "earlier": earlier.infusion_id if earlier is not None else None,
               "mayBeCurrent": _may_be_this_orders(why)}  # fmt: skip
    event_record(device=device, kind=REPORT_FOR_OTHER_INFUSION, session=session, payload=payload, received_at=now)
    logger.info("an answer to a start naming no infusion is not taken as the order waiting's; not applied: %s", why,
                extra={"device_id": device.device_id, **payload})  # fmt: skip
