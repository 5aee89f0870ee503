"""Recording a change: the pump's next `seq` and its change-log entry in the same transaction, and the audit event."""

from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import transaction
from django.utils import timezone

from devices import payloads
from devices.models import Device, DeviceEvent, InfusionSession
from devices.services.changelog import change_log_append
from devices.services.sql import models_select
from devices.states import ACTIVE_SESSION_STATUSES
from protocol import events
from protocol.events import DeviceChange
from protocol.payload_codec import Payload
from protocol.payloads import device_event_to_wire


def device_lock(*, device_id: str, with_session: bool = False) -> Device:
    """The pump's row, locked for the rest of the transaction so its `seq` can be advanced safely, with its ward.

    The lock is a statement of its own (PostgreSQL; SQLite's IMMEDIATE transaction is the only writer already),
    and the row is read after it: in READ COMMITTED a statement that waits for a row lock gets the locked row as
    its holder committed it but the rows it joins, and its subqueries, as of its own start. Locked and joined in
    one statement, a pump moved to another ward while the lock was awaited came back with `ward_id` the new ward
    and `ward` None (the joined row null-extended), and `change_record` then raised on it: a person's change, an
    acknowledgement, a command's publication or a snapshot that had waited failed (review 9). `with_session`
    also reads the pk of its active session (`device.active_session_pk`, None: none), which the bridge's audit
    event of every report names.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("device_lock must be called inside transaction.atomic()")
    locked = None
    if connection.features.has_select_for_update:
        with connection.cursor() as cursor:
            cursor.execute(_lock_sql(connection.vendor), [device_id])
            locked = cursor.fetchone()
        if locked is None:  # deleted while the lock was awaited (a pump registered anew since is not ours)
            raise Device.DoesNotExist(f"no pump {device_id}")
    device = _device_with_session(device_id) if with_session else (
        Device.objects.select_related("ward").get(device_id=device_id))  # fmt: skip
    if locked is not None and device.pk != locked[0]:  # the id registered anew between the lock and the read
        raise Device.DoesNotExist(f"pump {device_id} was registered anew while its lock was awaited")
    return device


def _device_with_session(device_id: str) -> Device:
    """The pump's row (its ward read when first used) and its active session's pk, in one statement written once:
    the ORM compiling it cost more than running it (`bench/status_cost.py`)."""
    fields, sql = _with_session_sql(transaction.get_connection().vendor)
    found = models_select(Device, fields, sql, [*ACTIVE_SESSION_STATUSES, device_id], extra=("active_session_pk",))
    if not found:
        raise Device.DoesNotExist(f"no pump {device_id}")
    return found[0]


@lru_cache(maxsize=4)
def _lock_sql(vendor: str) -> str:
    """`SELECT id FROM device WHERE device_id = %s FOR UPDATE`."""
    quote, device = transaction.get_connection().ops.quote_name, Device._meta
    return (f"SELECT {quote(device.pk.column)} FROM {quote(device.db_table)} "
            f"WHERE {quote(device.get_field('device_id').column)} = %s FOR UPDATE")  # fmt: skip


@lru_cache(maxsize=4)
def _with_session_sql(vendor: str) -> tuple[tuple[str, ...], str]:
    """`SELECT device.*, (its active session's pk) FROM device WHERE device_id = %s`, read once it is locked."""
    quote, device, session = transaction.get_connection().ops.quote_name, Device._meta, InfusionSession._meta
    fields = tuple(field.name for field in device.concrete_fields)
    columns = ", ".join(f"d.{quote(field.column)}" for field in device.concrete_fields)
    statuses = ", ".join(["%s"] * len(ACTIVE_SESSION_STATUSES))
    active = (f"SELECT s.{quote(session.pk.column)} FROM {quote(session.db_table)} s "
              f"WHERE s.{quote(session.get_field('device').column)} = d.{quote(device.pk.column)} "
              f"AND s.{quote(session.get_field('status').column)} IN ({statuses}) LIMIT 1")  # fmt: skip
    sql = (f"SELECT {columns}, ({active}) FROM {quote(device.db_table)} d "
           f"WHERE d.{quote(device.get_field('device_id').column)} = %s")  # fmt: skip
    return fields, sql


def change_record(*, device: Device, event: str, body: Payload, store_seq: bool = True) -> DeviceChange:
    """Give one change the pump's next `seq` and append it to the change log, in the caller's transaction.

    `body` is the event's typed payload (`protocol.payloads.DEVICE_EVENT_MODELS[event]`, else TypeError);
    the change carries, and the log stores, its wire form.

    The caller holds the pump's row lock (`device_lock`, or the bulk path's lock of many pumps) until it
    commits, so the next change of this pump can only take its `seq` after this one committed: per pump,
    `seq` order is commit order, which is what lets the publisher read committed rows without waiting for
    gaps. (SQLite goes further: `IMMEDIATE` transactions admit one writer at a time, so the log's `id`
    order is commit order for every pump at once.)

    With `store_seq=False` the caller stores `device.event_seq` AND appends the returned change to the
    log itself (`change_log_append`), in the same transaction, before any other change of this pump (the
    bulk path of many pumps writes both in one statement each).
    """
    wire_body = device_event_to_wire(event, body)  # refused before the pump's `seq` moves
    device.event_seq += 1
    change = DeviceChange(
        device_id=device.device_id,
        seq=device.event_seq,
        event=event,
        body=wire_body,
        ward_code=device.ward.code if device.ward_id else None,
        registration=device.pk,
    )
    if store_seq:
        Device.objects.filter(pk=device.pk).update(event_seq=device.event_seq)
        change_log_append(entries=[(device.pk, change)])
    return change


def status_changed(*, device: Device, now: datetime | None = None) -> DeviceChange:
    """Record that the pump's status (presence, state, battery, connectivity) changed."""
    return change_record(device=device, event=events.DEVICE_STATUS, body=payloads.status_body(device, now=now))


def session_changed(*, device: Device, session: InfusionSession) -> DeviceChange | None:
    """Record that a session's status or order changed; None (nothing recorded) for an ended session of another ward
    than its pump's now (a late report of it after the pump moved): its screens are the new ward's, whose members may
    not read that ward's patient's record (`selectors.sessions_visible_to`)."""
    if session.status not in ACTIVE_SESSION_STATUSES and session.ward_id != device.ward_id:
        return None
    return change_record(device=device, event=events.DEVICE_SESSION, body=payloads.session_body(session))


def event_record(
    *,
    device: Device,
    kind: str,
    payload: dict | None = None,
    session: InfusionSession | None = None,
    session_pk: int | None = None,
    topic: str = "",
    user: Any = None,
    device_timestamp: Any = None,
    device_timestamp_parsed: datetime | None = None,
    device_seq: int | None = None,
    boot_id: str = "",
    received_at: datetime | None = None,
) -> DeviceEvent:
    """Append one entry to the pump's audit log (messages, commands, user actions, system decisions).

    The session is given as a model (`session`) or by its pk (`session_pk`, as `device_lock` read it).
    """
    return DeviceEvent.objects.create(
        device=device,
        session_id=session.pk if session is not None else session_pk,
        kind=kind,
        topic=topic,
        payload=payload or {},
        user=user if user is not None and getattr(user, "is_authenticated", False) else None,
        device_timestamp=device_timestamp,
        device_timestamp_parsed=device_timestamp_parsed,
        device_seq=device_seq,
        boot_id=boot_id,
        received_at=received_at or timezone.now(),
    )
