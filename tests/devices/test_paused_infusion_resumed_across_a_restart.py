"""Review 26, finding 2: an infusion paused when the pump restarted, that a person resumed, is not said to run
"without anyone resuming it". The nurse pressed Resume on the monitor; the pump got it (PUBACK) and rebooted before
reporting running, and comes back RUNNING, as she asked (her Resume, lost in the restart, ended `failed`); or a
person at the pump resumed it, which the pump reports (`MANUAL_RESUME`) before running. Both raised HIGH
`infusion_interrupted` "The pump runs it again without anyone resuming it": untrue, a false alarm. Evidence of a
resume (a Resume of the session asked after its pause, in any state, as the lost-Stop recall honours; a MANUAL_RESUME
since the restart) now answers the interruption, as a restart's resumed run does."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, Command, InfusionSession
from devices.services.requests import infusion_request
from devices.states import AlarmState, CommandKind, SessionStatus
from tests.devices.test_command_across_a_restart import published_and_acknowledged
from tests.devices.test_paused_infusion_running_again_by_itself import paused_by
from tests.factories import make_user
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db


def test_a_paused_infusion_the_nurse_resumed_that_comes_back_running_is_not_said_to_run_without_anyone_resuming_it(
    django_capture_on_commit_callbacks,
):
    capture, device_id = django_capture_on_commit_callbacks, "R26_RESUMED_BACK_RUNNING"
    session = paused_by(device_id, "r26-nurse", capture)
    nurse = make_user("r26-nurse-2")
    resume = infusion_request(device_id=device_id, kind=CommandKind.RESUME_INFUSION, infusion_id=session.infusion_id,
                              user=nurse, reason="", idempotency_key=f"r-{device_id}")  # fmt: skip
    # she can press Resume only once it shows paused: the pause was received at +1 s, so her Resume is dated +30 s
    Command.objects.filter(pk=resume.pk).update(created_at=timezone.now() + timedelta(seconds=30))
    published_and_acknowledged(device_id, resume)
    named = {"infusionId": session.infusion_id}
    # the pump reboots before its running report and comes back RUNNING it, as she asked
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 1, "uptime": 2_000}, 60)],
           capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "precondition: runs"
    resume = Command.objects.get(pk=resume.pk)
    alarms = dict(Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE)
                  .values_list("type", "message"))  # fmt: skip
    message = alarms.get("infusion_interrupted", "")
    assert "without anyone resuming it" not in message, (
        f"r26-nurse-2 pressed Resume (command {resume.state}: {resume.error!r}); the pump runs it again and the "
        f"monitor says HIGH: {message!r}"
    )
    assert "infusion_interrupted" not in alarms, f"it runs as she asked: the interruption is answered: {message!r}"


def test_a_paused_infusion_resumed_at_the_pump_after_a_reboot_is_not_said_to_run_without_anyone_resuming_it(
    django_capture_on_commit_callbacks,
):
    """The pump comes back online (the paused infusion interrupted); the nurse at the pump presses resume, and the
    pump says so (`MANUAL_RESUME`) before its running report: a person resumed it."""
    capture, device_id = django_capture_on_commit_callbacks, "R26_MANUAL_RESUME"
    session = paused_by(device_id, "r26-nurse-m", capture)
    named = {"infusionId": session.infusion_id}
    ingest([report(device_id, "status", {"status": "online", "bootId": "B", "seq": 1, "uptime": 2_000}, 60)],
           capture)  # fmt: skip
    ingest([report(device_id, "actions", {"action": "MANUAL_RESUME", **named, "bootId": "B", "seq": 2}, 90)],
           capture)  # fmt: skip
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 3, "uptime": 31_000},
                   91)], capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "precondition: runs"
    alarms = dict(Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE)
                  .values_list("type", "message"))  # fmt: skip
    message = alarms.get("infusion_interrupted", "")
    assert "without anyone resuming it" not in message, (
        f"the pump reported MANUAL_RESUME (a person at the pump) before running; the monitor says HIGH: {message!r}"
    )
    assert "infusion_interrupted" not in alarms, f"resumed at the pump: the interruption is answered: {message!r}"


def test_a_paused_infusion_back_paused_after_a_reboot_that_the_nurse_resumes_raises_nothing(
    django_capture_on_commit_callbacks,
):
    """Beside the pump resuming it alone (`test_paused_infusion_runs_again_after_its_interruption_was_resolved.py`):
    back PAUSED after the reboot, then the nurse's Resume on the monitor, carried out: what she asked, no alarm."""
    capture, device_id = django_capture_on_commit_callbacks, "R26_BACK_PAUSED_RESUMED"
    session = paused_by(device_id, "r26-nurse-p", capture)
    named = {"infusionId": session.infusion_id}
    ingest([report(device_id, "status", {"status": "paused", **named, "bootId": "B", "seq": 1, "uptime": 2_000}, 60)],
           capture)  # fmt: skip
    resume = infusion_request(device_id=device_id, kind=CommandKind.RESUME_INFUSION, infusion_id=session.infusion_id,
                              user=make_user("r26-nurse-p2"), reason="", idempotency_key=f"r-{device_id}")  # fmt: skip
    Command.objects.filter(pk=resume.pk).update(created_at=timezone.now() + timedelta(seconds=70))  # seen paused
    published_and_acknowledged(device_id, resume)
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 2, "uptime": 13_000},
                   71)], capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING, f"precondition: runs ({session.status})"
    alarms = dict(Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE)
                  .values_list("type", "message"))  # fmt: skip
    assert "infusion_interrupted" not in alarms, (
        f"r26-nurse-p2 resumed it ({session.status_reason!r}), yet: {alarms['infusion_interrupted']!r}"
    )
