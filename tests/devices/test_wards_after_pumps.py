"""Pumps are locked before wards, on every road, so a ward's deletion never deadlocks with a move into it or with an
alarm on one of its pumps (review 41, F2; PostgreSQL).

A move of pumps (a queryset's write, `ward.devices.add/set`, a pump's save) locks the pumps' rows, then its
destination ward (`ward_lock`, the guard's); the bridge's alarm locks its pump (the batch), then shares its ward's
row (`silences._ward_hold`). A ward's deletion (`ward_delete`, a shell's `ward.delete()` through `deletion_guards`)
locked the ward, then its pumps: `ward.devices.set([...])` against that ward's deletion, or an alarm committed on a
pump of the ward against its deletion, each waited for the other and PostgreSQL aborted one ("deadlock detected").
A deletion now locks the ward's pumps, then the ward; a pump moved in between the two is not among the locked ones,
so the deletion is refused (`ward_changed`) rather than nulling a pump its guard never saw.

Deterministic: the waiters are ordered by reading `pg_locks`. On SQLite the IMMEDIATE transactions are serial and
nothing waits, so those are skipped there (run with `-p tests.support.postgres`); the refusal's test runs on both.
"""

import threading

import pytest
from django.db import connection, transaction

from devices.exceptions import PumpStreamError
from devices.models import Device, Ward
from devices.services import registration
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.registration import pump_register, ward_delete
from devices.states import AlarmPriority, AlarmSource
from tests.devices.test_pumps_locked_in_one_order import on_its_own_connection, row_held, two_watched_wards
from tests.factories import make_device, make_user, make_ward
from tests.support.pg_locks import in_another_transaction, waiters_at_least

pytestmark = pytest.mark.django_db(transaction=True)

DELETIONS = {
    "ward_delete": lambda ward: ward_delete(ward=ward),  # the ward's admin page
    "ward.delete()": lambda ward: ward.delete(),  # `manage.py shell`, through `deletion_guards`
}


def postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's row locks (-p tests.support.postgres)")


@pytest.mark.parametrize("deletion", list(DELETIONS))
def test_a_wards_set_of_pumps_and_its_deletion_do_not_deadlock(deletion):
    postgresql_only()
    icu, icu_b = two_watched_wards()
    make_device("SD_A", ward=icu)  # idle: may leave the ward
    coming = make_device("SD_B", ward=icu_b)  # idle: may come in
    outcome: dict = {}

    def set_in_the_shell() -> None:  # an administrator: "icu's pumps are SD_B now"
        Ward.objects.get(pk=icu.pk).devices.set([Device.objects.get(pk=coming.pk)])

    holder, release = row_held(coming.pk, outcome)  # SD_B
    threads = [holder, on_its_own_connection(set_in_the_shell, outcome, "set")]
    waiters_at_least(1)  # set: SD_A taken out (its row locked), waiting for SD_B
    threads.append(on_its_own_connection(lambda: DELETIONS[deletion](Ward.objects.get(pk=icu.pk)), outcome, "deletion"))
    waiters_at_least(2)  # the deletion waits for SD_A (before, holding icu: the cycle once set asked for icu)
    release.set()
    for thread in threads:
        thread.join(30)
    assert outcome["holder"] == outcome["set"] == "done", f"{deletion} against icu's devices.set(...): {outcome}"
    assert outcome["deletion"].startswith("PumpStreamError: Pump SD_B came into ward icu"), (
        f"{deletion} of icu, SD_B moved into it meanwhile, is refused for it to be looked at again: {outcome}"
    )
    assert Device.objects.get(pk=coming.pk).ward_id == icu.pk, "SD_B left its new ward, nulled by a deletion"


@pytest.mark.parametrize("deletion", list(DELETIONS))
def test_an_alarm_raised_on_a_pump_of_a_ward_and_its_deletion_do_not_deadlock(deletion):
    postgresql_only()
    icu = make_ward("icu")
    make_user("icu-nurse", ward=icu)
    pump = make_device("AL_A", ward=icu, bed="4")
    outcome: dict = {}
    held, release = threading.Event(), threading.Event()

    def bridge() -> None:  # the bridge's batch: the pump's row locked, then its alarm (which shares the ward's row)
        with transaction.atomic():
            locked = device_lock(device_id=pump.device_id)
            held.set()
            assert release.wait(10)
            alarm_raise(device=locked, type="occlusion", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE,
                        message="Line blocked")  # fmt: skip

    threads = [on_its_own_connection(bridge, outcome, "bridge")]
    assert held.wait(10)
    threads.append(on_its_own_connection(lambda: DELETIONS[deletion](Ward.objects.get(pk=icu.pk)), outcome, "deletion"))
    waiters_at_least(1)  # the deletion waits for AL_A (before, holding icu: the cycle once the alarm shared it)
    release.set()
    for thread in threads:
        thread.join(30)
    assert outcome["bridge"] == "done", f"the alarm on AL_A, committed against {deletion} of its ward: {outcome}"
    assert outcome["deletion"].startswith("PumpStreamError: Ward icu is in use: pump AL_A (bed 4): 1 active alarm"), (
        f"{deletion} of icu waits for the alarm on its pump, then is refused for it: {outcome}"
    )


