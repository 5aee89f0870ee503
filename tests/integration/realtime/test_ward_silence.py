"""`silence:ward` (contract v1.1): one station silences the ward's alarm sound for every screen of the ward.

Real parts: real Daphne, the real bridge and Mosquitto (a pump's alarm breaks the silence), real
python-socketio clients as the stations.
"""

import time
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from devices.models import Device, WardSilence
from devices.services.accounts import service_account_create
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.services.registration import pump_registration_save
from devices.states import AlarmPriority, AlarmSource, SilenceEnd
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import PumpClient, wait_until
from tests.support.sio import StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ward():
    """Ward s1 with two stations' nurses and pumps (one per test: Daphne remembers each pump's seq)."""
    s1 = make_ward("s1")
    for number in range(1, 4):
        make_device(f"SIL_PUMP_{number}", ward=s1, bed=str(number))
    make_user("s1-nurse-a", ward=s1)
    make_user("s1-nurse-b", ward=s1)
    s2 = make_ward("s2")
    make_device("SIL_S2_PUMP", ward=s2)
    make_user("s2-nurse", ward=s2)
    return s1


def station(url: str, username: str, clients: list, ward: str = "s1") -> StreamClient:
    """A station: a nurse's Socket.IO client subscribed to a ward feed."""
    user = get_user_model().objects.get(username=username)
    client = StreamClient(url, cookie=session_cookie(user)).connect()
    clients.append(client)
    client.emit(events.SUBSCRIBE_WARD, {"ward": ward})
    client.events.wait_for(lambda e, d: e in (events.WARD_SUMMARY, events.ERROR))
    return client


def ask_silence(client: StreamClient, **fields) -> None:
    """`silence:ward` for s1 as a station asks it: with the alarms it shows (`seen`, v1.2)."""
    client.emit(events.SILENCE_WARD, {"ward": "s1", **fields, "seen": client.events.alarms_shown()})


def silence_event(client: StreamClient, predicate, *, timeout: float = 5.0, start: int = 0) -> dict:
    return client.events.wait_for(lambda e, d: e == events.WARD_SILENCE and predicate(d), timeout=timeout,
                                  start=start)  # fmt: skip


def test_one_station_silences_every_station_of_the_ward(daphne_server, ward, clients):
    a = station(daphne_server.url, "s1-nurse-a", clients)
    b = station(daphne_server.url, "s1-nurse-b", clients)
    ask_silence(a, seconds=60, reason="Attending bed 2")
    seen = silence_event(b, lambda d: d["active"])
    assert seen["ward"] == "s1" and seen["by"] == "s1-nurse-a" and seen["reason"] == "Attending bed 2", seen
    assert 55 <= seen["remainingS"] <= 60, seen
    silence = WardSilence.objects.get(ward=ward)
    assert silence.started_by.username == "s1-nurse-a" and silence.reason == "Attending bed 2"
    assert 59 <= (silence.until - silence.started_at).total_seconds() <= 60

    late = station(daphne_server.url, "s1-nurse-b", clients)  # a screen opened now learns of it at once
    assert silence_event(late, lambda d: d["active"])["by"] == "s1-nurse-a"

    start = len(a.events.items)
    b.emit(events.SILENCE_WARD, {"ward": "s1", "seconds": 0})  # staff can end it: the sound is back everywhere
    ended = silence_event(a, lambda d: not d["active"], start=start)
    assert ended["ended"]["reason"] == "ended" and ended["ended"]["by"] == "s1-nurse-b", ended
    silence.refresh_from_db()
    assert silence.end_reason == SilenceEnd.ENDED and silence.ended_by.username == "s1-nurse-b"

    # a station that was away when it ended (its socket lost) subscribes again: it is told the silence is over
    back = station(daphne_server.url, "s1-nurse-a", clients)
    told = silence_event(back, lambda d: d["ward"] == "s1")
    assert not told["active"] and told["ended"]["reason"] == "ended", f"a resubscribed station was not told: {told}"


