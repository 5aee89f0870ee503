"""Item 1 of issue 15: no message can stop the bridge, not even one that takes its process down.

The reproduction: `{"status": "online", "x": 999…9}` (4,301 digits) at QoS 1 on `devices/{id}/status`.
On the old main the bridge exited with `ValueError: Exceeds the limit (4300 digits)`, never acknowledged
the message, and died again on it at every restart.
"""

import json
import logging
import time

import pytest

from devices.models import Alarm, DeadLetter, DeliveryAttempt, Device
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.crashing_bridge import CRASH_MARKER
from tests.support.processes import free_port
from tests.support.supervision import SupervisedBridge

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
logger = logging.getLogger(__name__)

POISON = b'{"status": "online", "x": ' + b"9" * 4301 + b"}"


def battery_is(device_id: str, level: int) -> bool:
    return Device.objects.get(device_id=device_id).battery_level == level


@pytest.mark.parametrize("registered", [True, False], ids=["registered", "unregistered"])
def test_a_huge_integer_is_dead_lettered_and_the_bridge_goes_on(own_broker, artifacts_dir, registered):
    make_device("PUMP_GOOD")
    if registered:
        make_device("PUMP_EVIL")
    bridge = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    evil, good = PumpClient(own_broker.url, "PUMP_EVIL"), PumpClient(own_broker.url, "PUMP_GOOD")
    try:
        evil.publish("status", POISON)
        good.publish("status", {"status": "idle", "batteryLevel": 77})
        wait_until(lambda: battery_is("PUMP_GOOD", 77), timeout=15,
                   message=f"the good message after the poison was never applied:\n{bridge.log_tail()}")  # fmt: skip
        assert bridge.process.poll() is None, f"the bridge died:\n{bridge.log_tail()}"
        letter = wait_until(lambda: DeadLetter.objects.filter(source="PUMP_EVIL").first(), message="no dead letter")
    finally:
        evil.close()
        good.close()
        bridge.stop()
    assert letter.reason == "bad_number", f"dead-lettered for {letter.reason}: {letter.detail}"
    assert "4301" in letter.detail


def evil_then_good(bridge: SupervisedBridge, broker_url: str, evil_payload: bytes | str, *, kill: bool = False,
                   timeout: float = 30.0) -> tuple[DeadLetter, int, float]:  # fmt: skip
    """PUMP_EVIL publishes its payload (then the bridge is SIGKILLed if `kill`), PUMP_GOOD a battery level.

    Returns PUMP_EVIL's dead letter, the supervisor's restarts, and the seconds until the good message applied.
    """
    evil, good = PumpClient(broker_url, "PUMP_EVIL"), PumpClient(broker_url, "PUMP_GOOD")
    try:
        started = time.monotonic()
        evil.publish("status", evil_payload)
        if kill:
            bridge.kill_bridge()
        good.publish("status", {"status": "idle", "batteryLevel": 61})
        wait_until(lambda: battery_is("PUMP_GOOD", 61), timeout=timeout,
                   message="the good message behind the evil one was never applied")  # fmt: skip
        applied_after = time.monotonic() - started
        letter = wait_until(lambda: DeadLetter.objects.filter(source="PUMP_EVIL").first(), message="no dead letter")
        return letter, bridge.restarts(), applied_after
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{bridge.log_tail()}") from failure
    finally:
        evil.close()
        good.close()
        bridge.stop()


def test_sigkill_and_poison_together_the_supervised_bridge_comes_back_and_dead_letters_it(own_broker, artifacts_dir):
    make_device("PUMP_EVIL")
    make_device("PUMP_GOOD")
    bridge = SupervisedBridge(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    letter, restarts, applied_after = evil_then_good(bridge, own_broker.url, POISON, kill=True)
    assert letter.reason == "bad_number"
    assert restarts == 1, f"the bridge must be restarted once (the kill), not crash again: {restarts} restarts"
    logger.warning("SIGKILL + poison: bridge restarted %d time(s), good message applied %.1fs after the kill",
                   restarts, applied_after)  # fmt: skip


def test_a_message_that_takes_the_process_down_each_time_is_dead_lettered_after_its_tries(own_broker, artifacts_dir):
    """A message that kills the process while it is applied (no exception to catch) is tried 1 + 3 times."""
    make_device("PUMP_EVIL")
    make_device("PUMP_GOOD")
    bridge = SupervisedBridge(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir, crashing=True,
                              BRIDGE_REDELIVERY_TRIES="3").start()  # fmt: skip
    crashing = json.dumps({"status": "online", "note": CRASH_MARKER})
    letter, restarts, applied_after = evil_then_good(bridge, own_broker.url, crashing, timeout=60)
    assert letter.reason == "repeated_failure", f"{letter.reason}: {letter.detail}"
    assert restarts == 4, f"the first delivery and 3 counted tries each took the bridge down: {restarts}"
    assert not DeliveryAttempt.objects.exists(), "the dead-lettered message's tries must be forgotten"
    logger.warning("crashing message: %d restarts, then dead-lettered (%s); the next message applied after %.1fs",
                   restarts, letter.detail, applied_after)  # fmt: skip


NUL_PAYLOADS = {
    "escaped": b'{"status": "idle", "firmwareVersion": "1.0\\u0000evil"}',  # valid JSON, a NUL in a string
    "raw": b'{"status": "idle", "firmwareVersion": "1.0\x00evil"}',  # a NUL byte: not JSON, dead-lettered as is
}


@pytest.mark.parametrize("kind", NUL_PAYLOADS)
def test_a_nul_character_is_dead_lettered_on_every_engine(own_broker, artifacts_dir, kind):
    """PostgreSQL stores no NUL in text or jsonb: the message must be refused (and its dead letter stored), not
    stall the bridge retrying its batch as if the database were down; SQLite would have stored it."""
    make_device("PUMP_GOOD")
    make_device("PUMP_EVIL")
    bridge = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    evil, good = PumpClient(own_broker.url, "PUMP_EVIL"), PumpClient(own_broker.url, "PUMP_GOOD")
    try:
        evil.publish("status", NUL_PAYLOADS[kind])
        good.publish("status", {"status": "idle", "batteryLevel": 77})
        wait_until(lambda: battery_is("PUMP_GOOD", 77), timeout=15,
                   message=f"the good message after the NUL was never applied:\n{bridge.log_tail()}")  # fmt: skip
        letter = wait_until(lambda: DeadLetter.objects.filter(source="PUMP_EVIL").first(), message="no dead letter")
    finally:
        evil.close()
        good.close()
        bridge.stop()
    assert "\x00" not in letter.payload_excerpt + letter.detail
    assert not Device.objects.filter(device_id="PUMP_EVIL", firmware_version__contains="evil").exists()


def test_an_unreadable_alarm_with_a_nul_byte_still_alarms(own_broker, artifacts_dir):
    """Its excerpt goes into the alarm's jsonb details, where PostgreSQL refuses a NUL: the alarm must still rise."""
    make_device("PUMP_EVIL")
    bridge = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    evil = PumpClient(own_broker.url, "PUMP_EVIL")
    try:
        evil.publish("error", b'{"type": "occlusion\x00", "severity": "high"}')
        alarm = wait_until(lambda: Alarm.objects.filter(device__device_id="PUMP_EVIL", type="unreadable_alarm").first(),
                           timeout=15, message=f"no unreadable_alarm:\n{bridge.log_tail()}")  # fmt: skip
    finally:
        evil.close()
        bridge.stop()
    assert "\x00" not in alarm.details["excerpt"]
