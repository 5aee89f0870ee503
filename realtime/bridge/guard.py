"""The bridge's last line for one message: which failures are the infrastructure's, and a message's identity.

Failures of the infrastructure (`INFRASTRUCTURE_ERRORS`: the database down, locked or full, or its receipts
table not as this code expects during a rolling deploy, `ReceiptsSchemaMismatch`) are not about one message:
they are never dead-lettered; the caller retries them unacknowledged. Anything else raised while handling one
message is about that message: it is dead-lettered, counted and acknowledged (and a registered pump's `error`
still raises its `unreadable_alarm`, see `ingest.reject`).
"""

import hashlib

from django.db import InterfaceError, OperationalError

from devices.services.records import ReceiptsSchemaMismatch

INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, ReceiptsSchemaMismatch)


def message_key(topic: str, payload: bytes) -> str:
    """What identifies a message across redeliveries: SHA-256 of its topic and payload."""
    return hashlib.sha256(topic.encode("utf-8", "replace") + b"\0" + payload).hexdigest()


def message_digest(kind: str, payload: bytes) -> int:
    """A message as a receipt keeps it: 64 bits of BLAKE2b of its kind (the topic as parsed: `status` for both
    `devices/{id}/status` and the legacy `device/{id}/status`) and payload, a signed integer. A redelivered or
    replayed copy, or the same status on the other status topic, has the same; another message under the same
    `bootId`+`seq` has not."""
    digest = hashlib.blake2b(kind.encode("utf-8", "replace") + b"\0" + payload, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True) or 1  # never 0: that marks a receipt from before digests


class FenceLost(Exception):
    """A batch's slot was taken over by another bridge since its messages arrived (`slots.SlotLinks.fence`): the
    batch is rolled back and left unacknowledged, whatever stage of the commit it reached."""

    def __init__(self, links: set[int]) -> None:
        super().__init__(f"slot leases lost (links {sorted(links)})")
        self.links = links  # the lost links' generation bases (`InboundMessage.generation // GENERATIONS`)