def a_move_commits_before_the_ward_is_locked(monkeypatch, pump: Device, ward: Ward) -> None:
    """Between a deletion's lock of the ward's pumps and its lock of the ward, `pump` is moved into `ward` and
    committed (on PostgreSQL, another administrator's move; here written in the deletion's own transaction, which
    SQLite's serial transactions allow, below every guard: the move was checked on its own road)."""
    locked_ward = registration.ward_lock

    def moved_in_first(*, ward_pk: int) -> None:
        table, ward_column = Device._meta.db_table, Device._meta.get_field("ward").column
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET {ward_column} = %s WHERE id = %s", [ward.pk, pump.pk])  # noqa: S608
        locked_ward(ward_pk=ward_pk)

    monkeypatch.setattr(registration, "ward_lock", moved_in_first)


MOVED_IN = "Pump MV_ARRIVES came into ward icu while it was being deleted: look at the ward again and retry."


@pytest.mark.parametrize("deletion", list(DELETIONS))
def test_a_pump_moved_into_a_ward_after_its_deletion_locked_its_pumps_refuses_the_deletion(deletion, monkeypatch):
    icu, er = make_ward("icu"), make_ward("er")
    make_user("icu-nurse", ward=icu)
    make_device("MV_STAYS", ward=icu)
    a_move_commits_before_the_ward_is_locked(monkeypatch, make_device("MV_ARRIVES", ward=er), icu)
    with pytest.raises(PumpStreamError) as refused:
        DELETIONS[deletion](Ward.objects.get(pk=icu.pk))
    assert (refused.value.code, refused.value.message) == ("ward_changed", MOVED_IN), refused.value
    assert Ward.objects.filter(pk=icu.pk).exists(), "icu was deleted, MV_ARRIVES nulled unseen"


def test_the_wards_delete_page_says_a_pump_moved_in_meanwhile(admin_client, monkeypatch):
    icu, er = make_ward("icu"), make_ward("er")
    make_device("MV_STAYS", ward=icu)
    a_move_commits_before_the_ward_is_locked(monkeypatch, make_device("MV_ARRIVES", ward=er), icu)
    response = admin_client.post(f"/admin/devices/ward/{icu.pk}/delete/", {"post": "yes"}, follow=True)
    said = [str(message) for message in response.context["messages"]]
    assert said == [MOVED_IN], f"the ward's delete page, a pump moved into it meanwhile, said {said}"
    assert Ward.objects.filter(pk=icu.pk).exists(), "icu was deleted, MV_ARRIVES nulled unseen"


@pytest.mark.parametrize("deletion", list(DELETIONS))
def test_a_pump_registered_into_a_ward_as_it_is_deleted_refuses_the_deletion(deletion):
    """A registration under way into icu (its transaction not yet committed) when icu's deletion starts: the
    deletion waits for it, then sees the new pump and is refused. Before, it did not wait (the new row unseen, its
    key check deferred to its commit): committed between the deletion's check and its delete, the pump was nulled by
    `SET_NULL`, off every screen of icu unseen."""
    postgresql_only()
    icu = make_ward("icu")
    make_user("icu-nurse", ward=icu)
    registering = in_another_transaction(
        lambda: pump_register(device=Device(device_id="RG_NEW", name="New pump", ward=icu, bed="7"))
    )
    with pytest.raises(PumpStreamError) as refused:
        DELETIONS[deletion](Ward.objects.get(pk=icu.pk))
    registering.join(30)
    assert (refused.value.code, refused.value.message) == (
        "ward_changed",
        "Pump RG_NEW came into ward icu while it was being deleted: look at the ward again and retry.",
    ), refused.value
    assert Device.objects.get(device_id="RG_NEW").ward_id == icu.pk, "RG_NEW registered into icu, then nulled"


def test_a_pump_registered_into_a_ward_being_deleted_is_refused():
    """icu's deletion under way (not yet committed) when a pump is registered into it: the registration waits for
    it, then is refused for the ward that is gone (before: an IntegrityError at its commit, the admin's page a 500)."""
    postgresql_only()
    icu = make_ward("icu")
    make_device("RG_STAYS", ward=icu)  # idle: leaves with the ward
    deleting = in_another_transaction(lambda: ward_delete(ward=Ward.objects.get(pk=icu.pk)))
    with pytest.raises(PumpStreamError) as refused:
        pump_register(device=Device(device_id="RG_LATE", name="Late pump", ward=icu, bed="8"))
    deleting.join(30)
    assert (refused.value.code, refused.value.message) == (
        "ward_gone",
        "Ward icu was deleted while pump RG_LATE was being registered into it: choose its ward again.",
    ), refused.value
    assert not Device.objects.filter(device_id="RG_LATE").exists(), "RG_LATE stored without its ward"
    assert not Ward.objects.filter(pk=icu.pk).exists(), "icu's deletion was not carried out"