def test_a_silence_is_bounded(daphne_server, ward, clients):
    a = station(daphne_server.url, "s1-nurse-a", clients)
    ask_silence(a, seconds=3600)
    refused = a.events.wait_for(lambda e, d: e == events.ERROR)
    assert refused["message"] == "A silence lasts 1 to 120 s", refused
    ask_silence(a)  # no length: the default, 2 min
    assert silence_event(a, lambda d: d["active"])["remainingS"] > 115
    silence = WardSilence.objects.get()
    assert (silence.until - silence.started_at).total_seconds() == 120, "the default silence is 2 min"


def test_a_higher_priority_alarm_breaks_the_silence(daphne_server, realtime_broker, realtime_bridge, ward,
                                                     clients):  # fmt: skip
    a = station(daphne_server.url, "s1-nurse-a", clients)
    b = station(daphne_server.url, "s1-nurse-b", clients)
    pump = PumpClient(realtime_broker.url, "SIL_PUMP_1")
    try:
        pump.publish("error", {"type": "low_battery", "severity": "warning", "message": "Battery low"})
        for client in (a, b):  # a silences what its screen shows
            client.events.wait_for(lambda e, d: e == events.WARD_ALARM and d["alarm"]["priority"] == "medium")
        ask_silence(a, seconds=60)
        silence_event(b, lambda d: d["active"])
        silenced_at = len(b.events.items)  # before it: the ward's state when b subscribed (no silence)
        assert WardSilence.objects.get().priority == "medium", "the silence records what was sounding"

        pump.publish("error", {"type": "near_end", "severity": "warning", "message": "Near end"})
        b.events.wait_for(lambda e, d: e == events.WARD_ALARM and d["alarm"]["key"] == "near_end")
        start = len(b.events.items)
        pump.publish("error", {"type": "occlusion", "severity": "high", "message": "Line blocked"})
        broken = silence_event(b, lambda d: not d["active"], start=start)
        assert broken["ended"]["reason"] == "broken", broken
        assert broken["ended"]["brokenBy"]["deviceId"] == "SIL_PUMP_1", broken
        assert broken["ended"]["brokenBy"]["priority"] == "high", broken
        since = [d for e, d in b.events.items[silenced_at:] if e == events.WARD_SILENCE]
        medium_breaks = [d for d in since[:-1] if not d["active"]]
        assert medium_breaks == [], f"a medium alarm broke a silence started during a medium one: {medium_breaks}"
        wait_until(lambda: WardSilence.objects.get().end_reason == SilenceEnd.BROKEN, message="not recorded broken")
    finally:
        pump.close()


def test_a_nurse_of_another_ward_cannot_silence_it(daphne_server, ward, clients):
    a = station(daphne_server.url, "s1-nurse-a", clients)
    intruder = station(daphne_server.url, "s2-nurse", clients, ward="s2")
    ask_silence(intruder, seconds=60)
    refused = intruder.events.wait_for(lambda e, d: e == events.ERROR)
    assert refused["message"] == "Not permitted to silence this ward", refused
    _, token = service_account_create(name="paging", wards=[ward])
    integration = StreamClient(daphne_server.url, token=token).connect()
    clients.append(integration)
    ask_silence(integration, seconds=60)
    refused = integration.events.wait_for(lambda e, d: e == events.ERROR)
    assert refused["message"] == "Not permitted to silence this ward", refused
    assert not WardSilence.objects.exists(), "a silence was recorded for a refused request"
    # each station was told its ward's state when it subscribed (no silence), and nothing since
    for client, code in ((a, "s1"), (intruder, "s2")):
        told = client.events.named(events.WARD_SILENCE)
        assert [(d["ward"], d["active"], d["ended"]) for d in told] == [(code, False, None)], (
            f"the ward's station saw a silence nobody may make: {told}"
        )


