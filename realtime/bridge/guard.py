"""The bridge's last line for one message: which failures are the infrastructure's, and a message's identity.

Failures of the infrastructure (`INFRASTRUCTURE_ERRORS`: the database down, locked or full; its schema behind
the code, new code started before `migrate`, `SchemaBehindCode` and the receipts' `ReceiptsSchemaMismatch`; or ahead
of it, a later release's NOT NULL column or CHECK constraint, `SchemaAheadOfCode`; a dead letter that could not be
stored, `DeadLetterNotStored`) are not about one message: they are never dead-lettered;
the caller retries them unacknowledged, and meanwhile writes no heartbeat (monitoring degraded). Anything else
raised while handling one message is about that message: it is dead-lettered, counted and acknowledged (and a
registered pump's `error` still raises its `unreadable_alarm`, see `ingest.reject`).

A missing table or column raises `SchemaBehindCode` on every connection of the bridge (`schema_faults_watch`):
PostgreSQL's `ProgrammingError` for it read as a bug of the statement, and review 34 saw a bridge started on new code
before `migrate` dead-letter and acknowledge an occlusion so. A later release's column or constraint raises
`SchemaAheadOfCode` alike: its `IntegrityError` read as the row's fault, and review 36 saw a bridge of the previous
release, still running after `migrate`, dead-letter and acknowledge an occlusion so.
"""

import hashlib

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connections
from django.db.backends.signals import connection_created

from devices.services.records import ReceiptsSchemaMismatch
from devices.services.schema import schema_ahead, schema_behind, schema_faults_as_infrastructure

# `SchemaBehindCode`, `SchemaAheadOfCode` and `DeadLetterNotStored` are `OperationalError`s: among them, and among
# every `except OperationalError` of the bridge's housekeeping (the database's, not a row's or a check's).
INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, ReceiptsSchemaMismatch)


def infrastructure_fault(exc: BaseException) -> bool:
    """Whether `exc` is the infrastructure's (above), the schema behind or ahead of the code however it was raised
    included."""
    return isinstance(exc, INFRASTRUCTURE_ERRORS) or schema_behind(exc) or schema_ahead(exc)


class DeadLetterNotStored(OperationalError):
    """A refused message's dead letter could not be stored: the message is left unacknowledged (the broker keeps
    it) and retried, never acknowledged with no trace but a log line."""


def schema_faults_watch() -> None:
    """Every database connection of this process (each thread's, now and later) raises `SchemaBehindCode` for a
    missing table or column, `SchemaAheadOfCode` for a later release's (`schema_faults_as_infrastructure`)."""
    _wrap(connections[DEFAULT_DB_ALIAS])
    connection_created.connect(_on_connection_created, dispatch_uid="pumpstream-schema-faults")


def _on_connection_created(sender, connection, **kwargs) -> None:
    _wrap(connection)


def _wrap(connection) -> None:
    if schema_faults_as_infrastructure not in connection.execute_wrappers:
        connection.execute_wrappers.append(schema_faults_as_infrastructure)


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
