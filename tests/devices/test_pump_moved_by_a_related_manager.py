"""A pump in use is never moved off every station by a ward's related manager either (review 40, finding 1).

Django's reverse foreign-key manager writes through `Device._base_manager`, not the pumps' default manager:
`ward.devices.add(pump)` (bulk, the default) is `_base_manager.filter(pk__in=...).update(ward=ward)`, and
`ward.devices.set([...])` adds the same way. With Django's plain base manager `DeviceQuerySet` never saw them:
`empty_ward.devices.add(infusing_pump)` from `manage.py shell` moved an infusing pump with a HIGH alarm into a ward no
one watches, on no station, no one paged, unrefused and unlogged. The pumps' base manager is now the guarded one.
"""

import pytest
from django.db import transaction

from devices.access_selectors import ward_is_watched
from devices.exceptions import PumpStreamError
from devices.models import Device
from tests.devices.test_pump_ward_cleared import infusing_with_a_high_alarm
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db


def added(how: str, ward, device: Device) -> None:
    """`device` put into `ward` by its related manager's road `how`, in a transaction of its own, as the shell's
    (`set()` and `add(bulk=False)` open theirs with no savepoint: a refusal spoils the test's)."""
    with transaction.atomic():
        if how == "add":
            ward.devices.add(device)
        elif how == "set":
            ward.devices.set([device])
        else:  # one save per pump: `pre_save`, guarded before
            ward.devices.add(device, bulk=False)


ROADS = ["add", "set", "add, bulk=False"]


@pytest.mark.parametrize("how", ROADS)
def test_a_pump_in_use_is_not_moved_into_an_unwatched_ward_by_its_related_manager(how):
    device = infusing_with_a_high_alarm("RM_MOVED")
    make_user("icu-nurse", ward=device.ward)
    empty = make_ward("empty")
    refused = None
    try:
        added(how, empty, device)
    except PumpStreamError as refusal:
        refused = refusal
    stored = Device.objects.select_related("ward").get(pk=device.pk)
    assert stored.ward is not None and ward_is_watched(stored.ward), (
        f"ward.devices.{how}(pump) moved RM_MOVED, infusing with a HIGH alarm, into ward {stored.ward.code}, which "
        f"no one watches (refused: {refused!r}): on no station, no one paged"
    )
    assert refused is not None and refused.code == "pump_in_use" and "RM_MOVED" in refused.message


@pytest.mark.parametrize("how", ROADS)
def test_a_related_manager_moves_a_pump_in_use_to_a_watched_ward_and_an_idle_pump_anywhere(how):
    busy = infusing_with_a_high_alarm("RM_BUSY")
    watched = make_ward("ward-b")
    make_user("ward-b-nurse", ward=watched)
    added(how, watched, busy)
    assert Device.objects.get(pk=busy.pk).ward_id == watched.pk
    idle = make_device("RM_IDLE", ward=watched)
    empty = make_ward("empty")
    added(how, empty, idle)
    assert Device.objects.get(pk=idle.pk).ward_id == empty.pk
