"""Review 25: a Stop a nurse sends WHILE the pump is rebooting (after its last message, before it is back) is not
lost in the restart: the broker holds it (QoS 1) and hands it to the pump once it is back. But the restart's report
ends it failed "the pump restarted before it reported carrying it out" (`commands_lost_in_restart`: anything under
way), and when the pump then stops as she asked, `failed_within_deadline` excludes that error (review 24 finding 5):
the record reads "stopped at the pump" with nobody named, her Stop stays "FAILED: act at the pump", though the pump
carried it out within its deadline. The reboot's own report tells when it booted (its uptime): the Stop was
published 1.5 s after that boot, to the new run."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Command, InfusionSession
from devices.services.changes import device_lock
from devices.services.commands import command_advance
from devices.services.publication import command_published
from devices.services.requests import infusion_request
from devices.states import CommandKind, CommandState, SessionStatus
from tests.factories import make_user
from tests.support.ingest import ingest, report, running_under_boot_a

pytestmark = pytest.mark.django_db


def test_a_stop_sent_while_the_pump_rebooted_and_carried_out_after_it_is_not_failed(
    django_capture_on_commit_callbacks,
):
    capture, device_id = django_capture_on_commit_callbacks, "R25_STOP_DURING_BOOT"
    nurse = make_user("r25-stop-during-boot")
    start = timezone.now()
    session = running_under_boot_a(device_id, capture, at=start)
    named = {"infusionId": session.infusion_id}
    # the pump goes quiet (rebooting); 8 s later the nurse presses Stop: the broker takes it (PUBACK)
    stop = infusion_request(device_id=device_id, kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                            user=nurse, reason="wrong patient", idempotency_key="k-r25-sdb")  # fmt: skip
    published = start + timedelta(seconds=8)
    with transaction.atomic():
        device_lock(device_id=device_id)
        command_published(command=Command.objects.get(pk=stop.pk), now=published)
    command_advance(device_id=device_id, command_pk=stop.pk, to=CommandState.SENT, now=published)
    # back at 10 s, up for 3.5 s (booted at 6.5 s, before the Stop went out), running its infusion; then it stops
    boot = {**named, "bootId": "B"}
    ingest([report(device_id, "status", {"status": "running", **boot, "seq": 1, "uptime": 3_500},
                   at=start + timedelta(seconds=10))], capture)  # fmt: skip
    ingest([report(device_id, "status", {"status": "stopped", **boot, "seq": 2, "uptime": 4_000},
                   at=start + timedelta(seconds=10.5))], capture)  # fmt: skip
    session = InfusionSession.objects.get(pk=session.pk)
    stop = Command.objects.get(pk=stop.pk)
    assert session.status == SessionStatus.STOPPED, f"precondition: the pump stopped ({session.status})"
    assert stop.state == CommandState.DONE and "remotely by" in session.status_reason, (
        f"the Stop went out after the pump had booted again and the pump stopped within its deadline, yet the Stop "
        f"reads {stop.state} ({stop.error}) and the record {session.status_reason!r}"
    )
