"""A pump pacing junk alarms over its alarm budget reached every screen of its ward at its own pace (review 23,
finding 7).

The alarm budget (1/s, bursts of 5) sheds the excess and sums it up in one `alarm_flood`; but the summary is written
once per batch (`BatchIngest._summarise_floods` → `alarm_flood_raise` → `alarm_raise`, a repeat counted): a pump whose
alarms come one per batch (50 a second, paced, as the real bridge takes one message per turn at that pace) gets one
`alarm_flood` repeat per shed alarm: one `device:alarm` change each, which `WardFeed.deliver_alarm` sends at once,
never coalesced, to every ward feed covering its ward (every station and overview), and one event-log row each (kept
90 days). Shedding then bounds nothing of what the flood costs the screens and the database: 486 of 500 shed alarms
became a change sent to every screen. Now a repeat without news within a second of the last change sent only counts
on the row (exactly); its counts are sent with the next change, or by the housekeeping a second later; news (a type
never named) is sent at once.
"""

import json
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices import payloads
from devices.models import Alarm, ChangeLogEntry, DeviceEvent
from devices.services.alarm_rules import alarm_resolve
from devices.services.alarms import alarm_acknowledge
from devices.states import FLOOD_COUNTS_HELD, AlarmResolveReason
from protocol import events
from protocol.payloads import device_event_to_wire
from realtime.bridge.batch import BatchIngest
from realtime.bridge.budgets import Budget, PumpBudgets
from realtime.bridge.fair import FairQueue
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.housekeeping import Housekeeping
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device, make_user

pytestmark = pytest.mark.django_db

PACE_PER_S, SECONDS = 50, 10


def last_sent(device_id: str, alarm_id: int) -> dict:
    """The body of the alarm's last `device:alarm` change: what every live screen was sent."""
    changes = ChangeLogEntry.objects.filter(device__device_id=device_id, event="device:alarm", body__alarm__id=alarm_id)
    return changes.order_by("-pk").first().body


def snapshot_shows(alarm: Alarm) -> dict:
    """What a snapshot read now shows of the alarm (its row, as the snapshot serialises it)."""
    alarm.refresh_from_db()
    return device_event_to_wire(events.DEVICE_ALARM, payloads.alarm_body(alarm))


def test_a_paced_alarm_flood_is_summed_up_at_most_about_once_a_second():
    make_device("R23_PACED")
    budgets = PumpBudgets(alarm=Budget(1, 5), report=Budget(5, 600), max_active_alarms=20,
                          report_bytes=Budget(1024, 2**20))  # fmt: skip
    ingest = BatchIngest(ProgressFloodGuard(rate_per_s=10, burst=100), budgets)
    queue, start, outcomes, differing = FairQueue(ingest), timezone.now(), Counter(), []
    began = time.monotonic()  # the flood's updates are paced on the real clock: the bound counts its seconds too
    for n in range(PACE_PER_S * SECONDS):  # each in an intake and a batch of its own, as paced messages come
        at = start + timedelta(seconds=n / PACE_PER_S)
        body = {"type": "junk", "severity": "low", "n": n}
        queue.add([InboundMessage(topic="devices/R23_PACED/error", payload=json.dumps(body).encode(), received_at=at)],
                  now=at.timestamp())  # fmt: skip
        for batch in queue.take(max_messages=500):
            with transaction.atomic():
                outcomes.update(ingest.run(batch))
        flood = Alarm.objects.filter(device__device_id="R23_PACED", type="alarm_flood").first()
        if flood is not None and snapshot_shows(flood) != last_sent("R23_PACED", flood.pk):
            differing.append(
                (n, snapshot_shows(flood)["alarm"]["count"], last_sent("R23_PACED", flood.pk)["alarm"]["count"])
            )
    assert not differing, (
        f"a snapshot read after {len(differing)} of the batches showed the flood alarm otherwise than its last change "
        f"sent to the live screens (message, snapshot count, live count): {differing[:3]}"
    )
    flood = Alarm.objects.get(device__device_id="R23_PACED", type="alarm_flood")
    updates = ChangeLogEntry.objects.filter(device__device_id="R23_PACED", event="device:alarm",
                                            body__alarm__id=flood.pk).count()  # fmt: skip
    rows = DeviceEvent.objects.filter(device__device_id="R23_PACED", kind="alarm.raised.server").count()
    seconds = max(SECONDS, time.monotonic() - began)  # a loaded machine takes longer than the messages' 10 s
    assert updates <= 2 * seconds + 5, (
        f"{PACE_PER_S * SECONDS} junk alarms paced at {PACE_PER_S}/s for {SECONDS} s: the alarm_flood summing up the "
        f"shed ones (count {flood.count}) was updated {updates} times, each a device:alarm change sent to every screen "
        f"of the ward (ward:alarm, never coalesced), and {rows} event-log rows: about one per shed alarm"
    )
    assert flood.details["shed"] == {"error": outcomes["shed"]}, (
        f"the flood alarm counts {flood.details['shed']} of {outcomes['shed']} alarms shed: every one must be counted"
    )
    Housekeeping().flood_counts(timezone.now() + timedelta(seconds=2))  # the pump stopped: its last counts are sent
    shown = last_sent("R23_PACED", flood.pk)["alarm"]
    assert shown["count"] == outcomes["shed"] and shown["message"].startswith(
        f"The pump sent far more messages than a pump does; not shown: {outcomes['shed']} error"
    ), f"the screens were left with the flood alarm's count {shown['count']} of {outcomes['shed']}: {shown['message']}"
    assert snapshot_shows(flood) == last_sent("R23_PACED", flood.pk) and FLOOD_COUNTS_HELD not in flood.details


