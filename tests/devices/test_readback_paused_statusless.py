"""Progress without a `status` about a paused infusion is read back as running only when it resumed it (review 19,
lead 4's note): the read-back agrees with `progress_resumed_apply`, on the bulk and the one-message path.

A paused pump reporting without a status (its `flowRate` 0, its delivered volume where it stopped) raised a high
`parameter_mismatch` "it reports 0 mL/h" while the same report left the session paused: a false alarm. A statusless
report whose delivered volume rose resumes the session, and its rate is read back as any running report's.
"""

import pytest

from devices.models import Alarm, InfusionSession
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report, send

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": False}


def _paused(capture, device_id: str) -> InfusionSession:
    """An order of 2 mL/min confirmed as ordered (`match`), running at 5 mL delivered, then paused at the pump."""
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, parameters=READ_BACK, bolus_enabled=False, bolus_volume_ml=0.0)
    ids = {"infusionId": session.infusion_id}
    send(capture, device_id, "progress", {"status": "running", "flowRate": 2.0, "deliveredVolumeMl": 5.0, **ids})
    send(capture, device_id, "status", {"status": "paused", **ids}, 1)
    session.refresh_from_db()
    assert session.status == "paused" and session.read_back == "match", (session.status, session.read_back)
    return session


def _mismatch(session: InfusionSession) -> list[str]:
    return list(Alarm.objects.filter(session=session, type="parameter_mismatch").values_list("message", flat=True))


def _stopped_at(session: InfusionSession, rate: float = 0.0) -> dict:
    return {"flowRate": rate, "deliveredVolumeMl": 5.0, "infusionId": session.infusion_id}


def test_a_paused_pump_reporting_0_ml_h_without_a_status_raises_no_mismatch(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = _paused(capture, "PAUSED_NOSTATUS")
    for second in range(3):
        send(capture, "PAUSED_NOSTATUS", "progress", _stopped_at(session), 2 + second)
    session.refresh_from_db()
    assert session.status == "paused", session.status
    assert _mismatch(session) == [] and session.read_back == "match", (
        f"a paused pump reporting 0 mL/h with no status (its volume unchanged: it did not resume) is no pump running "
        f"0 mL/h: parameter_mismatch {_mismatch(session)}, read-back {session.read_back}"
    )


def test_a_batch_of_such_reports_raises_no_mismatch(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = _paused(capture, "PAUSED_BATCH")
    ingest([report("PAUSED_BATCH", "progress", _stopped_at(session), 2 + n * 0.5) for n in range(3)], capture)
    session.refresh_from_db()
    assert session.status == "paused" and _mismatch(session) == [], (session.status, _mismatch(session))


def _bulk_path_broken(items):
    raise RuntimeError("bulk path failed")


def test_on_the_one_message_path_too(monkeypatch, django_capture_on_commit_callbacks):
    """Routine progress applied one by one (the bridge's fallback when the bulk path fails) is judged the same."""
    monkeypatch.setattr("realtime.bridge.batch.routine_progress_ingest", _bulk_path_broken)
    capture = django_capture_on_commit_callbacks
    session = _paused(capture, "PAUSED_ONE")
    ingest([report("PAUSED_ONE", "progress", _stopped_at(session), 2 + n * 0.5) for n in range(3)], capture)
    session.refresh_from_db()
    assert session.status == "paused" and _mismatch(session) == [], (session.status, _mismatch(session))


def test_a_batch_that_resumes_judges_the_reports_before_the_resume_as_paused(django_capture_on_commit_callbacks):
    """Still paused (0 mL/h, 5 mL), then delivering again (2 mL/min, 5.5 mL) in one batch: the session resumes at the
    second, and the first, sent while it was paused, is no pump running 0 mL/h."""
    capture = django_capture_on_commit_callbacks
    session = _paused(capture, "PAUSED_RESUMES")
    delivering = {**_stopped_at(session, 2.0), "deliveredVolumeMl": 5.5}
    ingest([report("PAUSED_RESUMES", "progress", _stopped_at(session), 2),
            report("PAUSED_RESUMES", "progress", delivering, 3)], capture)  # fmt: skip
    session.refresh_from_db()
    assert session.status == "running", session.status
    assert _mismatch(session) == [], f"the report sent while paused was read back as running: {_mismatch(session)}"


@pytest.mark.parametrize("one_by_one", [False, True], ids=["bulk", "one-message"])
def test_control_a_statusless_report_that_resumed_it_is_read_back_as_running(
    one_by_one, monkeypatch, django_capture_on_commit_callbacks
):
    """Resumed by a statusless report delivering more, at ten times the order's rate: that rate is the pump's."""
    if one_by_one:
        monkeypatch.setattr("realtime.bridge.batch.routine_progress_ingest", _bulk_path_broken)
    capture = django_capture_on_commit_callbacks
    session = _paused(capture, "PAUSED_FAST")
    send(capture, "PAUSED_FAST", "progress", {**_stopped_at(session, 20.0), "deliveredVolumeMl": 6.0}, 2)
    session.refresh_from_db()
    assert session.status == "running" and session.read_back == "mismatch", (session.status, session.read_back)
    assert [message.endswith("it reports 1200 mL/h") for message in _mismatch(session)] == [True], _mismatch(session)
