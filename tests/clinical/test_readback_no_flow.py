"""While a session's read-back is unverified, every running progress's `flowRate` is compared with the order; a
pump reporting `paused` or `completed` progress (a rate of 0: nothing flows) raised a false high
`parameter_mismatch` ("it reports 0 mL/h") and turned the record's read-back to MISMATCH for good (a reviewer's
finding). A running pump's wrong rate is still one."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, InfusionSession
from devices.services.changes import device_lock
from devices.services.sessions import infusion_confirm, infusion_start
from devices.states import AlarmState, ReadBack
from realtime.bridge.batch import BatchIngest
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device, make_order

pytestmark = pytest.mark.django_db


def ingest(batch, capture):
    with capture(execute=True), transaction.atomic():
        return BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)).run(batch)


def message(kind, body, at_s):
    return InboundMessage(
        topic=f"devices/F11/{kind}",
        payload=json.dumps(body).encode(),
        received_at=timezone.now() + timedelta(seconds=at_s),
    )


@pytest.mark.parametrize("status", ["paused", "completed"])
def test_a_paused_or_finished_pump_reporting_no_flow_is_no_parameter_mismatch(
    status, django_capture_on_commit_callbacks
):
    make_device("F11")
    session = infusion_start(device_id="F11", order=make_order())
    with transaction.atomic():  # confirmed without parameters: read-back unverified
        infusion_confirm(
            device=device_lock(device_id="F11"),
            infusion_id=session.infusion_id,
            confirmed=True,
            parameters=None,
            confirmation={"confirmed": True},
        )
    ingest(
        [
            message(
                "progress",
                {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 3.0, "infusionId": session.infusion_id},
                1,
            ),
            message(
                "progress",
                {"status": status, "flowRate": 0.0, "deliveredVolumeMl": 3.0, "infusionId": session.infusion_id},
                2.5,
            ),
        ],
        django_capture_on_commit_callbacks,
    )
    session = InfusionSession.objects.get(pk=session.pk)
    raised = list(
        Alarm.objects.filter(device__device_id="F11", type="parameter_mismatch").values_list("message", "state")
    )
    assert not raised and session.read_back == ReadBack.UNVERIFIED, (
        f"a pump reporting {status} progress with a rate of 0 raised {raised} and the record's read-back is now "
        f"{session.read_back}"
    )


def test_a_running_pump_reporting_the_wrong_rate_is_still_a_parameter_mismatch(django_capture_on_commit_callbacks):
    make_device("F11")
    session = infusion_start(device_id="F11", order=make_order())
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id="F11"), infusion_id=session.infusion_id, confirmed=True,
                         parameters=None, confirmation={"confirmed": True})  # fmt: skip
    report = {"status": "running", "flowRate": 0.0, "deliveredVolumeMl": 3.0, "infusionId": session.infusion_id}
    ingest([message("progress", report, 1)], django_capture_on_commit_callbacks)
    assert Alarm.objects.filter(device__device_id="F11", type="parameter_mismatch", state=AlarmState.ACTIVE).exists()
    assert InfusionSession.objects.get(pk=session.pk).read_back == ReadBack.MISMATCH
