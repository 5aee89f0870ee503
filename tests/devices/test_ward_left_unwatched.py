"""A ward holding a pump in use is never left watched by no one, by any road of the admin (review 31, finding 3).

A pump in use is refused a move into a ward no one watches (`test_pump_moved_unwatched.py`), but the reviewer got it
there in two steps: moved into a ward whose one member is a nurse (accepted), then the nurse removed on the ward's
page ("changed successfully"): the infusing pump with a HIGH alarm on no station, no one paged. The same state comes
of deactivating that nurse, making her staff, or deleting her. Each is refused, naming the ward and its pumps in use,
and saying what to do: add another member first. With another watcher, or no pump in use, each goes through.
"""

import pytest
from django import forms
from django.contrib.auth import get_user_model

from devices.access_selectors import ward_is_watched
from devices.models import Device, Ward
from devices.selectors import wards_visible_to
from devices.services.registration import pump_registration_save
from tests.devices.test_pump_ward_cleared import infusing_with_a_high_alarm
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db

REFUSED = "would leave it watched by no one"


def as_shown(client, url: str, **change) -> dict:
    """What the browser posts back from an admin change page as rendered now (split date and time fields included),
    with `change` made (a box unticked: None)."""
    form = client.get(url).context["adminform"].form
    posted = {}
    for bound in form:
        value, widget = bound.value(), bound.field.widget
        if isinstance(bound.field, forms.BooleanField):
            posted[bound.html_name] = "on" if value else None
        elif isinstance(widget, forms.MultiWidget):
            parts = value if isinstance(value, list) else widget.decompress(value)
            posted.update({f"{bound.html_name}_{index}": part or "" for index, part in enumerate(parts)})
        else:
            posted[bound.html_name] = "" if value is None else value
    return {name: value for name, value in {**posted, **change}.items() if value is not None}


def _watched_pump_in(ward_code: str, nurse_name: str) -> tuple[Device, Ward, object]:
    """The reviewer's first step: an infusing pump with a HIGH alarm moved (accepted) into a ward with one nurse."""
    device = infusing_with_a_high_alarm(f"IN_USE_{ward_code.upper().replace('-', '_')}")
    ward = make_ward(ward_code)
    nurse = make_user(nurse_name, ward=ward)
    device.ward = ward
    pump_registration_save(device=device, fields=["ward"])  # accepted: the ward has its nurse
    return device, ward, nurse


def _refusal_shown(response, ward: Ward) -> None:
    page = response.content.decode()
    assert response.status_code == 200, (
        f"the page must come back with the refusal, not save (HTTP {response.status_code})"
    )
    said = f"Ward {ward.code} has pumps in use" in page and REFUSED in page and "Add another member" in page
    assert said, page[:4000]


def test_the_last_watcher_of_a_ward_holding_a_pump_in_use_cannot_be_removed_from_it(admin_client):
    device, ward_b, nurse = _watched_pump_in("ward-b", "ward-b-nurse")
    url = f"/admin/devices/ward/{ward_b.pk}/change/"
    response = admin_client.post(url, {**as_shown(admin_client, url), "members": []})
    stored = Device.objects.select_related("ward").get(pk=device.pk)
    assert ward_is_watched(Ward.objects.get(pk=ward_b.pk)), (
        f"the ward's change page removed its last member (HTTP {response.status_code}) while its pump "
        f"{stored.device_id} is infusing with a HIGH alarm: ward {stored.ward.code} is watched by no one, its nurse "
        f"now sees wards {[w.code for w in wards_visible_to(nurse)]}, no one is paged"
    )
    _refusal_shown(response, ward_b)
    assert "removing ward-b-nurse from it" in response.content.decode()


def test_a_wards_watcher_may_be_replaced_on_its_page(admin_client):
    _device, ward_b, nurse = _watched_pump_in("ward-b", "ward-b-nurse")
    relief = make_user("relief-nurse")
    url = f"/admin/devices/ward/{ward_b.pk}/change/"
    response = admin_client.post(url, {**as_shown(admin_client, url), "members": [relief.pk]})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(Ward.objects.get(pk=ward_b.pk).members.all()) == [relief], "the relief nurse watches it now"


def test_the_last_member_of_a_ward_with_no_pump_in_use_may_be_removed(admin_client):
    ward = make_ward("quiet")
    make_device("QUIET_1", ward=ward)
    make_user("quiet-nurse", ward=ward)
    url = f"/admin/devices/ward/{ward.pk}/change/"
    response = admin_client.post(url, {**as_shown(admin_client, url), "members": []})
    assert response.status_code == 302 and not ward.members.exists(), "no pump in use: nothing to watch"


@pytest.mark.parametrize(("change", "field", "how"), [
    ({"is_active": None}, "is_active", "deactivating ward-b-nurse"),
    ({"is_staff": "on"}, "is_staff", "making ward-b-nurse staff"),
])  # fmt: skip
def test_the_last_watcher_of_a_ward_holding_a_pump_in_use_is_not_deactivated_or_made_staff(
    admin_client, change, field, how
):
    _device, ward_b, nurse = _watched_pump_in("ward-b", "ward-b-nurse")
    url = f"/admin/auth/user/{nurse.pk}/change/"
    response = admin_client.post(url, as_shown(admin_client, url, **change))
    stored = get_user_model().objects.get(pk=nurse.pk)
    assert ward_is_watched(ward_b), (
        f"{how} on the user's page (HTTP {response.status_code}, active {stored.is_active}, staff "
        f"{stored.is_staff}) left ward-b, holding an infusing pump with a HIGH alarm, watched by no one"
    )
    _refusal_shown(response, ward_b)
    assert how in response.content.decode()


def test_a_watcher_is_deactivated_when_another_watches_her_wards(admin_client):
    _device, ward_b, nurse = _watched_pump_in("ward-b", "ward-b-nurse")
    make_user("ward-b-station", ward=ward_b, can_command=False)
    url = f"/admin/auth/user/{nurse.pk}/change/"
    response = admin_client.post(url, as_shown(admin_client, url, is_active=None))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not get_user_model().objects.get(pk=nurse.pk).is_active, "the station still watches ward-b"


def test_the_last_watcher_of_a_ward_holding_a_pump_in_use_is_not_deleted(admin_client):
    _device, ward_b, nurse = _watched_pump_in("ward-b", "ward-b-nurse")
    url = f"/admin/auth/user/{nurse.pk}/delete/"
    response = admin_client.post(url, {"post": "yes"})
    assert get_user_model().objects.filter(pk=nurse.pk).exists(), (
        f"the user's delete page deleted ward-b's only watcher (HTTP {response.status_code}) while its pump is in use"
    )
    assert REFUSED in response.content.decode() and "deleting ward-b-nurse" in response.content.decode()


def test_the_bulk_delete_of_users_spares_the_last_watcher_of_a_ward_holding_a_pump_in_use(admin_client):
    _device, ward_b, nurse = _watched_pump_in("ward-b", "ward-b-nurse")
    idle = make_user("idle-nurse")
    action = {"action": "delete_selected", "_selected_action": [nurse.pk, idle.pk], "post": "yes"}
    response = admin_client.post("/admin/auth/user/", action)
    assert get_user_model().objects.filter(pk=nurse.pk).exists(), (
        f"'Delete selected users' deleted ward-b's only watcher (HTTP {response.status_code}) while its pump is in use"
    )
    assert REFUSED in response.content.decode(), response.content.decode()[:3000]
