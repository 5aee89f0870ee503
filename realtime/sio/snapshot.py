"""A pump's snapshot: its current state as the same events live updates use, all carrying one `seq`."""

import functools
import logging
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import transaction

from devices import payloads
from devices.models import Device, InfusionSession
from devices.selectors import device_exists
from devices.services.changes import device_lock
from devices.snapshot_selectors import (
    alarms_active_as_raised,
    alarms_active_by_device,
    commands_unsettled,
    commands_unsettled_by_device,
    devices_for_snapshot,
    session_active,
    session_latest,
    sessions_active_by_device,
)
from protocol import events
from protocol.events import DeviceChange
from protocol.payload_codec import Payload, payload_to_wire
from protocol.payloads import device_event_to_wire
from protocol.ward_payloads import StreamSubscribed
from realtime.fanout import fanout
from realtime.publisher import publisher
from realtime.sio.snapshot_reads import SnapshotReads

logger = logging.getLogger(__name__)

OPTIMISTIC_TRIES = 3  # reads off the lock before one under it (only for a pump registered anew meanwhile)


@dataclass(frozen=True)
class Snapshot:
    """A pump's `seq` and the events that rebuild its state up to that `seq`."""

    device_id: str
    seq: int
    changes: list[DeviceChange]
    registration: int | None = None  # the pump's row id (a pump registered anew counts `seq` afresh)


def read_snapshot(device_id: str) -> Snapshot:
    """One pump's snapshot (`Device.DoesNotExist` for an unknown pump); see `read_snapshots`."""
    try:
        return read_snapshots([device_id])[device_id]
    except KeyError:
        raise Device.DoesNotExist(device_id) from None


def read_snapshots(device_ids: list[str]) -> dict[str, Snapshot]:
    """Pumps' `event_seq` and state, each as of one moment of the database (no change slips in between).

    One read transaction for all of them, a consistent view that takes no lock, so a storm of subscriptions
    neither queues for the writers' locks nor holds up the bridge, and one pump locked elsewhere (a long admin
    transaction, an idle session) holds back no other pump's snapshot; one query per kind of row for the whole
    batch. SQLite (WAL): a deferred read transaction; PostgreSQL: REPEATABLE READ READ ONLY (it locked each pump
    in turn, FOR UPDATE, on the one reader thread: review 10). Inside a caller's transaction (tests): pump by
    pump, each row locked, as its writers lock it. Unknown pumps are left out.
    """
    connection = transaction.get_connection()
    if connection.in_atomic_block:
        return dict(_one_locked(device_id) for device_id in device_ids if device_exists(device_id))
    with _read_transaction(connection):
        devices = devices_for_snapshot(device_ids=device_ids)
        pks = [device.pk for device in devices]
        sessions = sessions_active_by_device(device_pks=pks)
        alarms, commands = alarms_active_by_device(device_pks=pks), commands_unsettled_by_device(device_pks=pks)
        return {device.device_id: _snapshot_of(device, sessions.get(device.pk), alarms.get(device.pk, []),
                                               commands.get(device.pk, [])) for device in devices}  # fmt: skip


def _one_locked(device_id: str) -> tuple[str, Snapshot]:
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        snapshot = _snapshot_of(device, session_active(device), alarms_active_as_raised(device),
                                commands_unsettled(device))  # fmt: skip
    return device_id, snapshot


@contextmanager
def _read_transaction(connection):
    """A read-only transaction around the block whose first read fixes what all of it sees, rolled back after:
    BEGIN DEFERRED on SQLite (WAL), REPEATABLE READ READ ONLY elsewhere (PostgreSQL)."""
    if connection.vendor != "sqlite":
        with transaction.atomic(using=connection.alias):
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield
            transaction.set_rollback(True, using=connection.alias)
        return
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("BEGIN DEFERRED")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")


def _snapshot_of(device: Device, session: InfusionSession | None, alarms: list, commands: list) -> Snapshot:
    bodies = [(events.DEVICE_STATUS, payloads.status_body(device))]
    if session is not None:
        bodies += _session_bodies(device, session)
    else:
        bodies += _progress_without_session(device)
    bodies += [(events.DEVICE_ALARM, payloads.alarm_body(alarm)) for alarm in alarms]
    bodies += [(events.DEVICE_COMMAND, payloads.command_body(command)) for command in commands]
    ward = device.ward.code if device.ward_id else None
    changes = [DeviceChange(device.device_id, device.event_seq, name, device_event_to_wire(name, body), ward, device.pk)
               for name, body in bodies]  # fmt: skip
    return Snapshot(device_id=device.device_id, seq=device.event_seq, changes=changes, registration=device.pk)