def test_a_flood_alarms_news_is_sent_at_once_whatever_its_pace():
    """A type never named, shed within a second of the last change sent, re-alerts the acknowledged flood alarm at
    once (its news is not held back with its counts)."""
    make_device("R23_NEWS")
    budgets = PumpBudgets(alarm=Budget(1, 1), report=Budget(5, 600), max_active_alarms=20,
                          report_bytes=Budget(1024, 2**20))  # fmt: skip
    ingest, start = BatchIngest(ProgressFloodGuard(rate_per_s=10, burst=100), budgets), timezone.now()

    def shed(alarm_type: str, n: int) -> None:
        body = json.dumps({"type": alarm_type, "severity": "high", "n": n}).encode()
        at = start + timedelta(seconds=n / 100)
        with transaction.atomic():
            ingest.run([InboundMessage(topic="devices/R23_NEWS/error", payload=body, received_at=at)])

    for n in range(3):
        shed("junk", n)  # the first passes (burst 1), the next two are shed: raised, then counted
    flood = Alarm.objects.get(device__device_id="R23_NEWS", type="alarm_flood")
    alarm_acknowledge(alarm_id=flood.pk, user=make_user("nurse"), alerts=flood.alerts)
    shed("occlusion_detected", 3)
    flood.refresh_from_db()
    sent = ChangeLogEntry.objects.filter(device__device_id="R23_NEWS", event="device:alarm",
                                         body__alarm__id=flood.pk).order_by("-pk").first()  # fmt: skip
    assert flood.acknowledged_at is None and "occlusion_detected" in sent.body["alarm"]["message"], (
        f"a shed occlusion within a second of the flood alarm's last change: {sent.body['alarm']['message']!r}, "
        f"acknowledged {flood.acknowledged_at}"
    )


def test_counts_held_while_housekeeping_sleeps_are_sent_on_the_first_tick_they_are_due():
    """The bridge's housekeeping, asleep while idle, sends a flood alarm's last counts about a second after the pump
    stopped: the commit that held them wakes it, and it then asks each tick until they are sent."""
    make_device("R23_TICK")
    budgets = PumpBudgets(alarm=Budget(1, 1), report=Budget(5, 600), max_active_alarms=20,
                          report_bytes=Budget(1024, 2**20))  # fmt: skip
    ingest, start = BatchIngest(ProgressFloodGuard(rate_per_s=10, burst=100), budgets), timezone.now()
    housekeeping, connected = Housekeeping(), start - timedelta(hours=1)
    housekeeping.tick(start, connected_since=connected)
    housekeeping.tick(start + timedelta(seconds=0.5), connected_since=connected)  # idle: asleep
    for n in range(4):  # the first passes, the second raises the flood alarm, the last two only count on it
        body = json.dumps({"type": "junk", "severity": "low", "n": n}).encode()
        with transaction.atomic():
            ingest.run([InboundMessage(topic="devices/R23_TICK/error", payload=body,
                                       received_at=start + timedelta(seconds=n / 100))])  # fmt: skip
    housekeeping.committed = True  # what the worker says after each commit
    flood = Alarm.objects.get(device__device_id="R23_TICK", type="alarm_flood")

    def shown() -> int:
        changes = ChangeLogEntry.objects.filter(device__device_id="R23_TICK", event="device:alarm",
                                                body__alarm__id=flood.pk)  # fmt: skip
        return changes.order_by("-pk").first().body["alarm"]["count"]

    now = timezone.now()
    housekeeping.tick(now, connected_since=connected)
    assert shown() == 1 and flood.details[FLOOD_COUNTS_HELD]["repeats"] == 2, f"precondition: counts held ({shown()})"
    housekeeping.tick(now + timedelta(seconds=0.5), connected_since=connected)
    housekeeping.tick(now + timedelta(seconds=1.1), connected_since=connected)
    assert shown() == 3, f"the screens still show the flood alarm's count {shown()}, not 3"


def test_counts_held_when_a_nurse_resolves_the_flood_alarm_go_out_with_its_end():
    """A resolved flood alarm is no longer the housekeeping's: the counts it held go out with the resolve's change."""
    make_device("R23_RESOLVE")
    budgets = PumpBudgets(alarm=Budget(1, 1), report=Budget(5, 600), max_active_alarms=20,
                          report_bytes=Budget(1024, 2**20))  # fmt: skip
    ingest, start = BatchIngest(ProgressFloodGuard(rate_per_s=10, burst=100), budgets), timezone.now()
    for n in range(5):  # the first passes, the second raises the flood alarm, the last three only count on it
        body = json.dumps({"type": "junk", "severity": "low", "n": n}).encode()
        with transaction.atomic():
            ingest.run([InboundMessage(topic="devices/R23_RESOLVE/error", payload=body,
                                       received_at=start + timedelta(seconds=n / 100))])  # fmt: skip
    flood = Alarm.objects.get(device__device_id="R23_RESOLVE", type="alarm_flood")
    assert last_sent("R23_RESOLVE", flood.pk)["alarm"]["count"] == 1, "precondition: counts held"
    alarm_resolve(alarm_id=flood.pk, user=make_user("nurse"), reason=AlarmResolveReason.values[0], alerts=flood.alerts,
                  note="checked the pump")  # fmt: skip
    shown = last_sent("R23_RESOLVE", flood.pk)["alarm"]
    assert (shown["state"], shown["count"]) == ("cleared", 4), f"the resolved flood alarm shows {shown}"
    assert snapshot_shows(flood) == last_sent("R23_RESOLVE", flood.pk)
