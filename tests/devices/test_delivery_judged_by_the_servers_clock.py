"""A pump's own clock never excuses its delivered volume (review 27, finding 1): `delivery_divergence` judges the time
a window ran by the server's receive times.

The "faster than its rate" check allowed rate x time, the time being the LONGER of the server's receive span and the
pump's own `elapsedTimeMin`. A pump whose timebase runs ten times fast (a wrong crystal or prescaler: the fault that
also drives its motor ten times fast) reports ten minutes of pumping per real minute, so its volume growing ten times
faster than the order was "in time"; its `flowRate` field says the setpoint, and its count stops at the planned
volume: no alarm at all, 30 mL of a 15-minute order in 90 s. Each report goes through the bridge's batch ingest.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, InfusionSession
from tests.factories import make_device
from tests.support.ingest import confirmed_order, ingest, report

pytestmark = pytest.mark.django_db

READ_BACK = {"flowRateMlMin": 2.0, "plannedVolumeMl": 30.0, "plannedTimeMin": 15.0, "bolusEnabled": False,
             "bolusVolumeMl": 0.0}  # fmt: skip


def _run(capture, device_id: str, session: InfusionSession, *, clock_speed: float, rate_ml_min: float,
         seconds: int = 90, every: int = 5) -> InfusionSession:  # fmt: skip
    """Running progress every `every` s of real time, the volume growing at `rate_ml_min`, the pump's
    `elapsedTimeMin` at `clock_speed` minutes a real minute, its `flowRate` the ordered 2 mL/min."""
    base = timezone.now()
    for second in range(0, seconds + 1, every):
        delivered = min(30.0, rate_ml_min * second / 60)
        elapsed = clock_speed * second / 60
        body = {"status": "running", "infusionId": session.infusion_id, "flowRate": 2.0,
                "deliveredVolumeMl": round(delivered, 2), "volumeRemainingMl": round(30.0 - delivered, 2),
                "elapsedTimeMin": round(elapsed, 3),
                "timeRemainingMin": round(max(0.0, 15.0 - elapsed), 3)}  # fmt: skip
        ingest([report(device_id, "progress", body, at=base + timedelta(seconds=second))], capture)
    return InfusionSession.objects.get(pk=session.pk)


def _divergence(session: InfusionSession) -> Alarm | None:
    return Alarm.objects.filter(session=session, type="delivery_divergence", state="active").first()


def _at_the_order_unalarmed(capture, device_id: str, *, clock_speed: float) -> None:
    """Four minutes at the ordered 2 mL/min, the pump's clock at `clock_speed`: judged, and no alarm."""
    make_device(device_id, has_presence=True)
    session = confirmed_order(device_id, bolus_enabled=False, bolus_volume_ml=0.0, parameters=READ_BACK)
    session = _run(capture, device_id, session, clock_speed=clock_speed, rate_ml_min=2.0, seconds=240)
    assert session.delivery_window_at is not None, "the windows were judged (a test that cannot fail is a defect)"
    assert _divergence(session) is None, session.delivery_divergence


def test_ten_times_the_rate_with_the_pumps_clock_ten_times_fast_is_alarmed(django_capture_on_commit_callbacks):
    make_device("CLOCK_FAST", has_presence=True)
    session = confirmed_order("CLOCK_FAST", bolus_enabled=False, bolus_volume_ml=0.0, parameters=READ_BACK)
    assert session.read_back == "match", "precondition: the pump confirmed the order as ordered"
    session = _run(django_capture_on_commit_callbacks, "CLOCK_FAST", session, clock_speed=10, rate_ml_min=20.0)
    alarm = _divergence(session)
    assert alarm is not None and alarm.priority == "high", (
        f"30 mL of a 2 mL/min order went in over 90 s of real time (20 mL/min), the pump's clock saying 15 min: "
        f"session {session.status}, read-back {session.read_back}, alarms "
        f"{sorted(Alarm.objects.filter(session=session).values_list('type', 'state'))}"
    )
    seen = session.delivery_divergence
    assert seen["kind"] == "faster_than_rate" and seen["overMin"] <= 1.05, (
        f"judged over the minute the server saw, not the pump's ten: {seen}"
    )


def test_a_pump_clock_in_step_with_the_server_at_the_ordered_rate_is_not_alarmed(django_capture_on_commit_callbacks):
    """The control: the pump's clock at real time, its volume at the order: nothing to say."""
    _at_the_order_unalarmed(django_capture_on_commit_callbacks, "CLOCK_TRUE", clock_speed=1)


def test_a_pump_clock_slower_than_the_servers_narrows_nothing(django_capture_on_commit_callbacks):
    """The pump's clock at half speed, its volume at the order: the pump's time disagrees with the server's, so it is
    not used to narrow the window (only a pump time within `CLOCK_AGREEMENT` of the server's is), and no alarm."""
    _at_the_order_unalarmed(django_capture_on_commit_callbacks, "CLOCK_SLOW", clock_speed=0.5)
