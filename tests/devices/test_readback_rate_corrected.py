"""After a rate seen running off the order, the pump reporting the order's rate again is said (review 19, lead 4's
note), while the alarm stays until a person resolves it.

The panels showed the wrong rate "seen in its progress at …" for the rest of the infusion after the pump was
corrected: stale, in the safe direction, but no longer what the pump reports. The session's `progressMismatch` now
carries `matchedSince` (the first report at the order's rate since), cleared when a wrong rate comes again.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices import payloads
from devices.models import Alarm, InfusionSession
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

AS_ORDERED = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30, "plannedTimeMin": 15, "bolusEnabled": False}


def _shown(session: InfusionSession):
    return payloads.session_body(InfusionSession.objects.get(pk=session.pk)).session


def _active(session: InfusionSession) -> list[str]:
    return list(Alarm.objects.filter(session=session, state="active").values_list("type", flat=True))


def _run(capture, device_id: str, session: InfusionSession, rates: list[float], start_s: float, *, batch=False):
    at = timezone.now() + timedelta(seconds=start_s)
    messages = [report(device_id, "progress", {"status": "running", "flowRate": rate, "deliveredVolumeMl": 1.0 + n,
                                               "infusionId": session.infusion_id}, at=at + timedelta(seconds=n))
                for n, rate in enumerate(rates)]  # fmt: skip
    for group in [messages] if batch else [[message] for message in messages]:
        ingest(group, capture)


def _corrected(capture, device_id: str, *, batch: bool = False) -> InfusionSession:
    """Confirmed as ordered (2 mL/min), then running 20 mL/min (1,200 mL/h), then corrected to 2 mL/min."""
    make_device(device_id)
    session = confirmed_order(device_id, parameters=AS_ORDERED, bolus_enabled=False, bolus_volume_ml=0.0)
    _run(capture, device_id, session, [20.0, 20.0, 2.0, 2.0], 1, batch=batch)
    return InfusionSession.objects.get(pk=session.pk)


@pytest.mark.parametrize("batch", [False, True], ids=["one-by-one", "one-batch"])
def test_the_order_s_rate_reported_again_is_said_and_the_alarm_stays(batch, django_capture_on_commit_callbacks):
    session = _corrected(django_capture_on_commit_callbacks, "CORRECTED", batch=batch)
    seen = _shown(session).progressMismatch
    assert seen is not None and seen.flowRateMlMin == 20.0, seen
    assert seen.matchedSince is not None and seen.matchedSince >= seen.receivedAt, (  # a batch: its newest's time
        f"the pump reports the order's 120 mL/h again; the panel still shows only 1,200 mL/h 'seen in its progress': "
        f"{seen}"
    )
    assert session.read_back == "mismatch" and _active(session) == ["parameter_mismatch"], (
        f"a corrected rate takes nothing back: read-back {session.read_back}, active {_active(session)}"
    )


def test_the_wrong_rate_again_is_shown_again(django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    session = _corrected(capture, "CORRECTED_AGAIN")
    before = _shown(session).progressMismatch
    _run(capture, "CORRECTED_AGAIN", session, [20.5], 10)
    seen = _shown(session).progressMismatch
    assert seen.matchedSince is None and seen.receivedAt > before.matchedSince, (
        f"running 1,230 mL/h again, the panel still says the order's rate is reported: {seen}"
    )
    alarm = Alarm.objects.get(session=session, type="parameter_mismatch")
    assert alarm.state == "active" and alarm.alerts == 1, (alarm.state, alarm.alerts)


def test_the_one_message_path_records_it_too(monkeypatch, django_capture_on_commit_callbacks):
    def broken(items):
        raise RuntimeError("bulk path failed")

    monkeypatch.setattr("realtime.bridge.batch.routine_progress_ingest", broken)
    session = _corrected(django_capture_on_commit_callbacks, "CORRECTED_ONE")
    assert _shown(session).progressMismatch.matchedSince is not None, _shown(session).progressMismatch
