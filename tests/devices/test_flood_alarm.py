"""The `alarm_flood` a flooding pump gets: what it names of the alarms shed, and when a later flood alerts again.

A shed alarm is shown nowhere but in this alarm's text: a flood that sheds an alarm it did not name yet (or at a
higher priority than named) is news, and an acknowledged flood alarm must alert again for it (review 3). A flood
that sheds only what it already names just adds to its counts, so a pump flooding the same alarm does not sound
again and again, and an alarm still sounding is not re-alerted (its acknowledgement and escalation go on).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, WardSilence
from devices.services import protection
from devices.services.alarms import alarm_acknowledge
from devices.services.protection import ALARM_FLOOD, TYPES_NAMED, alarm_flood_raise
from devices.services.silences import ward_silence
from devices.states import AlarmState
from tests.factories import make_device, make_user, make_ward
from tests.support.changes import RecordedChanges

pytestmark = pytest.mark.django_db


def flood_alarm(device_id: str) -> Alarm:
    return Alarm.objects.get(device__device_id=device_id, type=ALARM_FLOOD, state=AlarmState.ACTIVE)


def notifications(emitted: RecordedChanges) -> list:
    return [change for change in emitted if change.event == "device:notification"]


def acknowledged_flood(device_id: str, **first) -> tuple[Alarm, RecordedChanges]:
    """A pump's first flood, its alarm acknowledged by a nurse who checked the pump; the changes recorded after."""
    make_device(device_id, ward=make_ward("icu"))
    alarm_flood_raise(device_id=device_id, **{"shed": {"progress": 3000}, "alarm_types": [], **first})
    alarm = flood_alarm(device_id)
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user("nurse"), alerts=alarm.alerts)
    emitted = RecordedChanges()
    emitted.clear()
    return alarm, emitted


def test_a_second_flood_shedding_a_new_alarm_alerts_again():
    first, emitted = acknowledged_flood("FLOOD_ACK")
    alarm_flood_raise(device_id="FLOOD_ACK", shed={"error": 40}, alarm_types=["occlusion"], now=timezone.now())
    alarm = flood_alarm("FLOOD_ACK")
    assert "occlusion" in alarm.message, "precondition: the shed occlusion is named in the flood alarm's text"
    assert alarm.acknowledged_at is None and alarm.alerts == first.alerts + 1 and notifications(emitted), (
        f"a second flood shed a high 'occlusion' nobody has seen, yet the flood alarm stays acknowledged "
        f"(alerts {alarm.alerts}, notifications {len(notifications(emitted))}): no sound, no escalation"
    )
    assert (alarm.escalation_level, alarm.alerted_at) == (0, alarm.last_raised_at), "escalation starts again"


def test_a_new_shed_alarm_breaks_the_wards_silence():
    acknowledged_flood("FLOOD_SIL")
    silence = ward_silence(ward=flood_alarm("FLOOD_SIL").device.ward, user=make_user("charge"), seconds=120)
    alarm_flood_raise(device_id="FLOOD_SIL", shed={"error": 5}, alarm_types={"occlusion": "high"})
    assert WardSilence.objects.get(pk=silence.pk).end_reason == "broken", "the new alarm must be heard"


def test_a_flood_shedding_only_what_is_named_only_counts():
    _, emitted = acknowledged_flood("FLOOD_SAME", alarm_types={"occlusion": "high"})
    alarm_flood_raise(device_id="FLOOD_SAME", shed={"error": 40, "status": 9}, alarm_types={"occlusion": "high"})
    alarm_flood_raise(device_id="FLOOD_SAME", shed={"progress": 100})
    alarm = flood_alarm("FLOOD_SAME")
    assert alarm.details["shed"] == {"progress": 3100, "error": 40, "status": 9}
    assert alarm.acknowledged_at is not None and not notifications(emitted), "nothing new was shed: no re-alert"


def test_a_named_alarm_shed_at_a_higher_priority_alerts_again():
    _, emitted = acknowledged_flood("FLOOD_UP", alarm_types={"occlusion": "low"})
    alarm_flood_raise(device_id="FLOOD_UP", shed={"error": 1}, alarm_types={"occlusion": "high"})
    alarm = flood_alarm("FLOOD_UP")
    assert alarm.acknowledged_at is None and notifications(emitted)
    assert alarm.details["alarmPriorities"] == {"occlusion": "high"}


