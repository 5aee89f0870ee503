"""What a simulated pump puts on the wire: one MQTT message, and the clocks firmware stamps it with."""

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Message:
    """One MQTT publish: topic, payload (a JSON object, or raw bytes for malformed tests), QoS and retain."""

    topic: str
    payload: dict[str, Any] | bytes
    qos: int = 0
    retain: bool = False

    def encoded(self) -> bytes:
        """The bytes on the wire."""
        if isinstance(self.payload, bytes):
            return self.payload
        return json.dumps(self.payload, separators=(",", ":")).encode()

    def readable(self) -> str:
        """A one-line human rendering for the interactive prompt."""
        flags = f"qos{self.qos}{' retained' if self.retain else ''}"
        body = self.payload if isinstance(self.payload, bytes) else json.dumps(self.payload)
        return f"{self.topic} [{flags}] {body!s}"


class UptimeClock:
    """A pump's uptime since boot, in milliseconds, as the original firmware stamps its messages."""

    def __init__(self, boot_offset_ms: int = 4200) -> None:
        self.booted = time.monotonic()
        self.boot_offset_ms = boot_offset_ms

    def ms(self) -> int:
        """Uptime in ms."""
        return self.boot_offset_ms + int((time.monotonic() - self.booted) * 1000)

    def hms(self) -> str:
        """Uptime as the original's error timestamps write it: `H:MM:SS.mmm`."""
        total_ms = self.ms()
        seconds, millis = divmod(total_ms, 1000)
        minutes, seconds = divmod(seconds, 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def utc_now_iso() -> str:
    """The current time as timezone-aware UTC ISO-8601, in milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
