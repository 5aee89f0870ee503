"""A ward holding a pump in use is not left watched by no one by code below the admin either (`manage.py shell`).

The admin's pages refuse removing a ward's last watcher, deactivating her, making her staff or deleting her
(`test_ward_left_unwatched.py`); the same change made on the models went through unguarded: `ward.members.remove`,
`user.wards.clear()`, `user.delete()`, `user.is_active = False; user.save()`... left an infusing pump with a HIGH alarm
on no station, no one paged. The models refuse it now (`watchers_guard_connect`), naming the ward, the pump and its
bed, and log it; with another watcher on the ward, or no pump of it in use, each goes through. The admin still
refuses first, in its page's words, and the guard is not reached there.
"""

import logging

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from devices.access_selectors import ward_is_watched, watchers_among
from devices.exceptions import PumpStreamError
from devices.models import Ward
from devices.services.registration import pump_registration_save
from tests.devices.test_pump_ward_cleared import infusing_with_a_high_alarm
from tests.devices.test_ward_left_unwatched import as_shown
from tests.factories import make_device, make_user, make_ward

pytestmark = pytest.mark.django_db

GUARD_LOG = "ward left unwatched refused"


def _user_saved(user, **fields) -> None:
    for name, value in fields.items():
        setattr(user, name, value)
    user.save()


ROADS = {
    "ward.members.remove(nurse)": lambda ward, nurse: ward.members.remove(nurse),
    "ward.members.clear()": lambda ward, nurse: ward.members.clear(),
    "ward.members.set([])": lambda ward, nurse: ward.members.set([]),
    "nurse.wards.remove(ward)": lambda ward, nurse: nurse.wards.remove(ward),
    "nurse.wards.clear()": lambda ward, nurse: nurse.wards.clear(),
    "nurse.wards.set([])": lambda ward, nurse: nurse.wards.set([]),
    "nurse.delete()": lambda ward, nurse: nurse.delete(),
    "User.objects.filter(pk=nurse.pk).delete()": lambda ward, nurse: type(nurse).objects.filter(pk=nurse.pk).delete(),
    "nurse.is_active = False; nurse.save()": lambda ward, nurse: _user_saved(nurse, is_active=False),
    "nurse.is_staff = True; nurse.save()": lambda ward, nurse: _user_saved(nurse, is_staff=True),
}
# With a second watcher on the ward: each road that takes only the first nurse away from it.
PASSING_WITH_ANOTHER = [road for road in ROADS if road not in {"ward.members.clear()", "ward.members.set([])"}]


def _ward_with_a_pump_in_use(nurse_name: str = "ward-b-nurse") -> tuple[Ward, object]:
    """An infusing pump with a HIGH alarm at bed 7, moved (accepted) into ward-b, whose one member is a nurse."""
    device = infusing_with_a_high_alarm("IN_USE_B7")
    ward = make_ward("ward-b")
    nurse = make_user(nurse_name, ward=ward)
    device.ward, device.bed = ward, "7"
    pump_registration_save(device=device, fields=["ward", "bed"])
    return ward, nurse


def _still_watched(ward: Ward, road: str) -> None:
    assert ward_is_watched(Ward.objects.get(pk=ward.pk)), (
        f"`{road}` left ward-b, holding pump IN_USE_B7 infusing with a HIGH alarm at bed 7, watched by no one: on no "
        f"station, no one paged (members now: {list(ward.members.values_list('username', 'is_active', 'is_staff'))})"
    )


@pytest.mark.parametrize("road", list(ROADS))
def test_the_last_watcher_of_a_ward_holding_a_pump_in_use_is_kept_by_the_models(road, caplog):
    ward, nurse = _ward_with_a_pump_in_use()
    caplog.set_level(logging.WARNING, logger="devices.services.watchers")
    refused = None
    try:
        with transaction.atomic():
            ROADS[road](ward, nurse)
    except PumpStreamError as exc:
        refused = exc
    _still_watched(ward, road)
    assert refused is not None and refused.code == "ward_unwatched", refused
    said = refused.message
    for named in ("Ward ward-b has pumps in use", "pump IN_USE_B7 (bed 7)", "would leave it watched by no one",
                  "ward-b-nurse", "Add another member"):  # fmt: skip
        assert named in said, f"the refusal of `{road}` does not say {named!r}: {said}"
    assert GUARD_LOG in caplog.text, f"the refusal of `{road}` was not logged"


def test_two_last_watchers_deleted_together_are_counted_out_together():
    ward, nurse = _ward_with_a_pump_in_use()
    second = make_user("ward-b-second", ward=ward)
    with pytest.raises(PumpStreamError, match="ward-b-nurse, ward-b-second"), transaction.atomic():
        get_user_model().objects.filter(pk__in=[nurse.pk, second.pk]).delete()
    _still_watched(ward, "User.objects.filter(pk__in=[both nurses]).delete()")


@pytest.mark.parametrize("road", PASSING_WITH_ANOTHER)
def test_a_watcher_leaves_when_another_still_watches_the_ward(road):
    ward, nurse = _ward_with_a_pump_in_use()
    make_user("ward-b-station", ward=ward, can_command=False)
    ROADS[road](ward, nurse)
    assert not watchers_among(ward.members.filter(pk=nurse.pk)).exists(), f"`{road}` was refused: the station watches"
    assert ward_is_watched(ward), "the station still watches ward-b"


@pytest.mark.parametrize("road", list(ROADS))
def test_the_last_member_of_a_ward_with_no_pump_in_use_leaves_by_any_road(road):
    ward = make_ward("quiet")
    make_device("QUIET_1", ward=ward, bed="3")
    nurse = make_user("quiet-nurse", ward=ward)
    ROADS[road](ward, nurse)
    assert not ward_is_watched(ward), f"`{road}` went through: no pump of the ward is in use"


def test_the_wards_page_refuses_in_its_own_words_before_the_models_do(admin_client, caplog):
    ward, _nurse = _ward_with_a_pump_in_use()
    caplog.set_level(logging.WARNING, logger="devices.services.watchers")
    url = f"/admin/devices/ward/{ward.pk}/change/"
    response = admin_client.post(url, {**as_shown(admin_client, url), "members": []})
    assert response.status_code == 200 and "removing ward-b-nurse from it" in response.content.decode()
    assert GUARD_LOG not in caplog.text, "the page's refusal was handled twice: the models' guard was reached"
    _still_watched(ward, "the ward's page, members emptied")


def test_the_bulk_delete_of_a_wards_two_last_watchers_is_refused_on_its_page(admin_client):
    ward, nurse = _ward_with_a_pump_in_use()
    second = make_user("ward-b-second", ward=ward)
    action = {"action": "delete_selected", "_selected_action": [nurse.pk, second.pk], "post": "yes"}
    response = admin_client.post("/admin/auth/user/", action)
    _still_watched(ward, "'Delete selected users' of both its nurses")
    page = response.content.decode()
    assert response.status_code == 200 and "deleting ward-b-nurse, ward-b-second" in page, page[:3000]
