"""The restart's `infusion_interrupted` states the volume delivered in all, not the pump's last count (review 29,
finding 3). It is the HIGH alarm a nurse reads before deciding to run the order again: after 24 mL, a count gone back
to 0 and on to 10 mL, it said "Last delivered volume: 10 mL" where 34 mL had gone in, and a nurse restarting "the
20 mL left" would give 54 mL of a 30 mL order. A pump that reports only what remains was "unknown (no progress
received)". Each report goes through the bridge's batch ingest (`tests/support/ingest.py`).
"""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, InfusionSession
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db


def _progress(session: InfusionSession, delivered: float, seq: int, *, counted: bool = True) -> dict:
    """Running at the ordered 2 mL/min under boot A; `counted=False`: a pump reporting only what remains."""
    body = {"status": "running", "infusionId": session.infusion_id, "flowRate": 2.0, "bootId": "A", "seq": seq,
            "volumeRemainingMl": round(max(0.0, 30.0 - delivered), 2)}  # fmt: skip
    return {**body, "deliveredVolumeMl": round(delivered, 2)} if counted else body


def _run(capture, device_id: str, session: InfusionSession, *, at: datetime, from_ml: float, to_ml: float, seq: int,
         counted: bool = True) -> tuple[datetime, int]:  # fmt: skip
    """Progress every 5 s at 2 mL/min from `from_ml` to `to_ml`; returns when the next would be received, its seq."""
    delivered = from_ml
    while delivered <= to_ml + 1e-9:
        ingest([report(device_id, "progress", _progress(session, delivered, seq, counted=counted), at=at)], capture)
        seq, at, delivered = seq + 1, at + timedelta(seconds=5), delivered + 2.0 * 5 / 60
    return at, seq


def _running(capture, device_id: str) -> tuple[InfusionSession, datetime]:
    """A confirmed 30 mL order at 2 mL/min (no bolus), reported running under boot A."""
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0)
    at = timezone.now()
    body = {"status": "running", "infusionId": session.infusion_id, "bootId": "A", "seq": 1, "uptime": 1_000}
    ingest([report(device_id, "status", body, at=at)], capture)
    return session, at + timedelta(seconds=1)


def _interrupted(capture, device_id: str, session: InfusionSession, at: datetime) -> Alarm:
    """A power loss: the pump boots as B, idle."""
    ingest([report(device_id, "status", {"status": "idle", "bootId": "B", "seq": 1, "uptime": 2_000}, at=at)], capture)
    return Alarm.objects.get(session=session, type="infusion_interrupted", state="active")


def test_the_interruption_after_a_count_that_went_back_names_the_volume_delivered_in_all(
    django_capture_on_commit_callbacks,
):
    capture, device_id = django_capture_on_commit_callbacks, "INTERRUPTED_IN_ALL"
    session, at = _running(capture, device_id)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=24.0, seq=2)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=10.0, seq=seq)
    in_all = InfusionSession.objects.get(pk=session.pk).delivered_in_all_ml
    assert in_all == pytest.approx(34.0, abs=0.2), f"precondition: 24 + 10 mL in all, the record says {in_all}"
    alarm = _interrupted(capture, device_id, session, at)
    assert f"Last delivered volume: {in_all:g} mL in all (24 mL before the pump's count went back" in alarm.message, (
        f"the interruption says {alarm.message!r} where {in_all:g} mL had been delivered in all"
    )
    assert alarm.details["deliveredVolumeMl"] == pytest.approx(34.0, abs=0.2), alarm.details
    assert alarm.details["deliveredBeforeMl"] == pytest.approx(24.0, abs=0.1), alarm.details


def test_the_interruption_after_two_counts_gone_back_names_every_run(django_capture_on_commit_callbacks):
    """24 mL, back to 0 and on to 3 mL, back to 0 again and on to 2 mL: 29 mL in all, 2 mL the pump's last count."""
    capture, device_id = django_capture_on_commit_callbacks, "INTERRUPTED_TWICE_BACK"
    session, at = _running(capture, device_id)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=24.0, seq=2)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=3.0, seq=seq)
    at, seq = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=2.0, seq=seq)
    alarm = _interrupted(capture, device_id, session, at)
    assert "27 mL before the pump's count went back" in alarm.message, alarm.message
    assert alarm.details["deliveredVolumeMl"] == pytest.approx(29.0, abs=0.2), alarm.details


def test_the_interruption_of_a_pump_reporting_only_what_remains_names_what_it_delivered(
    django_capture_on_commit_callbacks,
):
    """Its delivered volume is the planned volume less what remains (the server counts it so): 12 mL, not unknown."""
    capture, device_id = django_capture_on_commit_callbacks, "INTERRUPTED_REMAINING_ONLY"
    session, at = _running(capture, device_id)
    at, _ = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=12.0, seq=2, counted=False)
    alarm = _interrupted(capture, device_id, session, at)
    assert alarm.message.endswith("Last delivered volume: 12 mL"), alarm.message
    assert alarm.details["deliveredVolumeMl"] == pytest.approx(12.0, abs=0.01), alarm.details


def test_the_interruption_of_a_count_that_only_climbed_names_that_count(django_capture_on_commit_callbacks):
    """The control: one run of the count, its figure told as before, nothing said of a count going back."""
    capture, device_id = django_capture_on_commit_callbacks, "INTERRUPTED_ONE_RUN"
    session, at = _running(capture, device_id)
    at, _ = _run(capture, device_id, session, at=at, from_ml=0.0, to_ml=10.0, seq=2)
    alarm = _interrupted(capture, device_id, session, at)
    counted = InfusionSession.objects.get(pk=session.pk).progress()["deliveredVolumeMl"]
    assert alarm.message.endswith(f"Last delivered volume: {counted:g} mL"), alarm.message
    assert "deliveredBeforeMl" not in alarm.details, alarm.details
