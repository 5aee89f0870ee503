"""Snapshots read in a batch (SQLite: one deferred read transaction, one query per kind of row) equal each
pump's snapshot read alone under its row lock, and the batch takes no write lock."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from devices.models import Device, InfusionSession
from devices.services.alarms import alarm_raise
from devices.services.requests import infusion_request
from devices.states import AlarmPriority, AlarmSource, CommandKind, SessionStatus
from realtime.sio.snapshot import read_snapshots
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db(transaction=True)
PROGRESS = {"deliveredVolumeMl": 4.0, "progressPercent": 8}


def pumps() -> list[str]:
    ward = make_ward("icu")
    now = timezone.now()
    busy = make_device("BATCH_BUSY", ward=ward, latest_progress=PROGRESS, latest_progress_at=now)
    session = InfusionSession.objects.create(
        device=busy, flow_rate_ml_min=1, planned_volume_ml=50, planned_time_min=50, status=SessionStatus.RUNNING,
        created_at=now - timedelta(minutes=1),
    )  # fmt: skip
    with transaction.atomic():
        for kind in ("occlusion", "air_in_line"):
            alarm_raise(device=Device.objects.get(pk=busy.pk), type=kind, priority=AlarmPriority.HIGH,
                        source=AlarmSource.DEVICE, message=kind)  # fmt: skip
    infusion_request(device_id="BATCH_BUSY", kind=CommandKind.PAUSE_INFUSION, infusion_id=session.infusion_id,
                     user=make_user("nurse", ward=ward))  # fmt: skip
    make_device("BATCH_IDLE", ward=ward, latest_progress=PROGRESS, latest_progress_at=now)
    make_device("BATCH_BARE")
    return ["BATCH_BUSY", "BATCH_IDLE", "BATCH_BARE"]


def as_events(snapshot) -> list[tuple]:
    return [
        (change.event, change.seq, change.body, change.ward_code, change.registration) for change in snapshot.changes
    ]


def test_a_batch_equals_each_pump_read_alone_and_leaves_unknown_pumps_out():
    ids = pumps()
    assert not connection.in_atomic_block
    batch = read_snapshots([*ids, "NO_SUCH_PUMP"])
    assert sorted(batch) == sorted(ids)
    with transaction.atomic():  # inside a transaction: pump by pump, each row locked
        alone = read_snapshots(ids)
    for device_id in ids:
        assert batch[device_id].seq == alone[device_id].seq == Device.objects.get(device_id=device_id).event_seq
        assert as_events(batch[device_id]) == as_events(alone[device_id])
    events = [event for event, *_ in as_events(batch["BATCH_BUSY"])]
    assert events.count("device:alarm") == 2 and "device:command" in events and "device:session" in events
    assert not connection.in_atomic_block, "the read transaction was left open"


@pytest.mark.skipif("connection.vendor != 'sqlite'", reason="SQLite's write lock (BEGIN IMMEDIATE)")
def test_a_batch_read_takes_no_write_lock():
    ids = pumps()
    with connection.cursor() as cursor:
        cursor.execute("BEGIN IMMEDIATE")  # a writer (the bridge) holds the write lock meanwhile
        try:
            with ThreadPoolExecutor(1) as pool:  # another connection, as the snapshot reader's thread
                snapshots = pool.submit(_read_closing, ids).result(timeout=5)
        finally:
            cursor.execute("ROLLBACK")
    assert sorted(snapshots) == sorted(ids)


def _read_closing(ids: list[str]) -> dict:
    try:
        return read_snapshots(ids)
    finally:
        connection.close()
