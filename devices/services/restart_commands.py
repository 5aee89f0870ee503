"""A person's Pause, Resume or Stop under way when the pump restarts: lost, never "not needed" (review 22, finding 1).

A restart ends the session `interrupted`, which used to supersede its commands ("not needed (the infusion ended
interrupted)"). But a pump may come back running that same infusion (a restart's resumed run): the Stop the nurse
asked for was then lost in the reboot, not needed. So a restart ends them `failed` (published: the pump may have
lost it) or `expired` (never sent), without an alarm of their own (the restart's `infusion_interrupted` sends the
nurse to the pump); and when that infusion runs again, a Stop or Pause of it not carried out raises
`command_not_carried_out` once more: the pump infuses what she asked it to stop or pause.

Lost means published before the pump booted again (`Device.booted_at`, told by the restart's report): one published
after it, while the pump was rebooting, went to the new run and stays under way (review 25, finding 5).
"""

from collections.abc import Collection
from datetime import datetime, timedelta

from devices.models import Alarm, Command, Device, InfusionSession
from devices.services.alarms import alarm_raise
from devices.services.commands import (
    LOST_IN_RESTART,
    MUST_BE_CARRIED_OUT,
    NOT_CARRIED_OUT,
    command_transition,
    is_published,
)
from devices.states import (
    AHEAD_TOLERANCE_S,
    COMMAND_UNSETTLED_STATES,
    AlarmPriority,
    AlarmSource,
    CommandKind,
    CommandState,
)

PERSON_KINDS = (CommandKind.PAUSE_INFUSION, CommandKind.RESUME_INFUSION, CommandKind.STOP_INFUSION)
NOT_SENT_BEFORE_RESTART = "not sent: the pump restarted before it went out"
KIND_NAME = {CommandKind.PAUSE_INFUSION: "Pause", CommandKind.STOP_INFUSION: "Stop"}


def commands_lost_in_restart(
    *, device: Device, session: InfusionSession, now: datetime, spared: Collection[int] = ()
) -> list[Command]:
    """The pump restarted during `session` (call before it ends `interrupted`): its Pause, Resume and Stop still under
    way end `failed` if they went out (`is_published`), `expired` if never sent; returns them. But for those in
    `spared` (their pks): sent to the new run (`commands_sent_to_the_new_run`), not lost."""
    under_way = Command.objects.filter(device=device, session=session, kind__in=PERSON_KINDS,
                                       state__in=COMMAND_UNSETTLED_STATES).exclude(pk__in=spared)  # fmt: skip
    lost = list(under_way.select_related("session", "created_by").order_by("created_at", "pk"))
    for command in lost:
        to, error = (
            (CommandState.FAILED, LOST_IN_RESTART) if is_published(command)
            else (CommandState.EXPIRED, NOT_SENT_BEFORE_RESTART)
        )  # fmt: skip
        command_transition(device=device, command=command, to=to, error=error, now=now, not_carried_out=False)
    return lost


def commands_sent_to_the_new_run(*, device: Device, session: InfusionSession, booted_at: datetime | None) -> list[int]:
    """The pks of `session`'s Pause, Resume and Stop under way that were published after the pump booted again
    (`booted_at`, `restarts.pump_booted_at`): a nurse's Stop sent while the pump was rebooting went to the new run
    (the broker holds a QoS 1 message for the pump's session), which may carry it out (review 25, finding 5). They stay
    under way, as any command: `done` when the pump reports what they ask within their deadline, else `failed` with
    `command_not_carried_out` at it. Those published before the boot, or never, were the run before's (lost)."""
    if booted_at is None:
        return []
    return list(Command.objects.filter(device=device, session=session, kind__in=PERSON_KINDS,
                                       state__in=COMMAND_UNSETTLED_STATES, published_at__gt=booted_at)
                .values_list("pk", flat=True))  # fmt: skip


def commands_lost_recall(*, device: Device, session: InfusionSession, why: str, now: datetime) -> Command | None:
    """`session` runs again after the server ended it (`why`): the newest Stop (else Pause) of it a person asked for
    that the pump did not carry out (`failed`, `expired`) raises `command_not_carried_out` again; returns it.

    Not a Pause the session was paused since (it was answered, at the pump or later), not a screen-clearing STOP
    (nobody asked to stop what runs), not one whose alarm a person resolved since it ended, nor one a person asked to
    Resume after (she decided). Also called when the session runs again from paused (`alarm_rules`): a pause made a
    lost Stop moot, it never carried it out (review 25, finding 2)."""
    ended = Command.objects.filter(device=device, session=session, kind__in=MUST_BE_CARRIED_OUT, clears_screen=False,
                                   state__in=(CommandState.FAILED, CommandState.EXPIRED))  # fmt: skip
    for command in sorted(ended.select_related("created_by"), key=_stop_first):
        answered = command.kind == CommandKind.PAUSE_INFUSION and _paused_since(session, command)
        if not answered and not _resolved_since(device, session, command) and not _resumed_since(session, command, now):
            _recall(device, session, command, why, now)
            return command
    return None


def _stop_first(command: Command) -> tuple:
    return (command.kind != CommandKind.STOP_INFUSION, -command.created_at.timestamp())


def _paused_since(session: InfusionSession, command: Command) -> bool:
    return session.paused_at is not None and session.paused_at >= command.created_at


def _resumed_since(session: InfusionSession, command: Command, now: datetime) -> bool:
    return resume_asked_since(session, command.created_at, now=now) is not None


def resume_asked_since(session: InfusionSession, since: datetime, *, now: datetime) -> Command | None:
    """The newest Resume of `session` a person asked for after `since`, in any state (one lost or expired still says
    she decided it should run); None if none. Not one stamped still to come at `now` (placed while the server's clock
    ran ahead): when it was asked is unknown, and taken for one after a pause made once the clock was put right, it
    cleared the interruption of a paused infusion the pump then ran by itself (review 50). Unmatched, the alarm
    stays: the safe side."""
    latest = now + timedelta(seconds=AHEAD_TOLERANCE_S)
    resumes = Command.objects.filter(session=session, kind=CommandKind.RESUME_INFUSION, created_at__gt=since,
                                     created_at__lte=latest)  # fmt: skip
    return resumes.select_related("created_by").order_by("-created_at", "-pk").first()


def _resolved_since(device: Device, session: InfusionSession, command: Command) -> bool:
    return Alarm.objects.filter(device=device, session=session, type=NOT_CARRIED_OUT, resolved_by__isnull=False,
                                resolved_at__gte=command.ended_at or command.created_at).exists()  # fmt: skip


def _recall(device: Device, session: InfusionSession, command: Command, why: str, now: datetime) -> None:
    who = command.created_by.get_username() if command.created_by_id else "a user"
    kind = KIND_NAME[command.kind]
    alarm_raise(
        device=device, session=session, type=NOT_CARRIED_OUT, priority=AlarmPriority.HIGH, source=AlarmSource.SERVER,
        now=now, details={"commandId": str(command.command_id), "state": command.state, "recalled": why},
        message=(f"The pump runs infusion {session.infusion_id} again ({why}), but the {kind} asked by {who} was not "
                 f"carried out ({command.state}: {command.error or 'no answer'}): act at the pump"),
    )  # fmt: skip
