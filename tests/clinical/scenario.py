"""What the clinical scenarios share: the original firmware's recorded messages, and waiting on the database."""

import json
from pathlib import Path

from devices.models import Alarm, Command, DeviceEvent, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import AlarmState, SessionStatus
from tests.factories import make_device, make_order
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


def confirmed_run(pump, device_id: str, *, boot: str, ward=None, **order_fields) -> InfusionSession:
    """`device_id` registered (in `ward`, bed 12), an order (`make_order(**order_fields)`) started on it and confirmed
    by `pump` with the order's own parameters (read-back `match`), then one running progress (6 of 30 mL) at its rate,
    `seq` 1 and 2 of `boot`; returned once that progress is stored."""
    make_device(device_id, ward=ward, bed="12")
    session = infusion_start(device_id=device_id, order=make_order(**order_fields))
    wait_until(lambda: published(pump, "START_INFUSION"), message="START never reached the pump")
    order = published(pump, "START_INFUSION")[0]["payload"]
    parameters = {"flowRateMlMin": order["flowRateMlMin"], "plannedVolumeMl": order["plannedVolumeMl"],
                  "plannedTimeMin": order["plannedTimeMin"], "bolusEnabled": order["bolus"]["enabled"],
                  "bolusVolumeMl": order["bolus"]["volumeMl"]}  # fmt: skip
    pump.publish("infusion", {"infusionId": session.infusion_id, "confirmed": True, "parameters": parameters,
                              "bootId": boot, "seq": 1})  # fmt: skip
    pump.publish("progress", {"status": "running", "infusionId": session.infusion_id, "deliveredVolumeMl": 6.0,
                              "volumeRemainingMl": 24.0, "flowRate": order["flowRateMlMin"], "bootId": boot,
                              "seq": 2})  # fmt: skip
    wait_status(session.infusion_id, SessionStatus.RUNNING)
    wait_until(lambda: (InfusionSession.objects.get(pk=session.pk).progress() or {}).get("deliveredVolumeMl") == 6.0,
               message="the first progress never arrived")  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).read_back == "match"
    return session


def all_applied(pump, device_id: str, seq: int, *, boot: str) -> None:
    """Publish an informational `testing` status as `seq` of `boot` and wait until the bridge stored it: the bridge
    applies one pump's messages in the order the broker handed them over, so everything published before it was
    applied."""
    pump.publish("status", {"status": "testing", "bootId": boot, "seq": seq})
    wait_until(lambda: DeviceEvent.objects.filter(device__device_id=device_id, kind="mqtt.status",
                                                  payload__seq=seq).exists(),
               message=f"the marker status seq {seq} was never applied")  # fmt: skip
