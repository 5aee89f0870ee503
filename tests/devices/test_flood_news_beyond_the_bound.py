"""News beyond the alarm types an `alarm_flood` remembers (review 6, B5).

A broken pump cycling through junk alarm types fills the 256 types the flood alarm remembers (`typesSeen`). Beyond
them a new type used to be no news: a real occlusion shed after the junk, once the nurse had acknowledged the flood
alarm, brought no re-alert, no sound, no escalation and no silence break, only a word in the alarm's text. The
protocol allows any text as a type, so nothing tells junk from a real alarm: beyond the bound a type new to the text is
news, signalled at most once per ALARM_FLOOD_NEWS_INTERVAL_S (default 60 s). News within the interval waits for its
end, when the next flood or, for a pump that stopped flooding, the bridge's housekeeping signals it.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import DeviceEvent, WardSilence
from devices.services.alarms import alarm_acknowledge
from devices.services.protection import TYPES_NAMED, TYPES_REMEMBERED, alarm_flood_raise, alarm_floods_news_signal
from devices.services.silences import ward_silence
from devices.states import SilenceEnd
from realtime.bridge.housekeeping import Housekeeping
from tests.devices.test_flood_alarm import flood_alarm, notifications
from tests.factories import make_device, make_user, make_ward
from tests.support.changes import RecordedChanges

pytestmark = pytest.mark.django_db

START = timezone.now()
INTERVAL_S = 60.0


def at(seconds: float):
    return START + timedelta(seconds=seconds)


def junk(first: int, count: int = TYPES_NAMED) -> dict[str, str]:
    """`count` junk types a broken firmware makes up, all high (a severity it does not send reads as high)."""
    return {f"E{number:04x} garbage": "high" for number in range(first, first + count)}


def flooded_past_the_bound(device_id: str) -> int:
    """A pump whose junk filled the types its flood alarm remembers, at START; the next junk number."""
    make_device(device_id, ward=make_ward("icu"))
    for first in range(0, TYPES_REMEMBERED, TYPES_NAMED):
        alarm_flood_raise(device_id=device_id, shed={"error": TYPES_NAMED}, alarm_types=junk(first), now=START)
    assert len(flood_alarm(device_id).details["typesSeen"]) == TYPES_REMEMBERED, "precondition: the bound is full"
    return TYPES_REMEMBERED + TYPES_NAMED


def acknowledge(device_id: str, seconds: float) -> None:
    alarm = flood_alarm(device_id)
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user(f"nurse-{seconds:g}"), alerts=alarm.alerts, now=at(seconds))


@pytest.fixture(autouse=True)
def interval(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ALARM_FLOOD_NEWS_INTERVAL_S": INTERVAL_S}


def test_an_occlusion_shed_after_the_junk_alerts_the_acknowledged_flood_alarm_again():
    """The reviewer's case: the junk came while the flood alarm sounded (nobody was interrupted by it); the nurse
    acknowledges; the pump sheds a real occlusion: the alarm alerts again at once, naming it."""
    flooded_past_the_bound("JUNK_OCC")
    acknowledge("JUNK_OCC", 5)
    emitted = RecordedChanges()
    emitted.clear()
    alarm_flood_raise(device_id="JUNK_OCC", shed={"error": 1}, alarm_types={"occlusion": "high"}, now=at(10))
    alarm = flood_alarm("JUNK_OCC")
    assert alarm.details["alarmTypes"][0] == "occlusion", f"the occlusion is not named first: {alarm.message!r}"
    assert alarm.acknowledged_at is None and notifications(emitted), (
        f"a real occlusion shed after {TYPES_REMEMBERED} junk types did not alert the acknowledged flood alarm "
        "again: nobody hears of it"
    )
    assert (alarm.escalation_level, alarm.alerted_at) == (0, at(10)), "its escalation starts again"


def test_a_junk_cycle_re_alerts_at_most_once_an_interval_and_a_real_alarm_within_one():
    """Ten minutes of a pump shedding ten new junk types every 5 s, the nurse acknowledging each alert 10 s after it:
    at most one alert per interval; an occlusion shed among them is signalled within the interval it came in."""
    device_id, first = "JUNK_CYCLE", flooded_past_the_bound("JUNK_CYCLE")
    acknowledge(device_id, 1)
    occlusion_at, alerts = 250, []
    for second in range(5, 600, 5):
        shed = {"occlusion": "high"} if second == occlusion_at else junk(first + second * TYPES_NAMED)
        alarm_flood_raise(device_id=device_id, shed={"error": len(shed)}, alarm_types=shed, now=at(second))
        alarm_floods_news_signal(now=at(second + 1))  # the bridge's housekeeping, between the floods
        alarm = flood_alarm(device_id)
        if alarm.acknowledged_at is None:
            alerted = round((alarm.alerted_at - START).total_seconds())
            if not alerts or alerts[-1] != alerted:
                alerts.append(alerted)
            if alerted <= second - 10:
                acknowledge(device_id, second)
    gaps = [later - earlier for earlier, later in zip(alerts, alerts[1:], strict=False)]
    assert alerts and min(gaps, default=INTERVAL_S) >= INTERVAL_S, (
        f"the junk re-alerted the acknowledged flood alarm more often than once in {INTERVAL_S:g} s: at {alerts} s"
    )
    assert len(alerts) >= 600 // INTERVAL_S - 1, f"news beyond the bound was signalled only at {alerts} s"
    heard = min((alerted for alerted in alerts if alerted >= occlusion_at), default=None)
    assert heard is not None and heard - occlusion_at <= INTERVAL_S, (
        f"the occlusion shed at {occlusion_at} s was first signalled at {heard} s (alerts at {alerts} s)"
    )


def test_news_waiting_when_the_pump_stops_flooding_is_signalled_by_the_housekeeping():
    device_id, first = "JUNK_STOP", flooded_past_the_bound("JUNK_STOP")
    acknowledge(device_id, 1)
    alarm_flood_raise(device_id=device_id, shed={"error": 1}, alarm_types=junk(first, 1), now=at(2))
    acknowledge(device_id, 4)  # the beyond-the-bound alert of 2 s, acknowledged
    alarm_flood_raise(device_id=device_id, shed={"error": 1}, alarm_types={"occlusion": "high"}, now=at(20))
    alarm = flood_alarm(device_id)  # the pump's last message: it floods no more
    assert alarm.acknowledged_at is not None, "within the interval of the alert at 2 s: the occlusion waits"
    emitted = RecordedChanges()
    emitted.clear()
    assert Housekeeping().flood_news(at(61)) is False and flood_alarm(device_id).acknowledged_at is not None, (
        "signalled before the interval's end"
    )
    Housekeeping().flood_news(at(62.5))
    alarm = flood_alarm(device_id)
    assert alarm.acknowledged_at is None and notifications(emitted), (
        "the occlusion shed within the interval, the pump silent since, was never signalled: it waits for ever"
    )
    assert "occlusion" in alarm.message and DeviceEvent.objects.filter(kind="alarm.flood_news").exists()
    assert "newsDeferredSince" not in alarm.details, "signalled news still waits"


def test_waiting_news_acknowledged_after_it_came_is_not_signalled_again():
    """The alarm's text named it when the nurse acknowledged: she read it."""
    device_id, first = "JUNK_READ", flooded_past_the_bound("JUNK_READ")
    acknowledge(device_id, 1)
    alarm_flood_raise(device_id=device_id, shed={"error": 1}, alarm_types=junk(first, 1), now=at(2))
    acknowledge(device_id, 4)
    alarm_flood_raise(device_id=device_id, shed={"error": 1}, alarm_types=junk(first + 1, 1), now=at(20))
    alarm = flood_alarm(device_id)
    alarm.acknowledged_at = at(30)  # she acknowledged again (the page sends the same alert: idempotent, re-dated)
    alarm.save(update_fields=["acknowledged_at"])
    assert alarm_floods_news_signal(now=at(70)) == 0
    alarm = flood_alarm(device_id)
    assert alarm.acknowledged_at == at(30) and "newsDeferredSince" not in alarm.details