def test_a_silence_asked_long_ago_is_refused(daphne_server, ward, clients):
    """Review 32, finding 2: a station's request held in a network that stalled is delivered once it recovers (TCP),
    long after the press; by then the screen said it would silence only itself. `askedAt` (when the person pressed,
    on the server's clock as the page knows it) more than a few seconds ago is refused, and nothing is recorded."""
    a = station(daphne_server.url, "s1-nurse-a", clients)
    b = station(daphne_server.url, "s1-nurse-b", clients)
    long_ago = (timezone.now() - timedelta(seconds=12)).isoformat()
    ask_silence(a, reason="Attending the alarm", askedAt=long_ago)
    refused = a.events.wait_for(lambda e, d: e == events.ERROR)
    assert refused["request"] == events.SILENCE_WARD and "nothing silenced" in refused["message"], refused
    ask_silence(a, askedAt="yesterday")
    refused = a.events.wait_for(lambda e, d: e == events.ERROR and "askedAt" in d["message"])
    assert not WardSilence.objects.exists(), "a silence asked 12 s ago was applied to every screen of the ward"

    ask_silence(a, askedAt=timezone.now().isoformat())  # asked just now: applied
    assert silence_event(b, lambda d: d["active"])["by"] == "s1-nurse-a"


def test_a_silence_pressed_as_a_new_alarm_came_is_refused_until_her_screen_shows_it(daphne_server, ward, clients):
    """A high alarm raised between the station's last render and her press (committed on the server, not yet on her
    screen) was covered by the silence that followed: she silenced, on every screen of the ward, an alarm she never
    saw. The request names what her screen showed (`seen`); the server refuses the silence while a sounding alarm it
    leaves out would sound through it (`alarm_unseen`), records nothing and silences no screen. Asked again with the
    alarm shown, it is made."""
    a = station(daphne_server.url, "s1-nurse-a", clients)
    b = station(daphne_server.url, "s1-nurse-b", clients)
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id="SIL_PUMP_1"), type="occlusion", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip
    a.events.wait_for(lambda e, d: e == events.WARD_ALARM and d["deviceId"] == "SIL_PUMP_1")
    shown = a.events.alarms_shown()  # her screen's last render: the occlusion
    with transaction.atomic():  # then, as she presses, an air-in-line on bed 2 reaches the server
        air = alarm_raise(device=device_lock(device_id="SIL_PUMP_2"), type="air_in_line", priority=AlarmPriority.HIGH,
                          source=AlarmSource.DEVICE, message="Air in line")  # fmt: skip
    start = len(a.events.items)
    a.emit(events.SILENCE_WARD, {"ward": "s1", "reason": "Attending the alarm", "askedAt": timezone.now().isoformat(),
                                 "seen": shown})  # fmt: skip
    refused = a.events.wait_for(lambda e, d: e == events.ERROR, start=start)
    unseen = "A new alarm came as you pressed: look at it, then silence again"
    assert refused == {"message": unseen, "request": events.SILENCE_WARD, "requestWard": "s1",
                       "code": "alarm_unseen"}, refused  # fmt: skip
    assert not WardSilence.objects.exists(), "the ward was silenced over an alarm the nurse never saw"
    time.sleep(0.5)  # a ward:silence would have gone to b with the refusal
    assert not any(d["active"] for d in b.events.named(events.WARD_SILENCE)), "b's screen was silenced"

    a.events.wait_for(lambda e, d: e == events.WARD_ALARM and d["alarm"]["id"] == air.pk, start=start)
    ask_silence(a, reason="Attending the alarm", askedAt=timezone.now().isoformat())  # she looked: both shown
    assert silence_event(b, lambda d: d["active"])["by"] == "s1-nurse-a"


def test_a_page_that_does_not_say_what_it_showed_is_refused_and_asked_to_reload(daphne_server, ward, clients):
    """A page older than `seen` (a station left open across an upgrade) is refused in words its own refusal line
    shows (`seen_required`): not judged as if it had seen everything, its press is not made."""
    a = station(daphne_server.url, "s1-nurse-a", clients)
    a.emit(events.SILENCE_WARD, {"ward": "s1", "reason": "Attending the alarm"})
    refused = a.events.wait_for(lambda e, d: e == events.ERROR)
    assert refused["code"] == "seen_required" and "Reload the page" in refused["message"], refused
    assert not WardSilence.objects.exists()
    assert a.client.connected and not a.disconnected.is_set(), "an old page is not an abusive client"


