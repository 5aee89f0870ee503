"""Unit tests of the fair queue: a flooding pump's messages never stand between another pump's and its commit."""

import json

import pytest
from django.utils import timezone

from devices.models import Alarm
from realtime.bridge.batch import BatchIngest
from realtime.bridge.budgets import Budget, PumpBudgets
from realtime.bridge.fair import FairQueue
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from realtime.bridge.worker import Bridge
from tests.factories import make_device

OFF = Budget(0, 1)
NOW = timezone.now()  # one receive time: no bucket refills between the messages


def error(device_id: str, n: int) -> InboundMessage:
    body = json.dumps({"type": f"fault_{n}", "severity": "high"}).encode()
    return InboundMessage(topic=f"devices/{device_id}/error", payload=body, received_at=NOW, mid=n)


def status(device_id: str, n: int) -> InboundMessage:
    body = json.dumps({"status": "idle", "batteryLevel": n % 100}).encode()
    return InboundMessage(topic=f"devices/{device_id}/status", payload=body, received_at=NOW, mid=n)


def fair_queue(*, alarm: Budget = OFF, report: Budget = OFF) -> FairQueue:
    budgets = PumpBudgets(alarm=alarm, report=report, max_active_alarms=0)
    return FairQueue(BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1), budgets))


def test_another_pumps_alarm_goes_first_then_the_floods_shed_messages_then_its_admitted_ones_one_per_turn():
    waiting = fair_queue(alarm=Budget(1, 3))
    flood = [error("FLOOD", n) for n in range(30)]
    calm = error("CALM", 99)
    waiting.add([*flood[:15], calm, *flood[15:]])
    assert waiting.take(max_messages=500) == [[calm], flood[3:], flood[:1]]
    assert [message.shed for message in flood] == [""] * 3 + ["budget"] * 27
    assert waiting.take(max_messages=500) == [flood[1:2]], "one admitted message of a flooding pump per turn"
    later = error("CALM", 100)
    waiting.add([later])
    assert waiting.take(max_messages=500) == [[later], flood[2:3]], "a newcomer of another pump goes first again"
    assert waiting.take(max_messages=500) == [] and len(waiting) == 0


def test_a_pumps_messages_keep_their_order_across_turns_and_its_backlog_drains():
    waiting = fair_queue()
    flood = [status("FLOOD", n) for n in range(100)]  # budgets off: all admitted, more than PER_PUMP waiting
    waiting.add(flood)
    taken = []
    while batches := waiting.take(max_messages=500):
        assert len(batches) == 1
        taken.append(batches[0])
    assert [m for batch in taken for m in batch] == flood, "in arrival order, nothing lost or repeated"
    assert [len(batch) for batch in taken[:3]] == [12, 11, 9], "an eighth of the backlog per turn"
    assert len(taken) < 40


def test_calm_pumps_go_in_arrival_order_up_to_the_batch_limit_the_rest_waits():
    waiting = fair_queue()
    messages = [status(f"PUMP_{n % 7}", n) for n in range(70)]
    waiting.add(messages)
    assert waiting.take(max_messages=50) == [messages[:50]]
    assert waiting.take(max_messages=50) == [messages[50:]]


@pytest.mark.django_db
def test_the_bridge_acknowledges_each_batch_after_its_commit_and_holds_back_what_waits():
    make_device("FLOOD")
    make_device("CALM")
    bridge = Bridge()
    bridge.waiting = FairQueue(BatchIngest(bridge.guard, PumpBudgets(alarm=Budget(1, 2), report=OFF,
                                                                     max_active_alarms=0)))  # fmt: skip
    bridge.ingest = bridge.committer.ingest = bridge.waiting.ingest
    acknowledged: list[tuple[int, int]] = []  # (mid, the pump's active alarms when it was acknowledged)
    bridge.link.ack_many = lambda messages: acknowledged.extend(
        (message.mid, Alarm.objects.filter(device__device_id=message.topic.split("/")[1]).count())
        for message in messages
    )
    for message in [error("FLOOD", n) for n in range(20)] + [error("CALM", 99)]:
        bridge.inbox.put(message)
    bridge.step()
    assert acknowledged[0] == (99, 1), "the calm pump's alarm first, acknowledged after its commit"
    assert [mid for mid, _ in acknowledged[1:19]] == list(range(2, 20)), "then the shed ones"
    assert acknowledged[1][1] == 1 and acknowledged[-1] == (0, 2), "after alarm_flood, then FLOOD's first alarm"
    assert 1 not in [mid for mid, _ in acknowledged], "FLOOD's second admitted alarm waits, unacknowledged"
    bridge.step()
    assert acknowledged[-1] == (1, 3) and len(acknowledged) == 21


