"""Every admin action that changes data names the permission it needs: the view permission alone runs none of them."""

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction

from devices.models import Alarm, InfusionSession, ServiceAccount
from devices.services.accounts import service_account_create
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.sessions import infusion_start
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_order

pytestmark = pytest.mark.django_db


def staff_who_may_only_view(*codenames: str):
    user = get_user_model().objects.create_user("auditor", password="pw-for-tests-only", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def test_every_admin_action_names_its_permission():
    """An action without `permissions=` is offered to whoever may see the change list (Django's default): every
    model admin of the site, third-party ones (django-axes') included."""
    assert admin.site.is_registered(AccessAttempt), "precondition: axes' admin is part of the site"
    unguarded = [
        f"{model._meta.label}.{name}"
        for model, model_admin in admin.site._registry.items()
        for func, name, _description in model_admin._get_base_actions()
        if not getattr(func, "allowed_permissions", None)
    ]
    assert not unguarded, f"admin actions that a view-only staff member may run: {unguarded}"


def test_a_view_only_staff_member_cannot_revoke_a_token(client):
    account, _token = service_account_create(name="nurse-call", all_wards=True)
    client.force_login(staff_who_may_only_view("view_serviceaccount"))
    assert client.get("/admin/devices/serviceaccount/").status_code == 200, "precondition: the auditor may look"
    client.post("/admin/devices/serviceaccount/", {"action": "revoke", "_selected_action": [account.pk]})
    assert ServiceAccount.objects.get(pk=account.pk).revoked_at is None, (
        "a staff member with only the view permission revoked the nurse-call integration's token from the admin"
    )


def test_a_staff_member_who_may_change_service_accounts_revokes_a_token(client):
    account, _token = service_account_create(name="nurse-call", all_wards=True)
    client.force_login(staff_who_may_only_view("view_serviceaccount", "change_serviceaccount"))
    client.post("/admin/devices/serviceaccount/", {"action": "revoke", "_selected_action": [account.pk]})
    assert ServiceAccount.objects.get(pk=account.pk).revoked_at is not None, "the change permission must revoke"


def test_a_view_only_staff_member_cannot_end_a_record_or_resolve_an_alarm(client):
    make_device("ADMIN_VIEW")
    session = infusion_start(device_id="ADMIN_VIEW", order=make_order())
    with transaction.atomic():
        alarm = alarm_raise(device=device_lock(device_id="ADMIN_VIEW"), type="occlusion", priority=AlarmPriority.HIGH,
                            source=AlarmSource.DEVICE)  # fmt: skip
    client.force_login(staff_who_may_only_view("view_infusionsession", "view_alarm"))
    client.post("/admin/devices/infusionsession/", {"action": "end_record", "_selected_action": [session.pk]})
    client.post("/admin/devices/alarm/", {"action": "resolve", "_selected_action": [alarm.pk], "reason": "other",
                                          "note": "looked only"})  # fmt: skip
    assert InfusionSession.objects.get(pk=session.pk).status == session.status, "view-only ended a record"
    assert Alarm.objects.get(pk=alarm.pk).state == "active", "view-only resolved an alarm"


def test_no_staff_member_clears_sign_in_attempts_with_axes_action(client, admin_user):
    """axes' "Clean up expired attempts" had no `permissions=`: offered to view-only staff, it crashed (500) and
    would have deleted current lock-outs; it is not offered, and deleting attempts needs the delete permission."""
    attempt = AccessAttempt.objects.create(
        username="nurse", ip_address="10.0.0.9", failures_since_start=5, user_agent="t", http_accept="", path_info="/"
    )
    for user in (staff_who_may_only_view("view_accessattempt"), admin_user):
        client.force_login(user)
        page = client.get("/admin/axes/accessattempt/")
        assert page.status_code == 200, "precondition: staff may look"
        assert b"cleanup_expired_attempts" not in page.content, f"axes' action offered to {user.username}"
        response = client.post("/admin/axes/accessattempt/",
                               {"action": "cleanup_expired_attempts", "_selected_action": [attempt.pk]})  # fmt: skip
        assert response.status_code < 500, f"running axes' action as {user.username} failed"
    assert AccessAttempt.objects.filter(pk=attempt.pk).exists(), "a current lock-out was cleared"
    client.post("/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": [attempt.pk],
                                               "post": "yes"})  # fmt: skip
    assert not AccessAttempt.objects.filter(pk=attempt.pk).exists(), "the delete permission must delete attempts"
