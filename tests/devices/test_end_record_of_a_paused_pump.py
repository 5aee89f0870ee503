"""The record of an infusion the pump reports paused is not ended either (review 31, finding 2).

A pump that holds the order paused (a line change, a nurse's pause at the bedside), not reported offline, that said so
within HEARTBEAT_TIMEOUT_S, is no ghost: "End record…" is refused (409 `session_paused`), as for one it reports
running (`test_end_record_of_a_running_pump.py`). It says so in a paused progress of the order or in a `paused` status
naming it or none (a legacy pump publishes nothing else while paused). Before, the end was accepted, the pump shown
free for a new order, and its resumption at the bedside ran with a high `confirmed_late`. A `paused` status older
than that, or one naming another infusion, leaves the end to the person: the pump may not hold this one.
"""

import pytest
from django.conf import settings

from devices.models import Alarm, Device, InfusionSession
from devices.states import SessionStatus
from tests.devices.test_end_record_of_a_running_pump import RUNNING, end_record, running_order
from tests.support.ingest import send

pytestmark = pytest.mark.django_db

SILENT_S = settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 1


def _refused_as_paused(response, session: InfusionSession) -> None:
    status = InfusionSession.objects.get(pk=session.pk).status
    device = Device.objects.get(pk=session.device_id)
    assert (response.status_code, status) == (409, SessionStatus.PAUSED), (
        f"End record of an order its pump (presence {device.presence}) reported paused 1 s before: "
        f"HTTP {response.status_code}, the order now {status}"
    )
    refusal = response.json()
    assert refusal["code"] == "session_paused" and "reported it paused" in refusal["message"], refusal
    assert "stop it" in refusal["message"], refusal


def test_the_record_of_an_infusion_the_pump_reports_paused_just_now_is_not_ended(
    client, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_PAUSED", capture)
    named = {**RUNNING, "infusionId": session.infusion_id}
    send(capture, "ENDREC_PAUSED", "status", {"status": "paused", "infusionId": session.infusion_id}, 0.5)
    send(capture, "ENDREC_PAUSED", "progress", {**named, "status": "paused", "flowRate": 0.0}, 1.0)
    _refused_as_paused(end_record(client, session), session)
    send(capture, "ENDREC_PAUSED", "progress", {**named, "deliveredVolumeMl": 6.1, "volumeRemainingMl": 23.9}, 3.0)
    alarms = list(
        Alarm.objects.filter(device__device_id="ENDREC_PAUSED", state="active").values_list("type", flat=True)
    )
    assert "confirmed_late" not in alarms, f"the pump resumed at the bedside: active alarms {alarms}"


def test_a_legacy_pump_that_says_only_paused_is_not_taken_for_a_ghost(client, django_capture_on_commit_callbacks):
    """Its last progress (running) is older than the heartbeat: its `paused` status, naming no infusion, is its word."""
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_LEGACY", capture, progress_at_s=-SILENT_S - 5)
    send(capture, "ENDREC_LEGACY", "status", {"status": "paused"}, -1.0)
    send(capture, "ENDREC_LEGACY", "status", {"status": "online"}, -0.5)  # presence says nothing of the infusion
    _refused_as_paused(end_record(client, session), session)


def test_the_record_of_an_infusion_paused_before_the_heartbeat_is_ended(client, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_OLDPAUSE", capture, progress_at_s=-SILENT_S - 5)
    send(capture, "ENDREC_OLDPAUSE", "status", {"status": "paused", "infusionId": session.infusion_id}, -SILENT_S)
    assert end_record(client, session).status_code == 200, "a pump silent past its heartbeat may be the ghost"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


def test_a_paused_status_naming_another_infusion_does_not_hold_this_one(client, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_OTHER", capture, progress_at_s=-SILENT_S)
    send(capture, "ENDREC_OTHER", "status", {"status": "paused", "infusionId": "inf_swapped_pumps_own"}, -1.0)
    assert end_record(client, session).status_code == 200, "the pump holds another infusion: this one is the ghost"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED


def test_the_record_of_an_infusion_paused_on_an_offline_pump_is_ended(client, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = running_order("ENDREC_PAUSED_OFF", capture)
    send(capture, "ENDREC_PAUSED_OFF", "status", {"status": "paused", "infusionId": session.infusion_id}, 0.5)
    send(capture, "ENDREC_PAUSED_OFF", "status", {"status": "offline"}, 1.0)  # its Last Will
    assert end_record(client, session).status_code == 200, "an offline pump may be the ghost (swapped, restarted)"
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED
