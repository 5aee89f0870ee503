"""A pump's edit or registration refused below the admin's page is not in the admin's history (review 39, finding 5).

6666b93 took back the history's "Deleted …" of a deletion refused below the page (review 37, finding 6). A pump's
edit refused below the page (`pump_registration_save`: the pump came into use after the form was checked) was caught
in `DeviceAdmin.save_model`, so Django went on to `log_change`: the pump's history said "Changed Ward." while the pump
kept its ward. Now the refusal reaches `admin_refusals.RefusalsSaid`, which rolls the whole save back, the history
entry Django writes after it included; so does a registration's (`pump_register`).
"""

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from devices.exceptions import PumpStreamError
from devices.models import Device
from devices.services.registration import pump_register
from tests.devices.test_admin_pump_edit import admin_form, opened_form
from tests.devices.test_pump_ward_cleared import infusing_with_a_high_alarm
from tests.factories import make_ward

pytestmark = pytest.mark.django_db


def history(device_pk: int, action_flag: int):
    """The admin history's entries of this pump with this action ("Added", "Changed")."""
    return LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Device), object_id=str(device_pk),
                                   action_flag=action_flag)  # fmt: skip


def test_a_refused_pump_edit_is_not_logged_as_changed(admin_client, monkeypatch):
    device = infusing_with_a_high_alarm("REFUSED_EDIT_LOG")
    monkeypatch.setattr("devices.admin_forms.pump_move_refusal", lambda **_: "")  # the page's check, before in use
    cleared = {**opened_form(admin_client, device), "ward": ""}
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", cleared, follow=True)
    shown = [str(message) for message in response.context["messages"]]
    assert any("cannot be left without a ward" in message for message in shown), shown
    assert not any("changed successfully" in message for message in shown), shown
    assert Device.objects.get(pk=device.pk).ward is not None, "precondition: pump_registration_save refused"
    logged = history(device.pk, CHANGE)
    assert not logged.exists(), (
        f"the refused edit is in the pump's admin history as {logged.first().get_change_message()!r}, its ward kept"
    )


def test_a_refused_pump_registration_is_not_logged_as_added(admin_client, monkeypatch):
    """No refusal of `pump_register` comes from below the add page today; one that did (after the row was written)
    takes the pump and its "Added." back together."""

    def registered_then_refused(*, device: Device, user=None) -> None:
        pump_register(device=device, user=user)
        raise PumpStreamError("Refused below the page.", code="pump_in_use")

    monkeypatch.setattr("devices.admin.pump_register", registered_then_refused)
    form = admin_form(Device(device_id="REFUSED_ADD_LOG", ward=make_ward("icu"), created_at=timezone.now()))
    response = admin_client.post("/admin/devices/device/add/", form, follow=True)
    shown = [str(message) for message in response.context["messages"]]
    assert any("Refused below the page." in message for message in shown), shown
    assert not any("added successfully" in message for message in shown), shown
    assert not Device.objects.filter(device_id="REFUSED_ADD_LOG").exists(), "the refused registration was kept"
    added = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Device), action_flag=ADDITION)
    assert not added.exists(), f"the refused registration is in the admin history as {added.first()!r}"
