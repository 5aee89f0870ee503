"""Review 51 (hostile, time): a flood alarm's waiting news that the nurse acknowledged after it came (she read the
alarm's text naming it) is no news any more (`protection.flood_news_signal`). On a clock put right with the step
measured (the worker saw the wall clock go back), the pull-back (`deadlines_ahead.py`) took the acknowledgement back by
the step and the news's wait (`newsDeferredSince`) to now: the news then read as come after the acknowledgement, and
the acknowledged alarm alerted again at its interval's end, for news the nurse had read an hour before.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm
from devices.services.deadlines_ahead import deadlines_pull_back
from devices.services.protection import alarm_flood_raise, alarm_floods_news_signal
from devices.states import FLOOD_NEWS_DEFERRED
from tests.factories import make_user
from tests.realtime.bridge.test_review49_moments_still_ahead import flood_acknowledge, flooded_past_the_bound

pytestmark = pytest.mark.django_db

AHEAD = timedelta(hours=1)


@pytest.mark.parametrize("ahead", [timedelta(0), AHEAD], ids=["clock-right", "clock-put-right"])
def test_news_the_nurse_acknowledged_after_it_came_stays_read_after_the_clock_is_put_right(settings, ahead):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ALARM_FLOOD_NEWS_INTERVAL_S": 60.0}
    device_id, wrong = "AHEAD_READ", timezone.now() + ahead - timedelta(seconds=30)  # the control's moments all past
    flooded_past_the_bound(device_id, at=wrong)
    nurse = make_user("nurse-read-news")

    def acknowledge(seconds: float) -> None:
        flood_acknowledge(device_id, nurse, at=wrong + timedelta(seconds=seconds))

    acknowledge(5)
    alarm_flood_raise(device_id=device_id, shed={"error": 1}, alarm_types={"E1000 garbage": "high"},
                      now=wrong + timedelta(seconds=10))  # fmt: skip  # news: signalled, the alarm alerts again
    alarm_flood_raise(device_id=device_id, shed={"error": 1}, alarm_types={"E1001 garbage": "high"},
                      now=wrong + timedelta(seconds=20))  # fmt: skip  # news within the interval: it waits
    acknowledge(25)  # she reads the alarm, its text naming the news that waits
    flood = Alarm.objects.get(device__device_id=device_id, type="alarm_flood")
    assert FLOOD_NEWS_DEFERRED in flood.details and flood.acknowledged_at is not None, "precondition: read news waits"
    deadlines_pull_back(now=timezone.now(), step=ahead or None)  # the worker measured the step back
    interval = timedelta(seconds=settings.PUMPSTREAM["ALARM_FLOOD_NEWS_INTERVAL_S"])
    alarm_floods_news_signal(now=timezone.now() + interval + timedelta(seconds=1))
    flood.refresh_from_db()
    assert flood.acknowledged_at is not None, (
        f"the news the nurse acknowledged after it came alerted the flood alarm again once the clock was put right "
        f"(its wait {flood.details.get(FLOOD_NEWS_DEFERRED)}, her acknowledgement pulled back by the step)"
    )