def _session_bodies(device: Device, session: InfusionSession) -> list[tuple[str, Payload]]:
    bodies = [(events.DEVICE_SESSION, payloads.session_body(session))]
    if session.confirmation is not None:
        bodies.append((events.DEVICE_INFUSION_CONFIRMED, payloads.confirmation_body(session)))
    progress_now, received_at = session.progress_on(device), session.progress_at_on(device)
    if progress_now is not None and received_at is not None:
        progress = payloads.progress_body(progress_now, infusion_id=session.infusion_id, received_at=received_at,
                                          session=session)  # fmt: skip
        bodies.append((events.DEVICE_PROGRESS, progress))
    elif (own := payloads.progress_beside_pending(device, session)) is not None:
        progress = payloads.progress_body(own, infusion_id=None, received_at=device.latest_progress_at)
        bodies.append((events.DEVICE_PROGRESS, progress))  # the pump's own, as live subscribers got it
    return bodies


def _progress_without_session(device: Device) -> list[tuple[str, Payload]]:
    """The pump's latest progress when it came after its last session ended (what a live subscriber holds)."""
    if device.latest_progress is None or device.latest_progress_at is None:
        return []
    last = session_latest(device)
    if last is not None and last.ended_at is not None and not last.progress_after_its_end(device):
        return []  # applied before the last session ended (its progress, or older): it ended with it
    return [(events.DEVICE_PROGRESS, payloads.progress_body(device.latest_progress, infusion_id=None,
                                                          received_at=device.latest_progress_at))]  # fmt: skip


Send = Callable[[str, dict], Awaitable[None]]
SendChange = Callable[[DeviceChange], Awaitable[None]]


async def subscribe_with_snapshot(
    device_id: str,
    *,
    send: Send,
    join: Callable[[int | None], Awaitable[None]],
    subscriber: str,
    room: str,
    wanted: Callable[[], bool] = lambda: True,
    send_change: SendChange | None = None,
) -> int:
    """Read the snapshot (off the pump's lock), then under the lock: send `stream:subscribed` and it, and join.

    The read runs on the snapshot reader's thread while the pump's live changes keep flowing; under the
    fan-out's pump lock the snapshot is sent followed by the changes past its `seq` the fan-out delivered
    meanwhile (kept for it since before the read: `snapshot_pending`). Changes up to the last one sent still
    queued or not yet published are skipped for this subscriber (`note_snapshot`); later ones reach it after
    the join. Only when those changes are not all known (a pump registered anew) is it read again.
    `wanted()` is asked under the lock: False (unsubscribed meanwhile) sends and joins nothing more.
    `join(registration)` is told which row of the pump the snapshot was of (an older row's removal ends nothing).
    `send_change` sends one of the pump's events (a transport that encodes a change once for all its
    subscribers); by default each goes through `send`.
    """
    if send_change is None:
        send_change = functools.partial(_send_change, send)
    await publisher.ready()  # its position is known: every change after this snapshot will be published
    lock = fanout.pump_lock(device_id)
    fanout.snapshot_pending(device_id)  # from now on what the pump delivers is kept until we are done
    try:
        for attempt in range(OPTIMISTIC_TRIES):
            snapshot = await snapshot_reads.read(device_id, shared=attempt == 0)
            async with lock:
                missed = fanout.delivered_since(device_id, snapshot.seq, snapshot.registration)
                if missed is not None:
                    return await _snapshot_send(device_id, snapshot, missed, send=send, send_change=send_change,
                                                join=join, subscriber=subscriber, room=room, wanted=wanted)  # fmt: skip
        async with lock:  # a pump registered anew meanwhile, again and again: read it under the lock
            snapshot = await snapshot_reads.read(device_id, shared=False)
            return await _snapshot_send(device_id, snapshot, [], send=send, send_change=send_change, join=join,
                                        subscriber=subscriber, room=room, wanted=wanted)  # fmt: skip
    finally:
        fanout.snapshot_done(device_id)


async def _send_change(send: Send, change: DeviceChange) -> None:
    await send(change.event, change.wire_payload())


async def _snapshot_send(device_id: str, snapshot: Snapshot, missed: list[DeviceChange], *, send: Send,
                         send_change: SendChange, join: Callable[[int | None], Awaitable[None]], subscriber: str,
                         room: str, wanted: Callable[[], bool]) -> int:  # fmt: skip
    """Under the pump's lock: `stream:subscribed`, the snapshot's events, the changes delivered since it was
    read (as live events), the join, and the fan-out told what this subscriber now holds.

    Nothing of it once the pump is no longer `wanted` (an `unsubscribe:device` or the rights re-check handled
    while the snapshot was read or sent): a room joined then would carry the pump's events to a connection
    that neither counts it toward its cap nor has it re-checked."""
    if not wanted():
        return snapshot.seq
    subscribed = StreamSubscribed(deviceId=device_id, room=room, seq=snapshot.seq, snapshotEvents=len(snapshot.changes))
    await send(events.STREAM_SUBSCRIBED, payload_to_wire(subscribed))
    for change in [*snapshot.changes, *missed]:
        await send_change(change)
    if not wanted():  # unsubscribed while the events above were sent
        return snapshot.seq
    await join(snapshot.registration)
    held = missed[-1].seq if missed else snapshot.seq
    fanout.note_snapshot(device_id, held, subscriber, snapshot.registration)
    logger.debug("subscribed with snapshot", extra={"device_id": device_id, "seq": snapshot.seq, "held": held})
    return snapshot.seq


snapshot_reads = SnapshotReads(read_snapshots)
