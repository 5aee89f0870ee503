"""Which slot a pump is in, and how the slots are counted, named and shared out among the bridges (`slots.py`
runs them): pure functions of the settings and a pump's id, the same in every process."""

import zlib
from dataclasses import dataclass

from django.conf import settings

from protocol import topics


def slot_of(device_id: str, slots: int) -> int:
    """The slot of a pump: CRC-32 of its id modulo K (stable across processes, hosts and restarts)."""
    return zlib.crc32(device_id.encode()) % slots


def topic_slot(topic: str, slots: int) -> int:
    """The slot of a message by its topic; a topic without a readable device id goes to slot 0."""
    try:
        device_id = topics.parse_device_topic(topic).device_id
    except topics.TopicError as exc:
        device_id = exc.device_id
    return slot_of(device_id, slots) if device_id else 0


def slot_name(slot: int) -> str:
    """The name of a slot's lease (`slot-<i>`)."""
    return f"slot-{slot}"


@dataclass(frozen=True)
class SlotConfig:
    """K slots shared by `processes` bridges; this one is number `index` (its home slots: i % processes)."""

    slots: int
    processes: int = 1
    index: int = 0
    lease_s: float = 3.0

    @classmethod
    def from_settings(cls, *, index: int = 0) -> "SlotConfig":
        limits = settings.PUMPSTREAM
        return cls(slots=limits["BRIDGE_SLOTS"], processes=limits["BRIDGE_PROCESSES"], index=index,
                   lease_s=limits["BRIDGE_LEASE_S"])  # fmt: skip

    def is_home(self, slot: int) -> bool:
        return slot % self.processes == self.index % self.processes
