"""A ward or a pump in use is not deleted by code below the services either (`manage.py shell`).

`ward_delete` and `pump_delete` (the admin's pages and bulk actions) refuse them; the same deletion made on the
models went through unguarded: `ward.delete()` or `Ward.objects.filter(...).delete()` set the ward of an infusing pump
with a HIGH alarm to null by its foreign key, silently (the pump off every station, no one paged), and
`device.delete()` of a pump with an active alarm took the alarm with it by cascade, unresolved and unannounced. The
models refuse them now (`deletion_guards_connect`), in the services' words and codes, naming the pumps in use and
their beds, and log it; a ward or a pump not in use is deleted as before. The services and the admin still refuse
first, and the guard is not reached there.
"""

import logging

import pytest
from django.db import transaction
from django.db.models import ProtectedError

from devices.exceptions import PumpStreamError
from devices.models import Alarm, Device, Ward
from devices.services.registration import pump_delete, pump_registration_save, ward_delete
from tests.devices.test_pump_delete import alarming
from tests.devices.test_pump_ward_cleared import infusing_with_a_high_alarm
from tests.devices.test_ward_left_unwatched_by_any_code import _ward_with_a_pump_in_use
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db

GUARD_LOGGER = "devices.services.deletion_guards"
WARD_GUARD_LOG = "deletion of a ward in use refused"
PUMP_GUARD_LOG = "deletion of a pump in use refused"

WARD_ROADS = {
    "ward.delete()": lambda ward, idle: ward.delete(),
    "Ward.objects.filter(pk=ward.pk).delete()": lambda ward, idle: Ward.objects.filter(pk=ward.pk).delete(),
    "Ward.objects.filter(pk__in=[ward, idle ward]).delete()": (
        lambda ward, idle: Ward.objects.filter(pk__in=[ward.pk, idle.pk]).delete()
    ),
}
PUMP_ROADS = {
    "device.delete()": lambda device: device.delete(),
    "Device.objects.filter(pk=device.pk).delete()": lambda device: Device.objects.filter(pk=device.pk).delete(),
}


def _refused(road, *args) -> PumpStreamError | None:
    try:
        with transaction.atomic():
            road(*args)
    except PumpStreamError as exc:
        return exc
    return None


def _still_in_its_ward(ward: Ward, road: str) -> None:
    pump = Device.objects.select_related("ward").get(device_id="IN_USE_B7")
    assert pump.ward is not None and pump.ward.pk == ward.pk, (
        f"`{road}` left pump IN_USE_B7, infusing with a HIGH alarm at bed 7, without a ward (now "
        f"{pump.ward and pump.ward.code!r}): off every station, no one paged for its alarm"
    )


@pytest.mark.parametrize("road", list(WARD_ROADS))
def test_a_ward_holding_a_pump_in_use_is_not_deleted_by_any_code(road, caplog):
    ward, _nurse = _ward_with_a_pump_in_use()
    idle = make_ward("idle")
    make_device("IDLE_1", ward=idle, bed="2")
    caplog.set_level(logging.WARNING, logger=GUARD_LOGGER)
    caplog.set_level(logging.WARNING, logger="devices.services.watchers")
    refused = _refused(WARD_ROADS[road], ward, idle)
    _still_in_its_ward(ward, road)
    assert Ward.objects.filter(pk__in=[ward.pk, idle.pk]).count() == 2, f"`{road}` deleted a ward all the same"
    assert refused is not None and refused.code == "ward_in_use", refused
    for named in ("Ward ward-b is in use", "pump IN_USE_B7 (bed 7)", "is running", "active alarm(s)"):
        assert named in refused.message, f"the refusal of `{road}` does not say {named!r}: {refused.message}"
    assert WARD_GUARD_LOG in caplog.text, f"the refusal of `{road}` was not logged"
    assert "move of a pump in use refused" not in caplog.text, (
        f"`{road}` was refused twice: its pumps' `SET_NULL` (`DeviceQuerySet`) was reached after the ward's guard"
    )


def test_wards_deleted_together_are_refused_naming_each_ward_in_use():
    ward, _nurse = _ward_with_a_pump_in_use()
    other = make_ward("ward-c")
    make_user("ward-c-nurse", ward=other)
    alarming_pump = alarming("ALARM_C")
    alarming_pump.ward, alarming_pump.bed = other, "4"
    pump_registration_save(device=alarming_pump, fields=["ward", "bed"])
    refused = _refused(lambda: Ward.objects.filter(pk__in=[ward.pk, other.pk]).delete())
    assert refused is not None, "two wards holding pumps in use were deleted together"
    for named in ("Ward ward-b is in use", "pump IN_USE_B7 (bed 7)", "Ward ward-c is in use", "pump ALARM_C (bed 4)"):
        assert named in refused.message, f"the refusal does not say {named!r}: {refused.message}"


