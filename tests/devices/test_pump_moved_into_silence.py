"""A pump moved into a silenced ward with an alarm sounding is heard there (review 6, B8).

A ward's silence is broken by an alarm that alerts, and its priority is what was sounding in the ward when it began.
A pump moved in the admin (`pump_registration_save`: a patient transferred with the pump) brings alarms that alerted
elsewhere: the new ward never heard them and its silence never counted them, so the receiving station showed a HIGH
occlusion, unacknowledged, without sounding it for up to 2 min. Now the move breaks the new ward's silence for the
pump's highest active, unacknowledged alarm, by the silence's own rule (`breaks_silence`).
"""

import pytest
from django.db import transaction

from devices.models import Alarm, Device, WardSilence
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.services.registration import pump_registration_save
from devices.services.silences import ward_silence
from devices.states import AlarmPriority, AlarmSource, SilenceEnd
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db


def raise_alarm(device_id: str, kind: str, priority: AlarmPriority) -> Alarm:
    with transaction.atomic():
        return alarm_raise(device=device_lock(device_id=device_id), type=kind, priority=priority,
                           source=AlarmSource.DEVICE, message=kind)  # fmt: skip


def move(device_id: str, ward) -> None:
    """What the admin's change page does when the pump's ward is changed."""
    pump = Device.objects.get(device_id=device_id)
    pump.ward = ward
    pump_registration_save(device=pump, fields=["ward"], user=make_user(f"admin-{ward.code}", is_staff=True))


def silenced(ward, *, sounding: tuple[str, AlarmPriority] | None = None) -> WardSilence:
    """The ward silenced for 2 min by one of its nurses, with an alarm of one of its own pumps sounding if given."""
    if sounding is not None:
        make_device(f"{ward.code.upper()}_OWN", ward=ward)
        raise_alarm(f"{ward.code.upper()}_OWN", *sounding)
    return ward_silence(ward=ward, user=make_user(f"{ward.code}-nurse", ward=ward), seconds=120)


def test_a_pump_moved_in_with_a_high_alarm_sounding_breaks_the_silence():
    icu, er = make_ward("icu"), make_ward("er")
    make_device("MOVED", ward=er)
    raise_alarm("MOVED", "near_end", AlarmPriority.LOW)
    occlusion = raise_alarm("MOVED", "occlusion", AlarmPriority.HIGH)
    raise_alarm("MOVED", "low_battery", AlarmPriority.MEDIUM)
    silence = silenced(icu)
    assert silence.priority == "", "precondition: nothing sounded in the ICU when it was silenced"

    move("MOVED", icu)  # the patient is transferred to the ICU with the pump, its occlusion unanswered

    silence.refresh_from_db()
    assert silence.end_reason == SilenceEnd.BROKEN and silence.ended_at is not None, (
        f"the ICU stays silenced with a HIGH occlusion, unacknowledged, now on one of its pumps: nobody there hears "
        f"it until {silence.until:%H:%M:%S} (or its next escalation)"
    )
    assert silence.broken_by == occlusion, f"the silence names {silence.broken_by}, not the pump's highest alarm"


def test_a_medium_alarm_moved_in_breaks_a_silence_begun_with_nothing_sounding_only():
    """The silence's own rule: a medium alarm sounds through a silence begun while nothing (or only low) sounded,
    not through one a nurse began while a medium alarm sounded."""
    make_device("MOVED_MED", ward=make_ward("er"))
    raise_alarm("MOVED_MED", "low_battery", AlarmPriority.MEDIUM)
    medium_silence = silenced(make_ward("w2"), sounding=("door_open", AlarmPriority.MEDIUM))
    move("MOVED_MED", medium_silence.ward)
    medium_silence.refresh_from_db()
    assert medium_silence.ended_at is None, "a medium alarm broke a silence begun while a medium one sounded"

    quiet_silence = silenced(make_ward("w3"), sounding=("near_end", AlarmPriority.LOW))
    move("MOVED_MED", quiet_silence.ward)
    quiet_silence.refresh_from_db()
    assert quiet_silence.end_reason == SilenceEnd.BROKEN, "a medium alarm moved in did not sound through a low one's"


def test_an_acknowledged_alarm_moved_in_leaves_the_silence_on():
    """An acknowledged alarm does not sound on any screen: moved in, it has nothing to break the silence for."""
    make_device("MOVED_ACK", ward=make_ward("er"))
    occlusion = raise_alarm("MOVED_ACK", "occlusion", AlarmPriority.HIGH)
    alarm_acknowledge(alarm_id=occlusion.pk, user=make_user("er-nurse"), alerts=occlusion.alerts)
    silence = silenced(make_ward("icu"))
    move("MOVED_ACK", silence.ward)
    silence.refresh_from_db()
    assert silence.ended_at is None, "an acknowledged alarm, silent everywhere, broke the ward's silence"


def test_an_edit_that_keeps_the_pumps_ward_leaves_the_silence_on():
    icu = make_ward("icu")
    make_device("STAYS", ward=icu, bed="3")
    silence = silenced(icu, sounding=("occlusion", AlarmPriority.HIGH))  # the ward's own alarm, silenced on purpose
    raise_alarm("STAYS", "door_open", AlarmPriority.MEDIUM)
    pump = Device.objects.get(device_id="STAYS")
    pump.bed = "4"
    pump_registration_save(device=pump, fields=["bed", "ward"])  # the form saved the ward unchanged
    silence.refresh_from_db()
    assert silence.ended_at is None, "an edit of the bed broke a silence no new alarm came into"
