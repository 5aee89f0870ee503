"""Unit tests of the shared bridges' pieces: the slot of a pump, routing in a slot's session, the leases."""

import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from devices.lease_selectors import leases_read, leases_settled
from devices.models import Alarm, BridgeLease
from devices.services.leases import lease_claim, lease_release, lease_renew
from realtime.bridge.guard import FenceLost
from realtime.bridge.ingest import InboundMessage
from realtime.bridge.shared import SlotHousekeeping, bridge_parts
from realtime.bridge.slot_config import SlotConfig, slot_of, topic_slot
from realtime.bridge.slots import GENERATIONS, SlotLinks
from tests.realtime.bridge.test_housekeeping import silent_running_pumps

pytestmark = pytest.mark.django_db


def test_a_pumps_slot_is_stable_and_spreads_the_pumps():
    assert [slot_of(f"PUMP_{n:04d}", 2) for n in range(1, 9)] == [0, 0, 0, 1, 1, 1, 1, 0]  # CRC-32: any host
    spread = [slot_of(f"PUMP_{n:04d}", 4) for n in range(1000)]
    assert all(200 <= spread.count(slot) <= 300 for slot in range(4)), "the pumps should spread evenly"


def test_a_topic_without_a_readable_pump_goes_to_slot_0():
    assert topic_slot("devices/PUMP_0004/progress", 2) == slot_of("PUMP_0004", 2) == 1
    assert topic_slot("device/PUMP_0004/status", 2) == 1, "the original firmware's topic is the same pump"
    assert topic_slot("nonsense", 2) == 0
    assert topic_slot("devices/PUMP_0004/unknown-kind", 2) == 1, "a bad kind is still dead-lettered by its pump's slot"


class FakeLink:
    """A slot's link that never touches a broker: connected at once, records its acknowledgements."""

    def __init__(self) -> None:
        self.acked: list[int] = []
        self.generation = 0
        self.connected = threading.Event()
        self.connected.set()
        self.connected_since, self.connected_clock = timezone.now(), time.monotonic()
        self.grace_from, self.takeovers, self.session_contested = self.connected_since, [], False
        self.stopped = False

    def ack(self, message: InboundMessage) -> None:
        self.acked.append(message.mid)

    def stop(self) -> None:
        self.stopped = True


class QuietSlots(SlotLinks):
    """`SlotLinks` whose slots connect nowhere (the leases are real)."""

    def __init__(self, index: int, *, lease_s: float = 30.0) -> None:
        config = SlotConfig(slots=2, processes=2, index=index, lease_s=lease_s)
        super().__init__(config=config, on_inbound=lambda message: None, on_puback=lambda mid: None,
                         name=f"bridge-{index}")  # fmt: skip

    def _connect(self, slot: int) -> tuple[FakeLink, threading.Thread]:
        return FakeLink(), threading.Thread(target=lambda: None)

    def age(self) -> "QuietSlots":
        self._born -= self.config.lease_s  # past its first lease: it may take other bridges' slots
        return self


def test_a_slot_applies_its_own_pumps_and_acknowledges_the_others_at_once():
    inbox: list[InboundMessage] = []
    slots = SlotLinks(config=SlotConfig(slots=2), on_inbound=inbox.append, on_puback=lambda mid: None)
    link = slots.links[1] = FakeLink()
    own = InboundMessage(topic="devices/PUMP_0004/progress", payload=b"{}", mid=1)
    other = InboundMessage(topic="devices/PUMP_0001/progress", payload=b"{}", mid=2)
    slots._inbound(1, own)
    slots._inbound(1, other)
    assert inbox == [own] and own.slot == 1
    assert link.acked == [2], "another slot's message is acknowledged without being applied"
    assert slots.owned([own, other]) == [own], "only messages of slots still held are committed"
    slots.links[1] = FakeLink()
    slots.links[1].generation = 2 * GENERATIONS + 1  # slot 1 let go and taken again: a new link
    assert slots.owned([own]) == [], "a message from the slot's earlier link is redelivered on the new one"


