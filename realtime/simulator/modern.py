"""The PumpStream firmware: presence with a retained Last Will, QoS 1, `seq` and `bootId` on every message."""

import uuid
from typing import Any

import paho.mqtt.client as mqtt

from protocol import topics
from realtime.simulator.faults import Fault
from realtime.simulator.link import LinkOptions
from realtime.simulator.messages import Message, UptimeClock, utc_now_iso
from realtime.simulator.pump import Infusion, Order

FIRMWARE_VERSION = "pumpstream-sim 2.0"


class ModernFirmware:
    """Builds the messages a PumpStream-aware pump publishes; it honours `expiresAt` and confirms by itself."""

    legacy = False
    honours_expiry = True

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.boot_id = uuid.uuid4().hex[:12]
        self.seq = 0
        self.clock = UptimeClock()
        self.battery_level = 100

    def link_options(self) -> LinkOptions:
        """MQTT 5, a persistent session and a retained `offline` Last Will."""
        will = Message(topics.device_topic(self.device_id, topics.STATUS),
                       {"deviceId": self.device_id, "status": "offline", "bootId": self.boot_id}, 1, True)  # fmt: skip
        return LinkOptions(client_id=f"pump-{self.device_id}", protocol=mqtt.MQTTv5, will=will)

    def _message(self, kind: str, payload: dict[str, Any], *, retain: bool = False) -> Message:
        self.seq += 1
        body = {"deviceId": self.device_id, **payload, "timestamp": utc_now_iso(), "seq": self.seq,
                "bootId": self.boot_id}  # fmt: skip
        return Message(topics.device_topic(self.device_id, kind), body, qos=1, retain=retain)

    def status(self, status: str, **fields: Any) -> Message:
        """A status report; `online` is retained (presence), the rest are news."""
        payload = {"status": status, "batteryLevel": self.battery_level, "firmwareVersion": FIRMWARE_VERSION,
                   "uptime": self.clock.ms(), **fields}  # fmt: skip
        return self._message(topics.STATUS, payload, retain=status == "online")

    def connected(self) -> list[Message]:
        """On every (re)connect: the retained `online` presence."""
        return [self.status("online")]

    def received_start(self, order: Order) -> list[Message]:
        """START_INFUSION arrived (the contract's delivered)."""
        return [self.status("received_start_command", infusionId=order.infusion_id, currentInfusion=order.read_back())]

    def accepted(self, infusion: Infusion) -> list[Message]:
        """The confirmation with the read-back, then `started` and `running`."""
        order = infusion.order
        confirmation = self._message(topics.INFUSION, {"infusionId": order.infusion_id, "confirmed": True,
                                     "confirmedAt": utc_now_iso(), "parameters": order.read_back()})  # fmt: skip
        ids = {"infusionId": order.infusion_id}
        return [confirmation, self.status("started", **ids), self.status("running", **ids)]

    def started_at_pump(self, infusion: Infusion) -> list[Message]:
        """An infusion started at the pump's own screen: `started` and `running` naming it, no confirmation (it answers
        no START); the server shows it as the pump infusing without an order."""
        ids = {"infusionId": infusion.order.infusion_id}
        return [self.status("started", **ids), self.status("running", **ids)]

    def rejected(self, order: Order, reason: str = "rejected_at_pump") -> list[Message]:
        """Reject tapped at the pump: `confirmed: false` with the reason, and the pump is idle."""
        return [self._refusal(order, reason), self.status("idle")]

    def refused_busy(self, order: Order, status: str, infusion_id: str) -> list[Message]:
        """A START refused because the pump is busy (`pump_busy`), then what it is doing: `status` naming its infusion
        under way (`running`, `paused`), never `idle` while it infuses (review 33, finding 3: the server ended the
        running order `interrupted` on that word). Nothing follows the refusal while another START waits on its
        confirm screen (`status` empty): its `received_start_command` still stands."""
        return [self._refusal(order, "pump_busy"), *([self.status(status, infusionId=infusion_id)] if status else [])]

    def _refusal(self, order: Order, reason: str) -> Message:
        return self._message(topics.INFUSION, {"infusionId": order.infusion_id, "confirmed": False, "reason": reason,
                                               "parameters": order.read_back()})  # fmt: skip

    def progress(self, infusion: Infusion, status: str = "running") -> list[Message]:
        """About once a second while running."""
        fields = {**infusion.progress_fields(), "status": status, "infusionId": infusion.order.infusion_id}
        return [self._message(topics.PROGRESS, fields)]

    def bolus_completed(self, infusion: Infusion) -> list[Message]:
        """The bolus has been pushed (it is part of the planned volume)."""
        body = {"action": "BOLUS_COMPLETED", "infusionId": infusion.order.infusion_id,
                "bolusDelivered": infusion.order.bolus_ml}  # fmt: skip
        return [self._message(topics.BOLUS, body)]

    def completed(self, infusion: Infusion) -> list[Message]:
        """Final progress, completion with its summary, `completed`, then `idle`."""
        infusion_id = infusion.order.infusion_id
        final = self.progress(infusion, "completed")
        body = {"completed": True, "completedAt": utc_now_iso(), "infusionId": infusion_id,
                "summary": infusion.summary()}  # fmt: skip
        completion = self._message(topics.COMPLETION, body)
        return [*final, completion, self.status("completed", infusionId=infusion_id), self.status("idle")]

    def action(self, action: str, infusion_id: str, status: str) -> list[Message]:
        """A button pressed at the pump's own screen, then the status it leads to."""
        body = {"action": action, "source": "device_screen", "reason": "manual_user_action", "infusionId": infusion_id}
        return [self._message(topics.ACTIONS, body), self.status(status, infusionId=infusion_id)]

    def error(self, fault: Fault, infusion_id: str, pump_status: str, *, wire_type: str = "") -> Message:
        """An alarm condition (or its clearing, with `wire_type`)."""
        body = {"type": wire_type or fault.type, "severity": fault.severity,
                "message": fault.message if not wire_type else f"{fault.type} cleared",
                "errorCode": fault.error_code,
                "details": {"infusionId": infusion_id, "pumpStatus": pump_status}}  # fmt: skip
        return self._message(topics.ERROR, body)
