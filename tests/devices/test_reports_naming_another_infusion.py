"""A pump's report names the infusion it is about: it acts on that infusion, never on the one that happens to be on
the pump now (contract: evidence wins; a replayed or redelivered message must never be attached to a newer session).

Finding 3 of the review: a late copy (QoS 1 redelivery without `seq`, or an older retained copy handed back by a
broker restarted from old persistence) of the previous infusion's `completion`, `status: completed/stopped` or
`MANUAL_STOP` ended the Heparin order running now, or set the pump `idle` beside a live rate; a completion that
arrived before its confirmation was dropped and the confirmation then started a ghost infusion.
"""

import pytest
from django.db import transaction

from devices.models import Device, DeviceEvent, InfusionSession
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.sessions import infusion_start
from devices.states import PumpState, SessionStatus
from tests.factories import make_device, make_order
from tests.support.ingest import ingest
from tests.support.ingest import report as message

pytestmark = pytest.mark.django_db


def confirmed(device_id: str, session: InfusionSession) -> None:
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id=device_id), infusion_id=session.infusion_id, confirmed=True,
                         parameters=None, confirmation={"confirmed": True})  # fmt: skip


def heparin_after_a_completed_infusion(device_id: str, capture) -> tuple[InfusionSession, InfusionSession]:
    """The first order completed (its completion applied); the Heparin order runs now."""
    make_device(device_id)
    first = infusion_start(device_id=device_id, order=make_order())
    confirmed(device_id, first)
    ingest([message(device_id, "completion", {"completed": True, "infusionId": first.infusion_id})], capture)
    second = infusion_start(device_id=device_id, order=make_order(drug="Heparin"))
    confirmed(device_id, second)
    return first, second


def test_a_late_copy_of_the_previous_completion_leaves_the_running_order_and_pump_running(
    django_capture_on_commit_callbacks,
):
    first, second = heparin_after_a_completed_infusion("NAMED_C", django_capture_on_commit_callbacks)
    running = {"status": "running", "infusionId": second.infusion_id, "flowRate": 2.0}
    ingest([message("NAMED_C", "progress", {**running, "deliveredVolumeMl": 1.0}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    ingest([message("NAMED_C", "completion", {"completed": True, "infusionId": first.infusion_id}, 2),
            message("NAMED_C", "progress", {**running, "deliveredVolumeMl": 1.1}, 3)],
           django_capture_on_commit_callbacks)  # fmt: skip
    device = Device.objects.get(device_id="NAMED_C")
    second.refresh_from_db()
    assert (second.status, device.pump_state) == (SessionStatus.RUNNING, PumpState.RUNNING), (
        f"a copy of the finished infusion's completion left the running Heparin order {second.status} on a pump "
        f"shown as '{device.pump_state}' (overview: 'idle' beside a live rate)"
    )
    assert DeviceEvent.objects.filter(device=device, kind="pump.report_for_other_infusion").exists(), (
        "the report about the other infusion was not audited"
    )


def test_a_completion_before_the_confirmation_completes_the_order(django_capture_on_commit_callbacks):
    make_device("NAMED_EARLY")
    session = infusion_start(device_id="NAMED_EARLY", order=make_order(
        planned_volume_ml=1.0, planned_time_min=0.5, bolus_enabled=False, bolus_volume_ml=0.0))  # fmt: skip
    ingest([message("NAMED_EARLY", "completion", {"completed": True, "infusionId": session.infusion_id,
                                                  "summary": {"totalVolumeMl": 1.0}}),
            message("NAMED_EARLY", "infusion", {"confirmed": True, "infusionId": session.infusion_id}, 0.5)],
           django_capture_on_commit_callbacks)  # fmt: skip
    session.refresh_from_db()
    device = Device.objects.get(device_id="NAMED_EARLY")
    assert (session.status, device.pump_state) == (SessionStatus.COMPLETED, PumpState.IDLE), (
        f"the pump reported {session.infusion_id} completed before its confirmation arrived, but the record shows "
        f"it {session.status} on a pump '{device.pump_state}': the completion was dropped and the confirmation "
        f"started a ghost infusion"
    )
    assert session.running_evidence and session.completion, "the completion is the evidence that the order ran"


@pytest.mark.parametrize("status", ["completed", "stopped"])
def test_a_status_naming_the_previous_infusion_leaves_the_running_order(status, django_capture_on_commit_callbacks):
    first, second = heparin_after_a_completed_infusion("NAMED_S", django_capture_on_commit_callbacks)
    ingest([message("NAMED_S", "status", {"status": status, "infusionId": first.infusion_id}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    second.refresh_from_db()
    device = Device.objects.get(device_id="NAMED_S")
    assert (second.status, device.pump_state) == (SessionStatus.RUNNING, PumpState.RUNNING), (
        f"a status '{status}' naming the finished infusion {first.infusion_id} ended the running Heparin order: "
        f"it is {second.status} ({second.status_reason!r}), the pump '{device.pump_state}'"
    )


@pytest.mark.parametrize("retained", [False, True], ids=["late-copy", "broker-restored-retained-copy"])
def test_a_pump_action_naming_the_previous_infusion_leaves_the_running_order(
    retained, django_capture_on_commit_callbacks
):
    first, second = heparin_after_a_completed_infusion("NAMED_A", django_capture_on_commit_callbacks)
    ingest([message("NAMED_A", "actions", {"action": "MANUAL_PAUSE", "infusionId": second.infusion_id}, 1),
            message("NAMED_A", "actions", {"action": "MANUAL_RESUME", "infusionId": second.infusion_id}, 1.5)],
           django_capture_on_commit_callbacks)  # fmt: skip
    old = message("NAMED_A", "actions", {"action": "MANUAL_STOP", "infusionId": first.infusion_id}, 2, retain=retained)
    ingest([old], django_capture_on_commit_callbacks)
    second.refresh_from_db()
    assert second.status == SessionStatus.RUNNING, (
        f"MANUAL_STOP naming the finished infusion {first.infusion_id} stopped the running order "
        f"({second.status}, {second.status_reason!r})"
    )


def test_an_action_naming_no_infusion_still_moves_the_one_on_the_pump(django_capture_on_commit_callbacks):
    """The fallback stays for reports that name nothing (the original firmware's status, say)."""
    _, second = heparin_after_a_completed_infusion("NAMED_NONE", django_capture_on_commit_callbacks)
    ingest([message("NAMED_NONE", "actions", {"action": "MANUAL_PAUSE"}, 1)], django_capture_on_commit_callbacks)
    second.refresh_from_db()
    assert second.status == SessionStatus.PAUSED, f"an unnamed MANUAL_PAUSE left the order {second.status}"


def test_received_start_command_naming_another_infusion_does_not_deliver_the_pending_order(
    django_capture_on_commit_callbacks,
):
    first, second = heparin_after_a_completed_infusion("NAMED_RX", django_capture_on_commit_callbacks)
    ingest([message("NAMED_RX", "completion", {"completed": True, "infusionId": second.infusion_id}, 1)],
           django_capture_on_commit_callbacks)  # fmt: skip
    third = infusion_start(device_id="NAMED_RX", order=make_order(drug="Insulin"))
    ingest([message("NAMED_RX", "status", {"status": "received_start_command", "infusionId": first.infusion_id}, 2)],
           django_capture_on_commit_callbacks)  # fmt: skip
    third.refresh_from_db()
    assert third.delivered_at is None, (
        f"a received_start_command naming {first.infusion_id} marked the pending order {third.infusion_id} as "
        f"received by the pump"
    )
