"""A ward silence renewed while a high alarm's transaction is in flight never silences that alarm unheard.

Review 3, suspicion (d), confirmed on PostgreSQL (`-p tests.support.postgres`): `ward_silence` took the ward's lock,
the alarm's `ward_silence_break` only the pump's. A renewal in flight closed silence S1 and opened S2, its priority
read without the alarm (not committed yet); the alarm read S1 as still open, waited for its row, and then broke
S1 (already renewed: its audit now said "broken") while S2 stayed on and silenced the new high alarm, never heard.
The break now shares the ward's row lock: it waits for the renewal and breaks S2. On SQLite the IMMEDIATE
transactions are serial and the test passes either way.
"""

import threading

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from devices.models import Alarm, WardSilence
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.silences import ward_silence
from devices.states import AlarmPriority, AlarmSource, SilenceEnd
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_renewal_in_flight_does_not_silence_a_high_alarm_raised_meanwhile():
    ward = make_ward("race")
    nurse = make_user("race-nurse", ward=ward)
    make_device("RACE_PUMP", ward=ward)
    first = ward_silence(ward=ward, user=nurse, seconds=120)
    outcome: dict = {}

    def raise_high_alarm() -> None:
        try:
            with transaction.atomic():
                outcome["alarm"] = alarm_raise(device=device_lock(device_id="RACE_PUMP"), type="occlusion",
                                               priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE,
                                               message="occlusion")  # fmt: skip
        finally:
            connections.close_all()

    alarm_thread = threading.Thread(target=raise_high_alarm)
    with transaction.atomic():  # the renewal, in flight: S1 closed, S2 open, neither committed
        renewed = ward_silence(ward=ward, user=nurse, seconds=120)
        alarm_thread.start()
        alarm_thread.join(timeout=1.0)  # on PostgreSQL it waits (for S1's row, or the ward's lock) until we commit
    alarm_thread.join(timeout=30)
    assert not alarm_thread.is_alive() and "alarm" in outcome, "the alarm's transaction never finished"
    alarm = Alarm.objects.get(pk=outcome["alarm"].pk)
    on = WardSilence.objects.filter(ward=ward, ended_at__isnull=True, until__gt=timezone.now()).first()
    assert on is None, (
        f"the high alarm raised during the renewal is silenced unheard by silence {on and on.pk} "
        f"(recorded priority {on and on.priority!r}; {connection.vendor})"
    )
    renewed.refresh_from_db()
    assert (renewed.end_reason, renewed.broken_by_id) == (SilenceEnd.BROKEN, alarm.pk)
    first.refresh_from_db()
    assert first.end_reason == SilenceEnd.RENEWED, f"the renewed silence's audit now says {first.end_reason!r}"
