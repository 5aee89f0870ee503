"""PostgreSQL, 986f64c / 0cca58f (review 10): the lock is one statement and the read another; the row read must be
the row locked.

PostgreSQL, READ COMMITTED. `device_lock` runs `SELECT id ... WHERE device_id = %s FOR UPDATE` (result ignored),
then reads `WHERE device_id = %s` in a new statement with a new snapshot. When the pump it waits for is deleted and
the device id registered anew (`pump_register` waits on the unique index for the deletion, then commits its own
row), the lock statement finds the deleted row and locks nothing; the read, a moment later, finds the NEW row and
returns it unlocked. The caller then advances its `event_seq` from that read (`change_record`: read-modify-write)
while another writer may hold the real lock: the same `seq` twice (the change log's unique key refuses one: a
person's action fails with a 500, or the bridge's batch goes one by one). Before 986f64c the one statement that
locked and read returned nothing (DoesNotExist). `progress_pumps_lock` has the same shape, with a wider window: a
pump registered at any time while the batch's lock statement waits for another pump of the batch is read and
processed unlocked.

Here the deletion and the new registration commit together (one transaction) so the interleaving is deterministic;
in production they are two transactions a few ms apart.
"""

import threading

import pytest
from django.db import OperationalError, connection, transaction

from devices.models import Device
from devices.services.changes import device_lock
from devices.services.registration import pump_delete, pump_register
from tests.factories import make_device, make_ward
from tests.support.pg_locks import in_another_transaction

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's READ COMMITTED snapshots"),
]


def _replace_pump_once_waited_for(device_id: str, ward):
    """Another connection: the pump deleted, and its id registered anew once device_lock waits, then committed."""
    registered = Device(device_id=device_id, ward=ward)
    return in_another_transaction(lambda: pump_delete(device=Device.objects.get(device_id=device_id)),
                                  then=lambda: pump_register(device=registered))  # fmt: skip


def _lockable_elsewhere(pk: int) -> bool:
    """Whether another connection can lock the row now (NOWAIT): True means nobody holds its lock."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT id FROM devices_device WHERE id = %s FOR UPDATE NOWAIT", [pk])
                result.append(True)
        except OperationalError:  # LockNotAvailable
            result.append(False)
        finally:
            connection.close()

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join(10)
    return result[0]


def test_device_lock_never_returns_a_row_it_did_not_lock():
    ward = make_ward("icu")
    old = make_device("SWAP1", ward=ward)
    replacing = _replace_pump_once_waited_for("SWAP1", ward)
    try:
        with transaction.atomic():
            try:
                device = device_lock(device_id="SWAP1")
            except Device.DoesNotExist:
                return  # the pump it waited for is gone: an honest answer
            assert device.pk != old.pk, "the read returned the pump registered anew"
            assert not _lockable_elsewhere(device.pk), (
                f"device_lock returned pump row {device.pk} (registered while it waited for row {old.pk}) without "
                "holding its lock: another writer can take the same seq"
            )
    finally:
        replacing.join()


def _hold_and_register_once_waited_for(held_id: str, new_id: str, ward):
    """Another connection: a person's action holds pump `held_id`'s lock, and pump `new_id` is registered (its own
    transaction in production; here the same one, committed once the batch waits)."""
    return in_another_transaction(lambda: device_lock(device_id=held_id),
                                  then=lambda: pump_register(device=Device(device_id=new_id, ward=ward)))  # fmt: skip


def test_the_bulk_lock_never_returns_a_pump_it_did_not_lock():
    from devices.services.progress_lock import progress_pumps_lock

    ward = make_ward("icu")
    make_device("HELD", ward=ward)
    other = _hold_and_register_once_waited_for("HELD", "NEWCOMER", ward)
    try:
        with transaction.atomic():
            pumps = progress_pumps_lock(device_ids=["HELD", "NEWCOMER"])
            if "NEWCOMER" not in pumps:
                return  # not registered when its lock was taken: left out, as an unknown pump
            pk = pumps["NEWCOMER"].device.pk
            assert not _lockable_elsewhere(pk), (
                f"the batch's pumps include NEWCOMER (row {pk}), registered while the batch waited for HELD's lock, "
                "read and returned without its lock"
            )
    finally:
        other.join()
