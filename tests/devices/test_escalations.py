"""Escalation rules (devices/services/escalations.py, deliveries.py): tiers on time, reset by a re-alert,
stopped by acknowledgement, webhook outcomes (retry, dead letter and its station alarm), HMAC signing."""

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, EscalationDelivery
from devices.services.alarm_rules import alarms_remind
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.services.deliveries import escalation_deliveries_due, escalation_delivery_record
from devices.services.escalations import alarms_escalate, tier_setting, webhook_signature
from devices.states import AlarmPriority, AlarmSource, AlarmState, DeliveryState
from tests.factories import make_device, make_user, make_ward, pump_taken_out_of_use

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def tiers(settings):
    settings.PUMPSTREAM = {**settings.PUMPSTREAM, "ESCALATION_HIGH_S": [60.0, 120.0], "ESCALATION_MEDIUM_S": [300.0],
                           "ESCALATION_LOW_S": [], "ESCALATION_TIER_WEBHOOKS": ["http://pager.test/t1"],
                           "ESCALATION_WEBHOOK_TRIES": 3, "ESCALATION_WEBHOOK_RETRY_S": 2.0}  # fmt: skip


def raised(priority=AlarmPriority.HIGH, *, at, device_id="ESC_U_1") -> Alarm:
    if not Alarm.objects.filter(device__device_id=device_id).exists():
        make_device(device_id, ward=make_ward("eu"))
    with transaction.atomic():
        return alarm_raise(device=device_lock(device_id=device_id), type=f"kind_{priority}", priority=priority,
                           source=AlarmSource.DEVICE, now=at)  # fmt: skip


def test_tiers_come_at_their_delays_and_the_last_webhook_serves_higher_tiers():
    start = timezone.now() - timedelta(minutes=10)
    alarm = raised(at=start)
    assert alarms_escalate(now=start + timedelta(seconds=59)) == 0
    assert alarms_escalate(now=start + timedelta(seconds=60)) == 1
    assert alarms_escalate(now=start + timedelta(seconds=90)) == 0
    assert alarms_escalate(now=start + timedelta(seconds=120)) == 1
    assert alarms_escalate(now=start + timedelta(seconds=600)) == 0, "there are only two tiers for high"
    alarm.refresh_from_db()
    assert alarm.escalation_level == 2
    assert list(EscalationDelivery.objects.values_list("tier", "url")) == [(2, "http://pager.test/t1"),
                                                                           (1, "http://pager.test/t1")]  # fmt: skip
    assert tier_setting("ESCALATION_TIER_GROUPS", 5) == "ward_manager"


def test_a_low_alarm_never_escalates_and_a_medium_one_after_5_min():
    start = timezone.now() - timedelta(hours=1)
    raised(AlarmPriority.LOW, at=start)
    medium = raised(AlarmPriority.MEDIUM, at=start)
    assert alarms_escalate(now=start + timedelta(seconds=299)) == 0
    assert alarms_escalate(now=start + timedelta(seconds=300)) == 1
    medium.refresh_from_db()
    assert medium.escalation_level == 1


def test_acknowledging_stops_it_and_a_reminder_starts_it_again():
    start = timezone.now() - timedelta(hours=1)
    alarm = raised(at=start)
    alarms_escalate(now=start + timedelta(seconds=60))
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user("eu-nurse"), now=start + timedelta(seconds=61))
    assert alarms_escalate(now=start + timedelta(seconds=200)) == 0
    alarms_remind(now=start + timedelta(seconds=61 + 301))
    alarm.refresh_from_db()
    assert alarm.acknowledged_at is None and alarm.escalation_level == 0, "a reminder re-alerts from tier 0"
    assert alarms_escalate(now=start + timedelta(seconds=362 + 60)) == 1


def test_a_failing_webhook_is_retried_then_dead_lettered_with_a_station_alarm():
    start = timezone.now()
    alarm = raised(at=start - timedelta(seconds=61))
    alarms_escalate(now=start)
    [(delivery_id, url, body)] = escalation_deliveries_due(now=start)
    escalation_delivery_record(delivery_id=delivery_id, delivered=False, error="HTTP 500", now=start)
    assert escalation_deliveries_due(now=start + timedelta(seconds=1)) == [], "retried before its delay"
    assert len(escalation_deliveries_due(now=start + timedelta(seconds=2))) == 1
    escalation_delivery_record(delivery_id=delivery_id, delivered=False, error="HTTP 500", now=start)
    delivery = escalation_delivery_record(delivery_id=delivery_id, delivered=False, error="HTTP 500", now=start)
    assert delivery.state == DeliveryState.DEAD and delivery.tries == 3
    failed = Alarm.objects.get(type="escalation_failed", state=AlarmState.ACTIVE)
    assert failed.priority == AlarmPriority.MEDIUM and failed.device_id == alarm.device_id
    assert escalation_deliveries_due(now=start + timedelta(hours=1)) == []


def test_an_answered_alarm_withdraws_its_pending_page():
    start = timezone.now()
    alarm = raised(at=start - timedelta(seconds=61))
    alarms_escalate(now=start)
    alarm_acknowledge(alarm_id=alarm.pk, user=make_user("eu-nurse-2"), now=start)
    assert escalation_deliveries_due(now=start) == []
    assert EscalationDelivery.objects.get().state == DeliveryState.WITHDRAWN


def test_the_signature_is_hmac_sha256_of_timestamp_and_body():
    expected = hmac.new(b"k" * 32, b"1700000000.{}", hashlib.sha256).hexdigest()
    assert webhook_signature(secret="k" * 32, timestamp="1700000000", body=b"{}") == f"sha256={expected}"


def test_the_outcome_of_a_page_whose_pump_was_deleted_meanwhile_has_nothing_to_record():
    start = timezone.now()
    alarm = raised(at=start - timedelta(seconds=61))
    alarms_escalate(now=start)
    [(delivery_id, _, _)] = escalation_deliveries_due(now=start)
    pump_taken_out_of_use(alarm.device.device_id)  # the alarm resolved, the pump deleted: the delivery with them
    assert escalation_delivery_record(delivery_id=delivery_id, delivered=True, now=start) is None