def test_a_shed_clearing_is_named_without_alerting():
    _, emitted = acknowledged_flood("FLOOD_CLR")
    alarm_flood_raise(device_id="FLOOD_CLR", shed={"error": 1}, alarm_types={"occlusion_cleared": "high"})
    protection.alarm_floods_counts_send(now=timezone.now() + timedelta(seconds=2))  # no news: sent a second later
    alarm = flood_alarm("FLOOD_CLR")
    assert "occlusion_cleared" in alarm.message and alarm.acknowledged_at is not None and not notifications(emitted)


def test_an_alarm_still_sounding_is_not_realerted_but_breaks_the_silence():
    """Re-alerting an unacknowledged alarm would refuse the acknowledgement of the nurse on her way and restart its
    escalation at each new type; it is sounding already, so only a ward silence over it is ended."""
    make_device("FLOOD_ON", ward=make_ward("icu"))
    alarm_flood_raise(device_id="FLOOD_ON", shed={"error": 3}, alarm_types=["fault_1"])
    shown = flood_alarm("FLOOD_ON")
    silence = ward_silence(ward=shown.device.ward, user=make_user("charge"), seconds=120)
    alarm_flood_raise(device_id="FLOOD_ON", shed={"error": 3}, alarm_types=["occlusion"])
    alarm = flood_alarm("FLOOD_ON")
    assert alarm.alerts == shown.alerts and "occlusion" in alarm.message
    assert WardSilence.objects.get(pk=silence.pk).end_reason == "broken"
    assert alarm_acknowledge(alarm_id=alarm.pk, user=make_user("nurse"), alerts=shown.alerts).acknowledged_at


def test_an_alarm_type_shed_after_ten_others_is_still_named():
    """The flood alarm names at most 10 shed alarm types: a HIGH occlusion shed after ten junk types is named."""
    make_device("FLOOD_TEN")
    alarm_flood_raise(device_id="FLOOD_TEN", shed={"error": 10}, alarm_types=[f"sensor_noise_{n}" for n in range(10)])
    alarm_flood_raise(device_id="FLOOD_TEN", shed={"error": 1}, alarm_types=["occlusion"])
    alarm = flood_alarm("FLOOD_TEN")
    assert "occlusion" in alarm.message, f"the shed occlusion is named nowhere: {alarm.message!r}"
    assert alarm.details["alarmTypes"][0] == "occlusion" and len(alarm.details["alarmTypes"]) == TYPES_NAMED
    assert "and others" in alarm.message, "the text says that more types were shed than it names"


def test_the_highest_priority_types_are_kept_whatever_comes_after():
    make_device("FLOOD_RANK")
    alarm_flood_raise(device_id="FLOOD_RANK", shed={"error": 2}, alarm_types={"occlusion": "high", "door": "medium"})
    alarm_flood_raise(device_id="FLOOD_RANK", shed={"error": 30},
                      alarm_types={f"sensor_noise_{n}": "low" for n in range(30)})  # fmt: skip
    named = flood_alarm("FLOOD_RANK").details["alarmTypes"]
    assert named[:2] == ["occlusion", "door"], f"a flood of low junk pushed the high occlusion out: {named}"
    assert named[2:] == [f"sensor_noise_{n}" for n in range(29, 21, -1)], "then the newest of the low ones"


def test_a_type_already_named_to_the_nurse_is_no_news():
    """Review 4: a pump cycling through 11 alarm types re-alerted its acknowledged flood alarm at every flood, for ever.

    Only 10 types are named at once; a type named (seen by the nurse who acknowledged) and pushed out by a newer one
    was news again the next time it was shed, and pushed another out. Rule 5 is for a type it has not named yet."""
    make_device("ROTATE", ward=make_ward("icu"))
    nurse = make_user("nurse")
    types = [f"error_{index:02d}" for index in range(TYPES_NAMED + 1)]
    # First flood: the 11 types, oldest first; the text names the 10 newest (error_01..error_10), "and others".
    alarm_flood_raise(device_id="ROTATE", shed={"alarm": 11}, alarm_types={name: "high" for name in types})
    alarm = flood_alarm("ROTATE")
    seen_by_nurse = set(alarm.details["alarmTypes"])
    assert "error_01" in seen_by_nurse
    alarm_acknowledge(alarm_id=alarm.pk, user=nurse, alerts=alarm.alerts)
    # Second flood sheds error_00 (never named: news, fair enough); it pushes error_01 out of the list.
    alarm_flood_raise(device_id="ROTATE", shed={"alarm": 1}, alarm_types={"error_00": "high"})
    alarm = flood_alarm("ROTATE")
    assert alarm.acknowledged_at is None, "error_00 was never named: news"
    alarm_acknowledge(alarm_id=alarm.pk, user=nurse, alerts=alarm.alerts)
    alerts_before = alarm.alerts
    # Every later flood sheds a type the nurse already saw named; the pump just cycles through its 11 types.
    realerts = 0
    for name in ["error_01", "error_02", "error_03", "error_04"]:
        assert name in seen_by_nurse
        alarm_flood_raise(device_id="ROTATE", shed={"alarm": 1}, alarm_types={name: "high"})
        alarm = flood_alarm("ROTATE")
        if alarm.alerts != alerts_before:
            realerts += 1
            alarm_acknowledge(alarm_id=alarm.pk, user=nurse, alerts=alarm.alerts)
            alerts_before = alarm.alerts
    assert realerts == 0, (
        f"the acknowledged flood alarm alerted again {realerts} times in 4 floods that shed only types already "
        "named to the nurse: a pump cycling 11 alarm types re-alerts (sound, escalation from tier 0, silence broken) "
        "after every acknowledgement, for ever"
    )


