"""A pump that answers a command at once still completes it: the PUBACK is recorded before the reply."""

import json

import pytest

from devices.models import Command, InfusionSession
from devices.services.requests import infusion_request
from devices.states import CommandKind, CommandState, SessionStatus
from tests.factories import make_device
from tests.support.bridge import BridgeProcess, PumpClient, wait_until
from tests.support.ingest import started_order
from tests.support.processes import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPLIES = {"PAUSE_INFUSION": "paused", "RESUME_INFUSION": "running", "STOP_INFUSION": "stopped"}


def test_commands_answered_at_once_end_done(broker, artifacts_dir):
    make_device("PUMP_0001", has_presence=True)
    session = started_order("PUMP_0001")
    bridge = BridgeProcess(broker.url, f"http://127.0.0.1:{free_port()}", artifacts_dir).start()
    pump = PumpClient(broker.url, "PUMP_0001")

    def answer_at_once(client, _userdata, message) -> None:  # in paho's thread, before anything else
        command = json.loads(message.payload)
        pump.commands.append(command)
        status = REPLIES[command["command"]]
        client.publish("devices/PUMP_0001/status", json.dumps({"status": status, "infusionId": session.infusion_id}),
                       qos=1)  # fmt: skip

    pump.client.on_message = answer_at_once
    try:
        for kind, status in ((CommandKind.PAUSE_INFUSION, SessionStatus.PAUSED),
                             (CommandKind.RESUME_INFUSION, SessionStatus.RUNNING),
                             (CommandKind.STOP_INFUSION, SessionStatus.STOPPED)):  # fmt: skip
            command = infusion_request(device_id="PUMP_0001", kind=kind, infusion_id=session.infusion_id)
            wait_until(lambda: InfusionSession.objects.get(pk=session.pk).status == status, timeout=10,  # noqa: B023
                       message=f"the session never became {status}")  # fmt: skip
            wait_until(lambda: Command.objects.get(pk=command.pk).state == CommandState.DONE, timeout=5,  # noqa: B023
                       message=f"{kind} never turned done though the pump did it")  # fmt: skip
    finally:
        pump.close()
        bridge.stop()
    assert [command["command"] for command in pump.commands] == ["PAUSE_INFUSION", "RESUME_INFUSION", "STOP_INFUSION"]
