"""The routine-progress guard against a paced flood: the newest progress of an intake passes once a second, not always.

A pump pacing its routine progress one per intake of the bridge (50/s) had every one applied: the newest progress
of each pump in an intake passed the guard with no time limit. Now that exemption passes at most once a second per
pump; the newest over the bucket within that second is held back (not shed), so the pump's last progress is applied
once it goes quiet, and the screen shows where it is.
"""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Device
from realtime.bridge.batch import BatchIngest
from realtime.bridge.budgets import Budget, PumpBudgets
from realtime.bridge.fair import FairQueue
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device

NOW = timezone.now()
PER_S, BURST = 10, 100  # the production guard (PROGRESS_FLOOD_PER_S, its burst)


def at(seconds: float):
    return NOW + timedelta(seconds=seconds)


def progress(device_id: str, n: int, at_s: float) -> InboundMessage:
    body = {"deliveredVolumeMl": n / 10, "flowRate": 2.0, "status": "running", "seq": n + 1, "bootId": "b1"}
    return InboundMessage(topic=f"devices/{device_id}/progress", payload=json.dumps(body).encode(),
                          received_at=at(at_s), mid=n)  # fmt: skip


def other(device_id: str, kind: str, body: dict, at_s: float, mid: int = 0) -> InboundMessage:
    return InboundMessage(topic=f"devices/{device_id}/{kind}", payload=json.dumps(body).encode(), received_at=at(at_s),
                          mid=mid)  # fmt: skip


def guarded_queue() -> FairQueue:
    budgets = PumpBudgets(alarm=Budget(1, 5), report=Budget(5, 600), max_active_alarms=0)
    return FairQueue(BatchIngest(ProgressFloodGuard(rate_per_s=PER_S, burst=BURST), budgets))


def turn(waiting: FairQueue, messages: list[InboundMessage], at_s: float) -> list[list[InboundMessage]]:
    waiting.add(messages, now=at(at_s).timestamp())
    return waiting.take(max_messages=500)


def paced_flood(waiting: FairQueue, flood: list[InboundMessage], per_s: float) -> tuple[list, list]:
    """Each message in a turn of its own at its receive time; (admitted, shed) as the turns hand them to commits."""
    admitted, shed = [], []
    for n, message in enumerate(flood):
        for batch in turn(waiting, [message], n / per_s):
            for taken in batch:
                (shed if taken.shed else admitted).append(taken)
    return admitted, shed


def test_a_paced_progress_flood_passes_its_bucket_and_one_a_second_and_its_last_progress_is_applied_not_lost():
    waiting = guarded_queue()
    flood = [progress("PACED", n, n / 50) for n in range(500)]  # 50/s for ten seconds, one per intake
    admitted, shed = paced_flood(waiting, flood, 50)
    bound = BURST + PER_S * 10 + 10 + 1  # the burst, the rate, one exemption a second (and a rounding's one)
    assert len(admitted) <= bound, f"{len(admitted)} of 500 paced progress reports admitted in 10 s (old main: 500)"
    assert len(admitted) >= BURST + PER_S * 9, f"a pump's own bucket must still pass: {len(admitted)} admitted"
    assert flood[-1] not in admitted + shed and flood[-1].shed is None, "the flood's last progress is held, not shed"
    assert waiting.ready() is False, "a held progress alone does not keep the worker from waiting for messages"
    assert turn(waiting, [], 9.99) == [], "held until its second is over"
    assert turn(waiting, [], 11.0) == [[flood[-1]]], "then applied: the pump's last progress is never lost"
    assert sorted(admitted + shed + [flood[-1]], key=lambda m: m.mid) == flood, "each message once, none lost"
    assert all(message.shed == "progress" for message in shed) and len(waiting) == 0
    assert waiting.ingest.guard.shed_total == len(shed), "every shed progress is counted"


def test_a_held_progress_keeps_its_pumps_order_holds_no_other_pump_up_and_an_alarm_releases_it():
    waiting = guarded_queue()
    for n in range(BURST + 1):  # the burst, then the first exemption
        turn(waiting, [progress("PACED", n, 0.0)], 0.0)
    held = progress("PACED", 200, 0.05)  # half a token refilled
    assert turn(waiting, [held], 0.05) == [] and held.shed is None, "over its bucket within that second: held back"
    status = other("PACED", "status", {"status": "running", "batteryLevel": 40}, 0.06)
    calm = progress("CALM", 1, 0.06)
    assert turn(waiting, [status, calm], 0.06) == [[calm]], "another pump's progress goes; the pump's later waits"
    alarm = other("PACED", "error", {"type": "occlusion", "severity": "high"}, 0.07)
    assert turn(waiting, [alarm], 0.07) == [[held]], "an alarm of the pump releases its held progress, in order"
    assert turn(waiting, [], 0.07) == [[status]] and turn(waiting, [], 0.07) == [[alarm]]
    assert held.shed == "" and len(waiting) == 0


def test_a_held_progress_is_shed_once_a_newer_progress_of_its_pump_comes_and_counted():
    waiting = guarded_queue()
    for n in range(BURST + 1):
        turn(waiting, [progress("PACED", n, 0.0)], 0.0)
    held, newer = progress("PACED", 200, 0.05), progress("PACED", 201, 0.08)
    assert turn(waiting, [held], 0.05) == []
    assert turn(waiting, [newer], 0.08) == [[held]] and held.shed == "progress", "superseded: shed, not applied"
    assert newer.shed is None, "the newer one is held in its turn"
    assert waiting.ingest.guard.shed_total == 1


@pytest.mark.django_db
def test_when_a_paced_progress_flood_stops_the_screen_shows_the_pumps_last_progress():
    """Committed as the worker commits the turns' batches: the pump's row (what the screen shows) ends on the
    flood's last progress, not on the last one that passed the guard."""
    make_device("PACED")
    waiting = guarded_queue()
    flood = [progress("PACED", n, n / 50) for n in range(300)]
    committed = []
    for n, message in enumerate(flood + [None]):
        for batch in turn(waiting, [message] if message else [], n / 50 if message else n / 50 + 1.0):
            with transaction.atomic():
                waiting.ingest.run(batch)
            committed.extend(batch)
    assert len(waiting) == 0 and committed[-1] is flood[-1]
    shown = Device.objects.get(device_id="PACED").latest_progress["deliveredVolumeMl"]
    assert shown == 29.9, f"the screen shows {shown} mL delivered, not the flood's last progress (29.9 mL)"