@pytest.mark.parametrize("road", list(WARD_ROADS))
def test_a_ward_with_no_pump_in_use_is_deleted_by_any_code(road):
    ward, idle = make_ward("quiet"), make_ward("idle")
    make_device("QUIET_1", ward=ward, bed="3")
    WARD_ROADS[road](ward, idle)
    assert not Ward.objects.filter(pk=ward.pk).exists(), f"`{road}` of a ward with no pump in use was refused"
    assert Device.objects.get(device_id="QUIET_1").ward is None


def test_the_service_refuses_in_its_own_words_before_the_models_do(caplog):
    ward, _nurse = _ward_with_a_pump_in_use()
    caplog.set_level(logging.WARNING, logger=GUARD_LOGGER)
    with pytest.raises(PumpStreamError, match="Ward ward-b is in use") as refused:
        ward_delete(ward=ward)
    assert refused.value.code == "ward_in_use"
    assert WARD_GUARD_LOG not in caplog.text, "the service's refusal was handled twice: the models' guard was reached"
    _still_in_its_ward(ward, "ward_delete")


def test_the_admins_pages_refuse_before_the_models_and_delete_a_ward_not_in_use(admin_client, caplog):
    ward, _nurse = _ward_with_a_pump_in_use()
    quiet = make_ward("quiet")
    make_device("QUIET_1", ward=quiet)
    caplog.set_level(logging.WARNING, logger=GUARD_LOGGER)
    page = admin_client.post(f"/admin/devices/ward/{ward.pk}/delete/", {"post": "yes"})
    assert "IN_USE_B7" in page.content.decode(), "the delete page does not say which pump keeps the ward"
    bulk = {"action": "delete_selected", "_selected_action": [ward.pk, quiet.pk], "post": "yes"}
    admin_client.post("/admin/devices/ward/", bulk)
    _still_in_its_ward(ward, "the admin's delete page and bulk delete")
    admin_client.post(f"/admin/devices/ward/{quiet.pk}/delete/", {"post": "yes"})
    assert not Ward.objects.filter(pk=quiet.pk).exists(), "a ward with no pump in use was not deleted in the admin"
    assert WARD_GUARD_LOG not in caplog.text, "the admin's refusal was handled twice: the models' guard was reached"


@pytest.mark.parametrize("road", list(PUMP_ROADS))
def test_a_pump_with_an_active_alarm_is_not_deleted_by_any_code(road, caplog):
    device = alarming("ALARM_SHELL")
    Device.objects.filter(pk=device.pk).update(bed="5")
    caplog.set_level(logging.WARNING, logger=GUARD_LOGGER)
    refused = _refused(PUMP_ROADS[road], device)
    assert Device.objects.filter(pk=device.pk).exists(), f"`{road}` deleted a pump with an active HIGH alarm"
    assert Alarm.objects.filter(device=device, state="active").exists(), f"`{road}` took its active alarm with it"
    assert refused is not None and refused.code == "pump_in_use", refused
    for named in ("Pump ALARM_SHELL is in use", "pump ALARM_SHELL (bed 5)", "1 active alarm(s)"):
        assert named in refused.message, f"the refusal of `{road}` does not say {named!r}: {refused.message}"
    assert PUMP_GUARD_LOG in caplog.text, f"the refusal of `{road}` was not logged"


@pytest.mark.parametrize("road", list(PUMP_ROADS))
def test_an_infusing_pump_is_kept_by_its_records(road):
    """Its infusion records protect it in the database, before any signal is sent: Django's `ProtectedError`."""
    device = infusing_with_a_high_alarm("INFUSING_SHELL")
    with pytest.raises(ProtectedError), transaction.atomic():
        PUMP_ROADS[road](device)
    assert Alarm.objects.filter(device=device, state="active").exists(), f"`{road}` took its active alarm with it"


@pytest.mark.parametrize("road", list(PUMP_ROADS))
def test_a_pump_not_in_use_is_deleted_by_any_code(road):
    device = make_device("SPARE_SHELL")
    PUMP_ROADS[road](device)
    assert not Device.objects.filter(pk=device.pk).exists(), f"`{road}` of a pump not in use was refused"


def test_the_pump_service_refuses_before_the_models_do_and_deletes_one_not_in_use(caplog):
    device, spare = alarming("ALARM_SERVICE"), make_device("SPARE_SERVICE")
    caplog.set_level(logging.WARNING, logger=GUARD_LOGGER)
    with pytest.raises(PumpStreamError, match="Pump ALARM_SERVICE is in use"):
        pump_delete(device=device)
    pump_delete(device=spare)
    assert not Device.objects.filter(pk=spare.pk).exists(), "a pump not in use was not deleted by pump_delete"
    assert PUMP_GUARD_LOG not in caplog.text, "the service's refusal was handled twice: the models' guard was reached"
