"""A ward holding a pump in use is never left watched by no one, by any road of the admin (review 31, finding 3).

A pump in use is refused a move into a ward no one watches (`test_pump_moved_unwatched.py`), but the reviewer got it
there in two steps: moved into a ward whose one member is a nurse (accepted), then the nurse removed on the ward's
page ("changed successfully"): the infusing pump with a HIGH alarm on no station, no one paged. The same state comes
of deactivating that nurse, making her staff, or deleting her. Each is refused, naming the ward and its pumps in use,
and saying what to do: add another member first. With another watcher, or no pump in use, each goes through.
"""

import pytest
from django import forms

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
