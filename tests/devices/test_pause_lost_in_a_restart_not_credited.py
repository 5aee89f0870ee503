"""A Pause the server itself declared lost in a pump restart (`restart_commands`: failed "the pump restarted
before it reported carrying it out", then recalled as `command_not_carried_out` when the pump came back RUNNING that
infusion) is credited after all when the pump next pauses on its own within the Pause's deadline: the session reads
"paused remotely by <nurse> (its command had been reported failed; the pump acted on it within its deadline)" and the
command turns `done`.

Here the pump (the original firmware's own sequence, tests/realtime/simulator/legacy-firmware.json) pauses itself for
an air bubble: `bubble_detected` ("infusion automatically paused for patient safety"), then status `paused`, no
`actions` message. `commands.command_answered` falls back to `failed_within_deadline`, which takes ANY failed command
handed to the broker within expiresAt + 5 s, including one the restart lost and whose loss the pump's own running
report after the reboot just proved: the record names the nurse's remote Pause as what paused the pump, and the
command list shows her lost Pause "done"."""

import pytest

from devices.models import Alarm, Command, InfusionSession
from devices.states import AlarmState, CommandKind, CommandState, SessionStatus
from tests.devices.test_command_across_a_restart import asked_then_rebooted
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db


def test_a_pause_lost_in_a_restart_is_not_credited_with_the_pumps_own_pause_for_a_bubble(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    session, pause = asked_then_rebooted("LOST_PAUSE_BUBBLE", CommandKind.PAUSE_INFUSION, capture)
    assert session.status == SessionStatus.RUNNING, f"precondition: it runs again ({session.status})"
    assert pause.state == CommandState.FAILED, f"precondition: the Pause was lost in the restart ({pause.state})"
    assert Alarm.objects.filter(
        device__device_id="LOST_PAUSE_BUBBLE", type="command_not_carried_out", state=AlarmState.ACTIVE
    ).exists(), "precondition: the lost Pause is recalled"
    boot = {"bootId": "boot-B", "infusionId": session.infusion_id}
    ingest([report("LOST_PAUSE_BUBBLE", "error", {"type": "bubble_detected", "severity": "high", "seq": 2, **boot,
                   "message": "Air bubble detected in IV line - infusion automatically paused for patient safety"}, 4),
            report("LOST_PAUSE_BUBBLE", "status", {"status": "paused", "seq": 3, "uptime": 6_000, **boot}, 4.01)],
           capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    pause = Command.objects.get(pk=pause.pk)
    assert session.status == SessionStatus.PAUSED, f"precondition: the pump paused ({session.status})"
    assert "remotely by" not in session.status_reason, (
        f"the pump paused itself for an air bubble after coming back running from the restart that lost the nurse's "
        f"Pause, yet the record reads {session.status_reason!r} and her Pause is {pause.state} ({pause.error})"
    )
