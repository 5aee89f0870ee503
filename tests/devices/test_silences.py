"""The ward's silence rules: bounded length, what breaks it, renewal and ending (devices/services/silences.py)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import WardSilence
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.silences import breaks_silence, silence_seconds, ward_silence, ward_silence_end
from devices.states import AlarmPriority, AlarmSource, SilenceEnd
from devices.ward_payloads import silence_body
from protocol.payload_codec import payload_to_wire
from protocol.visible_text import BIDI_CONTROLS
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("requested", [0, -5, 121, 3600, "60", True, float("nan")])
def test_a_silence_outside_1_to_120_s_is_refused(requested):
    with pytest.raises(PumpStreamError):
        silence_seconds(requested)


def test_a_silence_defaults_to_2_min():
    assert silence_seconds(None) == 120.0 and silence_seconds(30) == 30.0


@pytest.mark.parametrize(
    ("priority", "silenced", "breaks"),
    [("high", "high", True), ("high", "", True), ("medium", "medium", False), ("medium", "low", True),
     ("medium", "", True), ("low", "medium", False), ("medium", "high", False)],
)  # fmt: skip
def test_what_sounds_through_a_silence(priority, silenced, breaks):
    assert breaks_silence(priority=priority, silenced=silenced) is breaks


def raise_alarm(device_id: str, priority: AlarmPriority, kind: str):
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        return alarm_raise(device=device, type=kind, priority=priority, source=AlarmSource.DEVICE)


def test_a_new_high_alarm_breaks_the_silence_and_a_same_priority_one_does_not():
    ward = make_ward("u1")
    make_device("U_PUMP", ward=ward)
    nurse = make_user("u-nurse", ward=ward)
    raise_alarm("U_PUMP", AlarmPriority.MEDIUM, "low_battery")
    silence = ward_silence(ward=ward, user=nurse, seconds=60, reason="attending")
    assert silence.priority == "medium"
    raise_alarm("U_PUMP", AlarmPriority.MEDIUM, "near_end")
    silence.refresh_from_db()
    assert silence.is_active(), "a medium alarm broke a silence made while a medium one sounded"
    alarm = raise_alarm("U_PUMP", AlarmPriority.HIGH, "occlusion")
    silence.refresh_from_db()
    assert silence.end_reason == SilenceEnd.BROKEN and silence.broken_by == alarm and not silence.is_active()


def test_a_new_silence_replaces_the_running_one_and_ending_is_audited():
    ward = make_ward("u2")
    nurse, other = make_user("u2-a", ward=ward), make_user("u2-b", ward=ward)
    first = ward_silence(ward=ward, user=nurse, seconds=60)
    second = ward_silence(ward=ward, user=other, seconds=30)
    first.refresh_from_db()
    assert first.end_reason == SilenceEnd.RENEWED and first.ended_by == other
    assert ward_silence_end(ward=ward, user=nurse) == second
    second.refresh_from_db()
    assert second.end_reason == SilenceEnd.ENDED and second.ended_by == nurse
    assert ward_silence_end(ward=ward, user=nurse) is None


def test_a_silence_that_ran_out_is_closed_when_the_next_begins():
    ward = make_ward("u3")
    nurse = make_user("u3-a", ward=ward)
    earlier = timezone.now() - timedelta(minutes=10)
    old = ward_silence(ward=ward, user=nurse, seconds=60, now=earlier)
    ward_silence(ward=ward, user=nurse, seconds=60)
    old.refresh_from_db()
    assert old.end_reason == "" and old.ended_at == old.until, "a silence that ran out is not 'renewed'"
    assert WardSilence.objects.filter(ended_at__isnull=True).count() == 1


def test_a_medium_alarm_escalating_breaks_a_silence_begun_while_it_sounded(settings):
    """An escalation sounds through the silence whatever its priority (a reviewer's finding: a medium alarm's
    tier 1 left a silence begun while medium sounded on, so the escalated alarm was heard on no station)."""
    from devices.models import Alarm
    from devices.services.escalations import alarms_escalate

    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_MEDIUM_S": [300.0]}
    ward = make_ward("esc-silence")
    make_device("ESC_SIL", ward=ward)
    start = timezone.now()
    with transaction.atomic():
        alarm = alarm_raise(device=device_lock(device_id="ESC_SIL"), type="battery_low", priority=AlarmPriority.MEDIUM,
                            source=AlarmSource.DEVICE, now=start)  # fmt: skip
    silence = ward_silence(ward=ward, user=make_user("esc-nurse", ward=ward), seconds=120, reason="attending",
                           now=start + timedelta(seconds=290))  # fmt: skip
    assert alarms_escalate(now=start + timedelta(seconds=301)) == 1
    silence.refresh_from_db()
    assert Alarm.objects.get(pk=alarm.pk).escalation_level == 1
    assert silence.end_reason == SilenceEnd.BROKEN and silence.broken_by_id == alarm.pk, "the escalation is not heard"


def test_a_silence_reason_that_shows_nothing_is_stored_as_none_given():
    """A zero-width space alone passes strip(): the station and the audit would show a reason that reads blank."""
    ward = make_ward("quiet-reason")
    silence = ward_silence(ward=ward, user=make_user("zw-nurse", ward=ward), seconds=60, reason=" \u200b\ufeff ")
    assert silence.reason == ""
    assert ward_silence(ward=ward, user=make_user("zw-other", ward=ward), seconds=60, reason=" attending ").reason == (
        "attending"
    )


def test_a_silence_reason_reaches_the_stations_without_a_direction_override():
    """Review 39, finding 4: the reason, sent by any signed-in screen's `silence:ward`, was kept as typed; each
    station shows it inside its own words ("… by nurse (<reason>): 118 s left. A new high alarm sounds at once."), and
    an open U+202E read the time left and the promise after it reversed, on every screen of the ward."""
    ward = make_ward("icu")
    silence = ward_silence(ward=ward, user=make_user("nurse", ward=ward), seconds=120, reason="Attending\u202e")
    body = payload_to_wire(silence_body(ward.code, silence, now=timezone.now()))
    left_open = sorted(f"U+{ord(c):04X}" for c in body["reason"] or "" if c in BIDI_CONTROLS)
    assert not left_open, (
        f"the ward's silence reason {body['reason']!r} keeps {left_open}: each station's 'by nurse (…): 118 s left. A "
        "new high alarm sounds at once.' reads reversed after it"
    )
    assert body["reason"] == "Attending"
