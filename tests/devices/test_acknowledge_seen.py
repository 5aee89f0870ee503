"""An acknowledgement is of the alert the person saw (`alerts`, sent by the monitor page): a click on a medium
alert that reaches the server just after the same alarm re-alerted at HIGH acknowledged the high alert nobody
had seen (its sound stopped everywhere, its escalation never started: a reviewer's finding). Now refused (409)."""

import pytest
from django.test import Client
from django.utils import timezone

from devices.models import Alarm
from devices.services.alarms import alarm_raise
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward, signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def nurse_client():
    ward = make_ward("icu")
    make_device("F12", ward=ward, last_seen_at=timezone.now())
    return signed_in(make_user("nurse", ward=ward))


def acknowledge(client: Client, alarm_id: int, body: dict):
    return client.post(f"/api/alarms/{alarm_id}/acknowledge/", body, content_type="application/json",
                       HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)  # fmt: skip


def raised(priority: str, message: str) -> Alarm:
    from devices.models import Device

    return alarm_raise(device=Device.objects.get(device_id="F12"), type="occlusion", priority=priority,
                       source=AlarmSource.DEVICE, message=message)  # fmt: skip


def test_a_stale_acknowledge_does_not_acknowledge_a_newer_higher_alert(nurse_client):
    shown = raised(AlarmPriority.MEDIUM, "Pressure rising")  # what the nurse's screen shows: medium, alert 1
    raised(AlarmPriority.HIGH, "Occlusion: line blocked")  # the pump re-raises it at high: alert 2, sounding
    response = acknowledge(nurse_client, shown.pk, {"alerts": shown.alerts})
    alarm = Alarm.objects.get(pk=shown.pk)
    assert response.status_code == 409 and response.json()["code"] == "alarm_changed"
    assert alarm.acknowledged_at is None, "the high alert nobody saw was acknowledged"
    assert acknowledge(nurse_client, shown.pk, {"alerts": alarm.alerts}).status_code == 200
    assert Alarm.objects.get(pk=shown.pk).acknowledged_at is not None


def test_without_the_alert_number_an_acknowledgement_is_of_the_alarm_as_it_is(nurse_client):
    alarm = raised(AlarmPriority.HIGH, "Occlusion")
    assert acknowledge(nurse_client, alarm.pk, {}).status_code == 200
    assert acknowledge(nurse_client, alarm.pk, {"alerts": 99}).status_code == 200, "acknowledged already: as is"


def test_a_malformed_alert_number_is_refused(nurse_client):
    alarm = raised(AlarmPriority.HIGH, "Occlusion")
    assert acknowledge(nurse_client, alarm.pk, {"alerts": "one"}).status_code == 400
    assert Alarm.objects.get(pk=alarm.pk).acknowledged_at is None
