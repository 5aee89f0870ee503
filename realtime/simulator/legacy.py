"""The original firmware, as `legacy-firmware.json` shows it: QoS 0, retained news, uptime clocks, no seq."""

from typing import Any

import paho.mqtt.client as mqtt

from protocol import topics
from realtime.simulator.faults import Fault
from realtime.simulator.link import LinkOptions
from realtime.simulator.messages import Message, UptimeClock
from realtime.simulator.pump import BOLUS_RATE_ML_MIN, Infusion, Order

RUNNING_STATUS_EVERY = 10  # the firmware repeats a `running` status with progress every few progress messages
RETAINED = {topics.INFUSION, topics.BOLUS, topics.ACTIONS, topics.ERROR, topics.COMPLETION}


class LegacyFirmware:
    """Builds what the original ESP32 firmware publishes, quirks included, so tests prove such pumps still work."""

    legacy = True
    honours_expiry = False  # the original ignores `expiresAt`

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.clock = UptimeClock()
        self.battery_level = 100
        self.progress_count = 0
        self.said_hello = False

    def link_options(self) -> LinkOptions:
        """MQTT 3.1.1, a clean session and no Last Will."""
        return LinkOptions(client_id=f"ESP32_{self.device_id}", protocol=mqtt.MQTTv311, persistent_session=False)

    def _message(self, kind: str, payload: dict[str, Any]) -> Message:
        return Message(topics.device_topic(self.device_id, kind), payload, qos=0, retain=kind in RETAINED)

    def status(self, status: str, **fields: Any) -> Message:
        """Status on the singular `device/{id}/status`, never retained."""
        fields.pop("infusionId", None)
        body = {"deviceId": self.device_id, "status": status, "timestamp": self.clock.ms(), **fields}
        return Message(topics.legacy_status_topic(self.device_id), body, qos=0, retain=False)

    def connected(self) -> list[Message]:
        """The `test` message once after boot, then a plain `online` status."""
        hello = [] if self.said_hello else [self._message(topics.TEST, {"test": "ESP32 MQTT working",
                                                                        "timestamp": self.clock.ms()})]  # fmt: skip
        self.said_hello = True
        return [*hello, self.status("online")]

    def received_start(self, order: Order) -> list[Message]:
        """The confirm screen is up; a person must tap Accept or Reject."""
        current = {"rate": order.flow_rate_ml_min, "volume": order.planned_volume_ml, "time": order.planned_time_min,
                   "bolusEnabled": order.bolus_enabled, "bolusVolume": order.bolus_ml}  # fmt: skip
        return [self.status("received_start_command", currentInfusion=current)]

    def accepted(self, infusion: Infusion) -> list[Message]:
        """Accept tapped: the bolus is pushed first (part of the planned volume), then the confirmation."""
        order = infusion.order
        messages = []
        if order.bolus_ml > 0:
            infusion.bolus_delivered_ml = order.bolus_ml
            infusion.bolus_reported = True
            messages.append(self._message(topics.BOLUS, {
                "action": "BOLUS_COMPLETED", "deviceId": self.device_id, "infusionId": order.infusion_id,
                "timestamp": self.clock.ms(), "bolusDelivered": order.bolus_ml,
                "deliveryTimeSeconds": round(60 * order.bolus_ml / BOLUS_RATE_ML_MIN, 1),
                "remainingVolume": round(infusion.remaining_ml, 2), "status": "bolus_completed_resuming_normal",
            }))  # fmt: skip
        confirmation = {"confirmed": True, "infusionId": order.infusion_id, "confirmedAt": self.clock.ms(),
                        "parameters": order.read_back()}  # fmt: skip
        self.progress_count = 0
        return [*messages, self._message(topics.INFUSION, confirmation), self.status("started")]

    def started_at_pump(self, infusion: Infusion) -> list[Message]:
        """An infusion started at the pump's own screen: as Accept (the bolus first), without the confirmation."""
        return [m for m in self.accepted(infusion) if not m.topic.endswith(f"/{topics.INFUSION}")]

    def rejected(self, order: Order, reason: str = "") -> list[Message]:
        """Reject tapped: the firmware's only rejection signal is a status."""
        return [self.status("rejected")]

    def progress(self, infusion: Infusion, status: str = "running") -> list[Message]:
        """Progress without infusionId, with the firmware's extra fields; a `running` status now and then."""
        order = infusion.order
        fields = {
            **infusion.progress_fields(),
            "timestamp": self.clock.ms(),
            "status": status,
            "bolusDelivered": order.bolus_ml,
            "normalInfusionDelivered": round(infusion.normal_delivered_ml, 2),
            "originalTotalVolume": order.planned_volume_ml + order.bolus_ml,
        }  # the bolus counted twice
        messages = [self._message(topics.PROGRESS, fields)]
        if status == "running" and self.progress_count % RUNNING_STATUS_EVERY == 0:
            summary = {"elapsedMin": fields["elapsedTimeMin"], "deliveredVol": fields["deliveredVolumeMl"],
                       "percentComplete": fields["progressPercent"]}  # fmt: skip
            messages.append(self.status("running", progress=summary))
        self.progress_count += 1
        return messages

    def bolus_completed(self, infusion: Infusion) -> list[Message]:
        """Already reported at Accept."""
        return []

    def completed(self, infusion: Infusion) -> list[Message]:
        """The final progress (its delivered volume counts the bolus twice), the completion, `completed`."""
        order = infusion.order
        final = {"timeRemainingMin": 0, "volumeRemainingMl": 0, "timestamp": self.clock.ms(),
                 "elapsedTimeMin": round(infusion.elapsed_min, 2),
                 "deliveredVolumeMl": order.planned_volume_ml + order.bolus_ml, "progressPercent": 100,
                 "flowRate": order.flow_rate_ml_min, "status": "completed"}  # fmt: skip
        completion = {"completed": True, "completedAt": self.clock.ms(), "summary": infusion.summary(),
                      "deviceStatus": "healthy"}  # fmt: skip
        return [self._message(topics.PROGRESS, final), self._message(topics.COMPLETION, completion),
                self.status("completed"), self.status("idle")]  # fmt: skip

    def action(self, action: str, infusion_id: str, status: str) -> list[Message]:
        """A button at the pump's screen (retained, as the firmware does), then its status."""
        body = {"action": action, "deviceId": self.device_id, "timestamp": self.clock.ms(),
                "source": "device_screen", "reason": "manual_user_action", "infusionId": infusion_id}  # fmt: skip
        return [self._message(topics.ACTIONS, body), self.status(status)]

    def error(self, fault: Fault, infusion_id: str, pump_status: str, *, wire_type: str = "") -> Message:
        """An alarm condition with the firmware's `H:M:S.ms` timestamp (retained)."""
        details = {"autoAction": "PAUSED_INFUSION" if fault.pauses and not wire_type else "READY_TO_RESUME",
                   "pumpStatus": pump_status, "infusionId": infusion_id}  # fmt: skip
        body = {"type": wire_type or fault.type, "severity": fault.severity,
                "message": fault.message if not wire_type else f"{fault.type.replace('_', ' ')} cleared",
                "deviceId": self.device_id, "timestamp": self.clock.hms(), "details": details}  # fmt: skip
        return self._message(topics.ERROR, body)
