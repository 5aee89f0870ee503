"""A ward's watchers guard refusing after the admin's page checked is said on the page (review 36, finding 5).

The ward's members page and the user admin (deactivate, delete, bulk delete) check first, then save; an infusion
started or an alarm raised in between takes no ward lock, so the check passes and the save meets the models' guard
(`ward_unwatched`). Before `admin_refusals.RefusalsSaid` that was a server error page, the refusal unsaid (and the bulk
delete broke the surrounding transaction). Staged as the ward deletion's own test: the page's check made before the
pump came into use (monkeypatched to find nothing), the pump in use when the save reaches the guard.
"""

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from devices.access_selectors import ward_is_watched
from devices.models import Ward
from tests.devices.test_ward_left_unwatched import _watched_pump_in, as_shown

pytestmark = pytest.mark.django_db


def _post(admin_client, road: str, ward: Ward, nurse) -> object:
    if road == "ward page: members emptied":
        url = f"/admin/devices/ward/{ward.pk}/change/"
        return admin_client.post(url, {**as_shown(admin_client, url), "members": []}, follow=True)
    if road == "user page: nurse deactivated":
        url = f"/admin/auth/user/{nurse.pk}/change/"
        return admin_client.post(url, as_shown(admin_client, url, is_active=None), follow=True)
    if road == "user delete page":
        return admin_client.post(f"/admin/auth/user/{nurse.pk}/delete/", {"post": "yes"}, follow=True)
    bulk = {"action": "delete_selected", "post": "yes", "_selected_action": [nurse.pk]}
    return admin_client.post("/admin/auth/user/", bulk, follow=True)


@pytest.mark.parametrize("road", ["ward page: members emptied", "user page: nurse deactivated", "user delete page",
                                  "user bulk delete"])  # fmt: skip
def test_a_ward_left_unwatched_after_the_page_checked_is_refused_on_the_page(admin_client, monkeypatch,
                                                                          road):  # fmt: skip
    _device, ward, nurse = _watched_pump_in("ward-b", "ward-b-nurse")
    # the page's own check, made before the pump came into use
    monkeypatch.setattr("devices.admin_forms.ward_members_refusal", lambda **_: "")
    monkeypatch.setattr("devices.admin_users.members_leaving_refusals", lambda **_: [])
    outcome = None
    try:
        with transaction.atomic():  # the bulk action runs outside the admin's transaction: its error breaks the test's
            response = _post(admin_client, road, ward, nurse)
            outcome = f"HTTP {response.status_code}"
    except Exception as exc:  # noqa: BLE001 - the test client re-raises what the view let escape (a 500 page)
        outcome = f"server error: {type(exc).__name__}: {str(exc)[:120]}"
    assert ward_is_watched(Ward.objects.get(pk=ward.pk)) and get_user_model().objects.filter(pk=nurse.pk).exists()
    assert outcome == "HTTP 200", f"{road}: the guard's refusal escaped the admin ({outcome}), not said on the page"
    page = response.content.decode()
    assert "would leave it watched by no one" in page, f"{road}: the refusal was not said"
    assert "success" not in page.lower(), f"{road}: Django's success message beside a refusal"
