"""Review 25, finding 2: a Stop lost in a pump's restart was recalled (`command_not_carried_out`) only when the pump
came back RUNNING that infusion at once (`infusion_running_late(to=RUNNING)`). A pump that comes back holding it PAUSED
(a pump that pauses after a power loss) and is then resumed (at its own screen, or on its own) runs the very infusion
the nurse asked it to stop: the session went paused -> running by the ordinary road, `commands_lost_recall` was never
called, and nothing said her Stop was not carried out. The same without a reboot: a Stop failed by its deadline, the
pump pauses (the pause makes it moot: its alarm clears), then runs again. Now a lost Stop is recalled whenever its
infusion runs again from paused, unless a person asked to resume it since, or resolved its alarm."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, Command, InfusionSession
from devices.services.command_deadlines import commands_end_overdue
from devices.services.requests import infusion_request
from devices.states import AlarmState, CommandKind, CommandState, SessionStatus
from tests.devices.test_command_across_a_restart import published_and_acknowledged
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order, ingest, report, running_under_boot_a

pytestmark = pytest.mark.django_db


def active(device_id: str) -> dict[str, str]:
    rows = Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE)
    return dict(rows.values_list("type", "message"))


@pytest.mark.parametrize("resumed_by", ["status", "action"])
def test_a_stop_lost_in_a_reboot_is_recalled_when_the_infusion_held_paused_runs_again(
    django_capture_on_commit_callbacks, resumed_by
):
    capture, device_id = django_capture_on_commit_callbacks, f"R25_STOP_PAUSED_{resumed_by.upper()}"
    nurse = make_user(f"nurse-{device_id.lower()}")
    session = running_under_boot_a(device_id, capture)
    named = {"infusionId": session.infusion_id}
    stop = infusion_request(device_id=device_id, kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                            user=nurse, reason="wrong patient", idempotency_key=f"k-{device_id}")  # fmt: skip
    published_and_acknowledged(device_id, stop)
    # the pump reboots before acting on the Stop and comes back holding the infusion paused
    ingest([report(device_id, "status", {"status": "paused", **named, "bootId": "B", "seq": 1, "uptime": 2_000}, 2)],
           capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PAUSED, "precondition: held paused"
    assert Command.objects.get(pk=stop.pk).state == CommandState.FAILED, "precondition: the Stop was lost"
    # then it runs it again (someone pressed resume at the pump, or the pump resumed on its own)
    if resumed_by == "action":
        ingest([report(device_id, "actions", {"action": "MANUAL_RESUME", **named, "bootId": "B", "seq": 2}, 30)],
               capture)  # fmt: skip
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 3, "uptime": 31_000},
                   31)], capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING, f"precondition: it runs ({session.status})"
    alarms = active(device_id)
    assert "command_not_carried_out" in alarms or "infusing_after_stop" in alarms, (
        f"the nurse's Stop was lost in the reboot and the pump runs infusion {session.infusion_id} again, yet no alarm "
        f"says her Stop was not carried out: active alarms {alarms}; Stop {Command.objects.get(pk=stop.pk).state}"
    )


def stop_failed_by_its_deadline(device_id: str) -> tuple[InfusionSession, Command, dict]:
    """A running order (bootId A) whose Stop, asked by a nurse, went out and the pump did not act on by its deadline."""
    make_device(device_id, has_presence=True)
    nurse = make_user(f"nurse-{device_id.lower()}")
    session = confirmed_order(device_id, drug="Heparin")
    stop = infusion_request(device_id=device_id, kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                            user=nurse, reason="wrong patient", idempotency_key=f"k-{device_id}")  # fmt: skip
    published_and_acknowledged(device_id, stop)
    commands_end_overdue(now=Command.objects.get(pk=stop.pk).expires_at + timedelta(seconds=1))
    stop = Command.objects.get(pk=stop.pk)
    assert stop.state == CommandState.FAILED, f"precondition: the Stop failed by its deadline ({stop.state})"
    assert "command_not_carried_out" in active(device_id), "precondition: her failed Stop is alarmed"
    return session, stop, {"infusionId": session.infusion_id, "bootId": "A"}


def at(stop: Command, seconds: float) -> dict:
    return {"at": stop.expires_at + timedelta(seconds=seconds)}


def test_a_stop_failed_without_a_reboot_is_recalled_when_the_pump_paused_then_runs_again(
    django_capture_on_commit_callbacks,
):
    capture, device_id = django_capture_on_commit_callbacks, "R25_STOP_FAILED_PAUSED"
    session, stop, named = stop_failed_by_its_deadline(device_id)
    ingest([report(device_id, "status", {"status": "paused", **named, "seq": 1, "uptime": 600_000}, **at(stop, 10))],
           capture)  # fmt: skip
    assert "command_not_carried_out" not in active(device_id), "precondition: the pause makes her Stop moot"
    ingest([report(device_id, "status", {"status": "running", **named, "seq": 2, "uptime": 620_000}, **at(stop, 30))],
           capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "precondition: it runs"
    message = active(device_id).get("command_not_carried_out", "")
    assert "the Stop asked by nurse-r25_stop_failed_paused was not carried out" in message, (
        f"her Stop failed, the pump paused then runs infusion {session.infusion_id} again, yet nothing says her Stop "
        f"was not carried out: active alarms {active(device_id)}"
    )


def test_a_failed_stop_is_not_recalled_when_a_nurse_resumed_the_infusion_since(django_capture_on_commit_callbacks):
    """She asked to stop, it failed, the pump paused; then a nurse asked to resume it: she decided it runs."""
    capture, device_id = django_capture_on_commit_callbacks, "R25_STOP_FAILED_RESUMED"
    session, stop, named = stop_failed_by_its_deadline(device_id)
    ingest([report(device_id, "status", {"status": "paused", **named, "seq": 1, "uptime": 600_000}, **at(stop, 10))],
           capture)  # fmt: skip
    resume = infusion_request(device_id=device_id, kind=CommandKind.RESUME_INFUSION, infusion_id=session.infusion_id,
                              user=make_user("r25-resumer"), reason="", idempotency_key=f"k-{device_id}-r")  # fmt: skip
    published_and_acknowledged(device_id, resume)
    ingest([report(device_id, "status", {"status": "running", **named, "seq": 2, "uptime": 620_000},
                   at=timezone.now() + timedelta(seconds=1))], capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING and "remotely by r25-resumer" in session.status_reason, (
        f"precondition: resumed on her Resume ({session.status}: {session.status_reason})"
    )
    assert "command_not_carried_out" not in active(device_id), (
        f"a nurse resumed the infusion after the failed Stop, yet it is recalled: {active(device_id)}"
    )


def test_a_failed_pause_is_not_recalled_when_the_pump_paused_then_runs_again(django_capture_on_commit_callbacks):
    """A Pause the pump did not carry out by its deadline is answered by the pump's pause after it (at its screen)."""
    capture, device_id = django_capture_on_commit_callbacks, "R25_PAUSE_FAILED_PAUSED"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, drug="Heparin")
    named = {"infusionId": session.infusion_id, "bootId": "A"}
    nurse = make_user("r25-pauser")
    pause = infusion_request(device_id=device_id, kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                             user=nurse, reason="line check", idempotency_key=f"k-{device_id}")  # fmt: skip
    published_and_acknowledged(device_id, pause)
    commands_end_overdue(now=Command.objects.get(pk=pause.pk).expires_at + timedelta(seconds=1))
    pause = Command.objects.get(pk=pause.pk)
    assert pause.state == CommandState.FAILED, "precondition: her Pause failed by its deadline"
    ingest([report(device_id, "status", {"status": "paused", **named, "seq": 1, "uptime": 600_000}, **at(pause, 10)),
            report(device_id, "status", {"status": "running", **named, "seq": 2, "uptime": 620_000}, **at(pause, 30))],
           capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "precondition: it runs"
    assert "command_not_carried_out" not in active(device_id), (
        f"the pump paused after her failed Pause (answered), yet it is recalled when it runs again: {active(device_id)}"
    )
