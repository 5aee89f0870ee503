"""The bridge process frozen (SIGSTOP: a VM or GC pause) while a pump kept reporting: on waking it must not alarm that
pump `communication_lost` before it has read what waited at the broker (review 28, seen twice in the walk; the
race was not pinned then, for the pump's messages reached the bridge's socket while it was frozen and its link's
thread could read them before housekeeping ran).

Pinned here: the broker is frozen with the bridge, so what the pump sends meanwhile waits in the broker's socket,
and stays frozen after the bridge wakes until the bridge has written a heartbeat, which it does after its
housekeeping in the same tick. While frozen, the screens show monitoring degraded (the heartbeat aged).
"""

import json
import signal
import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from devices.models import Alarm, BridgeStatus, Device
from devices.selectors import bridge_status
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.ingest import confirmed_order
from tests.support.processes import free_port, subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
PUMP = "PUMP_STALL"
HEARTBEAT_TIMEOUT_S = float(subprocess_env()["HEARTBEAT_TIMEOUT_S"])
GRACE_S = 6.0  # the bridge's reconnect grace here: longer than the broker stays frozen after the bridge wakes


class Reporter:
    """The pump reporting progress every 0.3 s from its own thread, never waiting for the broker (frozen too)."""

    def __init__(self, pump: PumpClient, infusion_id: str) -> None:
        self.pump, self.infusion_id, self.sent = pump, infusion_id, 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            self.sent += 1
            body = {
                "status": "running",
                "infusionId": self.infusion_id,
                "flowRate": 2.0,
                "progressPercent": 20,
                "deliveredVolumeMl": 6.0 + self.sent / 100,
                "volumeRemainingMl": 24.0,
                "timeRemainingMin": 12.0,
            }
            self.pump.client.publish(f"devices/{PUMP}/progress", json.dumps(body), qos=1)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


def heartbeat_at(name: str):
    close_old_connections()
    return BridgeStatus.objects.get(name=name).heartbeat_at


def progress_at():
    close_old_connections()
    return Device.objects.get(device_id=PUMP).latest_progress_at


def test_a_pump_reporting_through_a_stall_of_the_bridge_is_not_alarmed_silent_on_waking(own_broker, artifacts_dir):
    bridge = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir,
                           RECONNECT_GRACE_S=str(GRACE_S)).start()  # fmt: skip
    make_device(PUMP, has_presence=True, last_seen_at=timezone.now())
    infusion_id = confirmed_order(PUMP).infusion_id
    pump = PumpClient(own_broker.url, PUMP)
    reporter = Reporter(pump, infusion_id)
    try:
        wait_until(lambda: progress_at() is not None, timeout=15, message=f"no progress:\n{bridge.log_tail()}")
        connected_since = BridgeStatus.objects.get(name=bridge.name).broker_connected_since
        wait_until(lambda: timezone.now() - connected_since > timedelta(seconds=GRACE_S + 1), timeout=GRACE_S + 5,
                   message="precondition: the bridge's link settled")  # fmt: skip
        bridge.pause_idle()
        own_broker.process.send_signal(signal.SIGSTOP)  # what the pump sends now waits in the broker's socket
        wait_until(lambda: not bridge_status()["alive"], timeout=15, message="frozen, but monitoring not degraded")
        last_heard = progress_at()
        wait_until(
            lambda: timezone.now() - last_heard > timedelta(seconds=HEARTBEAT_TIMEOUT_S + 1),
            timeout=HEARTBEAT_TIMEOUT_S + 5,
            message="precondition: the pump looks silent by the clock",
        )
        woken = timezone.now()
        bridge.resume()
        wait_until(
            lambda: heartbeat_at(bridge.name) > woken,
            timeout=10,
            message=f"no heartbeat after waking:\n{bridge.log_tail()}",
        )  # housekeeping ran before it
        own_broker.process.send_signal(signal.SIGCONT)
        wait_until(lambda: progress_at() > woken, timeout=10, message=f"the waiting progress:\n{bridge.log_tail()}")
    finally:
        own_broker.process.send_signal(signal.SIGCONT)
        reporter.stop()
        pump.close()
        bridge.stop()
    raised = list(
        Alarm.objects.filter(device__device_id=PUMP, type="communication_lost").values_list("message", flat=True)
    )
    assert raised == [], f"the pump reported every 0.3 s throughout; on waking the bridge alarmed it: {raised}"