def test_beyond_the_bound_news_breaks_a_silence_over_the_sounding_alarm_at_most_once_an_interval():
    device_id, first = "JUNK_SIL", flooded_past_the_bound("JUNK_SIL")
    ward = flood_alarm(device_id).device.ward
    charge = make_user("charge", ward=ward)
    silence = ward_silence(ward=ward, user=charge, seconds=120, now=at(1))
    alarm_flood_raise(device_id=device_id, shed={"error": 1}, alarm_types=junk(first, 1), now=at(2))
    assert WardSilence.objects.get(pk=silence.pk).end_reason == SilenceEnd.BROKEN, "news beyond the bound is news"
    again = ward_silence(ward=ward, user=charge, seconds=120, now=at(3))
    alarm_flood_raise(device_id=device_id, shed={"error": 1}, alarm_types=junk(first + 1, 1), now=at(10))
    assert WardSilence.objects.get(pk=again.pk).ended_at is None, "junk broke the silence twice in one interval"
    alarm_floods_news_signal(now=at(63))
    assert WardSilence.objects.get(pk=again.pk).end_reason == SilenceEnd.BROKEN, "the waiting news never broke it"
    assert flood_alarm(device_id).alerts == 1, "a sounding alarm is not re-alerted (its acknowledgement on its way)"
