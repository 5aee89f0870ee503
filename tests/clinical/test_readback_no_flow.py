"""While a session's read-back is unverified, every running progress's `flowRate` is compared with the order; a
pump reporting `paused` or `completed` progress (a rate of 0: nothing flows) raised a false high
`parameter_mismatch` ("it reports 0 mL/h") and turned the record's read-back to MISMATCH for good (a reviewer's
finding). A running pump's wrong rate is still one."""

import pytest

from devices.models import Alarm, InfusionSession
from devices.states import AlarmState, ReadBack
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db


def progress(session: InfusionSession, status: str, rate_ml_min: float, at_s: float):
    body = {"status": status, "flowRate": rate_ml_min, "deliveredVolumeMl": 3.0, "infusionId": session.infusion_id}
    return report("F11", "progress", body, at_s)


@pytest.mark.parametrize("status", ["paused", "completed"])
def test_a_paused_or_finished_pump_reporting_no_flow_is_no_parameter_mismatch(
    status, django_capture_on_commit_callbacks
):
    make_device("F11")
    session = confirmed_order("F11")  # confirmed without parameters: read-back unverified
    ingest([progress(session, "running", 2.0, 1), progress(session, status, 0.0, 2.5)],
           django_capture_on_commit_callbacks)  # fmt: skip
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
    session = confirmed_order("F11")
    ingest([progress(session, "running", 0.0, 1)], django_capture_on_commit_callbacks)
    assert Alarm.objects.filter(device__device_id="F11", type="parameter_mismatch", state=AlarmState.ACTIVE).exists()
    assert InfusionSession.objects.get(pk=session.pk).read_back == ReadBack.MISMATCH
