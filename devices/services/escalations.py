"""Escalation of alarms nobody acknowledged (contract v1.1 `escalation`; rules in docs/clinical-rules.md).

An active alarm still unacknowledged `ESCALATION_<PRIORITY>_S[n-1]` seconds after it last alerted reaches
tier n: it is recorded on the alarm (`escalation_level`, `escalated_at`), audited, sent to every watcher
(`device:alarm`, so `ward:alarm` too, with `escalated`), sounds through the ward's silence, and queues the
tier's webhook (`EscalationDelivery`). Only acknowledging stops it; a re-alert starts it again from tier 0.
"""

import hashlib
import hmac
import json
import logging
from collections.abc import Collection
from datetime import datetime
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from devices import payloads
from devices.housekeeping_selectors import alarms_escalation_page, alarms_unanswered_any, escalation_delays
from devices.models import Alarm, EscalationDelivery
from devices.services.changes import change_record, device_lock, event_record
from devices.services.rows import RowRun, row_run_plain
from devices.services.silences import ward_silence_break
from devices.states import AlarmState
from protocol import events
from protocol.payloads import Escalated

logger = logging.getLogger(__name__)

PER_TICK = 100


def tier_setting(name: str, tier: int) -> str:
    """A tier's entry of a per-tier list setting (the last entry serves the tiers beyond it; "" when empty)."""
    values = settings.PUMPSTREAM[name]
    return str(values[min(tier, len(values)) - 1]).strip() if values else ""


def alarms_escalate(
    *, now: datetime | None = None, limit: int = PER_TICK, exclude: Collection[int] = (), run: RowRun = row_run_plain
) -> int:
    """Escalate the active, unacknowledged alarms whose next tier is due, the longest waiting first, at most
    `limit` (the bridge's housekeeping page) but those in `exclude`, each through `run` (the bridge guards each
    alarm: one that cannot be escalated stops no other); returns how many."""
    now = now or timezone.now()
    if not alarms_unanswered_any():  # an idle ward: one plain query a tick, not the tiers' compound one
        return 0
    rows = alarms_escalation_page(by=now, limit=limit, exclude=exclude)
    return sum(
        run("escalations", alarm_id, partial(_escalate, alarm_id, device_id, now)) for alarm_id, device_id in rows
    )


def _escalate(alarm_id: int, device_id: str, now: datetime) -> int:
    with transaction.atomic():
        device = device_lock(device_id=device_id)
        alarm = Alarm.objects.select_related("session", "acknowledged_by", "resolved_by").get(pk=alarm_id)
        delays = escalation_delays(alarm.priority)
        level = alarm.escalation_level
        if alarm.state != AlarmState.ACTIVE or alarm.acknowledged_at is not None or level >= len(delays):
            return 0
        alarm.escalation_level, alarm.escalated_at = level + 1, now
        alarm.save(update_fields=["escalation_level", "escalated_at"])
        tier = alarm.escalation_level
        group, url = tier_setting("ESCALATION_TIER_GROUPS", tier), tier_setting("ESCALATION_TIER_WEBHOOKS", tier)
        event_record(device=device, session=alarm.session, kind="alarm.escalated", received_at=now,
                     payload={"alarmId": alarm.pk, "type": alarm.type, "tier": tier, "group": group,
                              "webhook": bool(url)})  # fmt: skip
        escalated = Escalated(tier=tier, group=group or None)
        change = change_record(device=device, event=events.DEVICE_ALARM,
                               body=payloads.alarm_body(alarm, escalated=escalated))  # fmt: skip
        if url:
            payload = webhook_payload(change.ward_code, device_id, {"alarm": change.body["alarm"]}, tier)
            EscalationDelivery.objects.create(alarm=alarm, tier=tier, url=url, created_at=now, next_try_at=now,
                                              payload=payload)  # fmt: skip
        ward_silence_break(device=device, alarm=alarm, now=now, escalated=True)
    logger.warning("alarm escalated", extra={"device_id": device_id, "alarm_id": alarm_id, "tier": tier})
    return 1


def webhook_payload(ward: str | None, device_id: str, body: dict, tier: int) -> dict:
    """What a tier's webhook receives: the ward, the pump (and bed) and the alarm as watchers see it."""
    return {"event": "alarm.escalated", "tier": tier, "ward": ward, "deviceId": device_id, **body}


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of `<timestamp>.<body>` with the shared secret (ESCALATION_WEBHOOK_SECRET)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_body(delivery: EscalationDelivery) -> bytes:
    """The exact bytes posted (and signed) for a delivery."""
    return json.dumps({**delivery.payload, "deliveryId": delivery.pk}, sort_keys=True).encode()
