"""An administrator's edit of a pump takes the one road: under the pump's lock, shown by a `device:status` change.

The pump's status event shows its ward, whether it announces its presence (which decides its connectivity) and
its firmware; an edit of those in the admin must reach every screen watching the pump through the change log, and
an edit must never write back over what the bridge committed meanwhile (the pump's `seq` above all).
"""

import pytest
from django.db import transaction

from devices import payloads
from devices.admin import DeviceAdmin
from devices.models import ChangeLogEntry, Device, DeviceEvent
from devices.services.changes import device_lock, status_changed
from protocol import events
from protocol.payloads import payload_to_wire
from tests.factories import make_device, make_ward

pytestmark = pytest.mark.django_db


def admin_form(device: Device, **changes) -> dict:
    """The change form as the admin posts it, with `changes` applied (a checkbox is sent only when on)."""
    form = {"device_id": device.device_id, "name": device.name, "ward": device.ward_id or "", "bed": device.bed,
            "model": device.model, "serial_number": device.serial_number, "firmware_version": device.firmware_version,
            "max_volume_ml": device.max_volume_ml, "max_rate_ml_h": device.max_rate_ml_min * 60,
            "max_bolus_ml": "", "boot_id": device.boot_id, "last_uptime_ms": "",
            "created_at_0": device.created_at.date().isoformat(),
            "created_at_1": device.created_at.time().isoformat(timespec="seconds"),
            **({"has_presence": "on"} if device.has_presence else {})}  # fmt: skip
    form.update(changes)
    return {name: value for name, value in form.items() if value is not None}


def bridge_change(device_id: str) -> None:
    """What the bridge commits for a pump: a change with the pump's next `seq`."""
    with transaction.atomic():
        status_changed(device=device_lock(device_id=device_id))


def test_an_admin_edit_of_what_the_status_shows_reaches_the_screens_by_the_change_log(admin_client):
    device = make_device("PUMP_ADMIN", ward=make_ward("icu"))
    bridge_change(device.device_id)
    other = make_ward("ward-b")
    logged_before = ChangeLogEntry.objects.filter(device=device).count()
    edit = admin_form(device, has_presence="on", ward=other.pk, firmware_version="2.1")
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", edit)
    assert response.status_code == 302, response.content.decode()[:2000]
    fresh = Device.objects.select_related("ward").get(pk=device.pk)
    assert (fresh.has_presence, fresh.ward.code, fresh.firmware_version) == (True, "ward-b", "2.1")
    assert ChangeLogEntry.objects.filter(device=fresh).count() == logged_before + 1, (
        "the admin's edit of what the pump's status shows left no change in the log: no screen learns of it"
    )
    last = ChangeLogEntry.objects.filter(device=fresh).order_by("-seq").first()
    assert (last.event, last.seq) == (events.DEVICE_STATUS, fresh.event_seq)
    assert last.body == payload_to_wire(payloads.status_body(fresh)), "snapshot + events = a fresh snapshot"
    assert last.ward_code == "ward-b"
    assert DeviceEvent.objects.filter(device=fresh, kind="user.pump_edited").exists(), "audited with the admin's name"


def test_an_admin_edit_never_writes_back_over_what_the_bridge_committed_meanwhile(admin_client, monkeypatch):
    device = make_device("PUMP_ADMIN", ward=make_ward("icu"))
    loaded = DeviceAdmin.get_object

    def loaded_then_the_bridge_commits(self, request, object_id, from_field=None):
        found = loaded(self, request, object_id, from_field)
        if request.method == "POST":
            bridge_change(device.device_id)  # between the admin reading the pump and saving it
        return found

    monkeypatch.setattr(DeviceAdmin, "get_object", loaded_then_the_bridge_commits)
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", admin_form(device, name="Bed 4 pump"))
    assert response.status_code == 302, response.content.decode()[:2000]
    fresh = Device.objects.get(pk=device.pk)
    logged = list(ChangeLogEntry.objects.filter(device=fresh).order_by("seq").values_list("seq", flat=True))
    assert fresh.name == "Bed 4 pump"
    assert fresh.event_seq == logged[-1] == 1, (
        f"the admin's save wrote the pump's seq back to {fresh.event_seq} over the bridge's change #{logged[-1]}"
    )


def test_a_pumps_id_is_not_editable_once_registered(admin_client):
    """Screens, rooms and the pump's MQTT topics know it by its id: renaming it would orphan every subscriber."""
    device = make_device("PUMP_ADMIN")
    admin_client.post(f"/admin/devices/device/{device.pk}/change/", admin_form(device, device_id="PUMP_OTHER"))
    assert Device.objects.get(pk=device.pk).device_id == "PUMP_ADMIN"


def test_a_wards_code_is_not_editable_once_made(admin_client):
    """Every pump's status, the ward feeds and the change log name a ward by its code."""
    ward = make_ward("icu")
    admin_client.post(f"/admin/devices/ward/{ward.pk}/change/", {"code": "icu-2", "name": "ICU"})
    ward.refresh_from_db()
    assert (ward.code, ward.name) == ("icu", "ICU")


@pytest.mark.parametrize("how", ["delete page", "bulk action"])
def test_deleting_a_ward_in_the_admin_tells_its_pumps_screens(admin_client, how):
    """Its pumps stay, without a ward (`on_delete=SET_NULL`): each pump's status shows that, by the change log."""
    ward = make_ward("icu")
    devices = [make_device("PUMP_A", ward=ward), make_device("PUMP_B", ward=ward)]
    if how == "delete page":
        response = admin_client.post(f"/admin/devices/ward/{ward.pk}/delete/", {"post": "yes"})
    else:
        response = admin_client.post("/admin/devices/ward/", {"action": "delete_selected", "post": "yes",
                                                               "_selected_action": [ward.pk]})  # fmt: skip
    assert response.status_code == 302, response.content.decode()[:2000]
    for device in devices:
        fresh = Device.objects.select_related("ward").get(pk=device.pk)
        assert fresh.ward is None
        last = ChangeLogEntry.objects.filter(device=fresh).order_by("-seq").first()
        assert last is not None and (last.event, last.seq) == (events.DEVICE_STATUS, fresh.event_seq), (
            f"{fresh.device_id} lost its ward with no change in the log: its screens still show ward icu"
        )
        assert last.body == payload_to_wire(payloads.status_body(fresh))