def test_a_silence_ends_by_itself_on_every_station(daphne_server, ward, clients):
    a = station(daphne_server.url, "s1-nurse-a", clients)
    b = station(daphne_server.url, "s1-nurse-b", clients)
    ask_silence(a, seconds=2)
    silence_event(b, lambda d: d["active"])
    started, start = time.monotonic(), len(b.events.items)
    ended = silence_event(b, lambda d: not d["active"], timeout=5, start=start)
    assert ended["ended"]["reason"] == "expired", ended
    waited = time.monotonic() - started
    assert 1.0 <= waited, f"the silence ended after {waited:.1f} s, before its 2 s"


def test_a_pump_moved_in_with_a_high_alarm_sounds_through_the_silence_and_leaves_its_old_ward(
    daphne_server, ward, clients
):
    """Review 6 (B8): the admin moves SIL_S2_PUMP, its occlusion unacknowledged, from s2 into the silenced s1. The s1
    stations get the pump with its alarm and the silence's end (broken by it) at once; the s2 station drops the pump
    and hears no more of its alarms (a nurse of s1 acknowledging it is s1's news, not s2's)."""
    with transaction.atomic():
        device = device_lock(device_id="SIL_S2_PUMP")
        occlusion = alarm_raise(device=device, type="occlusion", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE)
    receiving = station(daphne_server.url, "s1-nurse-a", clients)
    old = station(daphne_server.url, "s2-nurse", clients, ward="s2")
    assert "SIL_S2_PUMP" in {p["deviceId"] for p in old.events.named(events.WARD_SUMMARY)[0]["pumps"]}
    ask_silence(receiving, seconds=120, reason="Quiet night")
    silence_event(receiving, lambda d: d["active"])
    start, old_start = len(receiving.events.items), len(old.events.items)

    moved = Device.objects.get(device_id="SIL_S2_PUMP")
    moved.ward = ward
    moved_at = pump_registration_save(device=moved, fields=["ward"]).event_seq  # what the admin's change page does

    try:
        broken = silence_event(receiving, lambda d: not d["active"], timeout=10.0, start=start)
    except AssertionError:
        raise AssertionError("the s1 stations stay silenced with a HIGH occlusion, unacknowledged, on a pump now "
                             "theirs: nobody in s1 hears it until the silence runs out") from None  # fmt: skip
    assert broken["ended"]["reason"] == "broken" and broken["ended"]["brokenBy"]["alarmId"] == occlusion.pk, (
        f"the s1 stations stay silenced with a HIGH occlusion, unacknowledged, on a pump now theirs: {broken}"
    )
    joined = receiving.events.wait_for(
        lambda e, d: e == events.WARD_SUMMARY and any(p["deviceId"] == "SIL_S2_PUMP" for p in d["pumps"]),
        timeout=10.0, start=start,
    )  # fmt: skip
    pump = next(p for p in joined["pumps"] if p["deviceId"] == "SIL_S2_PUMP")
    assert [a["id"] for a in pump["alarms"]] == [occlusion.pk], f"the s1 station does not list the occlusion: {pump}"
    old.events.wait_for(lambda e, d: e == events.WARD_SUMMARY and "SIL_S2_PUMP" in d.get("left", []), timeout=10.0,
                        start=old_start)  # fmt: skip

    alarm_acknowledge(alarm_id=occlusion.pk, user=get_user_model().objects.get(username="s1-nurse-a"), alerts=1)
    receiving.events.wait_for(lambda e, d: e == events.WARD_ALARM and d["alarm"]["acknowledged"], start=start)
    time.sleep(0.5)  # the same fan-out round: a copy to s2 would have come with it
    stray = [d for e, d in old.events.items if e == events.WARD_ALARM and d["seq"] > moved_at]
    assert stray == [], f"the s2 station still receives the moved pump's alarm changes: {stray}"
