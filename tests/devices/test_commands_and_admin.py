"""seed_demo, prune_history, dead letters and the admin pages."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from devices.models import DeadLetter, Device, DeviceEvent, ProgressSample, ServiceAccount
from devices.selectors import service_account_for_token
from devices.services.accounts import service_account_create, service_account_revoke
from devices.services.records import dead_letter_record
from devices.services.sessions import infusion_start
from tests.factories import make_device, make_order

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent(capsys):
    call_command("seed_demo", password="a-test-password")
    call_command("seed_demo", password="a-test-password")
    assert Device.objects.count() == 3
    assert "clinician / a-test-password" in capsys.readouterr().out


def test_seed_demo_generates_prints_and_keeps_a_demo_password(capsys, settings, tmp_path):
    settings.DEMO_PASSWORD_FILE = str(tmp_path / "demo-password")
    call_command("seed_demo")
    password = (tmp_path / "demo-password").read_text().strip()
    assert len(password) >= 12 and password != "pumpstream-demo"
    assert f"clinician / {password}" in capsys.readouterr().out, "the generated password is not printed"
    call_command("seed_demo")
    assert (tmp_path / "demo-password").read_text().strip() == password, "a second run changed the password"
    assert get_user_model().objects.get(username="clinician").check_password(password)
    assert get_user_model().objects.get(username="admin").check_password(password)


def test_prune_history_deletes_only_old_rows():
    device = make_device()
    session = infusion_start(device_id=device.device_id, order=make_order())
    old = timezone.now() - timedelta(days=100)
    ProgressSample.objects.create(session=session, recorded_at=old)
    DeviceEvent.objects.create(device=device, kind="mqtt.status", received_at=old)
    call_command("prune_history", "--older-than", "90")
    assert not ProgressSample.objects.filter(recorded_at=old).exists()
    assert not DeviceEvent.objects.filter(received_at=old).exists()
    assert DeviceEvent.objects.filter(kind="user.infusion_start").exists(), "recent events are kept"


def test_dead_letters_are_bounded_per_source(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "DEAD_LETTERS_PER_SOURCE": 5}
    for n in range(12):
        dead_letter_record(topic="devices/X/status", source="CHATTY", reason="bad_json", payload=b"{" * n)
    dead_letter_record(topic="devices/Y/status", source="OTHER", reason="bad_json")
    assert DeadLetter.objects.filter(source="CHATTY").count() == 5
    assert DeadLetter.objects.filter(source="OTHER").count() == 1


def test_service_account_token_is_hashed_and_revocable():
    account, token = service_account_create(name="nurse-call")
    assert token not in account.token_hash and service_account_for_token(token) == account
    service_account_revoke(account=account)
    assert service_account_for_token(token) is None
    assert ServiceAccount.objects.get().revoked_at is not None


@pytest.mark.parametrize(
    "path",
    ["/admin/devices/device/", "/admin/devices/infusionsession/", "/admin/devices/command/",
     "/admin/devices/alarm/", "/admin/devices/deviceevent/", "/admin/devices/progresssample/",
     "/admin/devices/deadletter/", "/admin/devices/serviceaccount/", "/admin/devices/bridgestatus/",
     "/admin/devices/ward/", "/admin/devices/device/add/"],
)  # fmt: skip
def test_admin_pages_load(admin_client, path):
    call_command("seed_demo", password="a-test-password")
    assert admin_client.get(path).status_code == 200


def test_admin_never_edits_event_log(admin_client):
    device = make_device()
    event = DeviceEvent.objects.create(device=device, kind="mqtt.status")
    response = admin_client.post(f"/admin/devices/deviceevent/{event.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert DeviceEvent.objects.filter(pk=event.pk).exists()


def test_admin_asks_for_the_rate_in_ml_per_hour_as_clinical_pages_do(admin_client):
    """The admin once asked for "Max rate ml min" while every clinical page speaks mL/h."""
    device = make_device("PUMP_ADMIN", max_rate_ml_min=20)
    page = admin_client.get(f"/admin/devices/device/{device.pk}/change/").content.decode()
    assert "Maximum rate (mL/h)" in page and 'value="1200.0"' in page, "the admin must ask for mL/h"
    assert "Max rate ml min" not in page
    form = {"device_id": "PUMP_ADMIN", "ward": device.ward_id, "max_rate_ml_h": "600", "max_volume_ml": "500",
            "has_presence": "on", "name": "", "bed": "", "serial_number": ""}  # fmt: skip
    response = admin_client.post(f"/admin/devices/device/{device.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Device.objects.get(pk=device.pk).max_rate_ml_min == 10, "600 mL/h is 10 mL/min on the wire"
