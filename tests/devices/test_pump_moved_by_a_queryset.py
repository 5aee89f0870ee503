"""A pump in use is never moved off every station by a queryset either (review 39, finding 6).

The move guard (review 36 finding 4, `watchers.pump_move_guard`) is a `pre_save` signal; a queryset's
`update(ward=None)`, `bulk_update([pump], ["ward"])` or an upsert (`bulk_create(..., update_conflicts=True,
update_fields=["ward"])`) from `manage.py shell` sends none: an infusing pump with a HIGH alarm left its ward, on no
station, no one paged, unrefused. The pumps' queryset (`DeviceQuerySet`) now tells the same guard what it moved,
inside its transaction.
"""

import pytest
from django.db import transaction

from devices.access_selectors import ward_is_watched
from devices.exceptions import PumpStreamError
from devices.models import Device
from tests.devices.test_pump_ward_cleared import infusing_with_a_high_alarm
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db


def moved(how: str, devices: list[Device], ward) -> None:
    """Each of `devices` written into `ward` (None: no ward) by the queryset road `how`."""
    if how == "queryset update":
        Device.objects.filter(pk__in=[device.pk for device in devices]).update(ward=ward)
    elif how == "bulk_update":
        for device in devices:
            device.ward = ward
        Device.objects.bulk_update(devices, ["ward"])
    else:  # an upsert of the pumps' rows by their device ids
        rows = [Device(device_id=device.device_id, ward=ward) for device in devices]
        Device.objects.bulk_create(rows, update_conflicts=True, update_fields=["ward"], unique_fields=["device_id"])


ROADS = ["queryset update", "bulk_update", "upsert"]


@pytest.mark.parametrize("how", ROADS)
@pytest.mark.parametrize("where", ["no ward", "a ward no one watches"])
def test_a_pump_in_use_is_not_moved_off_every_station_by_a_queryset(how, where):
    device = infusing_with_a_high_alarm("QS_MOVED")
    make_user("icu-nurse", ward=device.ward)
    destination = None if where == "no ward" else make_ward("empty")
    with pytest.raises(PumpStreamError) as refused:
        moved(how, [device], destination)
    assert refused.value.code == "pump_in_use" and "QS_MOVED" in refused.value.message
    stored = Device.objects.select_related("ward").get(pk=device.pk)
    assert stored.ward is not None and ward_is_watched(stored.ward), (
        f"{how} moved pump QS_MOVED, infusing with a HIGH alarm, to {stored.ward.code if stored.ward else None}: "
        "on no station, no one paged"
    )


@pytest.mark.parametrize("how", ROADS)
def test_a_refused_queryset_move_takes_back_every_pump_it_wrote_and_leaves_the_callers_transaction_usable(how):
    """An idle pump written in the same call as the refused one is not left moved; the caller's own transaction goes
    on (Django's `bulk_update` block has no savepoint of its own)."""
    busy = infusing_with_a_high_alarm("QS_BUSY")
    icu = busy.ward
    make_user("icu-nurse", ward=icu)
    idle = make_device("QS_IDLE", ward=icu)
    with transaction.atomic():
        with pytest.raises(PumpStreamError):
            moved(how, [idle, busy], None)
        assert Device.objects.filter(ward=icu).count() == 2, f"{how}: a pump left its ward with the refused move"


@pytest.mark.parametrize("how", ROADS)
def test_a_queryset_moves_a_pump_in_use_to_a_ward_someone_watches_and_an_idle_pump_anywhere(how):
    busy = infusing_with_a_high_alarm("QS_OK")
    watched = make_ward("ward-b")
    make_user("ward-b-nurse", ward=watched)
    moved(how, [busy], watched)
    assert Device.objects.get(pk=busy.pk).ward_id == watched.pk
    idle = make_device("QS_IDLE", ward=watched)
    moved(how, [idle], None)
    assert Device.objects.get(pk=idle.pk).ward_id is None
    Device.objects.filter(pk=busy.pk).update(bed="9")  # no ward written: nothing read or locked for it
    assert Device.objects.get(pk=busy.pk).bed == "9"