def test_a_lease_is_claimed_once_renewed_by_its_owner_and_free_after_expiry_or_release():
    assert lease_claim(names=["slot-0", "slot-1"], owner="a", ttl_s=30) == ["slot-0", "slot-1"]
    assert lease_claim(names=["slot-0"], owner="b", ttl_s=30) == [], "a live lease is not taken"
    assert lease_renew(names=["slot-0", "slot-1"], owner="a", ttl_s=30, connected={"slot-0"}) == {"slot-0", "slot-1"}
    assert lease_renew(names=["slot-0"], owner="b", ttl_s=30, connected=set()) == set(), "not b's to renew"
    BridgeLease.objects.filter(name="slot-1").update(expires_at=BridgeLease.objects.get(name="slot-1").expires_at
                                                     - timedelta(seconds=60))  # fmt: skip
    assert lease_claim(names=["slot-1"], owner="b", ttl_s=30, expired_for_s=100) == [], "not expired long enough"
    assert lease_claim(names=["slot-1"], owner="b", ttl_s=30) == ["slot-1"], "an expired lease is taken over"
    leases = leases_read(names=["slot-0", "slot-1"])
    assert leases["slot-1"].owner == "b" and leases["slot-1"].connected_since is None
    assert leases["slot-0"].connected_since is not None, "slot-0's session was connected at the renewal"
    assert lease_renew(names=["slot-1"], owner="a", ttl_s=30, connected=set()) == set(), "a lost slot-1"
    assert lease_release(names=["slot-0"], owner="a") == 1
    assert lease_claim(names=["slot-0"], owner="b", ttl_s=30) == ["slot-0"], "a released lease is free at once"


def test_silence_is_judged_only_for_pumps_of_a_slot_connected_for_the_grace_period(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "BRIDGE_SLOTS": 2, "RECONNECT_GRACE_S": 5}
    silent_running_pumps(8, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)  # P0000..P0007
    lease_claim(names=["slot-0", "slot-1", "housekeeping"], owner="me", ttl_s=30)
    now = timezone.now()
    lease_renew(names=["slot-0", "slot-1"], owner="me", ttl_s=30, connected={"slot-0", "slot-1"},
                caught_up={"slot-0": now, "slot-1": now})  # fmt: skip
    BridgeLease.objects.filter(name="slot-0").update(connected_since=BridgeLease.objects.get(name="slot-0")
                                                     .connected_since - timedelta(seconds=10))  # fmt: skip
    assert set(leases_settled(names=["slot-0", "slot-1"], grace_s=5)) == {"slot-0"}
    slots = SimpleNamespace(config=SlotConfig(slots=2), leading=True)
    housekeeping = SlotHousekeeping(slots)
    housekeeping.tick(timezone.now(), connected_since=None)
    alarmed = set(Alarm.objects.filter(type="communication_lost").values_list("device__device_id", flat=True))
    expected = {f"P{n:04d}" for n in range(8) if slot_of(f"P{n:04d}", 2) == 0}
    assert alarmed == expected, "slot 1 was connected less than the grace period ago: its pumps wait"
    slots.leading = False
    Alarm.objects.all().delete()
    housekeeping.tick(timezone.now(), connected_since=None)
    assert not Alarm.objects.exists(), "only the holder of the housekeeping lease runs the checks"


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the refusal is SQLite's")
def test_more_than_one_slot_is_refused_on_sqlite(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "BRIDGE_SLOTS": 2}
    with pytest.raises(ImproperlyConfigured, match="BRIDGE_SLOTS=2 needs PostgreSQL"):
        bridge_parts(on_inbound=lambda message: None, on_puback=lambda mid: None, name="bridge")


