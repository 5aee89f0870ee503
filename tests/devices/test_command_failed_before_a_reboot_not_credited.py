"""Review 25: review 24 finding 5 stopped crediting a Pause the RESTART lost (error "the pump restarted before it
reported carrying it out") with the pump's own pause after it came back running (an air bubble). The same Pause
failed a moment BEFORE the reboot (its PUBACK late: "the broker did not acknowledge the command in time") is still
credited: `failed_within_deadline` excludes only the restart's error text. The pump rebooted, came back running the
infusion (the Pause recalled as `command_not_carried_out`), then paused itself for an air bubble within the Pause's
deadline: the record reads "paused remotely by <nurse> (its command had been reported failed; the pump acted on it
within its deadline)" and her Pause turns `done`, for a pause the pump made on its own."""

import pytest
from django.utils import timezone

from devices.models import Command, InfusionSession
from devices.services.requests import infusion_request
from devices.states import CommandKind, SessionStatus
from tests.factories import make_user
from tests.support.ingest import failed_unacknowledged, ingest, report, running_under_boot_a

pytestmark = pytest.mark.django_db


def test_a_pause_failed_before_a_reboot_is_not_credited_with_the_pumps_own_pause_after_it(
    django_capture_on_commit_callbacks,
):
    capture, device_id = django_capture_on_commit_callbacks, "R25_FAILED_THEN_REBOOT"
    nurse = make_user("r25-failed-reboot")
    session = running_under_boot_a(device_id, capture)
    named = {"infusionId": session.infusion_id}
    pause = infusion_request(device_id=device_id, kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                             user=nurse, reason="line check", idempotency_key="k-r25-failed-reboot")  # fmt: skip
    now = timezone.now()
    failed_unacknowledged(device_id, pause, now=now)
    # the pump reboots and comes back running the infusion: the Pause was not carried out
    boot = {**named, "bootId": "B"}
    ingest([report(device_id, "status", {"status": "running", **boot, "seq": 1, "uptime": 2_000}, 2)], capture)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.RUNNING, "precondition: runs again"
    # then it pauses itself for an air bubble (the original firmware's sequence: the alarm, then status paused)
    ingest([report(device_id, "error", {"type": "bubble_detected", "severity": "high", "seq": 2, **boot,
                   "message": "Air bubble detected in IV line - infusion automatically paused for patient safety"}, 4),
            report(device_id, "status", {"status": "paused", "seq": 3, "uptime": 6_000, **boot}, 4.01)],
           capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    pause = Command.objects.get(pk=pause.pk)
    assert session.status == SessionStatus.PAUSED, f"precondition: the pump paused ({session.status})"
    assert "remotely by" not in session.status_reason, (
        f"the pump rebooted, came back running, then paused itself for an air bubble; yet the record reads "
        f"{session.status_reason!r} and the nurse's Pause is {pause.state} ({pause.error})"
    )
