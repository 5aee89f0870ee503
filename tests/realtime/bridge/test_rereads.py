"""A pump registered after the bridge turned its messages away (`rereads.py`): remembered with when it was last heard
itself, its retained status asked of the broker again once registered, and that copy applied as heard then, never
as the pump heard now (review 30, finding 2). The broker's side: tests/integration/bridge/
test_pump_registered_while_connected.py."""

from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from django.conf import settings
from django.utils import timezone
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.models import Device
from devices.states import Connectivity, Presence
from realtime.bridge.ingest import InboundMessage
from realtime.bridge.link import REREAD_SUBSCRIPTION, BrokerLink
from realtime.bridge.rereads import CHECK_EVERY_S, LIMIT, WINDOW_S, Heard, Rereads
from tests.factories import make_device
from tests.support.ingest import ingest, report

pytestmark = pytest.mark.django_db
ONLINE = {"status": "online", "firmwareVersion": "3.1"}


class AskingLink:
    """Records the pumps whose retained statuses were asked for again."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def statuses_reread(self, device_id: str) -> None:
        self.asked.append(device_id)


def turned_away(capture, device_id: str, body: dict, *, at_s: float = 0.0, retain: bool = False, rereads=None):
    """The message ingested while the pump is not registered, then remembered as the worker does after the commit."""
    message = report(device_id, "status", body, at_s, retain=retain)
    assert ingest([message], capture)["rejected"] == 1
    rereads = rereads or Rereads()
    rereads.remember([message])
    return rereads, message


def test_a_pump_turned_away_is_read_again_once_registered_and_shown_heard_when_it_was(
    django_capture_on_commit_callbacks,
):  # fmt: skip
    rereads, first = turned_away(django_capture_on_commit_callbacks, "LATE", ONLINE, at_s=-300)
    link = AskingLink()
    rereads.check(link, clock=0.0)
    assert link.asked == [], "a pump not registered was asked for again"
    make_device("LATE", has_presence=True)
    rereads.check(link, clock=CHECK_EVERY_S / 2)
    assert link.asked == [], "looked up again before CHECK_EVERY_S"
    rereads.check(link, clock=CHECK_EVERY_S)
    assert link.asked == ["LATE"]
    copy = report("LATE", "status", ONLINE, retain=True)
    rereads.mark([copy])
    ingest([copy], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id="LATE")
    assert (pump.connectivity(), pump.presence, pump.last_seen_at) == (Connectivity.ONLINE, Presence.ONLINE,
                                                                        first.received_at), (
        "the broker's retained copy, read again, must show the pump online as last heard when it was turned away"
    )  # fmt: skip
    rereads.check(link, clock=2 * CHECK_EVERY_S)
    assert link.asked == ["LATE"], "asked for again once more"


def test_the_original_firmware_read_again_reads_stale_as_long_ago_as_it_was_heard(django_capture_on_commit_callbacks):
    message = report("OLD_FW", "status", {"status": "healthy"}, -600, topic="device/OLD_FW/status")
    ingest([message], django_capture_on_commit_callbacks)
    rereads = Rereads()
    rereads.remember([message])
    make_device("OLD_FW", has_presence=False)
    rereads.check(AskingLink(), clock=0.0)
    copy = report("OLD_FW", "status", {"status": "healthy"}, retain=True, topic="device/OLD_FW/status")
    rereads.mark([copy])
    ingest([copy], django_capture_on_commit_callbacks)
    assert Device.objects.get(device_id="OLD_FW").connectivity() == Connectivity.STALE


def test_only_the_pump_itself_live_is_a_hearing(django_capture_on_commit_callbacks):
    """A retained copy the broker handed over, or an `offline` (the broker speaking for the pump), is no hearing:
    the pump is remembered to be read again, heard when its last live message of its own came (None: never)."""
    capture = django_capture_on_commit_callbacks
    rereads, live = turned_away(capture, "P1", ONLINE, at_s=-60)
    turned_away(capture, "P1", {"status": "offline"}, at_s=-30, rereads=rereads)
    turned_away(capture, "P1", ONLINE, at_s=-10, retain=True, rereads=rereads)
    turned_away(capture, "P2", ONLINE, retain=True, rereads=rereads)
    assert {device_id: heard.at for device_id, heard in rereads.turned_away.items()} == {"P1": live.received_at,
                                                                                         "P2": None}  # fmt: skip


def test_an_offline_after_the_last_live_message_is_remembered_until_the_pump_is_heard_again(
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """Its Last Will (not retained) or any `offline` after the pump last spoke: the server heard it go away. A live
    message after it says it is back; one received before it (a later batch) does not."""
    capture = django_capture_on_commit_callbacks
    rereads, _ = turned_away(capture, "P1", ONLINE, at_s=-60)
    _, will = turned_away(capture, "P1", {"status": "offline"}, at_s=-30, rereads=rereads)
    turned_away(capture, "P1", ONLINE, at_s=-10, retain=True, rereads=rereads)  # the broker's copy: no hearing
    _, before = turned_away(capture, "P1", {"status": "idle"}, at_s=-40, rereads=rereads)  # spoke before the Will
    assert rereads.turned_away["P1"] == Heard(before.received_at, will.received_at, will.generation)
    _, back = turned_away(capture, "P1", ONLINE, at_s=-5, rereads=rereads)
    assert rereads.turned_away["P1"] == Heard(back.received_at, None), "heard live after its Will, still gone"
    turned_away(capture, "P2", {"status": "offline"}, at_s=-5, rereads=rereads)
    assert rereads.turned_away["P2"].gone_at is not None and rereads.turned_away["P2"].at is None


def died_before_it_was_registered(
    capture, device_id: str, *, generation: int = 0
) -> tuple[InboundMessage, InboundMessage]:  # fmt: skip
    """The pump connected (`online`, retained), died (its Will, `offline`, not retained), then was registered: its
    retained `online`, read again (on the link's connection `generation`: the Will's, 0, unless it reconnected),
    marked as the worker marks it. Returns its first, live `online`, and the copy."""
    rereads, live = turned_away(capture, device_id, ONLINE, at_s=-60)
    turned_away(capture, device_id, {"status": "offline"}, at_s=-45, rereads=rereads)
    make_device(device_id, has_presence=True)
    rereads.check(AskingLink(), clock=0.0)
    copy = report(device_id, "status", ONLINE, retain=True)
    copy.generation = generation
    rereads.mark([copy])
    assert copy.gone_at is not None, "the copy read again does not carry the Will the server heard"
    return live, copy


@pytest.mark.parametrize("reconnected", [False, True])
def test_a_pump_that_died_before_it_was_registered_reads_offline_not_online(
    django_capture_on_commit_callbacks, reconnected
):  # fmt: skip
    """Before, the retained `online` read again made it "Online" (presence online), though the server had heard its
    Will: the copy is older than the Will, for what the pump published since would have come as news (on the same
    connection; or, the bridge reconnected since, queued for its session that lasted: the copy is QoS 1)."""
    live, copy = died_before_it_was_registered(django_capture_on_commit_callbacks, "DIED", generation=int(reconnected))
    assert copy.news_since_gone is not reconnected
    ingest([copy], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id="DIED")
    assert (pump.connectivity(), pump.presence, pump.last_seen_at) == (Connectivity.OFFLINE, Presence.OFFLINE,
                                                                        live.received_at), (
        f"a pump whose Will the server heard reads {pump.connectivity()} (presence {pump.presence}) once registered"
    )  # fmt: skip
    assert pump.firmware_version == "3.1", "the copy's content is applied all the same"


def test_a_pump_that_died_before_it_was_registered_is_not_vouched_for_by_a_copy_the_bridge_cannot_date(
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """The bridge reconnected since it heard the Will, its session not kept (or the copy is QoS 0): the pump may have
    come back while the bridge was away, so the copy vouches for nothing, as for a registered pump
    (`pumps._presence_of_a_copy`): stale by its last heard, neither "Online" nor "Offline" for ever."""
    live, copy = died_before_it_was_registered(django_capture_on_commit_callbacks, "DIED2", generation=1)
    copy.session_kept = False
    ingest([copy], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id="DIED2")
    later = live.received_at + timedelta(seconds=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 1)
    assert (pump.presence, pump.connectivity(now=later)) == (Presence.UNKNOWN, Connectivity.STALE)


def test_a_pump_heard_live_since_it_was_registered_is_not_told_gone_by_its_old_will(
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """It came back (its new `online`, live) after it was registered and before the copy arrived: online."""
    _, copy = died_before_it_was_registered(django_capture_on_commit_callbacks, "BACK")
    ingest([report("BACK", "status", ONLINE, at_s=-1)], django_capture_on_commit_callbacks)
    ingest([copy], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id="BACK")
    assert (pump.connectivity(), pump.presence) == (Connectivity.ONLINE, Presence.ONLINE)


def test_a_copy_of_the_offline_read_again_shows_the_pump_offline_heard_when_it_last_spoke(
    django_capture_on_commit_callbacks,
):  # fmt: skip
    rereads, live = turned_away(django_capture_on_commit_callbacks, "GONE", ONLINE, at_s=-60)
    make_device("GONE", has_presence=True)
    rereads.check(AskingLink(), clock=0.0)
    copy = report("GONE", "status", {"status": "offline"}, retain=True)
    rereads.mark([copy])
    ingest([copy], django_capture_on_commit_callbacks)
    pump = Device.objects.get(device_id="GONE")
    assert (pump.connectivity(), pump.last_seen_at) == (Connectivity.OFFLINE, live.received_at)


def test_only_a_retained_status_of_a_pump_asked_for_within_the_window_is_marked(django_capture_on_commit_callbacks):
    rereads, _ = turned_away(django_capture_on_commit_callbacks, "LATE", ONLINE, at_s=-60)
    make_device("LATE", has_presence=True)
    rereads.check(AskingLink(), clock=0.0)
    live = report("LATE", "status", ONLINE)
    other_kind = report("LATE", "error", {"type": "occlusion"}, retain=True)
    other_pump = report("OTHER", "status", ONLINE, retain=True)
    legacy = report("LATE", "status", ONLINE, retain=True, topic="device/LATE/status")
    rereads.mark([live, other_kind, other_pump, legacy])
    assert [m.heard_at is not None for m in (live, other_kind, other_pump, legacy)] == [False, False, False, True]
    rereads.check(AskingLink(), clock=WINDOW_S + 1)
    late = report("LATE", "status", ONLINE, retain=True)
    rereads.mark([late])
    assert late.heard_at is None, "a retained copy long after the re-read was taken for it"


def test_it_remembers_at_most_the_newest_limit(django_capture_on_commit_callbacks):
    rereads = Rereads()
    messages = [report(f"STRAY_{n}", "status", ONLINE, at_s=n - LIMIT) for n in range(LIMIT + 1)]
    for message in messages:
        message.unregistered = "online"
    rereads.remember(messages)
    assert len(rereads.turned_away) == LIMIT and "STRAY_0" not in rereads.turned_away


def test_a_live_message_the_re_read_subscription_also_delivers_is_dropped_once():
    """While the re-read's subscription stands, a live message on the pump's status topic comes twice, once per
    subscription (Mosquitto 2.0.11): the copy carrying the re-read's Subscription Identifier is acknowledged and
    dropped; its retained copy, and the wildcard's, go on to the worker."""
    received = []
    link = BrokerLink(on_inbound=received.append, on_puback=lambda mid: None)  # never connected

    def delivered(*, retain: bool, identifiers: list[int] | None) -> mqtt.MQTTMessage:
        message = mqtt.MQTTMessage(mid=1, topic=b"devices/LATE/status")
        message.payload, message.retain, message.qos = b'{"status":"online"}', retain, 1
        message.properties = Properties(PacketTypes.PUBLISH)
        if identifiers:
            message.properties.SubscriptionIdentifier = identifiers
        return message

    for retain, identifiers in [(False, [REREAD_SUBSCRIPTION]), (False, None), (True, [REREAD_SUBSCRIPTION])]:
        link._on_message(link.client, None, delivered(retain=retain, identifiers=identifiers))
    assert [message.retain for message in received] == [False, True]


