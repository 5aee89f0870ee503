"""A pump in use moved into a ward while its last watcher is being removed: one of the two is refused.

The move checks that someone watches the destination (`pump_move_refusal`); the ward's page, removing a member,
checks that no pump of the ward is in use (`ward_members_refusal`, under the ward's row lock). On PostgreSQL the move
read the destination's members without that lock: the removal under way was not committed, so the nurse was still
there; the removal saw no pump in use, the move not committed either. Both went through and the infusing pump with a
HIGH alarm was left in a ward no one watches. The move now locks the destination's row as the removal does, waits,
and reads the removal. On SQLite the IMMEDIATE transactions are serial and the test passes either way; the race is
PostgreSQL's (`-p tests.support.postgres`).
"""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from devices.access_selectors import ward_is_watched
from devices.models import Device
from devices.services.registration import pump_registration_save
from devices.services.watchers import ward_members_refusal
from tests.devices.test_pump_ward_cleared import infusing_with_a_high_alarm
from tests.factories import make_user, make_ward
from tests.support.pg_locks import in_another_session

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("how", ["the service", "a queryset update"])
def test_a_pump_in_use_is_not_moved_into_a_ward_whose_last_watcher_is_being_removed(how):
    pump = infusing_with_a_high_alarm("RACE_MOVED")
    ward_b = make_ward("ward-b")
    nurse = make_user("ward-b-nurse", ward=ward_b)

    def move_into_ward_b() -> None:
        if how == "a queryset update":  # `manage.py shell`: the guard of the pumps' queryset (review 39, finding 6)
            Device.objects.filter(pk=pump.pk).update(ward=ward_b)
            return
        edited = Device.objects.get(pk=pump.pk)
        edited.ward = ward_b
        pump_registration_save(device=edited, fields=["ward"])

    mover, outcome = in_another_session(move_into_ward_b)
    with transaction.atomic():  # the ward's page removing its one nurse: checked, removed, not yet committed
        assert ward_members_refusal(ward=ward_b, members=get_user_model().objects.none()) == "", "no pump in use yet"
        ward_b.members.remove(nurse)
        mover.start()  # another administrator moves the infusing pump into ward-b meanwhile
        mover.join(timeout=1.0)  # on PostgreSQL it waits (for ward-b's row) until the removal commits
    mover.join(timeout=30)
    assert not mover.is_alive(), "the move never finished"
    stored = Device.objects.select_related("ward").get(pk=pump.pk)
    assert not (stored.ward_id == ward_b.pk and not ward_is_watched(ward_b)), (
        f"pump {stored.device_id}, infusing with a HIGH alarm, was moved into ward-b while its last nurse was "
        f"removed: both went through and no one watches it ({connection.vendor}; the move: {outcome})"
    )
    assert "refused" in outcome and "which no one watches" in outcome["refused"].message, outcome
