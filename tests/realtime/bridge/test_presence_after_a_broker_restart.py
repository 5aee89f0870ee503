"""A pump's presence is vouched for only by a broker holding its Last Will (`broker_start.py`, review 34 finding 4):
a pump online by its presence, last heard before the broker now running started and not since its reconnect grace,
reads stale; a retained copy handed over on a subscription makes no pump look just heard. The broker's side:
tests/integration/reliability/test_presence_through_a_broker_crash.py."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Device
from devices.states import Connectivity, Presence
from realtime.bridge.broker_start import broker_started_at
from realtime.bridge.housekeeping import Housekeeping
from tests.factories import make_device
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db


def test_the_brokers_start_is_read_from_its_uptime_at_the_earliest_it_can_have_been():
    received = timezone.now()
    assert broker_started_at(b"1234 seconds", received_at=received) == received - timedelta(seconds=1235)
    assert broker_started_at(b"7", received_at=received) == received - timedelta(seconds=8)  # a bare count
    assert [broker_started_at(payload, received_at=received) for payload in (b"", b"soon", b"-3 seconds", b"9" * 40)
            ] == [None] * 4, "only a count of seconds tells a start"  # fmt: skip


def pumps_online_before_and_after(started) -> None:
    make_device("BEFORE", has_presence=True, presence=Presence.ONLINE, last_seen_at=started - timedelta(seconds=30))
    make_device("AFTER", has_presence=True, presence=Presence.ONLINE, last_seen_at=started + timedelta(seconds=1))


def connectivity(device_id: str, now) -> str:
    return Device.objects.get(device_id=device_id).connectivity(now=now)


def test_a_pump_last_heard_before_the_broker_started_reads_stale_once_the_grace_has_passed(settings):
    grace = settings.PUMPSTREAM["RECONNECT_GRACE_S"]
    started = timezone.now() - timedelta(seconds=grace + 1)
    pumps_online_before_and_after(started)
    housekeeping = Housekeeping()
    housekeeping.broker_started = lambda: started
    seq_before = Device.objects.get(device_id="BEFORE").event_seq
    assert not housekeeping.presence_unvouched(started + timedelta(seconds=grace / 2)), "nothing within the grace"
    assert connectivity("BEFORE", timezone.now()) == Connectivity.ONLINE, "judged within the grace"
    housekeeping.presence_unvouched(timezone.now())
    now = timezone.now()
    assert (connectivity("BEFORE", now), connectivity("AFTER", now)) == (Connectivity.STALE, Connectivity.ONLINE), (
        "a pump last heard before the broker started must read stale, one heard since online"
    )
    assert Device.objects.get(device_id="BEFORE").event_seq == seq_before + 1, "its device:status must be sent once"


def test_nothing_is_unvouched_while_the_broker_tells_no_start_or_the_pumps_message_waits_in_the_bridge(settings):
    started = timezone.now() - timedelta(seconds=settings.PUMPSTREAM["RECONNECT_GRACE_S"] + 1)
    pumps_online_before_and_after(started)
    housekeeping = Housekeeping()
    housekeeping.presence_unvouched(timezone.now())
    assert connectivity("BEFORE", timezone.now()) == Connectivity.ONLINE, "no uptime read: presence as the pump said"
    housekeeping.broker_started = lambda: started
    housekeeping.waiting_since = lambda device_id: timezone.now() if device_id == "BEFORE" else None
    housekeeping.presence_unvouched(timezone.now())
    assert connectivity("BEFORE", timezone.now()) == Connectivity.ONLINE, "its waiting message may be its `online`"


def test_a_pump_unvouched_is_online_again_when_it_says_online_live(django_capture_on_commit_callbacks):
    make_device("BACK", has_presence=True, presence=Presence.UNKNOWN, last_seen_at=timezone.now() - timedelta(hours=1))
    ingest([report("BACK", "status", {"status": "online"})], django_capture_on_commit_callbacks)
    assert connectivity("BACK", timezone.now()) == Connectivity.ONLINE


def test_a_retained_copy_makes_no_pump_heard_before_look_just_heard(django_capture_on_commit_callbacks):
    heard = timezone.now() - timedelta(minutes=5)
    make_device("KEPT", has_presence=True, presence=Presence.UNKNOWN, last_seen_at=heard)
    ingest([report("KEPT", "status", {"status": "online", "batteryLevel": 40}, retain=True)],
           django_capture_on_commit_callbacks)  # fmt: skip
    pump = Device.objects.get(device_id="KEPT")
    assert (pump.last_seen_at, pump.battery_level) == (heard, 40), (
        "a retained copy is the broker's, of unknown age: its content applied, the pump not heard now"
    )


def test_a_retained_copy_of_a_pump_never_heard_is_its_first_contact(django_capture_on_commit_callbacks):
    make_device("FIRST", has_presence=True)
    copy = report("FIRST", "status", {"status": "online"}, retain=True)
    ingest([copy], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id="FIRST")
    assert (pump.connectivity(), pump.last_seen_at) == (Connectivity.ONLINE, copy.received_at), (
        "a pump that connected before the bridge started, idle since, must not read 'Never heard'"
    )