def test_a_pump_whose_messages_wait_here_is_judged_silent_only_as_of_its_oldest_waiting_message():
    from datetime import timedelta

    from realtime.bridge.housekeeping import Housekeeping

    waiting = fair_queue()
    arrived = NOW - timedelta(seconds=5)
    backlog = [InboundMessage(topic="devices/BACKLOG/status", payload=b'{"status": "running"}', received_at=arrived
                              + timedelta(milliseconds=n), mid=n) for n in range(50)]  # fmt: skip
    waiting.add(backlog)
    housekeeping = Housekeeping()
    housekeeping.waiting_since = waiting.oldest_received
    assert waiting.oldest_received("BACKLOG") == arrived and waiting.oldest_received("OTHER") is None
    assert housekeeping.silence_as_of("BACKLOG", NOW) == arrived, "heard by the bridge: not silent for its delay"
    assert housekeeping.silence_as_of("OTHER", NOW) == NOW
    while waiting.take(max_messages=500):
        pass
    assert housekeeping.silence_as_of("BACKLOG", NOW) == NOW, "judged as of now once nothing of it waits"


def padded(device_id: str, n: int, at_s: float) -> InboundMessage:
    body = json.dumps({"status": "idle", "batteryLevel": n % 100, "pad": "y" * 16_000}).encode()
    return InboundMessage(topic=f"devices/{device_id}/status", payload=body, received_at=at(at_s), mid=n)


def at(seconds: float):
    from datetime import timedelta

    return NOW + timedelta(seconds=seconds)


def byte_queue() -> FairQueue:
    budgets = PumpBudgets(alarm=Budget(1, 5), report=Budget(5, 50), max_active_alarms=0,
                          report_bytes=Budget(10, 100))  # fmt: skip
    return FairQueue(BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1), budgets))


def turn(waiting: FairQueue, messages: list[InboundMessage], at_s: float) -> list[list[InboundMessage]]:
    waiting.add(messages, now=at(at_s).timestamp())
    return waiting.take(max_messages=500)


def test_a_paced_flood_gets_one_report_a_second_through_and_its_last_one_is_applied_not_lost():
    """Issue 15 through the fair queue: padded statuses at 20/s, each in a turn of its own, were all admitted. Now
    about one a second is, the rest shed once a newer one came (each exactly once); the flood's last status is
    held, not shed, and applied at the turn after its second is over (the screen never stays on an older one)."""
    waiting = byte_queue()
    flood = [padded("PACED", n, n / 20) for n in range(100)]  # five seconds
    admitted, shed = [], []
    for n, message in enumerate(flood):
        for batch in turn(waiting, [message], n / 20):
            (shed if batch[0].shed else admitted).extend(batch)
    assert len(admitted) <= 5 + 1, f"{len(admitted)} of 100 padded statuses at 20/s admitted in 5 s (old main: 100)"
    assert flood[-1] not in admitted + shed and waiting.oldest_received("PACED") == flood[-1].received_at
    assert waiting.ready() is False, "a held report alone does not keep the worker from waiting for messages"
    assert turn(waiting, [], 5.0) == [], "held until its second is over"
    assert turn(waiting, [], 6.0) == [[flood[-1]]], "then applied: the flood's last status is never lost"
    assert sorted(admitted + shed + [flood[-1]], key=lambda m: m.mid) == flood, "each message once, none lost"
    assert all(message.shed == "budget" for message in shed) and len(waiting) == 0


def test_a_held_report_keeps_its_pumps_order_holds_no_other_pump_up_and_an_alarm_releases_it():
    waiting = byte_queue()
    first, exempt, held = (padded("PACED", n, n / 20) for n in range(3))
    assert turn(waiting, [first], 0.0) == [[first]], "a full byte bucket lets one padded status through"
    assert turn(waiting, [exempt], 0.05) == [[exempt]], "the newest of its kind passes once a second"
    assert turn(waiting, [held], 0.1) == [] and held.shed is None, "over its bytes within that second: held back"
    progress = InboundMessage(topic="devices/PACED/progress", payload=b'{"state": "paused"}', received_at=at(0.2))
    calm = status("CALM", 7)
    calm.received_at = at(0.2)
    assert turn(waiting, [progress, calm], 0.2) == [[calm]], "another pump's message goes; the pump's later waits"
    alarm = error("PACED", 3)
    alarm.received_at = at(0.3)
    assert turn(waiting, [alarm], 0.3) == [[held]], "an alarm of the pump releases its held report, in order"
    assert turn(waiting, [], 0.3) == [[progress]] and turn(waiting, [], 0.3) == [[alarm]]
    assert held.shed == "" and len(waiting) == 0


@pytest.mark.django_db
def test_the_worker_waits_for_messages_while_only_a_held_report_waits_it_does_not_spin():
    import time

    bridge = Bridge()
    bridge.waiting = byte_queue()
    for n in range(3):  # the byte bucket's one, the exemption's one, then one held back
        turn(bridge.waiting, [padded("PACED", n, n / 20)], n / 20)
    assert len(bridge.waiting) == 1 and not bridge.waiting.ready()
    started = time.monotonic()
    assert bridge.collect() == []
    assert time.monotonic() - started >= bridge.limits.tick_s * 0.9, "the worker must block, not spin, on a held report"
