"""Escalation webhooks' outbox (rows made by `escalations.py`): which are due, and what each try's outcome does.

A delivery is withdrawn unsent once its alarm is acknowledged or cleared (acknowledging stops escalation);
a failed try is retried after ESCALATION_WEBHOOK_RETRY_S, doubled per try (at most 60 s); after
ESCALATION_WEBHOOK_TRIES it is dead-lettered and raises the medium server alarm `escalation_failed` on the
pump, so the station hears that the page did not go out. The next delivery that succeeds clears it.
"""

import json
import logging
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from devices.housekeeping_selectors import (
    deliveries_due,
    deliveries_pending,
    deliveries_pending_any,
    delivery_retry_delay,
)
from devices.models import EscalationDelivery
from devices.services.alarms import alarm_clear, alarm_raise
from devices.services.changes import device_lock, event_record
from devices.services.escalations import webhook_body
from devices.services.records import dead_letter_record, text_storable
from devices.states import AlarmPriority, AlarmSource, AlarmState, DeliveryState

logger = logging.getLogger(__name__)

ESCALATION_FAILED = "escalation_failed"
ERROR_MAX = 300


def escalation_deliveries_due(*, now: datetime | None = None, exclude: set[int] = frozenset(),
                              limit: int = 100) -> list[tuple[int, str, bytes]]:  # fmt: skip
    """`(delivery id, url, body)` of the pending deliveries due now; those whose alarm was answered are withdrawn."""
    now = now or timezone.now()
    if not deliveries_pending_any():  # none pending: no UPDATE (a write, on SQLite the whole file's lock) every tick
        return []
    answered = Q(alarm__acknowledged_at__isnull=False) | ~Q(alarm__state=AlarmState.ACTIVE)
    answered_pending = deliveries_pending().filter(answered).exclude(pk__in=exclude)
    withdrawn = answered_pending.update(state=DeliveryState.WITHDRAWN, ended_at=now)
    if withdrawn:
        logger.info("escalation webhooks withdrawn: the alarm was answered first", extra={"count": withdrawn})
    due = deliveries_due(by=now).exclude(pk__in=exclude)[:limit]
    return [(delivery.pk, delivery.url, webhook_body(delivery)) for delivery in due]


def escalation_delivery_record(*, delivery_id: int, delivered: bool, error: str = "",
                               now: datetime | None = None) -> EscalationDelivery | None:  # fmt: skip
    """Record one try's outcome: delivered, retried later, or dead-lettered (raising `escalation_failed`).

    None when the delivery is gone: its pump (and so its alarm) was deleted while the post was under way.
    """
    now = now or timezone.now()
    with transaction.atomic():
        try:
            delivery = EscalationDelivery.objects.select_related("alarm__device", "alarm__session").get(pk=delivery_id)
            device = device_lock(device_id=delivery.alarm.device.device_id)
        except ObjectDoesNotExist:
            logger.info("escalation webhook outcome not recorded: its pump was deleted meanwhile",
                        extra={"delivery_id": delivery_id, "delivered": delivered})  # fmt: skip
            return None
        delivery.tries += 1
        delivery.last_error = error[:ERROR_MAX]
        if delivered:
            delivery.state, delivery.ended_at = DeliveryState.DELIVERED, now
            alarm_clear(device=device, types=[ESCALATION_FAILED], source=AlarmSource.SERVER, now=now,
                        reason="an escalation webhook was delivered")  # fmt: skip
        elif delivery.tries >= settings.PUMPSTREAM["ESCALATION_WEBHOOK_TRIES"]:
            delivery.state, delivery.ended_at = DeliveryState.DEAD, now
            _raise_failed(device, delivery, now)
        else:
            delivery.next_try_at = now + delivery_retry_delay(delivery.tries)
        delivery.save()
        audit = {"deliveryId": delivery.pk, "alarmId": delivery.alarm_id, "tier": delivery.tier,
                 "tries": delivery.tries, "error": error[:200]}  # fmt: skip
        event_record(device=device, session=delivery.alarm.session, kind=f"escalation.webhook.{delivery.state}",
                     received_at=now, payload=audit)  # fmt: skip
    return delivery


def escalation_delivery_give_up(*, delivery_id: int, delivered: bool, error: str, why: str,
                                now: datetime | None = None) -> EscalationDelivery | None:  # fmt: skip
    """End a pending delivery whose try's outcome could not be recorded (`escalation_delivery_record` kept failing
    for it): delivered if the post was, else dead-lettered with `escalation_failed` (the station must hear a page
    may not have gone out), in the plainest writes; a dead letter keeps the outcome and `why`. None when it is gone
    or no longer pending."""
    now = now or timezone.now()
    with transaction.atomic():
        delivery = EscalationDelivery.objects.select_related("alarm__device").filter(pk=delivery_id).first()
        if delivery is None:
            return None
        device = device_lock(device_id=delivery.alarm.device.device_id)
        delivery.refresh_from_db()
        if delivery.state != DeliveryState.PENDING:
            return None
        state = DeliveryState.DELIVERED if delivered else DeliveryState.DEAD
        delivery.tries += 1
        EscalationDelivery.objects.filter(pk=delivery_id).update(
            state=state, ended_at=now, tries=delivery.tries, last_error=text_storable(error[:ERROR_MAX]))  # fmt: skip
        outcome = {"deliveryId": delivery_id, "delivered": delivered, "error": error}
        dead_letter_record(topic=f"escalation/{delivery_id}", source="escalation_webhook", reason="outcome_unrecorded",
                           detail=f"{why}: {error}", payload=json.dumps(outcome))  # fmt: skip
        if not delivered:
            _raise_failed(device, delivery, now)
    return delivery


def _raise_failed(device, delivery: EscalationDelivery, now: datetime) -> None:
    logger.error("escalation webhook dead-lettered", extra={"device_id": device.device_id, "tier": delivery.tier,
                                                             "tries": delivery.tries})  # fmt: skip
    alarm_raise(
        device=device, type=ESCALATION_FAILED, priority=AlarmPriority.MEDIUM, source=AlarmSource.SERVER, now=now,
        message=f"Paging tier {delivery.tier} failed after {delivery.tries} tries: call the charge nurse yourself",
        details={"deliveryId": delivery.pk, "alarmId": delivery.alarm_id, "error": delivery.last_error},
    )  # fmt: skip
