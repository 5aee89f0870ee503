"""Retained copies the broker hands back after a bridge reconnect, for pumps that send no `seq` (only the stored
digests tell a replay): the broker keeps the last payload a pump RETAINED, which is not the last one applied when
news followed it, so a retained copy is a replay of the payload or the presence status last applied on its topic.
Live messages arrive with retain 0 (no retain-as-published), so these tests send them so."""

import pytest

from devices.models import Alarm, Device
from devices.states import AlarmState, Presence
from realtime.bridge.ingest import DUPLICATE
from tests.factories import make_device
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

PUMP = "F8"
ONLINE = {"deviceId": PUMP, "status": "online", "firmwareVersion": "3.1"}  # published retained: presence
LAST_WILL = {"deviceId": PUMP, "status": "offline"}  # its Last Will, retained: the same bytes every time


def status(body: dict, at_s: float, *, retain: bool = False):
    return report(PUMP, "status", body, at_s, retain=retain)


def degraded_active() -> bool:
    return Alarm.objects.filter(device__device_id=PUMP, type="device_degraded", state=AlarmState.ACTIVE).exists()


def test_a_retained_online_handed_back_after_a_reconnect_does_not_clear_a_degraded_pump(
    django_capture_on_commit_callbacks,
):
    """Also the documented choice for the one case no digest can tell: the pump published the same `online`
    again while the bridge was away without a session. Taken for a replay, `degraded` stays shown until the
    pump's next report: an alarm left standing, never one hidden."""
    make_device(PUMP, has_presence=True)
    ingest([status(ONLINE, 0)], django_capture_on_commit_callbacks)  # published retained, delivered live
    ingest([status({"deviceId": PUMP, "status": "degraded"}, 1)], django_capture_on_commit_callbacks)
    assert degraded_active(), "a degraded report must raise device_degraded"
    ingest([status(ONLINE, 60, retain=True)], django_capture_on_commit_callbacks)  # the broker's retained copy
    device = Device.objects.get(device_id=PUMP)
    assert degraded_active() and device.reported_status == "degraded", (
        f"the broker's retained copy of the pump's old `online` was applied as news after a reconnect: the pump "
        f"shows '{device.reported_status}' and its device_degraded alarm active={degraded_active()}"
    )


def test_a_last_will_missed_while_away_is_news_though_an_earlier_one_had_the_same_bytes(
    django_capture_on_commit_callbacks,
):
    """The pump dropped (Last Will), came back (`online`), and dropped again while the bridge was away without a
    session: the broker's retained Last Will is news, or a dead pump would show online."""
    make_device(PUMP, has_presence=True)
    for at_s, body in enumerate([ONLINE, LAST_WILL, ONLINE]):
        ingest([status(body, at_s)], django_capture_on_commit_callbacks)
    ingest([status(LAST_WILL, 60, retain=True)], django_capture_on_commit_callbacks)
    presence = Device.objects.get(device_id=PUMP).presence
    assert presence == Presence.OFFLINE, f"the pump's Last Will handed back after a reconnect was ignored: {presence}"


def test_an_alarm_raised_again_while_away_is_news_on_a_topic_whose_every_message_is_retained(
    django_capture_on_commit_callbacks,
):
    """The original firmware retains every `error` (at QoS 0, so only the retained copy survives the bridge's
    absence): a retained alarm that is not the payload last applied is raised, even if it was applied before."""
    make_device(PUMP)
    occlusion = {"type": "occlusion", "severity": "high", "errorCode": "E7"}
    ingest([report(PUMP, "error", occlusion, 0)], django_capture_on_commit_callbacks)
    ingest([report(PUMP, "error", {"type": "occlusion_cleared"}, 1)], django_capture_on_commit_callbacks)
    ingest([report(PUMP, "error", occlusion, 60, retain=True)], django_capture_on_commit_callbacks)
    active = Alarm.objects.filter(device__device_id=PUMP, type="occlusion", state=AlarmState.ACTIVE).exists()
    assert active, "an alarm the pump raised again while the bridge was away was taken for a replay"


def test_a_retained_copy_of_the_presence_status_last_applied_is_still_a_replay(django_capture_on_commit_callbacks):
    make_device(PUMP, has_presence=True)
    ingest([status(ONLINE, 0)], django_capture_on_commit_callbacks)
    outcomes = ingest([status(ONLINE, 60, retain=True)], django_capture_on_commit_callbacks)
    assert outcomes[DUPLICATE] == 1, f"a retained copy of the last payload applied was applied again: {outcomes}"
