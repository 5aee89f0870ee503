"""A command the broker never acknowledged is `failed`, shown as such, and never reaches the pump afterwards."""

import time

import pytest
from django.utils import timezone

from devices.models import Command
from devices.services.requests import infusion_cancel
from devices.services.sessions import infusion_start
from devices.states import CommandKind, CommandState
from tests.factories import make_device, make_order
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.processes import free_port
from tests.support.proxy import MqttProxy

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def proxy(broker):
    server = MqttProxy(broker.host, broker.port).start()
    yield server
    server.stop()


def test_a_failed_command_never_reaches_the_pump_after_the_link_heals(broker, proxy, artifacts_dir):
    make_device("PUMP_0001")
    bridge = BridgeProcess(proxy.url, f"http://127.0.0.1:{free_port()}", artifacts_dir,
                           CONFIRMATION_TIMEOUT_S="60").start()  # fmt: skip
    pump = PumpClient(broker.url, "PUMP_0001")
    try:
        proxy.swallow_publish = True
        session = infusion_start(device_id="PUMP_0001", order=make_order())
        start = Command.objects.get(kind=CommandKind.START_INFUSION)
        wait_until(lambda: Command.objects.get(pk=start.pk).state == CommandState.FAILED, timeout=20,
                   message="an unacknowledged START must turn failed after the acknowledgement timeout")  # fmt: skip
        assert proxy.swallowed >= 1, "the proxy should have swallowed the START"
        assert Command.objects.get(pk=start.pk).error, "a failed command says why"

        proxy.swallow_publish = False
        healed = timezone.now()
        proxy.cut()  # the bridge reconnects with its session: paho would resend any publish it still held
        bridge.wait_connected(since=healed)
        infusion_cancel(infusion_id=session.infusion_id)  # follows the START with STOP_INFUSION
        wait_until(lambda: pump.commands, timeout=15, message="the STOP after the heal never reached the pump")
        time.sleep(1.0)  # anything resent late would arrive by now
    finally:
        pump.close()
        bridge.stop()
    received = [command["command"] for command in pump.commands]
    assert received == ["STOP_INFUSION"], f"the failed START reached the pump after all: {received}"
    assert Command.objects.get(pk=start.pk).state == CommandState.FAILED
