"""The original firmware's recorded messages through a real broker, and commands while the broker is away."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from devices.models import Alarm, Command, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, CommandKind, CommandState, SessionStatus
from tests.factories import make_device, make_order
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.broker import MosquittoBroker
from tests.support.processes import SHARED, free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FIXTURE = SHARED / "fixtures" / "legacy-firmware.json"


def legacy_steps(section: str, infusion_id: str) -> list[dict]:
    text = FIXTURE.read_text().replace("{infusionId}", infusion_id)
    return json.loads(text)[section]


def replay(pump: PumpClient, steps: list[dict]) -> None:
    for step in steps:
        pump.publish("", json.dumps(step["payload"]), topic=step["topic"], qos=step["qos"], retain=step["retain"])


@pytest.fixture
def own_broker(tmp_path):
    server = MosquittoBroker(tmp_path / "mosquitto").start()
    yield server
    server.stop()


def test_legacy_fixture_with_a_bridge_reconnect_ends_right_and_applies_once(own_broker, artifacts_dir):
    make_device("PUMP_0001")
    bridge = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir,
                           CONFIRMATION_TIMEOUT_S="60", HEARTBEAT_TIMEOUT_S="600").start()  # fmt: skip
    pump = PumpClient(own_broker.url, "PUMP_0001")
    try:
        session = infusion_start(device_id="PUMP_0001", order=make_order())
        wait_until(lambda: pump.commands, message="START_INFUSION never reached the pump")
        steps = legacy_steps("infusion", session.infusion_id)
        replay(pump, steps[:12])
        wait_until(lambda: InfusionSession.objects.get().status == SessionStatus.RUNNING, message="not resumed")
        bridge.stop()  # the bridge reconnects in the middle; the broker replays retained messages
        bridge.start()
        replay(pump, steps[12:])
        wait_until(lambda: InfusionSession.objects.get().status == SessionStatus.COMPLETED,
                   message="the legacy infusion did not complete")  # fmt: skip
        bubble = Alarm.objects.get(type="bubble_detected")
        assert bubble.state == AlarmState.CLEARED and bubble.count == 1, "the bubble alarm was applied more than once"
        # A newer session, then a reconnect: the retained completion/confirmation must not attach to it.
        newer = infusion_start(device_id="PUMP_0001", order=make_order())
        bridge.stop()
        bridge.start()
        replay(pump, legacy_steps("rejected_start", newer.infusion_id))
        wait_until(lambda: InfusionSession.objects.get(pk=newer.pk).status == SessionStatus.REJECTED,
                   message="the rejected start did not end rejected")  # fmt: skip
        assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.COMPLETED
        assert Alarm.objects.filter(type="bubble_detected").count() == 1
        assert not Alarm.objects.filter(type="confirmed_late").exists(), "an old confirmation was re-applied"
    finally:
        pump.close()
        bridge.stop()


def test_command_queued_while_broker_down_goes_out_on_return_and_expired_never(own_broker, artifacts_dir):
    make_device("PUMP_0001")
    bridge = BridgeProcess(own_broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir,
                           CONFIRMATION_TIMEOUT_S="60").start()  # fmt: skip
    pump = PumpClient(own_broker.url, "PUMP_0001", persistent=True)
    try:
        own_broker.stop()
        wait_until(lambda: not bridge_connected(bridge), message="the bridge did not notice the broker leaving")
        session = infusion_start(device_id="PUMP_0001", order=make_order())
        expired = Command.objects.create(device=session.device, kind=CommandKind.PAUSE_INFUSION, payload={},
                                         expires_at=timezone.now() + timedelta(seconds=1))  # fmt: skip
        wait_until(lambda: Command.objects.get(pk=expired.pk).state == CommandState.EXPIRED, message="not expired")
        assert Command.objects.get(kind=CommandKind.START_INFUSION).state == CommandState.QUEUED
        own_broker.start()
        wait_until(lambda: Command.objects.get(kind=CommandKind.START_INFUSION).state == CommandState.SENT,
                   timeout=20, message="the queued START did not go out when the broker returned")  # fmt: skip
        wait_until(lambda: pump.commands, message="the pump did not receive the START")
        assert [c["command"] for c in pump.commands] == ["START_INFUSION"], "an expired command was published"
    finally:
        pump.close()
        bridge.stop()


def bridge_connected(bridge: BridgeProcess) -> bool:
    from devices.models import BridgeStatus

    status = BridgeStatus.objects.filter(name=bridge.name).first()
    return bool(status and status.broker_connected)
