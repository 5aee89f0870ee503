"""Every road that locks several pumps locks them in one order, `Device`'s (pk), so no two of them deadlock
(review 40, finding 3; PostgreSQL).

The bridge's outbox and Daphne's command keeper lock pumps in pk order (`publication._devices_lock`), as the bridge's
batches do (`progress_pumps_lock`). A queryset's move of pumps' wards (`DeviceQuerySet._wards_written`), a ward's
deletion below the services (`deletion_guards`) and `ward_delete` locked them in device id order. Two pumps whose pk
order is not their device id order (registered in any order but the alphabet's: the usual case) were locked A then B
by one and B then A by the other: PostgreSQL found the cycle after `deadlock_timeout` and aborted one of them with
"deadlock detected", the shell's move or deletion, or the outbox's handover of STARTs and STOPs to the broker.

Deterministic: the waiters are ordered by reading `pg_locks`. On SQLite the IMMEDIATE transactions are serial and
nothing waits, so it is skipped there (run with `-p tests.support.postgres`).
"""

import threading

import pytest
from django.db import connection, transaction

from devices.models import Device, Ward
from devices.services.publication import _devices_lock
from devices.services.registration import ward_delete
from tests.factories import make_device, make_user, make_ward
from tests.support.pg_locks import waiters_at_least

pytestmark = pytest.mark.django_db(transaction=True)


def row_held(pk: int, outcome: dict) -> tuple[threading.Thread, threading.Event]:
    """Any transaction briefly holding the pump's row (a report of it being committed), until the event is set; its
    outcome as "holder"."""
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with transaction.atomic():
            list(Device.objects.select_for_update().filter(pk=pk))
            held.set()
            assert release.wait(10)

    thread = on_its_own_connection(holder, outcome, "holder")
    assert held.wait(10)
    return thread, release


def two_watched_wards() -> tuple:
    """Wards icu and icu-b, each with a nurse (a pump in use may move between them)."""
    icu, icu_b = make_ward("icu"), make_ward("icu-b")
    make_user("icu-nurse", ward=icu)
    make_user("icu-b-nurse", ward=icu_b)
    return icu, icu_b


def on_its_own_connection(action, outcome: dict, name: str) -> threading.Thread:
    def run() -> None:
        try:
            action()
            outcome[name] = "done"
        except Exception as error:  # noqa: BLE001 - how it ended is what the test reads
            outcome[name] = f"{type(error).__name__}: {error}"
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def moved_by_a_queryset(pumps: list[int], icu: Ward, icu_b: Ward) -> None:
    """An administrator moving both idle pumps to the other ward from `manage.py shell`."""
    Device.objects.filter(pk__in=pumps).update(ward=icu_b)


def ward_deleted_in_the_shell(pumps: list[int], icu: Ward, icu_b: Ward) -> None:
    """Their ward deleted from `manage.py shell`: its idle pumps left without a ward (`SET_NULL`)."""
    Ward.objects.get(pk=icu.pk).delete()


def ward_deleted_by_the_service(pumps: list[int], icu: Ward, icu_b: Ward) -> None:
    """Their ward deleted on its admin page (`ward_delete`: each pump out of it, then the ward)."""
    ward_delete(ward=Ward.objects.get(pk=icu.pk))


@pytest.mark.parametrize("other", [moved_by_a_queryset, ward_deleted_in_the_shell, ward_deleted_by_the_service])
def test_another_road_locking_two_pumps_and_the_outboxs_lock_of_them_do_not_deadlock(other):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's row locks (-p tests.support.postgres)")
    icu, icu_b = two_watched_wards()
    second = make_device("DL_B", ward=icu)  # registered first: the lower pk, the later device id
    first = make_device("DL_A", ward=icu)
    assert second.pk < first.pk
    pumps = [first.pk, second.pk]
    outcome: dict = {}

    def outbox() -> None:  # the bridge handing commands of both pumps to the broker (`commands_handed_mark`)
        with transaction.atomic():
            _devices_lock(set(pumps))

    holder, release = row_held(second.pk, outcome)  # DL_B
    threads = [holder, on_its_own_connection(outbox, outcome, "outbox")]
    waiters_at_least(1)  # the outbox has locked nothing, waits for DL_B
    threads.append(on_its_own_connection(lambda: other(pumps, icu, icu_b), outcome, other.__name__))
    waiters_at_least(2)  # the other waits too: for DL_B (pk order), or holding DL_A (device id order)
    release.set()
    for thread in threads:
        thread.join(30)
    assert outcome == {"holder": "done", "outbox": "done", other.__name__: "done"}, (
        f"{other.__name__} and the outbox's lock (pk order) of the same two pumps: {outcome}"
    )
