"""A pump in use is never moved off every station by its model (review 36, finding 4), whatever code saves it.

The models guard a ward's watchers and a ward's or pump's deletion "whatever code does it" (`watchers.py`,
`deletion_guards.py`); a pump saved with another ward was not: from `manage.py shell`, `device.ward = None;
device.save()` or a ward no one watches took an infusing pump with a HIGH alarm off every station, no one paged. The
service (`pump_registration_save`) refused both; now the pump's `pre_save` does too, in its words.
"""

import pytest
from django.db import transaction

from devices.access_selectors import ward_is_watched
from devices.exceptions import PumpStreamError
from devices.models import Device
from tests.devices.test_pump_ward_cleared import infusing_with_a_high_alarm
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db


def saved(device: Device, ward, **save) -> None:
    device.ward = ward
    device.save(**save)


@pytest.mark.parametrize("inside_a_transaction", [True, False])
@pytest.mark.parametrize("where", ["no ward", "a ward no one watches"])
def test_a_pump_in_use_is_not_moved_off_every_station_by_its_model(where, inside_a_transaction):
    device = infusing_with_a_high_alarm("SHELL_MOVED")
    make_user("icu-nurse", ward=device.ward)
    destination = None if where == "no ward" else make_ward("empty")
    with pytest.raises(PumpStreamError) as refused:
        if inside_a_transaction:
            with transaction.atomic():
                saved(device, destination)
        else:
            saved(device, destination)
    assert refused.value.code == "pump_in_use" and "SHELL_MOVED" in refused.value.message
    stored = Device.objects.select_related("ward").get(pk=device.pk)
    assert stored.ward is not None and ward_is_watched(stored.ward), (
        f"`device.ward = {where}; device.save()` moved pump SHELL_MOVED, infusing with a HIGH alarm, to "
        f"{stored.ward.code if stored.ward else None}: on no station, no one paged"
    )


@pytest.mark.parametrize("named", ["ward", "ward_id"])
def test_a_pump_in_use_saved_with_its_ward_named_in_update_fields_is_refused_too(named):
    device = infusing_with_a_high_alarm("SHELL_FIELDS")
    make_user("icu-nurse", ward=device.ward)
    with pytest.raises(PumpStreamError):
        saved(device, None, update_fields=[named])
    assert Device.objects.get(pk=device.pk).ward_id is not None


def test_a_pump_in_use_moves_by_its_model_to_a_ward_someone_watches_and_an_idle_pump_anywhere():
    device = infusing_with_a_high_alarm("SHELL_OK")
    make_user("icu-nurse", ward=device.ward)
    watched = make_ward("ward-b")
    make_user("ward-b-nurse", ward=watched)
    saved(device, watched)
    assert Device.objects.get(pk=device.pk).ward_id == watched.pk
    idle = make_device("SHELL_IDLE", ward=watched)
    saved(idle, None)
    assert Device.objects.get(pk=idle.pk).ward_id is None
    other = make_device("SHELL_OTHER_FIELDS", ward=watched)
    other.bed = "9"
    other.save(update_fields=["bed"])  # no ward in the save: nothing read or locked for it
    assert Device.objects.get(pk=other.pk).bed == "9"