def test_silence_is_judged_as_of_how_far_the_slots_owner_has_applied_its_messages(settings):
    """A bridge 10 s behind on its inbox: its pumps silent for `timeout + 5` s by the clock are not silent yet."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "BRIDGE_SLOTS": 2, "RECONNECT_GRACE_S": 0}
    silent_running_pumps(8, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    lease_claim(names=["slot-0", "slot-1"], owner="me", ttl_s=30)
    lease_renew(names=["slot-0"], owner="me", ttl_s=30, connected={"slot-0"}, caught_up={"slot-0": timezone.now()})
    lease_renew(names=["slot-1"], owner="me", ttl_s=30, connected={"slot-1"},
                caught_up={"slot-1": timezone.now() - timedelta(seconds=10)})  # fmt: skip
    housekeeping = SlotHousekeeping(SimpleNamespace(config=SlotConfig(slots=2), leading=True))
    housekeeping.tick(timezone.now(), connected_since=None)
    alarmed = set(Alarm.objects.filter(type="communication_lost").values_list("device__device_id", flat=True))
    assert alarmed == {f"P{n:04d}" for n in range(8) if slot_of(f"P{n:04d}", 2) == 0}


def test_a_slot_taken_over_is_judged_only_once_its_new_owner_has_applied_what_came_after_it_connected(settings):
    """The process had applied all it received a moment before it took slot 1 over: that moment says nothing of
    slot 1's messages, which the broker kept for the stalled owner and hands over only once the link connects."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "BRIDGE_SLOTS": 2, "RECONNECT_GRACE_S": 0}
    first, second = QuietSlots(0), QuietSlots(1)
    first.turn()
    second.turn()
    silent_running_pumps(8, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    first.applied_until(timezone.now())
    lease_expire("slot-1", "process-1", "housekeeping")  # the second bridge stalls past its lease
    first.age().turn()
    assert set(first.links) == {0, 1}, "the stalled bridge's slot is taken over"
    first.turn()  # renewed: slot 1 connected, its grace (0 s here) over
    slot_1 = {f"P{n:04d}" for n in range(8) if slot_of(f"P{n:04d}", 2) == 1}
    housekeeping = SlotHousekeeping(first)
    housekeeping.tick(timezone.now(), connected_since=None)
    alarmed = set(Alarm.objects.filter(type="communication_lost").values_list("device__device_id", flat=True))
    assert alarmed and not alarmed & slot_1, f"slot 1's pumps judged silent by a moment before its link: {alarmed}"
    first.applied_until(timezone.now())  # a turn after the link connected with nothing left to apply
    first.turn()
    housekeeping.tick(timezone.now(), connected_since=None)
    alarmed = set(Alarm.objects.filter(type="communication_lost").values_list("device__device_id", flat=True))
    assert slot_1 <= alarmed, "once caught up since it connected, the slot's silent pumps are alarmed"


def test_a_slot_connected_while_the_wall_clock_ran_ahead_is_judged_once_applied_after_the_clock_is_put_right(settings):
    """The slot's link connected while this bridge's wall clock ran an hour ahead (its `connected_since` on that
    clock), put right since: once the worker has applied what it received after the connection, the slot's pumps are
    judged (review 29: not until the wall clock reached the connection's moment, an hour later)."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "BRIDGE_SLOTS": 2, "RECONNECT_GRACE_S": 0}
    slots = QuietSlots(0)
    slots.turn()
    slots.turn()  # renewed: slot 0 connected, its grace (0 s here) over
    silent_running_pumps(8, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    for link in slots.links.values():
        link.connected_since += timedelta(hours=1)  # connected on a wall clock an hour ahead
    slots.applied_until(timezone.now())  # a turn after the clock was put right, nothing left to apply
    slots.turn()
    SlotHousekeeping(slots).tick(timezone.now(), connected_since=None)
    alarmed = set(Alarm.objects.filter(type="communication_lost").values_list("device__device_id", flat=True))
    slot_0 = {f"P{n:04d}" for n in range(8) if slot_of(f"P{n:04d}", 2) == 0}
    assert slot_0 and alarmed == slot_0, (
        f"the silent pumps of a slot connected while the clock ran ahead are not judged: {sorted(alarmed)} alarmed"
    )


def test_a_housekeeper_resumed_after_a_stall_past_its_lease_runs_nothing_until_its_lease_thread_renews(settings):
    """SIGSTOP past the lease, then SIGCONT: the worker ticks before the lease thread has learnt that another
    bridge took the `housekeeping` lease; it must not run the checks (or publish commands) beside the new holder."""
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "BRIDGE_SLOTS": 2, "RECONNECT_GRACE_S": 0}
    slots = QuietSlots(0, lease_s=1.0)
    slots.turn()
    silent_running_pumps(8, silent_for_s=settings.PUMPSTREAM["HEARTBEAT_TIMEOUT_S"] + 5)
    slots.applied_until(timezone.now())
    slots.turn()
    assert slots.leading
    slots._renewed_at -= 0.8  # stalled: its last renewal is 0.8 of the lease old, another may hold the lease
    assert not slots.leading, "a lease renewed too long ago is not relied on"
    SlotHousekeeping(slots).tick(timezone.now(), connected_since=None)
    assert not Alarm.objects.exists(), "the stalled housekeeper ran the checks before renewing"
    slots.turn()  # its own lease still (nobody took it here): renewed, it leads again
    SlotHousekeeping(slots).tick(timezone.now(), connected_since=None)
    assert Alarm.objects.filter(type="communication_lost").exists()


def lease_expire(*names: str) -> None:
    """What a SIGKILL leaves: the dead bridge's leases run out."""
    BridgeLease.objects.filter(name__in=names).update(expires_at=timezone.now() - timedelta(seconds=1))


def test_each_bridge_takes_its_home_slot_takes_a_dead_ones_over_and_hands_it_back():
    first, second = QuietSlots(0), QuietSlots(1)
    first.turn()
    second.turn()
    assert set(first.links) == {0} and set(second.links) == {1}, "bridges started together each take their own"
    assert first.leading and not second.leading, "one housekeeper"
    first.age().turn()
    assert set(first.links) == {0}, "a live bridge's slot is not taken"

    lease_expire("slot-1", "process-1")  # the second bridge is SIGKILLed
    first.turn()
    assert set(first.links) == {0, 1}, "the dead bridge's slot is taken over once its lease expired"

    restarted = QuietSlots(1)
    assert restarted.owner != second.owner, "each run is its own owner"
    restarted.turn()
    assert set(restarted.links) == set() and restarted.is_member, "its slot is still held by the first"
    first.turn()
    assert first.handing_back == {1}, "the home bridge is alive again: slot 1 goes back"
    taken = first.links[1]
    first.between_batches()  # on the worker's thread, between two batches
    assert set(first.links) == {0} and taken.stopped
    first.turn()
    assert set(first.links) == {0}, "a slot whose home bridge is alive is not claimed again"
    restarted.turn()
    assert set(restarted.links) == {1}
    assert leases_read(names=["slot-1"])["slot-1"].owner == restarted.owner


def test_a_bridge_that_cannot_renew_lets_its_slots_go_before_its_leases_expire(monkeypatch):
    slots = QuietSlots(0, lease_s=1.0)
    slots.turn()
    assert set(slots.links) == {0} and slots.leading
    taken = slots.links[0]

    def database_down(**_):
        raise OperationalError("the database is unreachable")

    monkeypatch.setattr("realtime.bridge.slots.lease_renew", database_down)
    slots.turn()
    assert set(slots.links) == {0}, "one missed renewal is within the lease"
    slots._renewed_at -= 0.8  # 0.8 of the lease since the last renewal
    slots.turn()
    assert slots.links == {} and taken.stopped and not slots.leading


@pytest.mark.skipif(connection.vendor != "postgresql", reason="shared bridges are PostgreSQL's (test-postgres)")
def test_a_batch_commits_only_while_its_bridge_holds_the_slot_from_the_claim_its_link_was_made_under():
    first, second = QuietSlots(0), QuietSlots(1)
    first.turn()
    second.turn()
    first.age()
    stale = InboundMessage(topic="devices/PUMP_0004/status", payload=b"{}", generation=second.links[1].generation)
    with transaction.atomic():
        second.fence([stale])  # holds slot 1 from the claim its link was made under

    lease_expire("slot-1", "process-1")  # the second bridge stalls past its lease
    first.turn()
    assert set(first.links) == {0, 1}, "the stalled bridge's slot is taken over"
    with pytest.raises(FenceLost) as lost, transaction.atomic():
        second.fence([stale])
    second.fence_lost(lost.value)
    assert 1 not in second.links, "the bridge that found its lease taken lets the slot go"

    BridgeLease.objects.filter(name="slot-1").update(owner=second.owner)  # even the same owner, claimed anew,
    with pytest.raises(FenceLost), transaction.atomic():  # does not commit what arrived under its old claim
        second.fence([stale])
