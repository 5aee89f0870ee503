"""Review 26, finding 1: an infusion paused when the pump restarted, whose interruption a person RESOLVED ("Checked
at the pump: condition gone": the pump is back, the infusion paused, nothing delivered), that the pump then runs by
itself, alarms. 7620f68 kept `infusion_interrupted` when a paused infusion came back running, but looked only at
ACTIVE alarms: after a resolve the screen went from "Interrupted" to "Running" with no alarm at all, the pump infusing
what a person paused and nobody resumed, unseen. Also the same pump resuming by itself later: back paused after the
reboot, then running with no one resuming it (review 26's probe)."""

import pytest

from devices.models import Alarm, InfusionSession
from devices.services.alarm_rules import alarm_resolve
from devices.states import AlarmPriority, AlarmResolveReason, AlarmState, SessionStatus
from tests.devices.test_paused_infusion_running_again_by_itself import paused_by
from tests.factories import make_user
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db


def test_a_resolved_interruption_of_a_paused_infusion_still_alarms_when_the_pump_runs_it_by_itself(
    django_capture_on_commit_callbacks,
):
    capture, device_id = django_capture_on_commit_callbacks, "R26_PAUSED_RESOLVED_RUNS"
    session = paused_by(device_id, "r26-paused-resolved", capture)
    ingest([report(device_id, "status", {"status": "online", "bootId": "B", "seq": 1, "uptime": 2_000}, 60)],
           capture)  # fmt: skip
    interrupted = Alarm.objects.get(device__device_id=device_id, type="infusion_interrupted", state=AlarmState.ACTIVE)
    alarm_resolve(alarm_id=interrupted.pk, user=make_user("r26-charge"), reason=AlarmResolveReason.CHECKED_AT_PUMP,
                  alerts=interrupted.alerts)  # fmt: skip
    ingest([report(device_id, "status", {"status": "running", "infusionId": session.infusion_id, "bootId": "B",
                                         "seq": 2, "uptime": 5_000}, 63)], capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING, f"precondition: shown running ({session.status})"
    high = dict(Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE,
                                     priority=AlarmPriority.HIGH).values_list("type", "message"))  # fmt: skip
    assert high, (
        f"the nurse paused {session.infusion_id}; after the reboot a colleague resolved its interruption (paused, "
        f"nothing delivered); the pump now runs it by itself and no alarm is active: {session.status_reason!r}"
    )
    assert "without anyone resuming it" in high.get("infusion_interrupted", ""), f"says what happened: {high}"


def test_a_paused_infusion_back_paused_after_a_reboot_then_run_by_the_pump_alone_alarms(
    django_capture_on_commit_callbacks,
):
    """Back PAUSED after the reboot (the interruption cleared: as it was), then running 2 s later, no MANUAL_RESUME
    from the pump and no Resume asked: the pump resuming by itself after a power loss, only later (review 26's
    probe), alarmed as when it comes back running directly."""
    capture, device_id = django_capture_on_commit_callbacks, "R26_PAUSED_BACK_PAUSED_RUNS"
    session = paused_by(device_id, "r26-paused-paused", capture)
    named = {"infusionId": session.infusion_id}
    ingest([report(device_id, "status", {"status": "paused", **named, "bootId": "B", "seq": 1, "uptime": 2_000}, 60)],
           capture)  # fmt: skip
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 2, "uptime": 4_000}, 62)],
           capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    assert session.status == SessionStatus.RUNNING, f"precondition: shown running ({session.status})"
    high = dict(Alarm.objects.filter(device__device_id=device_id, state=AlarmState.ACTIVE,
                                     priority=AlarmPriority.HIGH).values_list("type", "message"))  # fmt: skip
    assert high, "paused by a nurse, rebooted, back paused, then running with no one resuming it: no alarm"
    assert "paused remotely by r26-paused-paused" in high.get("infusion_interrupted", ""), f"says who paused: {high}"


def test_a_paused_infusion_run_by_the_pump_alone_is_told_once_not_at_every_later_resume(
    django_capture_on_commit_callbacks,
):
    """Told once: after its "runs again" alarm was resolved, a later pause and run at the pump (both as statuses) is
    the pump's ordinary use, not the restart's news again."""
    capture, device_id = django_capture_on_commit_callbacks, "R26_PAUSED_TOLD_ONCE"
    session = paused_by(device_id, "r26-told-once", capture)
    named = {"infusionId": session.infusion_id}
    ingest([report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 1, "uptime": 2_000}, 60)],
           capture)  # fmt: skip
    told = Alarm.objects.get(device__device_id=device_id, type="infusion_interrupted", state=AlarmState.ACTIVE)
    alarm_resolve(alarm_id=told.pk, user=make_user("r26-charge-once"), reason=AlarmResolveReason.CHECKED_AT_PUMP,
                  alerts=told.alerts)  # fmt: skip
    ingest([report(device_id, "status", {"status": "paused", **named, "bootId": "B", "seq": 2, "uptime": 30_000}, 88),
            report(device_id, "status", {"status": "running", **named, "bootId": "B", "seq": 3, "uptime": 40_000},
                   98)], capture)  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "precondition: runs"
    active = list(Alarm.objects.filter(device__device_id=device_id, type="infusion_interrupted",
                                       state=AlarmState.ACTIVE).values_list("message", flat=True))  # fmt: skip
    assert not active, f"the pump's run by itself was told and resolved; a later resume raised it again: {active}"
