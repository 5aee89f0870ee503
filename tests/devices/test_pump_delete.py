"""A pump with an active alarm (or an infusion on) is never deleted: its alarms and change log would go with it by
cascade, unresolved, and its screens would be told nothing. Its infusion records protect it in the database; for a
pump that never infused, only a side effect of the admin stood in the way (no one may delete alarm records there,
so its page said "no permission to delete alarm, device event"), and nothing outside the admin. `pump_delete`
refuses it as leaving it without a ward is refused, and the admin says why, page and bulk action alike."""

import pytest
from django.db import transaction

from devices.admin import DeviceAdmin
from devices.exceptions import PumpStreamError
from devices.models import Alarm, Device
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.registration import pump_delete
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_ward

pytestmark = pytest.mark.django_db


def alarming(device_id: str) -> Device:
    """A pump that never infused, with an active high alarm."""
    device = make_device(device_id, ward=make_ward(f"w-{device_id.lower()}"))
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id=device_id), type="battery_depleted", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE)  # fmt: skip
    return device


def assert_kept(device: Device) -> None:
    assert Device.objects.filter(pk=device.pk).exists(), f"{device.device_id} with an active alarm was deleted"
    assert Alarm.objects.filter(device=device, state="active").exists(), "its active alarm went with it"


def test_the_service_refuses_a_pump_with_an_active_alarm():
    device = alarming("DEL_SERVICE")
    with pytest.raises(PumpStreamError, match="active alarm") as refused:
        pump_delete(device=device)
    assert refused.value.code == "pump_in_use"
    assert_kept(device)


def test_the_admins_delete_page_refuses_a_pump_with_an_active_alarm(admin_client):
    device = alarming("DEL_PAGE")
    url = f"/admin/devices/device/{device.pk}/delete/"
    page = admin_client.get(url)
    assert b"active alarm" in page.content, "the delete page does not say why the pump cannot be deleted"
    admin_client.post(url, {"post": "yes"})
    assert_kept(device)


def test_the_admins_bulk_delete_refuses_a_pump_with_an_active_alarm(admin_client):
    device, idle = alarming("DEL_BULK"), make_device("DEL_IDLE")
    response = admin_client.post("/admin/devices/device/", {"action": "delete_selected", "post": "yes",
                                                            "_selected_action": [device.pk, idle.pk]})  # fmt: skip
    assert b"active alarm" in response.content, "the bulk delete does not say why it refuses"
    assert_kept(device)
    assert Device.objects.filter(pk=idle.pk).exists(), "nothing of a refused bulk deletion is deleted"


def test_a_pump_not_in_use_is_deleted(admin_client):
    device = make_device("DEL_UNUSED")
    admin_client.post(f"/admin/devices/device/{device.pk}/delete/", {"post": "yes"})
    assert not Device.objects.filter(pk=device.pk).exists(), "a pump never used could not be deleted"


def test_a_pump_in_use_since_its_delete_page_was_shown_is_refused_and_not_called_deleted(admin_client, monkeypatch):
    """The page's check came first (here: it found nothing); `delete_model` checks again under the pump's lock."""
    device = alarming("DEL_RACE")
    original = DeviceAdmin.get_deleted_objects
    monkeypatch.setattr(DeviceAdmin, "get_deleted_objects", lambda self, objs, request: original(self, [], request))
    response = admin_client.post(f"/admin/devices/device/{device.pk}/delete/", {"post": "yes"}, follow=True)
    assert_kept(device)
    shown = [str(message) for message in response.context["messages"]]
    assert any("active alarm" in message for message in shown), shown
    assert not any("deleted successfully" in message for message in shown), f"said deleted: {shown}"
