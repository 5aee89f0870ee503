"""The original firmware's uptime is ESP32 millis(): 32 bits, it wraps after 49.7 days. The wrap was taken for a
restart (a reviewer's finding): the running order was interrupted and the pump then showed as infusing WITHOUT an
order. A real restart (uptime back to a value that does not continue it) is still one."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm, InfusionSession
from devices.services.changes import device_lock
from devices.services.sessions import infusion_confirm, infusion_start
from devices.states import AlarmState, SessionStatus
from realtime.bridge.batch import BatchIngest
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device, make_order

pytestmark = pytest.mark.django_db
WRAP = 2**32


def message(device_id, kind, body, at_s=0.0, topic=None):
    return InboundMessage(
        topic=topic or f"devices/{device_id}/{kind}",
        payload=json.dumps(body).encode(),
        received_at=timezone.now() + timedelta(seconds=at_s),
    )


def ingest(batch, capture):
    with capture(execute=True), transaction.atomic():
        return BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1)).run(batch)


def legacy_progress(uptime_ms, delivered, at_s):
    return message(
        "F4",
        "progress",
        {
            "timeRemainingMin": 10,
            "volumeRemainingMl": 30 - delivered,
            "timestamp": uptime_ms,
            "deliveredVolumeMl": delivered,
            "progressPercent": delivered / 0.3,
            "flowRate": 2.0,
            "status": "running",
        },
        at_s,
    )


def test_the_uptime_counter_wrapping_is_not_a_restart(django_capture_on_commit_callbacks):
    make_device("F4")
    session = infusion_start(device_id="F4", order=make_order())
    with transaction.atomic():
        infusion_confirm(
            device=device_lock(device_id="F4"),
            infusion_id=session.infusion_id,
            confirmed=True,
            parameters=None,
            confirmation={"confirmed": True},
        )
    # 49.7 days after power-on the pump is infusing; one second later its millis() has wrapped to ~0
    ingest([legacy_progress(WRAP - 600, 5.0, 0)], django_capture_on_commit_callbacks)
    ingest([legacy_progress(400, 5.03, 1)], django_capture_on_commit_callbacks)
    ingest([legacy_progress(1400, 5.06, 2)], django_capture_on_commit_callbacks)
    session = InfusionSession.objects.get(pk=session.pk)
    alarms = sorted(
        Alarm.objects.filter(device__device_id="F4", state=AlarmState.ACTIVE).values_list("type", flat=True)
    )
    assert session.status == SessionStatus.RUNNING and not {"infusion_interrupted", "infusing_without_order"} & set(
        alarms
    ), (
        f"a pump infusing without pause was taken for restarted when its 32-bit uptime wrapped: the order is "
        f"{session.status} ({session.status_reason!r}) and the active alarms are {alarms}"
    )


def test_uptime_going_back_without_wrapping_is_still_a_restart(django_capture_on_commit_callbacks):
    make_device("F4")
    session = infusion_start(device_id="F4", order=make_order())
    with transaction.atomic():
        infusion_confirm(device=device_lock(device_id="F4"), infusion_id=session.infusion_id, confirmed=True,
                         parameters=None, confirmation={"confirmed": True})  # fmt: skip
    ingest([legacy_progress(3_600_000, 5.0, 0)], django_capture_on_commit_callbacks)
    ingest([legacy_progress(4_500, 5.03, 1)], django_capture_on_commit_callbacks)
    assert InfusionSession.objects.get(pk=session.pk).status == SessionStatus.INTERRUPTED
