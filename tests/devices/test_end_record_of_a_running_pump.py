"""The record of an infusion the pump reports running is not ended (review 30, finding 6).

"End record…" (the monitor, `/api/infusions/{id}/end-record/`) and the admin's "End the record (the pump is not running
it …)" are for a ghost: an order the server holds as running that the pump is not running. A pump whose latest
progress of that order said running within HEARTBEAT_TIMEOUT_S, and that is not reported offline, is running it: the
end is refused (409 `session_running`), and the person is told to stop it instead. Silent longer, or offline, it may
be the ghost: the end is accepted. The real pump's case, through the admin:
`tests/integration/simulator/test_end_record_of_a_running_pump.py`.
"""

import pytest
from django.conf import settings

from devices.models import InfusionSession
from devices.states import SessionStatus
from tests.factories import make_device, make_user
from tests.support.ingest import confirmed_order, send

pytestmark = pytest.mark.django_db

RUNNING = {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 6.0, "volumeRemainingMl": 24.0,
           "timeRemainingMin": 12.0, "progressPercent": 20}  # fmt: skip


def running_order(device_id: str, capture, *, progress_at_s: float = 0.0) -> InfusionSession:
    """A confirmed order whose pump reported it running `progress_at_s` seconds from now."""
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, drug="Heparin")
    send(capture, device_id, "progress", {**RUNNING, "infusionId": session.infusion_id}, progress_at_s)
    return session


def end_record(client, session: InfusionSession):
    client.force_login(make_user("nurse", ward=session.device.ward))
    return client.post(f"/api/infusions/{session.infusion_id}/end-record/", {"reason": "pump seems not to have it"})


def test_the_record_of_an_infusion_the_pump_reports_running_is_not_ended(client, django_capture_on_commit_callbacks):
    session = running_order("ENDREC_1", django_capture_on_commit_callbacks)
    response = end_record(client, session)
    status = InfusionSession.objects.get(pk=session.pk).status
    assert (response.status_code, status) == (409, SessionStatus.RUNNING), (
        f"End record (for a pump not running the order) of an order whose pump reported it running just now: "
        f"HTTP {response.status_code}, the order now {status}"
    )
    refusal = response.json()
    assert refusal["code"] == "session_running" and "stop it" in refusal["message"], refusal


def test_the_record_of_an_infusion_whose_pump_fell_silent_is_ended(client, django_capture_on_commit_callbacks):
    silent = -(settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 1)
    session = running_order("ENDREC_2", django_capture_on_commit_callbacks, progress_at_s=silent)
    assert end_record(client, session).status_code == 200, "a pump silent past its heartbeat may be the ghost"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


def test_the_record_of_an_infusion_whose_pump_is_offline_is_ended(client, django_capture_on_commit_callbacks):
    session = running_order("ENDREC_3", django_capture_on_commit_callbacks)
    send(django_capture_on_commit_callbacks, "ENDREC_3", "status", {"status": "offline"}, 0.5)  # its Last Will
    assert end_record(client, session).status_code == 200, "an offline pump may be the ghost (swapped, restarted)"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED
