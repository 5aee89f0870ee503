"""An administrator's edit of a pump takes the one road: under the pump's lock, shown by a `device:status` change.

The pump's status event shows its ward, whether it announces its presence (which decides its connectivity) and
its firmware; an edit of those in the admin must reach every screen watching the pump through the change log, and
an edit must never write back over what the bridge committed meanwhile (the pump's `seq` above all).
"""

import pytest
from django import forms
from django.db import transaction
from django.utils import timezone

from devices import payloads
from devices.admin import DeviceAdmin
from devices.exceptions import PumpStreamError
from devices.models import ChangeLogEntry, Device, DeviceEvent, InfusionSession, Ward
from devices.selectors import alarms_active_by_device, sessions_current_by_device
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock, status_changed
from devices.services.pumps import pump_report_apply
from devices.services.registration import ward_delete
from devices.services.sessions import infusion_start, session_transition
from devices.states import AlarmPriority, AlarmSource, SessionStatus
from devices.ward_payloads import ward_pump_body
from protocol import events
from protocol.payload_codec import payload_to_wire
from protocol.schemas import payload_parse
from protocol.visible_text import BIDI_CONTROLS
from tests.factories import make_device, make_order, make_ward

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


def opened_form(client, device: Device) -> dict:
    """What the browser posts back from the pump's change page as rendered now, hidden initial values included."""
    form = client.get(f"/admin/devices/device/{device.pk}/change/").context["adminform"].form
    posted = {}
    for bound in form:
        value = bound.value()
        if isinstance(bound.field, forms.BooleanField):
            value = "on" if value else None
        posted[bound.html_name] = "" if value is None and not isinstance(bound.field, forms.BooleanField) else value
        if bound.field.show_hidden_initial:
            posted[bound.html_initial_name] = bound.field.hidden_widget().format_value(bound.initial) or ""
    return {name: value for name, value in posted.items() if value is not None}


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


