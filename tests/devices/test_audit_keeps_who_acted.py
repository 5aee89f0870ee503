"""Who started, stopped, acknowledged or silenced survives: a user with clinical history cannot be deleted.

Review 3, suspicion (c), confirmed: every user foreign key on the clinical rows (`DeviceEvent.user`,
`Command.created_by`, `InfusionSession.started_by`, the alarm's and the silence's) was `SET_NULL`, so deleting a
user in the admin erased from the audit who had started or stopped each infusion. They are `PROTECT` now: the admin
refuses and lists what names the user; deactivating her (`is_active`) is the way (docs/security.md).
"""

import pytest
from django.contrib.auth import get_user_model
from django.db.models import ProtectedError

from devices.models import Command, DeviceEvent, InfusionSession
from devices.services.sessions import infusion_start
from devices.states import CommandKind
from tests.factories import make_device, make_order, make_user, make_ward

pytestmark = pytest.mark.django_db


def started_by_nurse() -> tuple:
    ward = make_ward("audit")
    nurse = make_user("audit-nurse", ward=ward)
    make_device("AUDIT_PUMP", ward=ward)
    return nurse, infusion_start(device_id="AUDIT_PUMP", order=make_order(), user=nurse)


def test_a_user_who_started_an_infusion_cannot_be_deleted():
    nurse, session = started_by_nurse()
    with pytest.raises(ProtectedError):
        nurse.delete()
    assert InfusionSession.objects.get(pk=session.pk).started_by == nurse
    assert Command.objects.get(session=session, kind=CommandKind.START_INFUSION).created_by == nurse
    assert DeviceEvent.objects.filter(session=session, kind="user.infusion_start", user=nurse).exists()


def test_the_admin_refuses_and_the_audit_still_names_her(admin_client):
    nurse, session = started_by_nurse()
    response = admin_client.post(f"/admin/auth/user/{nurse.pk}/delete/", {"post": "yes"})
    assert get_user_model().objects.filter(pk=nurse.pk).exists(), "the admin deleted a user with clinical history"
    assert b"Cannot delete user" in response.content, "the admin page must say it refuses, and why"
    assert InfusionSession.objects.get(pk=session.pk).started_by_id == nurse.pk


def test_a_user_without_clinical_history_can_still_be_deleted(admin_client):
    newcomer = make_user("never-acted", ward=make_ward("audit-new"))
    admin_client.post(f"/admin/auth/user/{newcomer.pk}/delete/", {"post": "yes"})
    assert not get_user_model().objects.filter(pk=newcomer.pk).exists()
