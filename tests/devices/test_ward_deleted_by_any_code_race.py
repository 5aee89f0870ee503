"""A ward deleted (from `manage.py shell`, or by `ward_delete`) while an infusion starts on one of its pumps: the
deletion waits for the start, then is refused; the pump keeps its ward.

On PostgreSQL the models' guard (`deletion_guards.ward_deletion_guard`), reading the ward's pumps unlocked, read the
pump idle while its infusion's start was not committed; the deletion's `SET_NULL` update then waited for the pump's
row and nulled it once the start committed: a pump with an infusion pending, in no ward, on no station. The guard now
locks the ward's pumps' rows before it reads them, as `ward_delete` does. Both then locked the ward `FOR UPDATE`,
which the start's commit waits for (its pump's row written twice checks the ward's key, `FOR KEY SHARE`): the
deletion waited for the pump, the start for the ward, and PostgreSQL aborted one ("deadlock detected"; `ward_delete`
alike). `ward_lock` is `NO KEY UPDATE` now. On SQLite the IMMEDIATE transactions are serial and the test passes
either way; the race is PostgreSQL's (`-p tests.support.postgres`).
"""

import threading

import pytest
from django.db import OperationalError, connection, connections, transaction

from devices.exceptions import PumpStreamError
from devices.models import Device, Ward
from devices.services.registration import ward_delete
from devices.services.sessions import infusion_start
from tests.factories import make_device, make_order, make_user, make_ward

pytestmark = pytest.mark.django_db(transaction=True)


ROADS = {
    "ward.delete()": lambda ward: ward.delete(),
    "ward_delete(ward=ward)": lambda ward: ward_delete(ward=ward),
}


@pytest.mark.parametrize("road", list(ROADS))
def test_a_ward_is_not_deleted_while_an_infusion_starts_on_its_pump(road):
    ward = make_ward("ward-b")
    make_user("ward-b-nurse", ward=ward)
    make_device("RACE_STARTED", ward=ward, bed="9")
    outcome: dict = {}

    def delete_from_the_shell() -> None:
        try:
            with transaction.atomic():
                ROADS[road](Ward.objects.get(pk=ward.pk))
            outcome["deleted"] = True
        except PumpStreamError as exc:
            outcome["refused"] = exc.code
        except OperationalError as exc:  # PostgreSQL's "deadlock detected": the deletion's ward lock against the start
            outcome["failed"] = str(exc).splitlines()[0]
        finally:
            connections.close_all()

    deleter = threading.Thread(target=delete_from_the_shell)
    with transaction.atomic():  # a nurse starts an infusion on the ward's idle pump: not yet committed
        infusion_start(device_id="RACE_STARTED", order=make_order(drug="Noradrenaline"))
        deleter.start()  # an administrator deletes the ward from the shell meanwhile
        deleter.join(timeout=1.0)  # on PostgreSQL it waits (for the pump's row) until the start commits
    deleter.join(timeout=30)
    assert not deleter.is_alive(), "the deletion never finished"
    pump = Device.objects.select_related("ward").get(device_id="RACE_STARTED")
    assert pump.ward is not None, (
        f"pump RACE_STARTED, its infusion started, was left in no ward by `{road}`: on no station, no one paged "
        f"({connection.vendor}; the deletion: {outcome})"
    )
    assert "refused" in outcome, f"`{road}`: {outcome}"
