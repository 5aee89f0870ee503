"""Deadlines stamped while the server's clock ran ahead, the clock then put right (an NTP step back: a host booted
with its clock an hour fast, a VM restored with its host's clock ahead). Review 29 brought the pumps' moments of
hearing back to now (`heard.heard_moments_pull_back`); every other moment written on the wrong clock stays an hour
ahead, and what is timed from it waits for the wrong clock's moment (review 48, time):

- an alarm raised then is not escalated until an hour and a tier later (nobody answered it, nobody is paged);
- an alarm acknowledged then is not reminded until an hour and its interval later;
- an alarm escalated then has its tier's webhook first tried an hour later (nobody outside the ward is paged);
- a Stop asked then stays under way (handed to the broker) for an hour (its `expiresAt`), no
  `command_not_carried_out` sending anyone to the pump, the monitor saying "sent" all that time;
- a ward's 2 min silence started then silences the ward's sounding alarms for an hour, and a station that subscribes
  is told "3720 s left" (`ward:silence`'s `remainingS`), though no silence lasts more than `WARD_SILENCE_MAX_S`.

The moments are written as the services write them, with the `now` the wrong clock gave (as `test_last_heard_still_to_
come.py` does); the judgements are housekeeping's own, on the clock put right, after the tick that brings moments of
hearing back.
"""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.services.deliveries import escalation_deliveries_due
from devices.services.escalations import alarms_escalate
from devices.services.publication import command_published
from devices.services.requests import infusion_request
from devices.services.silences import ward_silence
from devices.silence_selectors import ward_silences_current
from devices.states import AlarmPriority, AlarmSource, AlarmState, CommandKind, CommandState
from devices.ward_payloads import silence_body
from realtime.bridge.housekeeping import Housekeeping
from tests.factories import make_device, make_user, make_ward
from tests.support.ingest import started_order

pytestmark = pytest.mark.django_db

CONNECTED_LONG_AGO = timezone.now() - timedelta(hours=2)
AHEAD = timedelta(hours=1)


def put_right_and_tick(after_s: float) -> Housekeeping:
    """The clock put right: housekeeping's first tick (moments of hearing brought back), then one `after_s` later."""
    housekeeping = Housekeeping()
    housekeeping.tick(timezone.now(), connected_since=CONNECTED_LONG_AGO)
    housekeeping.tick(timezone.now() + timedelta(seconds=after_s), connected_since=CONNECTED_LONG_AGO)
    return housekeeping


def high_alarm_raised_ahead(device_id: str, *, earlier_s: float = 0.0) -> Alarm:
    """An occlusion raised on the clock an hour ahead (`earlier_s` before that clock's now)."""
    make_device(device_id, has_presence=True)
    with transaction.atomic():
        return alarm_raise(device=device_lock(device_id=device_id), type="occlusion", priority=AlarmPriority.HIGH,
                           source=AlarmSource.DEVICE, message="Line blocked",
                           now=timezone.now() + AHEAD - timedelta(seconds=earlier_s))  # fmt: skip


def test_an_alarm_raised_while_the_clock_ran_ahead_escalates_a_tier_after_the_clock_is_put_right(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_HIGH_S": [60.0], "ESCALATION_TIER_WEBHOOKS": []}
    alarm = high_alarm_raised_ahead("AHEAD_ESCALATE")
    put_right_and_tick(after_s=61)
    alarm.refresh_from_db()
    assert alarm.escalation_level == 1, (
        f"unacknowledged for over its tier's 60 s since the clock was put right, the occlusion is at tier "
        f"{alarm.escalation_level}: its tier is timed from {alarm.alerted_at:%H:%M:%S}, an hour on; nobody paged"
    )


def test_an_alarm_acknowledged_while_the_clock_ran_ahead_reminds_after_its_interval_once_the_clock_is_put_right():
    alarm = high_alarm_raised_ahead("AHEAD_REMIND")
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user("ahead-ack"), now=timezone.now() + AHEAD, alerts=alarm.alerts)
    put_right_and_tick(after_s=settings.PUMPSTREAM["ALARM_REMINDER_HIGH_S"] + 5)
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is None and alarm.alerts == 2, (
        f"still active {settings.PUMPSTREAM['ALARM_REMINDER_HIGH_S']:g} s after the clock was put right, the "
        f"acknowledged occlusion has not alerted again (alerts {alarm.alerts}, acknowledged at "
        f"{alarm.acknowledged_at:%H:%M:%S}, an hour on): its reminder waits for the wrong clock"
    )


