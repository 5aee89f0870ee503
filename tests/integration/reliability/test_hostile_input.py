"""Hostile input against real processes: fuzzed payloads through Mosquitto and the bridge; abusive Socket.IO clients."""

import logging
import time

import pytest
import socketio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from devices.models import BridgeStatus, DeviceEvent
from protocol import events, topics
from tests.factories import make_device, make_user, make_ward
from tests.realtime.fuzz.strategies import raw_payloads
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.processes import free_port
from tests.support.sio import StreamClient, session_cookie

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
logger = logging.getLogger(__name__)

OUTCOMES = ("applied", "duplicate", "rejected", "ignored")


def fuzzed_messages(count: int) -> list[tuple[str, bytes]]:
    """`count` (kind, payload) pairs from the fuzz tests' strategy, the same on every run."""
    collected: list[tuple[str, bytes]] = []

    @settings(max_examples=count, derandomize=True, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(kind=st.sampled_from(topics.DEVICE_KINDS), raw=raw_payloads)
    def collect(kind: str, raw: bytes) -> None:
        collected.append((kind, raw))

    collect()
    return collected


def processed(name: str) -> int:
    stats = BridgeStatus.objects.get(name=name).stats
    return sum(stats.get(outcome, 0) for outcome in OUTCOMES)


@pytest.fixture
def unbudgeted_bridge(own_broker, artifacts_dir):
    """A bridge without per-pump budgets: 200 messages of one pump in a second would be a flood by them."""
    process = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir,
                            ALARM_BUDGET_PER_S="0", REPORT_BUDGET_PER_S="0", REPORT_BYTES_PER_S="0",
                            ALARM_ACTIVE_MAX="0").start()  # fmt: skip
    yield process
    process.stop()


def test_fuzzed_payloads_through_the_real_broker_and_bridge_are_refused_and_the_next_good_one_applies(
    own_broker, unbudgeted_bridge
):
    own_bridge = unbudgeted_bridge
    make_device("PUMP_SMOKE")
    messages = fuzzed_messages(200)
    pump = PumpClient(own_broker.url, "PUMP_SMOKE")
    try:
        for kind, raw in messages:
            pump.publish(kind, raw)
        pump.publish("status", {"status": "testing", "seq": 1, "bootId": "smoke-good"})
    finally:
        pump.close()
    wait_until(lambda: DeviceEvent.objects.filter(boot_id="smoke-good").exists(), timeout=20,
               message=f"the good message after the hostile ones was lost:\n{own_bridge.log_tail()}")  # fmt: skip
    wait_until(lambda: processed(own_bridge.name) == len(messages) + 1, timeout=10,
               message="the bridge's outcome counts do not add up to what was published")  # fmt: skip
    stats = BridgeStatus.objects.get(name=own_bridge.name).stats
    log = own_bridge.log_tail(5000)
    assert own_bridge.process.poll() is None, "the bridge died"
    assert "internal_error" not in log and "Traceback" not in log, "a hostile payload hit an unguarded path"
    assert stats["rejected"] > len(messages) // 2, f"most fuzzed payloads must be refused: {stats}"
    logger.warning("fuzz smoke through broker and bridge: %d payloads, outcomes %s",
                   len(messages), {k: stats.get(k, 0) for k in OUTCOMES})  # fmt: skip


@pytest.mark.parametrize("abuse", ["subscribe_flood", "garbage"])
def test_an_abusive_socketio_client_is_cut_off_and_another_is_unaffected(daphne_server, abuse):
    icu = make_ward("icu")
    make_device("PUMP_ABUSE", ward=icu)
    cookie = session_cookie(make_user("abuse-nurse", ward=icu, can_command=False))
    bystander = StreamClient(daphne_server.url, cookie=cookie).connect()
    abuser = StreamClient(daphne_server.url, cookie=cookie).connect()
    try:
        assert bystander.subscribe("PUMP_ABUSE")[0] == events.STREAM_SUBSCRIBED
        started = time.monotonic()
        for n in range(3000):
            if abuser.disconnected.is_set():
                break
            try:
                if abuse == "subscribe_flood":
                    abuser.emit(events.SUBSCRIBE_DEVICE, {"deviceId": "PUMP_ABUSE"})
                else:
                    abuser.emit(f"junk-{n}", {"x": "y" * 100, "n": [n] * 10})
            except socketio.exceptions.BadNamespaceError:  # cut off since the check: python-socketio forgets the
                break  # namespace before its disconnect handler sets `disconnected` (ci50, on PostgreSQL)
        assert abuser.disconnected.wait(10), f"the {abuse} client was never cut off"
        cut_after = time.monotonic() - started
        refusals = abuser.events.named(events.ERROR)
        reply_started = time.monotonic()
        assert bystander.subscribe("PUMP_ABUSE")[0] == events.STREAM_SUBSCRIBED, "the bystander was affected"
        bystander_reply = time.monotonic() - reply_started
        assert bystander.client.connected, "the bystander was disconnected too"
    finally:
        abuser.close()
        bystander.close()
    assert refusals, "the abuser got no error replies before being cut off"
    assert bystander_reply < 2.0, f"the bystander waited {bystander_reply:.2f}s for a reply"
    logger.warning(
        "%s: cut off after %.2fs and %d refusals; the bystander's next subscribe answered in %.3fs",
        abuse, cut_after, len(refusals), bystander_reply,
    )  # fmt: skip
