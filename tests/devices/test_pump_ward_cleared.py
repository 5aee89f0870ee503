"""A pump in use (an infusion on or an alarm active) is never left without a ward, as its ward is never deleted then.

Without a ward its ward's stations and monitors drop it and no one is paged for its alarms; moving it to another
ward stays possible (the pump stays watched and paged, by the other ward), into a ward someone watches
(`test_pump_moved_unwatched.py`).
"""

import pytest
from django.db import transaction

from devices.exceptions import PumpStreamError
from devices.models import Device, DeviceEvent
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.confirmations import infusion_confirm
from devices.services.registration import pump_registration_save
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource
from tests.devices.test_admin_pump_edit import opened_form
from tests.factories import make_device, make_order, make_user, make_ward

pytestmark = pytest.mark.django_db


def infusing_with_a_high_alarm(device_id: str) -> Device:
    make_device(device_id, ward=make_ward("icu"))
    session = infusion_start(device_id=device_id, order=make_order(drug="Noradrenaline"))
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        infusion_confirm(device=device, infusion_id=session.infusion_id, confirmed=True, parameters=None,
                         confirmation={"confirmed": True})  # fmt: skip
        alarm_raise(device=device, type="occlusion", priority=AlarmPriority.HIGH, source=AlarmSource.DEVICE,
                    message="Line blocked")  # fmt: skip
    return Device.objects.get(device_id=device_id)


def test_a_pump_in_use_cannot_be_left_without_a_ward():
    edited = infusing_with_a_high_alarm("WARDLESS")
    edited.ward = None  # the admin's change form with the ward field cleared
    with pytest.raises(PumpStreamError) as refused:
        pump_registration_save(device=edited, fields=["ward"])
    assert refused.value.code == "pump_in_use" and "another ward" in refused.value.message
    assert Device.objects.get(device_id="WARDLESS").ward is not None, (
        "an infusing pump with a high alarm sounding was left without a ward: its ward's stations and monitors drop "
        "it and no one is paged (deleting its ward is refused for that very reason)"
    )
    assert not DeviceEvent.objects.filter(device=edited, kind="user.pump_edited").exists(), "nothing was edited"


def test_a_pump_in_use_may_move_to_another_ward():
    edited = infusing_with_a_high_alarm("MOVED")
    edited.ward = make_ward("ward-b")
    make_user("ward-b-nurse", ward=edited.ward)
    pump_registration_save(device=edited, fields=["ward"])
    assert Device.objects.select_related("ward").get(device_id="MOVED").ward.code == "ward-b"


def test_a_pump_not_in_use_may_be_left_without_a_ward():
    edited = make_device("SPARE", ward=make_ward("icu"))
    edited.ward = None
    pump_registration_save(device=edited, fields=["ward"])
    assert Device.objects.get(device_id="SPARE").ward is None


def test_the_admin_page_says_why_it_keeps_the_ward(admin_client):
    device = infusing_with_a_high_alarm("WARDLESS")
    response = admin_client.post(
        f"/admin/devices/device/{device.pk}/change/", {**opened_form(admin_client, device), "ward": ""}
    )
    assert response.status_code == 200, "the change form must come back with the refusal, not save"
    page = response.content.decode()
    assert "Pump WARDLESS is in use" in page and "Move it to another ward instead" in page, page[:3000]
    assert Device.objects.get(pk=device.pk).ward is not None


def test_the_admin_refuses_when_the_pump_came_into_use_after_the_form_was_checked(admin_client, monkeypatch):
    """Checked on the page, then refused by the service under the pump's lock: an error message, nothing saved."""
    device = infusing_with_a_high_alarm("WARDLESS")
    monkeypatch.setattr("devices.admin_forms.pump_move_refusal", lambda **_: "")  # in use just after
    cleared = {**opened_form(admin_client, device), "ward": ""}
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", cleared, follow=True)
    shown = [str(message) for message in response.context["messages"]]
    assert any("cannot be left without a ward" in message for message in shown), shown
    assert not any("changed successfully" in message for message in shown), shown
    assert Device.objects.get(pk=device.pk).ward is not None
