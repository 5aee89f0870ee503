"""A MANUAL_RESUME naming the infusion a restart interrupted moves nothing, but is the evidence that a person at the
pump resumed it (`paused_runs_again`, read from the pump's event log when it runs again). Its log record and audit
said "names another infusion; not applied": untrue of a report that counts. They now say what it is kept for; any
other action naming an interrupted infusion is still "not applied"."""

import logging

import pytest

from devices.models import DeviceEvent, InfusionSession
from devices.services.infusion_reports import RESUME_EVIDENCE_KEPT
from devices.services.named import REPORT_FOR_OTHER_INFUSION
from devices.states import SessionStatus
from tests.devices.test_paused_infusion_running_again_by_itself import paused_by
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db


def interrupted(device_id: str, capture) -> InfusionSession:
    """The nurse paused the infusion; the pump restarted (bootId B): the infusion is interrupted, none on the pump."""
    session = paused_by(device_id, f"{device_id.lower()}-nurse", capture)
    ingest([report(device_id, "status", {"status": "online", "bootId": "B", "seq": 1, "uptime": 2_000}, 60)], capture)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED, "precondition"
    return session


def action_at_the_pump(device_id: str, action: str, capture, caplog) -> list[logging.LogRecord]:
    """`action` naming the interrupted infusion, at the pump after its restart: the log records it left."""
    session = interrupted(device_id, capture)
    body = {"action": action, "infusionId": session.infusion_id, "bootId": "B", "seq": 2}
    with caplog.at_level(logging.INFO, logger="devices.services.named"):
        ingest([report(device_id, "actions", body, 90)], capture)
    return [record for record in caplog.records
            if record.name == "devices.services.named" and getattr(record, "device_id", "") == device_id]  # fmt: skip


def test_a_resume_at_the_pump_of_an_interrupted_infusion_is_logged_as_kept_evidence(
    django_capture_on_commit_callbacks, caplog
):
    device_id = "RESUME_TOLD"
    records = action_at_the_pump(device_id, "MANUAL_RESUME", django_capture_on_commit_callbacks, caplog)
    assert len(records) == 1, f"one log record of the report: {[record.getMessage() for record in records]}"
    message = records[0].getMessage()
    assert "not applied" not in message, f"the resume counts as evidence of a person resuming it: {message!r}"
    assert RESUME_EVIDENCE_KEPT in message, message
    assert records[0].applied == RESUME_EVIDENCE_KEPT, f"the record's `applied` field: {records[0].applied!r}"
    audit = DeviceEvent.objects.get(device__device_id=device_id, kind=REPORT_FOR_OTHER_INFUSION)
    assert audit.payload["applied"] == RESUME_EVIDENCE_KEPT, f"the audit says {audit.payload}"


def test_a_pause_at_the_pump_of_an_interrupted_infusion_is_still_not_applied(
    django_capture_on_commit_callbacks, caplog
):
    records = action_at_the_pump("PAUSE_UNTOLD", "MANUAL_PAUSE", django_capture_on_commit_callbacks, caplog)
    messages = [record.getMessage() for record in records]
    assert messages == ["report names another infusion; not applied"], messages
