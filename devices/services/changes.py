"""Recording a change: the pump's next `seq`, the audit event, and the realtime emit after commit."""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from devices import payloads
from devices.models import Device, DeviceEvent, InfusionSession
from protocol import events
from protocol.events import DeviceChange
from realtime.dispatch import emit_on_commit


def device_lock(*, device_id: str) -> Device:
    """The pump's row, locked for the rest of the transaction so its `seq` can be advanced safely."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("device_lock must be called inside transaction.atomic()")
    return Device.objects.select_for_update().select_related("ward").get(device_id=device_id)


def change_record(*, device: Device, event: str, body: dict, store_seq: bool = True) -> DeviceChange:
    """Give one change the pump's next `seq` and emit it once the transaction commits.

    The `seq` is stored at once, unless `store_seq=False`: then the caller stores `device.event_seq`
    itself in the same transaction (a bulk update of many pumps).
    """
    device.event_seq += 1
    if store_seq:
        Device.objects.filter(pk=device.pk).update(event_seq=device.event_seq)
    change = DeviceChange(
        device_id=device.device_id,
        seq=device.event_seq,
        event=event,
        body=body,
        ward_code=device.ward.code if device.ward_id else None,
        registration=device.pk,
    )
    emit_on_commit(change)
    return change


def status_changed(*, device: Device, now: datetime | None = None) -> DeviceChange:
    """Record that the pump's status (presence, state, battery, connectivity) changed."""
    return change_record(device=device, event=events.DEVICE_STATUS, body=payloads.status_body(device, now=now))


def session_changed(*, device: Device, session: InfusionSession) -> DeviceChange:
    """Record that a session's status or order changed."""
    return change_record(device=device, event=events.DEVICE_SESSION, body=payloads.session_body(session))


def event_record(
    *,
    device: Device,
    kind: str,
    payload: dict | None = None,
    session: InfusionSession | None = None,
    topic: str = "",
    user: Any = None,
    device_timestamp: Any = None,
    device_timestamp_parsed: datetime | None = None,
    device_seq: int | None = None,
    boot_id: str = "",
    received_at: datetime | None = None,
) -> DeviceEvent:
    """Append one entry to the pump's audit log (messages, commands, user actions, system decisions)."""
    return DeviceEvent.objects.create(
        device=device,
        session=session,
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
