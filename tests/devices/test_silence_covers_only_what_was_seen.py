"""A ward silence covers only the alarms the screen that asked had shown (`seen`): a sounding alarm it did not list
(raised, or alerting again, or escalated, just before the press: on the server and not yet on her screen, or there
for less than a person can read it) refuses the silence when it would have sounded through it had it come just after
the press (`devices/services/silences.py::unseen_alarm`). Before, the silence that followed covered it: she silenced
on every screen of the ward an alarm she never saw."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Alarm, WardSilence
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.services.escalations import alarms_escalate
from devices.services.silences import UNSEEN_MESSAGE, AlarmSeen, ward_silence
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db


def raised(device_id: str, kind: str, priority: AlarmPriority, *, now=None, realert: bool = False) -> Alarm:
    with transaction.atomic():
        return alarm_raise(device=device_lock(device_id=device_id), type=kind, priority=priority,
                           source=AlarmSource.DEVICE, now=now, realert=realert)  # fmt: skip


def as_shown(*alarms: Alarm) -> set[AlarmSeen]:
    """The alarms as a screen showed them now: this alert, this tier."""
    return {AlarmSeen(alarm.pk, alarm.alerts, alarm.escalation_level) for alarm in alarms}


@pytest.fixture
def ward():
    ward = make_ward("seen")
    make_device("SEEN_1", ward=ward, bed="1")
    make_device("SEEN_2", ward=ward, bed="2")
    make_user("seen-nurse", ward=ward)
    return ward


def silence(ward, seen, **kwargs) -> WardSilence:
    nurse = get_user_model().objects.get(username="seen-nurse")
    return ward_silence(ward=ward, user=nurse, seconds=120, reason="Attending the alarm", seen=seen, **kwargs)


def refused(ward, seen) -> PumpStreamError:
    with pytest.raises(PumpStreamError) as refusal:
        silence(ward, seen)
    return refusal.value


def test_a_high_alarm_she_did_not_see_refuses_the_silence_and_nothing_is_recorded(ward):
    occlusion = raised("SEEN_1", "occlusion", AlarmPriority.HIGH)
    shown = as_shown(occlusion)
    raised("SEEN_2", "air_in_line", AlarmPriority.HIGH)  # on the server, not yet on her screen
    refusal = refused(ward, shown)
    assert (refusal.code, refusal.message) == ("alarm_unseen", UNSEEN_MESSAGE)
    assert not WardSilence.objects.exists(), "a refused silence was recorded: every screen of the ward went quiet"


def test_a_silence_of_what_she_saw_is_made(ward):
    occlusion = raised("SEEN_1", "occlusion", AlarmPriority.HIGH)
    air = raised("SEEN_2", "air_in_line", AlarmPriority.HIGH)
    made = silence(ward, as_shown(occlusion, air))
    assert made.is_active() and made.priority == AlarmPriority.HIGH


def test_a_high_alarm_alerting_again_is_a_new_alert_she_did_not_see(ward):
    occlusion = raised("SEEN_1", "occlusion", AlarmPriority.HIGH)
    shown = as_shown(occlusion)
    again = raised("SEEN_1", "occlusion", AlarmPriority.HIGH, realert=True)  # a reminder: alert 2
    assert again.alerts == 2
    assert refused(ward, shown).code == "alarm_unseen"
    assert silence(ward, as_shown(again)).is_active(), "the new alert, once shown, is silenced"


def test_a_repeat_of_an_alarm_she_saw_is_no_new_alarm(ward):
    occlusion = raised("SEEN_1", "occlusion", AlarmPriority.HIGH)
    shown = as_shown(occlusion)
    raised("SEEN_1", "occlusion", AlarmPriority.HIGH)  # the pump sends it again: count + 1, the same alert
    assert silence(ward, shown).is_active()


def test_an_escalation_she_did_not_see_refuses_it(ward, settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_MEDIUM_S": [300.0]}
    start = timezone.now() - timedelta(seconds=400)
    battery = raised("SEEN_1", "battery_low", AlarmPriority.MEDIUM, now=start)
    shown = as_shown(battery)
    assert alarms_escalate() == 1  # tier 1, an instant before her press
    assert refused(ward, shown).code == "alarm_unseen"
    battery.refresh_from_db()
    assert silence(ward, as_shown(battery)).is_active()


def test_an_unseen_medium_alarm_is_judged_as_if_it_came_after_the_press(ward):
    """A medium alarm sounds through a silence begun while nothing above low sounded, not through one begun while a
    medium sounded (docs/clinical-rules.md): an unseen one refuses the first, and is covered by the second."""
    battery = raised("SEEN_1", "battery_low", AlarmPriority.MEDIUM)
    near_end = raised("SEEN_2", "near_end", AlarmPriority.MEDIUM)
    assert refused(ward, set()).code == "alarm_unseen", "nothing seen: a medium alarm unseen must sound"
    assert silence(ward, as_shown(battery)).is_active(), "a second medium while a medium was seen is covered"
    assert near_end.pk  # covered, as it would be had it come just after the press


def test_an_alarm_of_another_ward_or_acknowledged_is_not_hers_to_see(ward):
    other = make_ward("seen-other")
    make_device("SEEN_OTHER", ward=other)
    raised("SEEN_OTHER", "occlusion", AlarmPriority.HIGH)
    occlusion = raised("SEEN_1", "occlusion", AlarmPriority.HIGH)
    alarm_acknowledge(alarm_id=occlusion.pk, user=make_user("seen-colleague", ward=ward), alerts=occlusion.alerts)
    assert silence(ward, set()).is_active(), "an alarm that sounds in no screen of this ward refused its silence"


def test_a_refused_renewal_leaves_the_running_silence_as_it_was(ward):
    """A colleague's station renews the silence before the medium alarm her own had shown reached it."""
    battery = raised("SEEN_1", "battery_low", AlarmPriority.MEDIUM)
    running = silence(ward, as_shown(battery))
    assert refused(ward, set()).code == "alarm_unseen"
    running.refresh_from_db()
    assert running.is_active() and running.end_reason == "", "a refused renewal ended the silence on"
    assert WardSilence.objects.count() == 1
