"""The broker's retained `online`, handed over on a subscription, never sets a pump's presence back from `offline`
(review 44, F4): a Will the pump did not retain leaves its older `online` retained, handed back on every subscription
(a bridge restart, a reconnection). Only a live message brings the pump back. When the bridge cannot date the copy
(its broker session gone, or a QoS 0 copy, never queued for it), presence is not vouched for: it reads by its last
heard. The pumps' side, with a real broker and bridge: tests/clinical/test_presence_after_the_will.py."""

from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from django.conf import settings
from django.utils import timezone
from paho.mqtt.client import ConnectFlags
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from devices.models import Device, MessageReceipt
from devices.states import Connectivity, Presence
from realtime.bridge import link as link_module
from realtime.bridge.link import BrokerLink
from tests.factories import make_device
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db

PUMP = "WILL"
ONLINE = {"status": "online", "batteryLevel": 64}  # retained, no `seq`: presence is announced, not counted
WILL = {"status": "offline"}  # its Last Will, not retained


def status(body: dict, at_s: float, *, retain: bool = False, session_kept: bool = True, qos: int = 1):
    message = report(PUMP, "status", body, at_s, retain=retain)
    message.session_kept, message.qos = session_kept, qos
    return message


def switched_off(capture, online: dict = ONLINE) -> Device:
    """Said `online` (live, as the pump retained it), then its Will: offline, last heard at its `online`."""
    make_device(PUMP, has_presence=True)
    ingest([status(online, -60)], capture)
    ingest([status(WILL, -40)], capture)
    pump = Device.objects.get(device_id=PUMP)
    assert pump.connectivity() == Connectivity.OFFLINE
    return pump


def reading(now_s: float = 0.0) -> tuple[str, str]:
    pump = Device.objects.get(device_id=PUMP)
    return pump.presence, pump.connectivity(now=timezone.now() + timedelta(seconds=now_s))


def test_the_retained_online_from_before_the_will_leaves_a_switched_off_pump_offline(
    django_capture_on_commit_callbacks,
):
    before = switched_off(django_capture_on_commit_callbacks)
    ingest([status(ONLINE, 0, retain=True)], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id=PUMP)
    assert (pump.presence, pump.connectivity(), pump.last_seen_at) == (
        Presence.OFFLINE, Connectivity.OFFLINE, before.last_seen_at
    ), "the broker's retained `online` from before the Will made a switched-off pump online again"  # fmt: skip


def test_a_copy_with_seq_whose_receipt_was_pruned_leaves_it_offline(django_capture_on_commit_callbacks):
    """A pump that numbers its `online` is caught by its receipt while it is kept; `history_prune` deletes receipts
    past the retention, and a presence pump's retained `online` is as old as its last connection."""
    online = {**ONLINE, "bootId": "b1", "seq": 1}
    switched_off(django_capture_on_commit_callbacks, online)
    MessageReceipt.objects.filter(device__device_id=PUMP).delete()  # as `history_prune` does past the retention
    ingest([status(online, 0, retain=True)], django_capture_on_commit_callbacks)
    assert reading() == (Presence.OFFLINE, Connectivity.OFFLINE), "a pruned receipt let the old copy set it online"


def test_a_live_message_after_the_copy_brings_the_pump_back(django_capture_on_commit_callbacks):
    switched_off(django_capture_on_commit_callbacks)
    ingest([status(ONLINE, 0, retain=True)], django_capture_on_commit_callbacks)
    ingest([status(ONLINE, 1)], django_capture_on_commit_callbacks)  # it came back: its `online`, live
    assert reading() == (Presence.ONLINE, Connectivity.ONLINE)


def test_any_live_message_brings_a_pump_told_offline_back(django_capture_on_commit_callbacks):
    switched_off(django_capture_on_commit_callbacks)
    ingest([status(ONLINE, 0, retain=True)], django_capture_on_commit_callbacks)
    ingest([status({"status": "testing"}, 1)], django_capture_on_commit_callbacks)
    assert reading() == (Presence.ONLINE, Connectivity.ONLINE)


