"""Item 5 of issue 15: one pump's flood of alarms holds no other pump's alarm back, and is itself one alarm.

Pump FLOOD, in a process of its own as a real pump is a device of its own (`tests/support/flooder.py`),
publishes 3,000 QoS 1 `error` messages as fast as paho can (about 0.05 s); meanwhile pump CALM raises
alarms, and a signed-in watcher measures each from CALM's publish to its `device:alarm` over Socket.IO,
through the real broker, bridge and Daphne; the same is measured first without a flood. CALM's five alarms
of a phase follow each other 20 ms after the last one arrived, so that they fall while the bridge is still
reading, shedding and acknowledging the flood (0.3-1 s): until 2026-12-06 ten were sent 0.5 s apart, and only
the first fell inside it. The figures are logged (README, Reliability; `bench/alarm_flood.py` repeats the test
and tabulates them); the asserts are only generous correctness bounds. On the old main FLOOD's 3,000
messages made up to 3,000 alarms and CALM's alarm took 5.7 to over 20 s.
"""

import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
from django.db import close_old_connections

from devices.models import Alarm, BridgeStatus, ChangeLogEntry
from protocol import events
from tests.factories import make_device, make_user, make_ward
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.daphne import publisher_metrics
from tests.support.processes import ROOT
from tests.support.sio import StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
logger = logging.getLogger(__name__)

FLOOD_MESSAGES = 3000
SAMPLES = 5  # a phase: within a pump's alarm burst (5), so that CALM itself is never shed
REFILL_S = 3.0  # between the phases: CALM's burst refilled at the test's 2 alarms a second
SPACING_S = 0.02
DELIVERY_BOUND_S = 5.0  # correctness (delivered at all, not after many seconds), never a timing claim


class Flooder:
    """FLOOD's 3,000 QoS 1 errors, each of a new type, from a process of its own; `finish` waits for every PUBACK."""

    def __init__(self, broker) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "support" / "flooder.py"), broker.host, str(broker.port), "FLOOD",
             str(FLOOD_MESSAGES)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout.readline().strip() == "ready", "the flooding pump could not connect"

    def start(self) -> None:
        """Returns once FLOOD has begun publishing."""
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "begun"

    def finish(self) -> tuple[float, float]:
        """(seconds FLOOD took to publish, seconds to its last PUBACK)."""
        out, _ = self.process.communicate(timeout=60)
        _, published, acknowledged = out.split()
        return float(published), float(acknowledged)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def alarm_delays(
    calm: PumpClient, watcher: StreamClient, phase: str, diagnose: Callable[[str], str], sent_at: list[float]
) -> list[float]:
    """CALM raises SAMPLES new alarms, each SPACING_S after the last arrived; seconds from each publish to the
    watcher's device:alarm. Each publish's monotonic time is appended to `sent_at`.

    An alarm that never arrives fails with `diagnose(its type)`: how far it got, and the processes' logs."""
    delays = []
    for n in range(SAMPLES):
        kind = f"{phase}_{n}"
        start_index = len(watcher.events.items)
        started = time.monotonic()
        sent_at.append(started)
        calm.client.publish("devices/CALM/error", f'{{"type": "{kind}", "severity": "high"}}', qos=1)
        try:
            watcher.events.wait_for(lambda e, d, k=kind: e == events.DEVICE_ALARM and d.get("deviceId") == "CALM"
                                    and d["alarm"]["type"] == k, timeout=30, start=start_index)  # fmt: skip
        except AssertionError as missing:
            raise AssertionError(
                f"{missing}\nall the watcher's events: {watcher.events.items}\n{diagnose(kind)}"
            ) from None
        delays.append(time.monotonic() - started)
        time.sleep(SPACING_S)
    return delays


def where_it_stopped(kind: str) -> str:
    """How far an alarm the watcher never received got: stored? in the change log? (a full run once lost one)."""
    close_old_connections()
    alarm = Alarm.objects.filter(device__device_id="CALM", type=kind).first()
    entries = list(
        ChangeLogEntry.objects.filter(device_code="CALM").order_by("-id").values_list("id", "seq", "event")[:5]
    )
    return (f"CALM's alarm {kind}: stored {alarm is not None} (raised at {alarm and alarm.raised_at}); CALM's last "
            f"change log rows (id, seq, event): {entries}; the log's last id: "
            f"{ChangeLogEntry.objects.order_by('-id').values_list('id', flat=True).first()}")  # fmt: skip