def test_an_escalation_webhook_queued_while_the_clock_ran_ahead_is_posted_once_the_clock_is_put_right(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_HIGH_S": [60.0],
                           "ESCALATION_TIER_WEBHOOKS": ["http://127.0.0.1:9/page-the-charge-nurse"]}  # fmt: skip
    alarm = high_alarm_raised_ahead("AHEAD_WEBHOOK", earlier_s=61)
    assert alarms_escalate(now=timezone.now() + AHEAD) == 1  # tier 1, on the wrong clock
    due = escalation_deliveries_due(now=timezone.now())  # the clock put right: the sender asks what is due
    queued = alarm.escalations.get()
    assert [delivery_id for delivery_id, _, _ in due] == [queued.pk], (
        f"once the clock is put right, the tier-1 page of the unanswered occlusion is not due: its first try waits "
        f"for {queued.next_try_at:%H:%M:%S}, an hour on"
    )


def test_a_stop_asked_while_the_clock_ran_ahead_ends_by_its_deadline_once_the_clock_is_put_right():
    make_device("AHEAD_STOP", has_presence=True)
    session = started_order("AHEAD_STOP", drug="Heparin")
    ahead = timezone.now() + AHEAD
    stop = infusion_request(device_id="AHEAD_STOP", kind=CommandKind.STOP_INFUSION, infusion_id=session.infusion_id,
                            user=make_user("ahead-stop"), now=ahead)  # fmt: skip
    command_published(command=stop, now=ahead)  # the broker took it; the pump never acts on it
    put_right_and_tick(after_s=settings.PUMPSTREAM["COMMAND_EXPIRY_S"] + 5)
    stop.refresh_from_db()
    alarmed = Alarm.objects.filter(device__device_id="AHEAD_STOP", type="command_not_carried_out",
                                   state=AlarmState.ACTIVE).exists()  # fmt: skip
    assert stop.state == CommandState.FAILED and alarmed, (
        f"{settings.PUMPSTREAM['COMMAND_EXPIRY_S']:g} s after the clock was put right, the Stop the pump never acted "
        f"on is {stop.state} (deadline {stop.expires_at:%H:%M:%S}, an hour on) and command_not_carried_out raised: "
        f"{alarmed}; the monitor says it is on its way"
    )


def test_a_ward_silence_started_while_the_clock_ran_ahead_lasts_no_longer_than_a_silence_may():
    ward = make_ward("aheadsil")
    make_device("AHEAD_SIL", ward=ward, has_presence=True)
    ward_silence(ward=ward, user=make_user("ahead-sil", ward=ward), seconds=120, reason="Round",
                 now=timezone.now() + AHEAD)  # fmt: skip
    put_right_and_tick(after_s=1)
    most = settings.PUMPSTREAM["WARD_SILENCE_MAX_S"]
    now = timezone.now()
    told = silence_body("aheadsil", ward_silences_current(now=now).get("aheadsil"), now=now).remainingS or 0
    later = ward_silences_current(now=now + timedelta(seconds=most + 1))
    assert told <= most and "aheadsil" not in later, (
        f"a station subscribing once the clock is put right is told the ward is silenced {told:g} s "
        f"more, and {most + 1:g} s later the silence is still on: {'aheadsil' in later} (at most {most:g} s)"
    )