@pytest.mark.parametrize(("session_kept", "qos"), [(False, 1), (True, 0)], ids=["session-gone", "qos0-copy"])
def test_a_copy_the_bridge_cannot_date_leaves_presence_unvouched(django_capture_on_commit_callbacks, session_kept, qos):
    """Nothing the pump published while the bridge was away was queued for it: the copy may be its `online` from
    after the Will (it came back), or the one from before (it is dead). Neither "Online" (for good, if dead) nor
    "Offline" for ever (an idle pump with presence says nothing more): it reads stale a heartbeat timeout after it
    was last heard, until it is heard live."""
    before = switched_off(django_capture_on_commit_callbacks)
    ingest([status(ONLINE, 0, retain=True, session_kept=session_kept, qos=qos)], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id=PUMP)
    later = before.last_seen_at + timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 1)
    assert (pump.presence, pump.connectivity(now=later), pump.last_seen_at) == (
        Presence.UNKNOWN, Connectivity.STALE, before.last_seen_at
    ), "a copy of unknown age must leave the pump unvouched, read by its last heard"  # fmt: skip
    ingest([status(ONLINE, 1)], django_capture_on_commit_callbacks)
    assert reading() == (Presence.ONLINE, Connectivity.ONLINE), "heard live, it is online by its presence again"


def test_a_copy_never_vouches_again_for_a_pump_unvouched_after_a_broker_restart(django_capture_on_commit_callbacks):
    """Presence taken back to unknown (`pump_presence_unvouched`, review 34) stays so for a copy the stored digests do
    not recognise (another payload: a numbered `online` whose receipt was pruned)."""
    heard = timezone.now() - timedelta(minutes=5)
    make_device(PUMP, has_presence=True, presence=Presence.UNKNOWN, last_seen_at=heard)
    ingest([status({**ONLINE, "bootId": "b1", "seq": 7}, 0, retain=True)], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id=PUMP)
    assert (pump.presence, pump.connectivity(), pump.last_seen_at) == (Presence.UNKNOWN, Connectivity.STALE, heard)


def test_a_copy_leaves_an_online_pump_online(django_capture_on_commit_callbacks):
    make_device(PUMP, has_presence=True)
    ingest([status(ONLINE, -10)], django_capture_on_commit_callbacks)
    ingest([status({**ONLINE, "batteryLevel": 50}, 0, retain=True)], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id=PUMP)
    assert (pump.presence, pump.battery_level) == (Presence.ONLINE, 50), "the copy's content is applied"


def test_a_copy_is_a_pump_never_heards_first_contact_unless_a_will_said_it_went(django_capture_on_commit_callbacks):
    """A pump never heard that connected before the bridge started reads online by its copy (`docs/protocol.md`, "A
    pump registered while it is connected"); one whose first word was its Will is not brought back by the copy."""
    make_device(PUMP, has_presence=True)
    ingest([status(WILL, -40)], django_capture_on_commit_callbacks)
    ingest([status(ONLINE, 0, retain=True)], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id=PUMP)
    assert (pump.presence, pump.last_seen_at) == (Presence.OFFLINE, None), "a copy is no hearing of a pump gone"
    make_device("FRESH", has_presence=True)
    copy = report("FRESH", "status", ONLINE, retain=True)
    ingest([copy], django_capture_on_commit_callbacks)
    fresh = Device.objects.get(device_id="FRESH")
    assert (fresh.presence, fresh.connectivity(), fresh.last_seen_at) == (
        Presence.ONLINE, Connectivity.ONLINE, copy.received_at
    )  # fmt: skip


@pytest.mark.parametrize("session_present", [True, False])
def test_the_link_tells_each_message_whether_the_broker_kept_its_session(monkeypatch, session_present):
    """CONNACK's "session present": the bridge's session lasted (what pumps published at QoS 1 meanwhile was queued
    for it), or not (expired, another client id, a broker that lost its store)."""
    monkeypatch.setattr(link_module, "set_tcp_nodelay", lambda client: None)  # never connected: no socket
    received = []
    link = BrokerLink(on_inbound=received.append, on_puback=lambda mid: None)
    link.client.subscribe = lambda *args, **kwargs: (mqtt.MQTT_ERR_SUCCESS, 1)
    link._on_connect(link.client, None, ConnectFlags(session_present=session_present),
                     ReasonCode(PacketTypes.CONNACK, "Success"), None)  # fmt: skip
    message = mqtt.MQTTMessage(mid=1, topic=b"devices/WILL/status")
    message.payload, message.retain, message.qos = b'{"status":"online"}', 1, 1
    link._on_message(link.client, None, message)
    assert [(m.retain, m.session_kept) for m in received] == [(True, session_present)]