def test_a_pump_added_in_the_admin_reaches_its_wards_screens_before_it_is_first_heard(admin_client):
    """A reviewer's note: a pump added in the admin reached the stations only when it first talked (no change was
    logged for it), so a ward's station did not list a registered pump that never connected."""
    ward = make_ward("icu")
    form = admin_form(Device(device_id="PUMP_NEW", ward=ward, created_at=timezone.now()), has_presence="on")
    response = admin_client.post("/admin/devices/device/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    added = Device.objects.select_related("ward").get(device_id="PUMP_NEW")
    [logged] = ChangeLogEntry.objects.filter(device=added)
    assert (logged.event, logged.seq, logged.ward_code) == (events.DEVICE_STATUS, added.event_seq, "icu")
    assert logged.body == payload_to_wire(payloads.status_body(added))
    assert DeviceEvent.objects.filter(device=added, kind="user.pump_registered").exists(), "audited"


def test_an_admin_edit_never_writes_back_over_what_the_bridge_committed_meanwhile(admin_client, monkeypatch):
    device = make_device("PUMP_ADMIN", ward=make_ward("icu"))
    loaded = DeviceAdmin.get_object

    def loaded_then_the_bridge_commits(self, request, object_id, from_field=None):
        found = loaded(self, request, object_id, from_field)
        if request.method == "POST":
            bridge_change(device.device_id)  # between the admin reading the pump and saving it
        return found

    monkeypatch.setattr(DeviceAdmin, "get_object", loaded_then_the_bridge_commits)
    edit = {**opened_form(admin_client, device), "name": "Bed 4 pump"}
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", edit)
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


def pump_status(device_id: str, boot_id: str, status: str = "running") -> None:
    """The bridge applying one status report of the pump, from boot `boot_id`."""
    report = payload_parse("status", {"status": status, "bootId": boot_id})
    pump_report_apply(device_id=device_id, kind="status", topic=f"pumps/{device_id}/status", report=report,
                      received_at=timezone.now())  # fmt: skip


def running_session(device_id: str) -> InfusionSession:
    session = infusion_start(device_id=device_id, order=make_order())
    with transaction.atomic():
        session_transition(device=device_lock(device_id=device_id), session=session, to=SessionStatus.RUNNING)
    return session


def test_an_admin_edit_never_writes_back_the_pumps_boot_markers(admin_client):
    """The page was opened before the pump restarted; saved after, it must not bring the old boot back: the pump's
    next report would read as a restart and interrupt the infusion it runs now."""
    device = make_device("PUMP_ADMIN", ward=make_ward("icu"))
    pump_status(device.device_id, "boot-1", status="idle")
    opened = admin_form(Device.objects.get(pk=device.pk))  # the change page as the administrator opened it
    pump_status(device.device_id, "boot-2", status="idle")  # the pump restarts meanwhile
    session = running_session(device.device_id)
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", {**opened, "bed": "4"})
    assert response.status_code == 302, response.content.decode()[:2000]
    fresh = Device.objects.get(pk=device.pk)
    assert (fresh.bed, fresh.boot_id) == ("4", "boot-2"), (
        f"the admin's save wrote the pump's boot id back to {fresh.boot_id!r} over the bridge's 'boot-2'"
    )
    pump_status(device.device_id, "boot-2")  # the pump, still on its second boot, infusing
    session.refresh_from_db()
    assert session.status == SessionStatus.RUNNING, (
        f"the pump's next report read as a restart after the admin's save: its infusion ended {session.status} "
        f"({session.status_reason})"
    )


def test_an_admin_edit_writes_only_what_the_administrator_changed_on_the_page(admin_client):
    """The pump reported new firmware while its page was open: saving the page's bed must not bring the old back."""
    device = make_device("PUMP_ADMIN", ward=make_ward("icu"), firmware_version="2.1", name="Pump 7")
    opened = opened_form(admin_client, device)
    report = payload_parse("status", {"status": "idle", "firmwareVersion": "2.2"})  # the pump, upgraded meanwhile
    pump_report_apply(device_id=device.device_id, kind="status", topic=f"pumps/{device.device_id}/status",
                      report=report, received_at=timezone.now())  # fmt: skip
    Device.objects.filter(pk=device.pk).update(name="Pump 7 (bay 2)")  # another administrator's edit meanwhile
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", {**opened, "bed": "4"})
    assert response.status_code == 302, response.content.decode()[:2000]
    fresh = Device.objects.get(pk=device.pk)
    assert (fresh.bed, fresh.firmware_version, fresh.name) == ("4", "2.2", "Pump 7 (bay 2)"), (
        f"saving a page opened before the pump reported firmware 2.2 wrote back firmware {fresh.firmware_version!r} "
        f"and name {fresh.name!r}: the administrator changed only the bed"
    )


def test_the_audit_of_an_admin_edit_says_what_each_column_was_and_became(admin_client):
    """A pump's rate limit changed in the admin: the audit says from what to what, not only that it changed."""
    device = make_device("PUMP_ADMIN", ward=make_ward("icu"), max_rate_ml_min=20.0)
    make_ward("ward-b")
    edit = {**opened_form(admin_client, device), "max_rate_ml_h": "600", "ward": Ward.objects.get(code="ward-b").pk}
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", edit)
    assert response.status_code == 302, response.content.decode()[:2000]
    audit = DeviceEvent.objects.get(device=device, kind="user.pump_edited")
    assert audit.user is not None and audit.user.username == "admin", audit.user
    changes = audit.payload.get("changes")
    assert changes == {"max_rate_ml_min": {"from": 20.0, "to": 10.0}, "ward": {"from": "icu", "to": "ward-b"}}, (
        f"the audit of the edit does not say what the pump's limit and ward were and became: {audit.payload}"
    )


@pytest.mark.parametrize("in_use", ["infusing", "alarming"])
@pytest.mark.parametrize("how", ["delete page", "bulk action"])
def test_a_ward_whose_pumps_infuse_or_alarm_is_not_deleted(admin_client, how, in_use):
    """Deleted, its stations would lose the pump and no one of the ward would be paged for its alarms: the admin
    refuses, naming the pump, until it is moved to another ward."""
    ward = make_ward("icu")
    device = make_device("PUMP_BUSY", ward=ward)
    make_device("PUMP_IDLE", ward=ward)
    if in_use == "infusing":
        running_session(device.device_id)
    else:
        with transaction.atomic():
            alarm_raise(device=device_lock(device_id=device.device_id), type="occlusion", priority=AlarmPriority.HIGH,
                        source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip
    if how == "delete page":
        response = admin_client.post(f"/admin/devices/ward/{ward.pk}/delete/", {"post": "yes"})
    else:
        response = admin_client.post("/admin/devices/ward/", {"action": "delete_selected", "post": "yes",
                                                               "_selected_action": [ward.pk]})  # fmt: skip
    assert Ward.objects.filter(pk=ward.pk).exists(), (
        f"the ward was deleted while {device.device_id} was {in_use}: its stations lost the pump"
    )
    assert Device.objects.get(pk=device.pk).ward_id == ward.pk
    assert "PUMP_BUSY" in response.content.decode() and "PUMP_IDLE" not in response.content.decode()
    with pytest.raises(PumpStreamError, match="PUMP_BUSY"):
        ward_delete(ward=ward)


@pytest.mark.parametrize("how", ["delete page", "bulk action"])
def test_a_ward_whose_pump_came_into_use_after_the_page_checked_is_refused_on_the_page(admin_client, monkeypatch, how):
    """The confirmation page found nothing in use; an alarm came meanwhile: `ward_delete` refuses under the ward's
    lock, and the admin says why (before, a server error page and nothing said)."""
    ward = make_ward("icu")
    device = make_device("PUMP_LATE", ward=ward)
    other = make_ward("spare")
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id=device.device_id), type="occlusion", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip
    monkeypatch.setattr("devices.admin.ward_delete_blockers", lambda ward: [])  # the page's check, before the alarm
    if how == "delete page":
        response = admin_client.post(f"/admin/devices/ward/{ward.pk}/delete/", {"post": "yes"}, follow=True)
    else:
        bulk = {"action": "delete_selected", "post": "yes", "_selected_action": [ward.pk, other.pk]}
        response = admin_client.post("/admin/devices/ward/", bulk, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert Ward.objects.filter(pk=ward.pk).exists() and Device.objects.get(pk=device.pk).ward_id == ward.pk
    assert "PUMP_LATE" in page and "is in use" in page, "the refusal was not said"
    assert "deleted successfully" not in page.lower() and "successfully deleted" not in page.lower()
    if how == "bulk action":
        assert not Ward.objects.filter(pk=other.pk).exists(), "a ward not in use was kept beside the refused one"


def test_a_pumps_maximum_rate_below_the_lowest_order_is_refused(admin_client):
    """A maximum under 0.1 mL/h (the lowest rate an order may have) would make every order on the pump impossible."""
    device = make_device("PUMP_ADMIN", ward=make_ward("icu"))
    opened = opened_form(admin_client, device)
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", {**opened, "max_rate_ml_h": "0.06"})
    assert response.status_code == 200, "the admin saved a pump maximum of 0.06 mL/h: no order could ever start"
    assert Device.objects.get(pk=device.pk).max_rate_ml_min == device.max_rate_ml_min
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", {**opened, "max_rate_ml_h": "0.1"})
    assert response.status_code == 302, response.content.decode()[:2000]


def test_a_pump_is_never_registered_for_more_than_an_order_may_be(admin_client):
    """Review 27: a pump registered for 20,000 mL was offered a 12,000 mL order whose progress the wire refuses."""
    device = make_device("PUMP_BIG_BAG")
    opened = opened_form(admin_client, device)
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", {**opened, "max_volume_ml": "20000"})
    assert response.status_code == 200 and "no order may be larger" in response.content.decode()
    device.refresh_from_db()
    assert device.max_volume_ml == 1000.0


@pytest.mark.parametrize("road", ["edit", "add"])
def test_the_pumps_bed_reaches_the_stations_without_a_direction_override(admin_client, road):
    """Review 39, finding 7: the pump's own bed, typed in the admin's pump page (or pasted from a bed list with its
    marks), was kept as typed; every station names the pump's alarms by it ("HIGH alarm · Bed 4 · Line blocked · for
    12 s · ESCALATED to tier 2"), and an open override read the alarm, its time and its tier after it reversed."""
    ward = make_ward("icu")
    if road == "edit":
        device = make_device("BED_BIDI", ward=ward)
        edited = {**opened_form(admin_client, device), "bed": "4\u202e", "name": "Left\u2067"}
        admin_client.post(f"/admin/devices/device/{device.pk}/change/", edited)
    else:
        added = Device(device_id="BED_BIDI", ward=ward, created_at=timezone.now())
        admin_client.post("/admin/devices/device/add/", admin_form(added, bed="4\u202e", name="Left\u2067"))
    device = Device.objects.select_related("ward").get(device_id="BED_BIDI")
    assert device.bed.startswith("4"), "precondition: the admin saved the bed"
    devices = [device]
    body = payload_to_wire(ward_pump_body(device, sessions_current_by_device(devices).get(device.pk),
                                          alarms_active_by_device(devices).get(device.pk, [])))  # fmt: skip
    left_open = sorted(f"U+{ord(c):04X}" for c in body.get("bed") or "" if c in BIDI_CONTROLS)
    assert not left_open, (
        f"the ward summary names the pump by bed {body.get('bed')!r}, which keeps {left_open}: the station's "
        "'Bed 4 · Line blocked · for 12 s · ESCALATED …' reads reversed after it"
    )
    assert (device.bed, device.name) == ("4", "Left"), "the pump's name keeps its isolate open"


def test_a_wards_name_is_kept_without_a_direction_override(admin_client):
    """The ward's page is headed "<name> · pumps": a name with an open override read the server's words reversed."""
    ward = make_ward("icu")
    admin_client.post(f"/admin/devices/ward/{ward.pk}/change/", {"name": "ICU\u202e"})
    ward.refresh_from_db()
    assert ward.name == "ICU", f"the ward's name {ward.name!r} keeps its override"