def test_heard_at_never_moves_last_heard_back(django_capture_on_commit_callbacks):
    make_device("HEARD", has_presence=True)
    now = timezone.now()
    ingest([report("HEARD", "status", ONLINE, at=now)], django_capture_on_commit_callbacks)
    copy = report("HEARD", "status", {"status": "online", "batteryLevel": 50}, retain=True)
    copy.heard_at = now - timedelta(minutes=5)
    ingest([copy], django_capture_on_commit_callbacks)
    assert Device.objects.get(device_id="HEARD").last_seen_at == now


def test_a_pump_the_server_only_heard_of_from_the_broker_and_then_its_will_is_not_online(
    django_capture_on_commit_callbacks,
):  # fmt: skip
    """Its `online` came as a retained copy (the bridge started after it connected), then its Will: the copy read
    again once registered is no hearing and vouches for no presence, so the pump reads "Never heard", not "Online"."""
    capture = django_capture_on_commit_callbacks
    rereads, _ = turned_away(capture, "ONLY_COPY", ONLINE, at_s=-60, retain=True)
    turned_away(capture, "ONLY_COPY", {"status": "offline"}, at_s=-45, rereads=rereads)
    make_device("ONLY_COPY", has_presence=True)
    rereads.check(AskingLink(), clock=0.0)
    copy = report("ONLY_COPY", "status", ONLINE, retain=True)
    rereads.mark([copy])
    ingest([copy], capture)
    pump = Device.objects.get(device_id="ONLY_COPY")
    assert (pump.connectivity(), pump.last_seen_at) == (Connectivity.UNKNOWN, None), pump.connectivity()
