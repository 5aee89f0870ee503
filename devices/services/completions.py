"""A pump's word that its infusion completed, judged by what it reported of it (review 44, F3).

A `completion` (its `summary`), a `completed` status or a progress saying `completed` ends the session on the pump
`completed` only when the order was delivered. A completion's `totalVolumeMl`, the pump's own final figure, alone
judges when given: the order's planned volume within `VOLUME_TOLERANCE_ML`, no allowance (review 47, M3: its 29.5 of
30 mL read "Completed" as the last progress, 2 s before, left 0.5 mL at 999 mL/h). Without it, the last progress
judges (no more than that tolerance remaining, 100 %, or, with no remaining figure, delivered the planned volume: the
original firmware's final 35 of 30 mL, its bolus counted twice, is delivered), with what the pump could have
delivered since (`unreported.py`: its rate times up to 2 s, at most a twentieth of the order): a final progress lost
at a high rate is no shortfall, 22 of 30 mL left still is; nothing the pump reported (no figure at all): its word
stands. Else the pump ended by its timer, held back (an occlusion, a slow syringe), or its volume to be infused was
set short: the session ends `interrupted` with a high `infusion_interrupted` that says what was given of what was
ordered, as the same facts reported `idle` end it (`restarts.session_end_on_idle`): never "Completed" beside "No
active alarms." with most of the order not given.
"""

from datetime import datetime

from devices.models import Device, InfusionSession
from devices.payloads import percent_of
from devices.services.restarts import infusion_interrupt
from devices.services.tolerances import VOLUME_TOLERANCE_ML, is_figure
from devices.services.unreported import percent_says_finished, unreported_ml

COMPLETED_SHORT = "the pump reports completed with "  # how such an interruption's reason begins


def completion_short(
    session: InfusionSession, progress: dict | None, summary: dict | None = None, *, unreported: float = 0.0
) -> str:  # fmt: skip
    """Why the pump's `completed` is not `session`'s order delivered (the interruption's reason), "" when it is or
    nothing reported says otherwise. `progress`: the session's last; `summary`: the completion's, if any;
    `unreported`: the mL the pump could have delivered since that progress (`unreported.unreported_ml`)."""
    planned, allowed = session.planned_volume_ml, VOLUME_TOLERANCE_ML + unreported
    progress, summary = progress or {}, summary if isinstance(summary, dict) else {}
    total, remaining = summary.get("totalVolumeMl"), progress.get("volumeRemainingMl")
    if is_figure(total):  # the pump's own final figure: judged by it alone, no allowance (review 47, M3)
        if total >= planned - VOLUME_TOLERANCE_ML:
            return ""
        return f"{COMPLETED_SHORT}{_ml(total)} of {_ml(planned)} mL given ({_ml(planned - total)} mL left)"
    delivered, percent = progress.get("deliveredVolumeMl"), percent_of(progress)
    finished = [
        is_figure(remaining) and remaining <= allowed,
        not is_figure(remaining) and is_figure(delivered) and delivered >= planned - allowed,
        percent_says_finished(percent, planned_ml=planned, unreported=unreported),
    ]
    if any(finished) or not any(is_figure(value) for value in (remaining, delivered, percent)):
        return ""
    given = delivered if is_figure(delivered) else None
    if given is None:
        given = planned - remaining if is_figure(remaining) else planned * percent / 100
    left = remaining if is_figure(remaining) else planned - given
    return f"{COMPLETED_SHORT}{_ml(given)} of {_ml(planned)} mL given ({_ml(left)} mL left)"


def completion_short_end(
    *, device: Device, session: InfusionSession | None, now: datetime, summary: dict | None = None,
    sent: object = None,
) -> bool:  # fmt: skip
    """End the running or paused `session` `interrupted` if the pump's `completed` (received `now`, sent at its own
    `sent`) is not its order delivered (`completion_short`); True if so (the caller then does not complete it)."""
    if session is None:
        return False
    unreported = unreported_ml(device=device, session=session, sent=sent, received_at=now)
    reason = completion_short(session, session.progress_on(device), summary, unreported=unreported)
    if not reason:
        return False
    infusion_interrupt(device=device, session=session, reason=reason, now=now)
    return True


def _ml(value: float) -> str:
    return f"{round(value, 2):g}"
