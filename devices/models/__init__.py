"""The truth about pumps, infusions, commands and alarms."""

from devices.models.accounts import ServiceAccount
from devices.models.alarms import Alarm
from devices.models.changelog import ChangeLogEntry
from devices.models.commands import Command
from devices.models.infusions import InfusionSession, ProgressSample
from devices.models.leases import BridgeLease
from devices.models.pumps import Device, RemovedPump, Ward
from devices.models.records import (
    BridgeStatus,
    DeadLetter,
    DeliveryAttempt,
    DeviceEvent,
    HeldCopy,
    MessageReceipt,
    RetainedMessage,
)
from devices.models.sockets import LiveSocket
from devices.models.station import EscalationDelivery, WardSilence

__all__ = [
    "Alarm",
    "BridgeLease",
    "BridgeStatus",
    "ChangeLogEntry",
    "Command",
    "DeadLetter",
    "DeliveryAttempt",
    "Device",
    "DeviceEvent",
    "EscalationDelivery",
    "HeldCopy",
    "InfusionSession",
    "LiveSocket",
    "MessageReceipt",
    "ProgressSample",
    "RemovedPump",
    "RetainedMessage",
    "ServiceAccount",
    "Ward",
    "WardSilence",
]
