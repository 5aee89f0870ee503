"""What the clinical scenarios share: the original firmware's recorded messages, and waiting on the database."""

import json
from pathlib import Path

from devices.models import Alarm, Command, InfusionSession
from devices.states import AlarmState
from tests.support.bridge import PumpClient, wait_until

LEGACY_FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "legacy-firmware.json"


def legacy_steps(section: str, infusion_id: str, device_id: str) -> list[dict]:
    """The original firmware's messages of `section`, for this infusion and pump."""
    text = LEGACY_FIXTURE.read_text().replace("{infusionId}", infusion_id).replace("PUMP_0001", device_id)
    return json.loads(text)[section]


def legacy_step(steps: list[dict], topic_end: str, **payload_match) -> dict:
    """The first recorded step on a topic ending with `topic_end` whose payload has these values."""
    for step in steps:
        if step["topic"].endswith(topic_end) and all(step["payload"].get(k) == v for k, v in payload_match.items()):
            return step
    raise LookupError(f"no {topic_end} step with {payload_match}")


def replay(pump: PumpClient, *steps: dict) -> None:
    """Publish recorded steps as the firmware did (topic, QoS, retain flag)."""
    for step in steps:
        pump.publish("", json.dumps(step["payload"]), topic=step["topic"], qos=step["qos"], retain=step["retain"])


def session_status(infusion_id: str) -> str:
    return InfusionSession.objects.get(infusion_id=infusion_id).status


def wait_status(infusion_id: str, status: str, *, timeout: float = 10.0, message: str = "") -> InfusionSession:
    message = message or f"{infusion_id} never became {status}"
    wait_until(lambda: session_status(infusion_id) == status, timeout=timeout, message=message)
    return InfusionSession.objects.get(infusion_id=infusion_id)


def active_alarm(device_id: str, alarm_type: str) -> Alarm | None:
    return Alarm.objects.filter(device__device_id=device_id, type=alarm_type, state=AlarmState.ACTIVE).first()


def commands_of(device_id: str, kind: str) -> list[Command]:
    return list(Command.objects.filter(device__device_id=device_id, kind=kind).order_by("created_at"))


def published(pump: PumpClient, kind: str) -> list[dict]:
    """The commands of `kind` the pump received."""
    return [command for command in pump.commands if command["command"] == kind]