def test_a_type_named_before_comes_back_at_a_higher_priority_alerts_again():
    """Pushed out of the text by higher ones, a type named low is news again when shed high."""
    _, emitted = acknowledged_flood("FLOOD_BACK", alarm_types={"door": "low"})
    alarm_flood_raise(device_id="FLOOD_BACK", shed={"error": 10}, alarm_types={f"fault_{n}": "high" for n in range(10)})
    alarm = flood_alarm("FLOOD_BACK")
    assert "door" not in alarm.details["alarmTypes"], "precondition: ten high types pushed the low door out"
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user("nurse2"), alerts=alarm.alerts)
    emitted.clear()
    alarm_flood_raise(device_id="FLOOD_BACK", shed={"error": 1}, alarm_types={"door": "high"})
    alarm = flood_alarm("FLOOD_BACK")
    assert alarm.acknowledged_at is None and notifications(emitted), "door, named low before, was shed high: news"


def test_beyond_the_types_remembered_a_new_type_is_counted_and_news_at_most_once_an_interval(monkeypatch):
    """The types remembered are bounded: once full, a type never named is named, counted, and still news (it may be a
    real alarm among a broken pump's junk), but it alerts the acknowledged alarm at most once per
    ALARM_FLOOD_NEWS_INTERVAL_S, else a pump sending ever new types would re-alert it at every flood. Review 6 (B5)
    changed this rule: beyond the bound a new type used to be no news at all, so a real occlusion went unheard
    (`test_flood_news_beyond_the_bound.py`)."""
    monkeypatch.setattr(protection, "TYPES_REMEMBERED", 3)
    first, emitted = acknowledged_flood("FLOOD_FULL", alarm_types={"fault_a": "high", "fault_b": "high",
                                                                    "fault_c": "high"})  # fmt: skip
    alarm_flood_raise(device_id="FLOOD_FULL", shed={"error": 2}, alarm_types={"fault_d": "high", "fault_e": "high"})
    alarm = flood_alarm("FLOOD_FULL")
    assert "fault_d" in alarm.message and "fault_e" in alarm.message, "a type not remembered is still named"
    assert alarm.acknowledged_at is None and len(notifications(emitted)) == 1, "beyond the bound: still news"
    assert set(alarm.details["typesSeen"]) == {"fault_a", "fault_b", "fault_c"}
    assert alarm.details["typesNotRemembered"] == 2, "each type named but not remembered is counted"
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user("nurse2"), alerts=alarm.alerts)
    alarm_flood_raise(device_id="FLOOD_FULL", shed={"error": 1}, alarm_types={"fault_e": "high"})
    alarm = flood_alarm("FLOOD_FULL")
    assert alarm.details["typesNotRemembered"] == 2, "one still named is not counted again"
    alarm_flood_raise(device_id="FLOOD_FULL", shed={"error": 1}, alarm_types={"fault_f": "high"})
    alarm = flood_alarm("FLOOD_FULL")
    assert alarm.acknowledged_at is not None and alarm.alerts == first.alerts + 1, "within the interval: it waits"


def test_an_alarm_raised_before_types_were_remembered_treats_what_it_names_as_seen():
    _, emitted = acknowledged_flood("FLOOD_OLD", alarm_types={"occlusion": "high"})
    alarm = flood_alarm("FLOOD_OLD")
    alarm.details = {key: value for key, value in alarm.details.items() if key != "typesSeen"}
    alarm.save(update_fields=["details"])
    alarm_flood_raise(device_id="FLOOD_OLD", shed={"error": 1}, alarm_types={"occlusion": "high"})
    assert flood_alarm("FLOOD_OLD").acknowledged_at is not None and not notifications(emitted)
