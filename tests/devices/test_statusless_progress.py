"""Progress without a `status` (optional in the contract) that shows delivery resumes a paused infusion (review 19).

A statusless report counts as running everywhere else (routine progress, evidence for a pending order, the rate read
back), but `progress_resumed_apply` resumed a paused session only on `status == "running"`: a paused infusion whose
pump, resumed at the bedside with its resume report lost (the original firmware's QoS 0) or refused, reported
delivering again without a status stayed "Paused" on every screen while its volume rose, with no silence check.
"""

import pytest

from devices.models import Device, InfusionSession
from tests.factories import make_device
from tests.support.ingest import confirmed_order, send

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": True,
             "bolusVolumeMl": 5.0}  # fmt: skip


def paused_after_delivering(capture) -> tuple[InfusionSession, dict]:
    """A confirmed order that delivered 5 mL, then paused (at the pump, or remotely). Returns it and its id's field."""
    make_device("NOSTATUS", has_presence=True)
    session = confirmed_order("NOSTATUS", parameters=READ_BACK)
    ids = {"infusionId": session.infusion_id}
    send(capture, "NOSTATUS", "progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 5.0, **ids})
    send(capture, "NOSTATUS", "status", {"status": "paused", **ids}, 1)
    return session, ids


def test_progress_without_a_status_resumes_a_paused_infusion_as_running_progress_does(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    session, ids = paused_after_delivering(capture)
    for second in range(3):  # resumed at the bedside, its resume report lost: it reports delivering again
        send(capture, "NOSTATUS", "progress", {"flowRate": 2.0, "deliveredVolumeMl": 6.0 + second, **ids}, 2 + second)
    session.refresh_from_db()
    device = Device.objects.get(device_id="NOSTATUS")
    assert session.status == "running", (
        f"the pump reports delivering (8.0 mL infused and rising, 120 mL/h) with no status: the infusion is shown "
        f"{session.status}, the pump {device.pump_state}; the same report makes a pending order run"
    )


def test_progress_without_a_status_and_no_more_delivered_leaves_a_paused_infusion_paused(
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    session, ids = paused_after_delivering(capture)
    for second in range(3):  # a paused pump reporting its setpoint and the volume it stopped at
        send(capture, "NOSTATUS", "progress", {"flowRate": 2.0, "deliveredVolumeMl": 5.0, **ids}, 2 + second)
    session.refresh_from_db()
    assert session.status == "paused"
