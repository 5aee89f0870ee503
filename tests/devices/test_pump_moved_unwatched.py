"""A pump in use is never moved into a ward no one watches (review 30, finding 1).

A ward with no active member other than staff has no nurse, no station and no escalation recipient: a pump moved into
it drops off every clinician's overview and station and no one is paged for its alarms, as if its ward had been
cleared (refused for that reason: `test_pump_ward_cleared.py`). The reviewer's move of an infusing pump into a new,
empty ward was saved with "changed successfully". A pump not in use may go anywhere.
"""

import pytest

from devices.exceptions import PumpStreamError
from devices.models import Device, DeviceEvent
from devices.selectors import wards_visible_to
from devices.services.registration import pump_registration_save
from tests.devices.test_admin_pump_edit import opened_form
from tests.devices.test_pump_ward_cleared import infusing_with_a_high_alarm
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db


def _ward_of(device: Device) -> str:
    return Device.objects.select_related("ward").get(pk=device.pk).ward.code


def test_the_admin_refuses_to_move_a_pump_in_use_into_a_ward_no_one_watches(admin_client):
    device = infusing_with_a_high_alarm("MOVED_AWAY")
    nurse = make_user("icu-nurse", ward=device.ward)
    empty = make_ward("empty")
    response = admin_client.post(
        f"/admin/devices/device/{device.pk}/change/", {**opened_form(admin_client, device), "ward": str(empty.pk)}
    )
    assert _ward_of(device) == "icu", (
        f"an infusing pump with a high alarm was moved into ward 'empty', which has no member (HTTP "
        f"{response.status_code}); its nurse now sees wards {[w.code for w in wards_visible_to(nurse)]} and no one "
        "is paged for it"
    )
    assert response.status_code == 200, "the change form must come back with the refusal, not save"
    page = response.content.decode()
    refused = "cannot be moved into ward empty, which no one watches" in page and "a ward that watches it" in page
    assert refused, page[:3000]


@pytest.mark.parametrize("who", ["an administrator (staff)", "a deactivated nurse"])
def test_staff_and_inactive_members_do_not_watch_a_ward(who):
    edited = infusing_with_a_high_alarm("MOVED_AWAY")
    edited.ward = make_ward("empty")
    if who.startswith("an administrator"):
        make_user("admin-member", ward=edited.ward, is_staff=True)
    else:
        make_user("gone-nurse", ward=edited.ward, is_active=False)
    with pytest.raises(PumpStreamError) as refused:
        pump_registration_save(device=edited, fields=["ward"])
    assert refused.value.code == "pump_in_use" and "no one watches" in refused.value.message
    assert _ward_of(edited) == "icu", f"moved into a ward whose only member is {who}: no nurse, station or page"
    assert not DeviceEvent.objects.filter(device=edited, kind="user.pump_edited").exists(), "nothing was edited"


def test_the_admin_refuses_when_the_ward_lost_its_last_member_after_the_form_was_checked(admin_client, monkeypatch):
    """Checked on the page, then refused by the service under the pump's lock: an error message, nothing saved."""
    device = infusing_with_a_high_alarm("MOVED_AWAY")
    monkeypatch.setattr("devices.admin_forms.pump_move_refusal", lambda **_: "")  # its last nurse removed just after
    moved = {**opened_form(admin_client, device), "ward": str(make_ward("empty").pk)}
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", moved, follow=True)
    shown = [str(message) for message in response.context["messages"]]
    assert any("which no one watches" in message for message in shown), shown
    assert not any("changed successfully" in message for message in shown), shown
    assert _ward_of(device) == "icu"


def test_a_pump_in_use_moves_into_a_ward_its_station_watches(admin_client):
    device = infusing_with_a_high_alarm("MOVED")
    ward_b = make_ward("ward-b")
    make_user("ward-b-station", ward=ward_b, can_command=False)
    response = admin_client.post(
        f"/admin/devices/device/{device.pk}/change/", {**opened_form(admin_client, device), "ward": str(ward_b.pk)}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert _ward_of(device) == "ward-b"


def test_a_pump_not_in_use_may_move_into_an_empty_ward():
    edited = make_device("SPARE", ward=make_ward("icu"))
    edited.ward = make_ward("storeroom")
    pump_registration_save(device=edited, fields=["ward"])
    assert _ward_of(edited) == "storeroom"
