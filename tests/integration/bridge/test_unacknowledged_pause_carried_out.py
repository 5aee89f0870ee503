"""Through the real broker and bridge: a PAUSE the broker took while stalled is failed for its late PUBACK,
then delivered and carried out by the pump; the command stays FAILED and the pause is recorded "at the pump".

The outbox "withdraws" an unacknowledged publish from paho after COMMAND_ACK_TIMEOUT_S (3 s in the tests), but the
PUBLISH is already in the broker's socket: when the broker goes on, it delivers it (QoS 1), and the pump pauses.

Review 22, finding 4.
"""

import json
import signal
import time

import pytest

from devices.models import Command, InfusionSession
from devices.services.requests import infusion_request
from devices.states import CommandKind, CommandState, SessionStatus
from tests.factories import make_device, make_user
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.ingest import started_order
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_pause_failed_for_a_late_puback_that_the_pump_carried_out_is_not_shown_failed(broker, artifacts_dir):
    make_device("R22_STALL", has_presence=True)
    nurse = make_user("stall-nurse")
    session = started_order("R22_STALL")
    bridge = BridgeProcess(broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    pump = PumpClient(broker.url, "R22_STALL")

    def pause_at_once(client, _userdata, message) -> None:
        command = json.loads(message.payload)
        pump.commands.append(command)
        if command["command"] == "PAUSE_INFUSION":
            client.publish("devices/R22_STALL/status",
                           json.dumps({"status": "paused", "infusionId": session.infusion_id}), qos=1)  # fmt: skip

    pump.client.on_message = pause_at_once
    stalled = False
    try:
        broker.process.send_signal(signal.SIGSTOP)  # the broker stalls: it takes the PUBLISH, acknowledges nothing
        stalled = True
        pause = infusion_request(device_id="R22_STALL", kind=CommandKind.PAUSE_INFUSION,
                                 infusion_id=session.infusion_id, user=nurse)  # fmt: skip
        wait_until(lambda: Command.objects.get(pk=pause.pk).state == CommandState.FAILED, timeout=20,
                   message="the unacknowledged PAUSE was never failed")  # fmt: skip
        broker.process.send_signal(signal.SIGCONT)
        stalled = False
        wait_until(lambda: InfusionSession.objects.get(pk=session.pk).status == SessionStatus.PAUSED, timeout=15,
                   message=f"the pump never paused (it received {pump.commands})")  # fmt: skip
        time.sleep(1)
    finally:
        if stalled:
            broker.process.send_signal(signal.SIGCONT)
        pump.close()
        bridge.stop()
    pause = Command.objects.get(pk=pause.pk)
    session = InfusionSession.objects.get(pk=session.pk)
    received = [command["command"] for command in pump.commands]
    assert received == ["PAUSE_INFUSION"], f"precondition: the pump received the failed PAUSE ({received})"
    assert pause.state != CommandState.FAILED and "remotely by stall-nurse" in session.status_reason, (
        f"the broker delivered the PAUSE and the pump carried it out, yet the command reads {pause.state} "
        f"({pause.error}) and the session '{session.status_reason}'"
    )
