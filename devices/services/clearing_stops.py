"""The STOP that clears a pump's confirm screen of an order ended unconfirmed (a person's cancel, the server's
time-out): queued by `requests._end_pending`, never to stop an infusion.

Nobody asked it to stop an infusion: so it is withheld, when queued and again just before it is published
(`publication.command_publish_check`), from a pump that runs that order after all or reports infusing (its own
infusion, without an order, running or paused), and the order's reason then says nothing was sent. A person stops an
infusing pump on purpose with Stop (a STOP of the infusion on the pump, or one without an order), never withheld.
"""

from datetime import datetime

from devices.models import Command, Device, InfusionSession
from devices.selectors import pump_state_reported_after
from devices.services.changes import session_changed
from devices.services.commands import command_withdraw
from devices.states import PUMP_INFUSING_STATES, SESSION_ON_PUMP_STATUSES, CommandKind, CommandState, PumpState

TIME_OUT_STOP_REASON = "no confirmation from the pump in time"  # the server's own STOP after a start timed out
TOLD_TO_CLEAR = "the pump is told to clear its screen"  # the ended order's reason while its STOP is queued
NOTHING_SENT = "nothing was sent to the pump"
A_PERSON_MAY_STOP_IT = ", and that infusion goes on (Stop it on the pump's page if it must stop)"


def pump_reports_infusing_since(*, device: Device, since: datetime) -> bool:
    """Whether the pump said it was running after `since` (progress, or a running pump state).

    The server's own STOP (a time-out's) is never queued (`_end_pending`) nor published (`command_publish_check`)
    to such a pump.
    """
    if device.pump_state == PumpState.RUNNING:
        return True
    heard_progress = device.latest_progress_at is not None and device.latest_progress_at > since
    if not heard_progress or (device.latest_progress or {}).get("status") not in (None, "running"):
        return False
    # the running progress stands, unless the pump reported itself idle since it (stopped remotely or at the pump)
    return device.pump_state != PumpState.IDLE or not pump_state_reported_after(
        device=device, at=device.latest_progress_at
    )


def clearing_stop_withheld_why(*, device: Device, session: InfusionSession) -> str:
    """Why the STOP clearing `session`'s confirm screen must not go out, as what the pump does ("" : it may go):
    it runs that order after all, or reports infusing since the order was placed, or has an infusion of its own
    under way (running or paused), which that STOP would stop (the original firmware knows no infusion ids)."""
    if session.status in SESSION_ON_PUMP_STATUSES:
        return f"runs infusion {session.infusion_id}"
    if pump_reports_infusing_since(device=device, since=session.created_at):
        return "reports infusing"
    if device.pump_state in PUMP_INFUSING_STATES:
        return f"reports an infusion of its own, {device.pump_state}"
    return ""


def nothing_sent_because(why: str, *, by_person: bool) -> str:
    """The ended order's reason when its clearing STOP is withheld: "nothing was sent to the pump: it reports …"."""
    return f"{NOTHING_SENT}: it {why}{A_PERSON_MAY_STOP_IT if by_person else ''}"


def clearing_stops_withdraw(*, device: Device, session: InfusionSession, why: str, now: datetime) -> list[Command]:
    """The STOPs clearing `session`'s confirm screen, queued and not yet handed to the broker, are withdrawn: the pump
    `why` (runs that order after all, reports infusing). Each is `superseded` ("withdrawn unsent: the pump …"),
    audited `server.stop_withdrawn`, and the ended order's reason, which said the pump is told to clear its screen,
    now says nothing was sent (`device:session`), so the waiting window and the monitor do not claim it.

    One already handed to the broker (`handed_at`, `published_at`, also before its PUBACK is recorded) cannot be called
    back (`infusing_after_stop` follows if the pump runs on). A STOP a person asked for with Stop is never withdrawn.
    """
    queued = Command.objects.filter(device=device, session=session, kind=CommandKind.STOP_INFUSION, clears_screen=True,
                                    state=CommandState.QUEUED, published_at__isnull=True,
                                    handed_at__isnull=True)  # fmt: skip
    withdrawn = list(queued.select_related("session", "created_by").order_by("created_at", "pk"))
    for command in withdrawn:
        command_withdraw(
            device=device, command=command, session=session, now=now, error=f"withdrawn unsent: the pump {why}",
            audit="server.stop_withdrawn", details={"infusionId": session.infusion_id, "reason": why},
        )  # fmt: skip
    if withdrawn and session.status_reason.endswith(TOLD_TO_CLEAR):
        by_person = any(command.created_by_id is not None for command in withdrawn)
        told = nothing_sent_because(why, by_person=by_person)
        session.status_reason = f"{session.status_reason.removesuffix(TOLD_TO_CLEAR)}{told}"[:200]
        session.save(update_fields=["status_reason"])
        session_changed(device=device, session=session)
    return withdrawn
