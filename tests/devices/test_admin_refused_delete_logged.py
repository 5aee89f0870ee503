"""A deletion refused below the admin's page is not in the admin's history as deleted (review 37, finding 6).

Django's delete view and bulk action write the history's "Deleted" entry (`log_deletions`) before `delete_model` and
`delete_queryset`, and the refusal, caught inside them (`admin_refusals`), rolled nothing back: the ward's history
("Recent actions") said it was deleted while it still existed with its pump in use."""

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from devices.models import Ward
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_ward

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("how", ["delete page", "bulk action"])
def test_a_refused_ward_deletion_is_not_logged_as_deleted(admin_client, monkeypatch, how):
    ward = make_ward("refusedlog")
    device = make_device("REFUSED_LOG_PUMP", ward=ward)
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id=device.device_id), type="occlusion", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip
    monkeypatch.setattr("devices.admin.ward_delete_blockers", lambda ward: [])  # the page's check, before the alarm
    if how == "delete page":
        admin_client.post(f"/admin/devices/ward/{ward.pk}/delete/", {"post": "yes"}, follow=True)
    else:
        bulk = {"action": "delete_selected", "post": "yes", "_selected_action": [ward.pk]}
        admin_client.post("/admin/devices/ward/", bulk, follow=True)
    assert Ward.objects.filter(pk=ward.pk).exists(), "precondition: ward_delete refused"
    logged = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(Ward), object_id=str(ward.pk),
                                     action_flag=DELETION)  # fmt: skip
    assert not logged.exists(), (
        f"{how}: the refused deletion is in the admin history as '{logged.first()}', the ward still there"
    )


def test_a_refused_bulk_user_deletion_is_not_logged_as_deleted(admin_client, monkeypatch):
    """The users' bulk delete: `RefusalsSaid.delete_queryset` rolls its own block back, but `log_deletions` ran before
    it, outside that block: the nurse, still there and still the ward's watcher, reads "Deleted" in the history."""
    from django.contrib.auth import get_user_model

    from tests.devices.test_ward_left_unwatched import _watched_pump_in

    _device, _ward, nurse = _watched_pump_in("refusedlog-ward", "refusedlog-nurse")
    monkeypatch.setattr("devices.admin_users.members_leaving_refusals", lambda **_: [])  # the page's check, before
    bulk = {"action": "delete_selected", "post": "yes", "_selected_action": [nurse.pk]}
    with transaction.atomic():  # as the suite's own test of this road: the action runs outside the admin's transaction
        admin_client.post("/admin/auth/user/", bulk, follow=True)
    assert get_user_model().objects.filter(pk=nurse.pk).exists(), "precondition: the guard refused"
    logged = LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(get_user_model()),
                                     object_id=str(nurse.pk), action_flag=DELETION)  # fmt: skip
    assert not logged.exists(), f"the refused user deletion is in the admin history as '{logged.first()}'"
