"""An infusion paused when its pump restarted that runs again: resumed by a person, or by the pump alone.

A pump may resume its infusion by itself after a power loss: it then infuses what a person paused, and nobody decided
that it should run (review 25, finding 1). Only evidence says a person resumed it: a Resume of the session asked after
it was paused, in any state (one lost in the restart may have reached the pump before it rebooted: her Resume, carried
out; `restart_commands.resume_asked_since`, which the lost-Stop recall honours too), or the pump's own MANUAL_RESUME
received since the restart (a person at the pump). With it, the run answers the restart's `infusion_interrupted`, as a
restart's resumed run does (review 26, finding 2: "without anyone resuming it" denied her Resume). Without it, the
first run since the restart raises that alarm again, saying so, whatever became of it: acknowledged (it alerts again),
cleared when the pump came back holding it paused, or resolved ("Checked at the pump": a verdict on the interruption,
not a decision to resume; review 26, finding 1): the pump runs by itself what a person paused, directly after the
restart or later from paused.
"""

from datetime import datetime

from devices.models import Alarm, Device, DeviceEvent, InfusionSession
from devices.services.alarms import alarm_clear, alarm_raise
from devices.services.restart_commands import resume_asked_since
from devices.services.silences import ward_silence_break
from devices.states import AlarmPriority, AlarmSource, AlarmState, SessionStatus
from protocol import topics

INTERRUPTED = "infusion_interrupted"
RUNS_AGAIN_AT = "runsAgainAt"  # set on the alarm once told: the first run since the restart only


def interruption_latest(session: InfusionSession) -> Alarm | None:
    """The session's latest `infusion_interrupted`, in any state: the one of its latest interruption."""
    return Alarm.objects.filter(session=session, type=INTERRUPTED).order_by("-last_raised_at", "-pk").first()


def found_paused(interruption: Alarm | None) -> bool:
    """Whether that interruption found the infusion paused (`details.was`)."""
    return interruption is not None and interruption.details.get("was") == SessionStatus.PAUSED


def paused_run_answer(
    *, device: Device, session: InfusionSession, now: datetime, interruption: Alarm | None = None
) -> None:
    """`session` runs (again from interrupted, or from paused): if its latest interruption found it paused and this
    is its first run since, the interruption clears on evidence of a person's resume, else it is raised again."""
    interruption = interruption or interruption_latest(session)
    if not found_paused(interruption) or RUNS_AGAIN_AT in interruption.details:
        return
    resumed_by = _resume_evidence(device, session, interruption, now)
    if resumed_by:
        alarm_clear(device=device, types=[INTERRUPTED], session=session, now=now,
                    reason=f"the pump reports it {SessionStatus.RUNNING}, {resumed_by}")  # fmt: skip
    else:
        _runs_unresumed(device, session, interruption, now)


def _resume_evidence(device: Device, session: InfusionSession, interruption: Alarm, now: datetime) -> str:
    """How a person resumed it, if the server holds evidence of it; "" if none."""
    resume = resume_asked_since(session, _paused_at(session, interruption), now=now)
    if resume is not None:
        who = resume.created_by.get_username() if resume.created_by_id else "a user"
        return f"as the Resume asked by {who} ({resume.state})"
    actions = DeviceEvent.objects.filter(device=device, kind=f"mqtt.{topics.ACTIONS}", payload__action="MANUAL_RESUME",
                                         received_at__gte=interruption.last_raised_at)  # fmt: skip
    if any(event.payload.get("infusionId") in (None, session.infusion_id) for event in actions):
        return "resumed at the pump (MANUAL_RESUME)"
    return ""


def _paused_at(session: InfusionSession, interruption: Alarm) -> datetime:
    """When it was paused before the restart (`details.pausedAt`); the session's last pause for an alarm raised
    before that was kept."""
    paused_at = interruption.details.get("pausedAt")
    return datetime.fromisoformat(paused_at) if paused_at else session.paused_at or interruption.raised_at


def _runs_unresumed(device: Device, session: InfusionSession, interruption: Alarm, now: datetime) -> None:
    """It infuses what a person paused, and nobody resumed it: the interruption raised again (a new alarm if it was
    cleared or resolved), naming who paused it; an acknowledged one alerts again, one still sounding is heard through
    a silence."""
    paused = interruption.details.get("wasReason") or ""
    how = paused if paused.startswith("paused") else f"paused ({paused})" if paused else "paused"
    acknowledged = interruption.state == AlarmState.ACTIVE and interruption.acknowledged_at is not None
    alarm = alarm_raise(
        device=device, session=session, type=INTERRUPTED, priority=AlarmPriority.HIGH, source=AlarmSource.SERVER,
        now=now, details={**interruption.details, RUNS_AGAIN_AT: now.isoformat()},
        message=(f"Infusion {session.infusion_id} was {how}, then interrupted: {interruption.details.get('reason')}. "
                 "The pump runs it again without anyone resuming it: check the pump and the patient"),
        realert=acknowledged,
    )  # fmt: skip
    if not acknowledged:
        ward_silence_break(device=device, alarm=alarm, now=now)
