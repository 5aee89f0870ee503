"""A command withdrawn while the broker had not acknowledged it never reaches the pump afterwards."""

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


def test_a_cancelled_start_never_reaches_the_pump_after_the_link_heals(broker, proxy, artifacts_dir):
    """A START waits for its PUBACK until its own deadline (the broker may still deliver it); its order cancelled
    meanwhile, the outbox withdraws it from paho, so the reconnection does not retransmit it: the pump gets the
    cancel's STOP only. On the code before, paho resent the cancelled START first."""
    make_device("PUMP_0001")
    bridge = BridgeProcess(proxy.url, f"http://127.0.0.1:{free_port()}", artifacts_dir,
                           CONFIRMATION_TIMEOUT_S="60", COMMAND_ACK_TIMEOUT_S="30").start()  # fmt: skip
    pump = PumpClient(broker.url, "PUMP_0001")
    try:
        proxy.swallow_publish = True
        session = infusion_start(device_id="PUMP_0001", order=make_order())
        start = Command.objects.get(kind=CommandKind.START_INFUSION)
        wait_until(lambda: proxy.swallowed >= 1, timeout=20, message="the START was never handed to the broker")
        infusion_cancel(infusion_id=session.infusion_id)  # the START superseded; a STOP queued to clear the screen
        stop = Command.objects.get(kind=CommandKind.STOP_INFUSION)
        wait_until(lambda: proxy.swallowed >= 2, timeout=20, message="the STOP was never handed to the broker")
        # the outbox's ticks after PUBACK_USUALLY withdraw the superseded START from paho (a fixed 2 s wait for
        # it was a guess a slow machine could beat)
        wait_until(lambda: f"command {start.pk} withdrawn before its PUBACK" in bridge.log_tail(200), timeout=20,
                   message="the superseded START was never withdrawn from paho")  # fmt: skip

        proxy.swallow_publish = False
        healed = timezone.now()
        proxy.cut()  # the bridge reconnects with its session: paho resends every publish it still holds
        bridge.wait_connected(since=healed)
        wait_until(lambda: pump.commands, timeout=15, message="the STOP never reached the pump after the heal")
        time.sleep(1.0)  # anything resent late would arrive by now
    finally:
        pump.close()
        bridge.stop()
    received = [command["command"] for command in pump.commands]
    assert received == ["STOP_INFUSION"], f"the cancelled START reached the pump after all: {received}"
    assert Command.objects.get(pk=start.pk).state == CommandState.SUPERSEDED
    assert Command.objects.get(pk=stop.pk).state != CommandState.FAILED
