"""Every MQTT topic of the wire contract, and parsing of a topic into (device id, kind); nowhere else."""

import re
from dataclasses import dataclass

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Device → server
STATUS = "status"
PROGRESS = "progress"
INFUSION = "infusion"
COMPLETION = "completion"
ACTIONS = "actions"
ERROR = "error"
BOLUS = "bolus"
TEST = "test"  # the original firmware's "MQTT working" message once after boot
DEVICE_KINDS = (STATUS, PROGRESS, INFUSION, COMPLETION, ACTIONS, ERROR, BOLUS, TEST)

# Server → device
COMMANDS = "commands"

PREFIX = "devices"
LEGACY_PREFIX = "device"  # the original firmware publishes status on device/{id}/status

# The broker's own uptime (Mosquitto's `$SYS` tree, re-published every `sys_interval`, QoS 0): the bridge reads when
# the broker it holds started, because a pump's presence is vouched for only by the broker holding its Last Will
# (`realtime/bridge/broker_start.py`). Not a device topic, so not in BRIDGE_SUBSCRIPTIONS.
BROKER_UPTIME = "$SYS/broker/uptime"

# What the bridge subscribes to (QoS 1).
BRIDGE_SUBSCRIPTIONS = (
    *(f"{PREFIX}/+/{kind}" for kind in DEVICE_KINDS),
    f"{LEGACY_PREFIX}/+/{STATUS}",
)


@dataclass(frozen=True)
class DeviceTopic:
    """A parsed device topic."""

    device_id: str
    kind: str
    legacy: bool = False


class TopicError(ValueError):
    """A topic that is not one of the contract's device topics."""

    def __init__(self, reason: str, device_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.device_id = device_id


def parse_device_topic(topic: str) -> DeviceTopic:
    """Parse `devices/{id}/{kind}` or the legacy `device/{id}/status`; raises TopicError naming why not."""
    parts = topic.split("/")
    if len(parts) != 3:
        raise TopicError("bad_topic")
    prefix, device_id, kind = parts
    if not DEVICE_ID_RE.fullmatch(device_id):  # `$` alone would let a trailing newline through
        raise TopicError("bad_device_id", device_id[:64])
    if prefix == PREFIX and kind in DEVICE_KINDS:
        return DeviceTopic(device_id, kind)
    if prefix == LEGACY_PREFIX and kind == STATUS:
        return DeviceTopic(device_id, kind, legacy=True)
    raise TopicError("bad_topic", device_id)


def device_topic(device_id: str, kind: str) -> str:
    """The topic a pump publishes `kind` on."""
    return f"{PREFIX}/{device_id}/{kind}"


def legacy_status_topic(device_id: str) -> str:
    """Where the original firmware publishes its status."""
    return f"{LEGACY_PREFIX}/{device_id}/{STATUS}"


def commands_topic(device_id: str) -> str:
    """Where the server publishes commands to one pump (QoS 1, not retained)."""
    return f"{PREFIX}/{device_id}/{COMMANDS}"
