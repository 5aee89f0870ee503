"""Review 22, finding 1: a Stop or Pause a nurse asked for, in flight when the pump restarts and then resumes the same
infusion, is shown "not needed" while the pump runs on, with no alarm.

The pump restart ends the session `interrupted` (high `infusion_interrupted`), which supersedes every command of
the session ("not needed (the infusion ended interrupted)"). The pump comes back running that same infusion (a
modern pump keeps its order across a reboot: "a restart's resumed run"), so the session runs again and
`infusion_interrupted` clears. The STOP the nurse asked for, published before the reboot, now counts for nothing:
`evidence._stop_went_out` does not count a superseded STOP as gone out, so no `infusing_after_stop`; the command list
says the STOP was not needed. The screen: "Running", no alarm, "Stop by nurse: not needed". The truth: the pump
infuses what she asked it to stop.
"""

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, Command, InfusionSession
from devices.services.changes import device_lock
from devices.services.commands import command_advance
from devices.services.publication import command_published
from devices.services.requests import infusion_request
from devices.states import AlarmPriority, AlarmState, CommandKind, CommandState, SessionStatus
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db


def high_alarms(device_id: str) -> dict[str, str]:
    active = Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE, priority=AlarmPriority.HIGH)
    return dict(active.values_list("type", "message"))


def published_and_acknowledged(device_id: str, command: Command) -> Command:
    """What the bridge's outbox does: hand it to the broker, then record the broker's PUBACK (`sent`)."""
    now = timezone.now()
    with transaction.atomic():
        device_lock(device_id=device_id)
        command_published(command=Command.objects.get(pk=command.pk), now=now)
    command_advance(device_id=device_id, command_pk=command.pk, to=CommandState.SENT, now=now)
    return Command.objects.get(pk=command.pk)


def asked_while_running(device_id: str, kind: CommandKind, capture) -> Command:
    """A nurse's `kind` for the confirmed infusion the pump runs (boot A), published; the broker acknowledged it."""
    make_device(device_id, has_presence=True)
    nurse = make_user(f"nurse-{device_id.lower()}")
    session = confirmed_order(device_id, drug="Heparin")
    running = {"status": "running", "infusionId": session.infusion_id, "bootId": "boot-A", "seq": 1, "uptime": 600_000}
    ingest([report(device_id, "status", running, 0)], capture)
    command = infusion_request(device_id=device_id, kind=kind, infusion_id=session.infusion_id, user=nurse,
                               reason="wrong bag", idempotency_key=f"key-{device_id}")  # fmt: skip
    command = published_and_acknowledged(device_id, command)
    assert command.state == CommandState.SENT, command.state
    return command


def asked_then_rebooted(device_id: str, kind: CommandKind, capture) -> tuple[InfusionSession, Command]:
    """The same, then the pump reboots before it acts on the command, and comes back running the same infusion."""
    command = asked_while_running(device_id, kind, capture)
    session = command.session
    running = {"status": "running", "infusionId": session.infusion_id, "bootId": "boot-B", "seq": 1, "uptime": 2_000}
    ingest([report(device_id, "status", running, 2)], capture)
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING, f"precondition: the pump runs the infusion again ({session.status})"
    return session, Command.objects.get(pk=command.pk)


def test_a_stop_in_flight_across_a_reboot_is_not_shown_needless_while_the_pump_runs_on(
    django_capture_on_commit_callbacks,
):
    _, stop = asked_then_rebooted("R22_STOP", CommandKind.STOP_INFUSION, django_capture_on_commit_callbacks)
    alarms = high_alarms("R22_STOP")
    shown = f"STOP {stop.state} ({stop.error}); high alarms {sorted(alarms)}"
    assert "infusing_after_stop" in alarms or "command_not_carried_out" in alarms, (
        "the pump was sent STOP, rebooted and runs the same infusion again, yet no alarm says so: " + shown
    )
    assert not (stop.state == CommandState.SUPERSEDED and "ended" in stop.error), (
        "the nurse's STOP is shown 'not needed (the infusion ended ...)' while the infusion runs: " + shown
    )


def test_a_pause_in_flight_across_a_reboot_is_not_shown_needless_while_the_pump_runs_on(
    django_capture_on_commit_callbacks,
):
    _, pause = asked_then_rebooted("R22_PAUSE", CommandKind.PAUSE_INFUSION, django_capture_on_commit_callbacks)
    alarms = high_alarms("R22_PAUSE")
    shown = f"PAUSE {pause.state} ({pause.error}); high alarms {sorted(alarms)}"
    assert alarms, "the pump was sent PAUSE, rebooted and runs on unpaused, yet no high alarm says so: " + shown
    assert not (pause.state == CommandState.SUPERSEDED and "ended" in pause.error), (
        "the nurse's PAUSE is shown 'not needed (the infusion ended ...)' while the infusion runs: " + shown
    )


def test_a_stop_lost_in_a_reboot_after_which_the_pump_is_idle_reads_failed_beside_the_interruption(
    django_capture_on_commit_callbacks,
):
    """The pump comes back idle: her Stop reads "FAILED: act at the pump (the pump restarted before it reported
    carrying it out)", never "not needed", and one alarm (`infusion_interrupted`) sends her to the pump."""
    capture = django_capture_on_commit_callbacks
    stop = asked_while_running("STOP_IDLE", CommandKind.STOP_INFUSION, capture)
    ingest([report("STOP_IDLE", "status", {"status": "idle", "bootId": "boot-B", "seq": 1, "uptime": 2_000}, 2)],
           capture)  # fmt: skip
    stop = Command.objects.get(pk=stop.pk)
    alarms = high_alarms("STOP_IDLE")
    assert (stop.state, stop.error) == (CommandState.FAILED, "the pump restarted before it reported carrying it out"), (
        f"the Stop lost in the reboot reads {stop.state} ({stop.error})"
    )
    assert set(alarms) == {"infusion_interrupted"}, f"one alarm sends the nurse to the pump: {sorted(alarms)}"