def flood_accounted() -> int:
    """FLOOD's errors that raised an alarm (each of a new type) plus those its one alarm_flood counts as shed."""
    alarms = Alarm.objects.filter(device__device_id="FLOOD")
    shed = [
        sum(details["shed"].values()) for details in alarms.filter(type="alarm_flood").values_list("details", flat=True)
    ]
    return alarms.exclude(type="alarm_flood").count() + sum(shed)


def summary(delays: list[float]) -> str:
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"


def test_one_pumps_alarm_flood_holds_no_other_pumps_alarm_back(own_broker, daphne_server, artifacts_dir):
    ward = make_ward("flood-ward")
    make_device("CALM", ward=ward)
    make_device("FLOOD", ward=ward)
    watcher = StreamClient(daphne_server.url, cookie=session_cookie(make_user("flood-nurse", ward=ward))).connect()
    # CALM raises two bursts of 5 distinct alarms, 3 s apart, beyond the defaults (a burst of 5 and 1/s, 20
    # active): the test gives every pump 2/s and 25 active; FLOOD is bounded all the same (about 6 alarms).
    bridge = BridgeProcess(own_broker.url, daphne_server.internal_url, artifacts_dir, ALARM_BUDGET_PER_S="2",
                           ALARM_ACTIVE_MAX="25").start()  # fmt: skip
    calm = PumpClient(own_broker.url, "CALM")
    flooder = Flooder(own_broker)
    try:
        assert watcher.subscribe("CALM")[0] == events.STREAM_SUBSCRIBED
        wait_until(lambda: (BridgeStatus.objects.get(name=bridge.name).stats or {}).get("internalConnected"),
                   message="the bridge never reached Daphne")  # fmt: skip

        staff = session_cookie(make_user("flood-staff", is_staff=True))

        def diagnose(kind: str) -> str:
            try:
                daphne_metrics = publisher_metrics(daphne_server.url, staff)
            except OSError as exc:
                daphne_metrics = [f"unreadable: {exc}"]
            return (f"{where_it_stopped(kind)}\nDaphne's publisher: {daphne_metrics}\nbridge log:\n"
                    f"{bridge.log_tail()}\nDaphne log:\n{daphne_server.log_tail()}")  # fmt: skip

        quiet = alarm_delays(calm, watcher, "quiet", diagnose, [])
        time.sleep(REFILL_S)
        flooder.start()
        flood_began, sent_at = time.monotonic(), []
        during = alarm_delays(calm, watcher, "flood", diagnose, sent_at)
        took = flooder.finish()
        inside = sum(sent - flood_began < took[-1] for sent in sent_at)
        wait_until(lambda: flood_accounted() >= FLOOD_MESSAGES, timeout=30,
                   message="FLOOD's errors were not all raised or counted as shed")  # fmt: skip
        accounted = flood_accounted()
        flood_alarms = Alarm.objects.filter(device__device_id="FLOOD").count()
        summed = Alarm.objects.get(device__device_id="FLOOD", type="alarm_flood")
    finally:
        flooder.stop()
        calm.close()
        watcher.close()
        bridge.stop()
    logger.warning(
        "alarm flood: FLOOD published %d QoS 1 errors in %.2f s (all acknowledged after %.2f s); CALM's alarm to a "
        "Socket.IO watcher without flood: %s; during the flood: %s (each: %s; %d of %d sent before FLOOD's last "
        "PUBACK); FLOOD has %d alarms, alarm_flood counted %s (accounted: %d)", FLOOD_MESSAGES, took[0], took[-1],
        summary(quiet), summary(during), [round(d, 3) for d in during], inside, SAMPLES, flood_alarms,
        summed.details["shed"], accounted,
    )  # fmt: skip
    assert accounted == FLOOD_MESSAGES, "each of FLOOD's errors is an alarm or counted in its alarm_flood"
    assert max(during) < DELIVERY_BOUND_S, f"CALM's alarm was held up {max(during):.1f} s by FLOOD: {during}"
    assert flood_alarms <= 26, f"FLOOD's alarms must be bounded (at most 25 + alarm_flood): {flood_alarms}"
    assert summed.priority == "high" and sum(summed.details["shed"].values()) > 0
