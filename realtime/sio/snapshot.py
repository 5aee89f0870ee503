"""A pump's snapshot: its current state as the same events live updates use, all carrying one `seq`."""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import transaction

from devices import payloads
from devices.models import Device, InfusionSession
from devices.selectors import alarms_active_as_raised, commands_unsettled, session_active, session_latest
from devices.services.changes import device_lock
from protocol import events
from protocol.events import DeviceChange
from realtime.fanout import fanout
from realtime.publisher import publisher

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """A pump's `seq` and the events that rebuild its state up to that `seq`."""

    device_id: str
    seq: int
    changes: list[DeviceChange]
    registration: int | None = None  # the pump's row id (a pump registered anew counts `seq` afresh)


def read_snapshot(device_id: str) -> Snapshot:
    """Read the pump's `event_seq` and state in one transaction holding its row lock (no change slips in)."""
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        bodies = [(events.DEVICE_STATUS, payloads.status_body(device))]
        session = session_active(device)
        if session is not None:
            bodies += _session_bodies(device, session)
        else:
            bodies += _progress_without_session(device)
        bodies += [(events.DEVICE_ALARM, payloads.alarm_body(alarm)) for alarm in alarms_active_as_raised(device)]
        bodies += [(events.DEVICE_COMMAND, payloads.command_body(command)) for command in commands_unsettled(device)]
    ward = device.ward.code if device.ward_id else None
    changes = [DeviceChange(device.device_id, device.event_seq, name, body, ward, device.pk) for name, body in bodies]
    return Snapshot(device_id=device.device_id, seq=device.event_seq, changes=changes, registration=device.pk)


def _session_bodies(device: Device, session: InfusionSession) -> list[tuple[str, dict]]:
    bodies = [(events.DEVICE_SESSION, payloads.session_body(session))]
    if session.confirmation is not None:
        bodies.append((events.DEVICE_INFUSION_CONFIRMED, payloads.confirmation_body(session)))
    progress_now, received_at = session.progress_on(device), session.progress_at_on(device)
    if progress_now is not None and received_at is not None:
        progress = payloads.progress_body(progress_now, infusion_id=session.infusion_id, received_at=received_at)
        bodies.append((events.DEVICE_PROGRESS, progress))
    return bodies


def _progress_without_session(device: Device) -> list[tuple[str, dict]]:
    """The pump's latest progress when it came after its last session ended (what a live subscriber holds)."""
    if device.latest_progress is None or device.latest_progress_at is None:
        return []
    last = session_latest(device)
    ended_at = last.ended_at if last is not None else None
    if ended_at is not None and device.latest_progress_at <= ended_at:
        return []  # that session's last progress: it ended with it
    return [(events.DEVICE_PROGRESS, payloads.progress_body(device.latest_progress, infusion_id=None,
                                                          received_at=device.latest_progress_at))]  # fmt: skip


Send = Callable[[str, dict], Awaitable[None]]


async def subscribe_with_snapshot(
    device_id: str, *, send: Send, join: Callable[[], Awaitable[None]], subscriber: str, room: str
) -> int:
    """Under the pump's fan-out lock: read the snapshot, send `stream:subscribed` and it, then join.

    The publisher delivers this pump's changes under the same lock, in `seq` order; those up to the
    snapshot's `seq` that it publishes after the join are skipped for this subscriber (`note_snapshot`).
    """
    await publisher.ready()  # its position is known: every change after this snapshot will be published
    async with fanout.pump_lock(device_id):
        snapshot = await sync_to_async(read_snapshot)(device_id)
        await send(events.STREAM_SUBSCRIBED, {"deviceId": device_id, "room": room, "seq": snapshot.seq})
        for change in snapshot.changes:
            await send(change.event, change.wire_payload())
        await join()
        fanout.note_snapshot(device_id, snapshot.seq, subscriber, snapshot.registration)
    logger.debug("subscribed with snapshot", extra={"device_id": device_id, "seq": snapshot.seq})
    return snapshot.seq
