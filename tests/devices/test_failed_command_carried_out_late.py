"""A Pause or Stop marked FAILED that the pump then carries out stays "FAILED: act at the pump", and the
move it caused is recorded as done by a person at the pump.

The outbox fails a PAUSE or STOP whose PUBACK did not come within COMMAND_ACK_TIMEOUT_S and "withdraws it from paho"
(`outbox._fail_overdue`: `link.forget(mid)`). But the PUBLISH was written to the broker already (a stalled or
overloaded broker, as `tests/browser/test_monitor_commands.py` makes with SIGSTOP): once the broker goes on, it
delivers it at QoS 1 and the pump pauses or stops. Its report then finds no command under way (`went_out` counts
only sent/delivered/queued-with-published_at), so the session moves "paused at the pump" with no user, and the
command stays FAILED with its high `command_not_carried_out` cleared by the move. The monitor reads
"Pause by nurse: FAILED: act at the pump (the broker did not acknowledge the command in time)" beside
"Paused — paused at the pump", and the audit trail names nobody for a pause a nurse made remotely; for a STOP the
legal record says someone stopped the infusion at the bedside. A command's fate is not shown truthfully.

Review 22, finding 4.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Command, DeviceEvent, InfusionSession
from devices.services.requests import infusion_request
from devices.states import CommandKind, CommandState, SessionStatus
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order, failed_unacknowledged, ingest, report

pytestmark = pytest.mark.django_db

REPORTED = {CommandKind.PAUSE_INFUSION: "paused", CommandKind.STOP_INFUSION: "stopped"}
MOVED_TO = {CommandKind.PAUSE_INFUSION: SessionStatus.PAUSED, CommandKind.STOP_INFUSION: SessionStatus.STOPPED}


@pytest.mark.parametrize("kind", [CommandKind.PAUSE_INFUSION, CommandKind.STOP_INFUSION], ids=["pause", "stop"])
def test_a_command_failed_unacknowledged_that_the_pump_carried_out_is_not_left_failed(
    kind, django_capture_on_commit_callbacks
):
    device_id = f"R22_LATE_{REPORTED[kind].upper()}"
    make_device(device_id, has_presence=True)
    nurse = make_user(f"nurse-{REPORTED[kind]}")
    session = confirmed_order(device_id, drug="Heparin")
    command = infusion_request(device_id=device_id, kind=kind, infusion_id=session.infusion_id, user=nurse,
                               reason="line check", idempotency_key=f"k-{device_id}")  # fmt: skip
    command = failed_unacknowledged(device_id, command)
    assert command.state == CommandState.FAILED, "precondition"
    # the broker goes on and delivers the PUBLISH it had taken: the pump does what the nurse asked, and says so
    ingest([report(device_id, "status", {"status": REPORTED[kind], "infusionId": session.infusion_id}, 3)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    command = Command.objects.get(pk=command.pk)
    assert session.status == MOVED_TO[kind], f"precondition: the pump's report moves the session ({session.status})"
    move = DeviceEvent.objects.filter(session=session, kind=f"session.{session.status}").order_by("-pk").first()
    shown = (
        f"command {command.state} ({command.error}); session {session.status} '{session.status_reason}'; "
        f"audited user {getattr(move, 'user', None)}"
    )
    assert command.state != CommandState.FAILED, (
        f"the pump carried out the nurse's {kind} (it reports {REPORTED[kind]}), yet the command is still shown "
        f"'FAILED: act at the pump': {shown}"
    )
    assert "remotely by" in (session.status_reason or ""), (
        f"the pump {REPORTED[kind]} on the nurse's command, yet the record says it was done at the pump: {shown}"
    )


def test_a_pause_at_the_pump_after_the_failed_commands_deadline_is_not_credited_to_it(
    django_capture_on_commit_callbacks,
):
    """Past its deadline (and the allowance for the report) the pump must ignore the command: a pause then is a
    person's at the pump, told "act at the pump" by the failure, and the command stays failed."""
    device_id = "R22_LATE_PAST"
    make_device(device_id, has_presence=True)
    nurse = make_user("nurse-past")
    session = confirmed_order(device_id, drug="Heparin")
    command = infusion_request(device_id=device_id, kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                               user=nurse, reason="line check", idempotency_key="k-past")  # fmt: skip
    command = failed_unacknowledged(device_id, command)
    Command.objects.filter(pk=command.pk).update(expires_at=timezone.now() - timedelta(seconds=60))
    ingest([report(device_id, "status", {"status": "paused", "infusionId": session.infusion_id}, 3)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    command = Command.objects.get(pk=command.pk)
    assert session.status == SessionStatus.PAUSED, (
        f"precondition: the pump's report moves the session ({session.status})"
    )
    assert command.state == CommandState.FAILED, (
        f"a pause reported a minute after the PAUSE's deadline was credited to it ({command.state}, {command.error})"
    )
    assert session.status_reason == "paused at the pump", f"the move reads {session.status_reason!r}"
