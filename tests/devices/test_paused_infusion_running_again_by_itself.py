"""Review 25, finding 1: an infusion a nurse PAUSED that the pump, after a reboot, reports RUNNING (a pump that resumes
its infusion after a power loss; nobody pressed resume) was shown running with no alarm at all.

The restart ends the paused session `interrupted` with `infusion_interrupted` (details.was = paused). The pump's
running report then made it run again (`infusion_running_late(to=RUNNING)`), and `_interrupted_answered` cleared
`infusion_interrupted` for any run ("the pump reports it running"); no `confirmed_late` either (it resumed after a
restart and cost no order). The reverse case was made to stay alarmed (an infusion that ran and came back paused:
cbd223f); this one, which infuses what a person paused, was not: the screen moved from "Paused by nurse" to
"Running" with nothing to acknowledge, and nobody decided to resume it. Now its `infusion_interrupted` stays, says
who paused it and that it runs again without anyone resuming it, and alerts again if it had been acknowledged."""

import pytest

from devices.models import Alarm, Command, InfusionSession
from devices.services.alarms import alarm_acknowledge
from devices.services.requests import infusion_request
from devices.states import AlarmPriority, AlarmState, CommandKind, CommandState, SessionStatus
from tests.devices.test_command_across_a_restart import published_and_acknowledged
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order, ingest, report, running_under_boot_a

pytestmark = pytest.mark.django_db


def paused_by(device_id: str, username: str, capture) -> InfusionSession:
    """A running order the nurse `username` paused remotely (her Pause done): the session paused, under bootId A."""
    nurse = make_user(username)
    session = running_under_boot_a(device_id, capture)
    named = {"infusionId": session.infusion_id}
    pause = infusion_request(device_id=device_id, kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                             user=nurse, reason="blood draw", idempotency_key=f"k-{device_id}")  # fmt: skip
    published_and_acknowledged(device_id, pause)
    ingest([report(device_id, "status", {"status": "paused", **named, "bootId": "A", "seq": 2, "uptime": 601_000},
                   1)], capture)  # fmt: skip
    assert Command.objects.get(pk=pause.pk).state == CommandState.DONE, "precondition: her Pause is done"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PAUSED, "precondition: paused"
    return session


def high_alarms(device_id: str) -> dict[str, Alarm]:
    rows = Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE, priority=AlarmPriority.HIGH)
    return {alarm.type: alarm for alarm in rows}


def test_an_infusion_paused_by_a_nurse_that_comes_back_running_after_a_reboot_stays_alarmed(
    django_capture_on_commit_callbacks,
):
    capture, device_id = django_capture_on_commit_callbacks, "R25_PAUSED_BACK_RUNNING"
    session = paused_by(device_id, "r25-paused-back-running", capture)
    named = {"infusionId": session.infusion_id}
    # the pump reboots and comes back RUNNING the infusion she paused
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 1, "uptime": 2_000}, 60)],
           capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING, f"precondition: shown running ({session.status})"
    high = high_alarms(device_id)
    assert high, (
        f"the nurse paused infusion {session.infusion_id}; the pump rebooted and runs it again without anyone "
        f"resuming it, yet no alarm is active (session {session.status}: {session.status_reason!r})"
    )
    message = high["infusion_interrupted"].message
    assert "paused remotely by r25-paused-back-running" in message and "without anyone resuming it" in message, (
        f"the alarm must tell the nurse that the infusion she paused runs again by itself: {message!r}"
    )


def test_an_acknowledged_interruption_of_a_paused_infusion_alerts_again_when_the_pump_runs_it(
    django_capture_on_commit_callbacks,
):
    """The pump comes back saying only it is online: the paused infusion was interrupted, and the nurse acknowledges
    that (it delivered nothing). When the pump then runs it by itself, that is news she has not seen."""
    capture, device_id = django_capture_on_commit_callbacks, "R25_PAUSED_ACK_RUNNING"
    session = paused_by(device_id, "r25-paused-ack", capture)
    ingest([report(device_id, "status", {"status": "online", "bootId": "B", "seq": 1, "uptime": 2_000}, 60)],
           capture)  # fmt: skip
    interrupted = high_alarms(device_id)["infusion_interrupted"]
    alarm_acknowledge(alarm_id=interrupted.pk, user=make_user("r25-charge-nurse"), alerts=interrupted.alerts)
    ingest([report(device_id, "status", {"status": "running", "infusionId": session.infusion_id, "bootId": "B",
                                         "seq": 2, "uptime": 5_000}, 63)], capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "precondition: shown running"
    alarm = high_alarms(device_id).get("infusion_interrupted")
    assert alarm is not None and alarm.acknowledged_at is None and alarm.alerts > interrupted.alerts, (
        f"the pump runs the paused infusion {session.infusion_id} by itself, yet the interruption stays acknowledged "
        f"and silent: {alarm and (alarm.acknowledged_at, alarm.alerts, alarm.message)}"
    )


def test_an_infusion_running_when_the_pump_rebooted_that_runs_again_clears_its_interruption(
    django_capture_on_commit_callbacks,
):
    """The unchanged case beside it: running before the reboot, running after it (a restart's resumed run)."""
    capture, device_id = django_capture_on_commit_callbacks, "R25_RUNNING_BACK_RUNNING"
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, drug="Heparin")
    named = {"infusionId": session.infusion_id}
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "A", "seq": 1, "uptime": 600_000},
                   0)], capture)  # fmt: skip
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 1, "uptime": 2_000}, 60)],
           capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "precondition: shown running"
    assert not high_alarms(device_id), f"a resumed run is as it was: {list(high_alarms(device_id))}"
