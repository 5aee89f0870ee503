"""Per-connection limits: device subscriptions, request rate, malformed requests."""

import time
from dataclasses import dataclass, field

MAX_DEVICE_SUBSCRIPTIONS = 50  # overviews use the ward feed, not hundreds of device rooms
MAX_WARD_SUBSCRIPTIONS = 10
REQUESTS_PER_SECOND = 20.0
REQUEST_BURST = 60
MAX_MALFORMED = 10  # malformed or refused-for-rate requests before the connection is closed


class RequestRefused(Exception):
    """A client request that gets an `error` reply (with `code`, where a program may act on it); `fatal` ones close the
    connection too."""

    def __init__(self, message: str, *, fatal: bool = False, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fatal = fatal
        self.code = code


@dataclass
class ConnectionLimits:
    """One connection's token bucket and counters; `check_request` raises `RequestRefused`."""

    tokens: float = REQUEST_BURST
    refilled_at: float = field(default_factory=time.monotonic)
    strikes: int = 0
    devices: set[str] = field(default_factory=set)
    wards: set[str] = field(default_factory=set)

    def check_request(self, *, cost: int = 1) -> None:
        """Spend `cost` request tokens (one per pump of `subscribe:devices`); refuse (a strike) when short."""
        now = time.monotonic()
        self.tokens = min(REQUEST_BURST, self.tokens + (now - self.refilled_at) * REQUESTS_PER_SECOND)
        self.refilled_at = now
        if self.tokens < cost:
            self.strike("Too many requests")
        self.tokens -= cost

    def strike(self, message: str) -> None:
        """Count a bad request and refuse it; past `MAX_MALFORMED` the refusal closes the connection."""
        self.strikes += 1
        raise RequestRefused(message, fatal=self.strikes > MAX_MALFORMED)

    def check_device_capacity(self, device_id: str) -> None:
        """Refuse one more device subscription past the cap (re-subscribing is always fine)."""
        if device_id not in self.devices and len(self.devices) >= MAX_DEVICE_SUBSCRIPTIONS:
            raise RequestRefused(
                f"At most {MAX_DEVICE_SUBSCRIPTIONS} device subscriptions per connection; use subscribe:ward"
            )

    def check_ward_capacity(self, ward: str) -> None:
        """Refuse one more ward feed past the cap."""
        if ward not in self.wards and len(self.wards) >= MAX_WARD_SUBSCRIPTIONS:
            raise RequestRefused(f"At most {MAX_WARD_SUBSCRIPTIONS} ward subscriptions per connection")
