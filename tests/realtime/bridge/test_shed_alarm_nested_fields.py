"""A shed alarm is named by its own `type` and `severity`, never by a field of the same name inside it (review 23,
finding 2).

`ShedSummary.add_message` reads a shed alarm's type and severity from its raw bytes with a regex that takes the first
`"type": "..."` and the first `"severity": "..."` anywhere in the payload, nested objects included. A pump (or a
gateway) whose JSON puts `details` first (Go's encoding/json writes a map's keys sorted: details, message,
severity, type) and whose details carry a `type` or `severity` of their own (the sensor's) has its shed occlusion named
as the sensor's type at the sensor's severity: the flood alarm does not name the occlusion, and once acknowledged it
does not alert again for it.
"""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from devices.models import Alarm
from devices.services.alarms import alarm_acknowledge
from realtime.bridge.batch import BatchIngest
from realtime.bridge.budgets import Budget, PumpBudgets, ShedSummary
from realtime.bridge.flood import ProgressFloodGuard
from realtime.bridge.ingest import InboundMessage
from tests.factories import make_device, make_user

pytestmark = pytest.mark.django_db
OFF = Budget(0, 1)
BASE = timezone.now()
# As a Go gateway writes it (keys sorted); the pressure sensor's own fields in details
OCCLUSION = {
    "details": {"sensor": {"type": "pressure", "severity": "info"}, "mmHg": 612},
    "message": "Downstream occlusion: infusion stopped",
    "severity": "high",
    "type": "occlusion_detected",
}


def message(device_id: str, body: dict, at_s: float) -> InboundMessage:
    return InboundMessage(topic=f"devices/{device_id}/error", payload=json.dumps(body).encode(),
                          received_at=BASE + timedelta(seconds=at_s))  # fmt: skip


def test_a_shed_alarm_is_named_by_its_own_type_and_severity_not_its_details():
    summary = ShedSummary()
    summary.add_message(message("NESTED", OCCLUSION, 0))
    named = summary.types.get("NESTED", {})
    assert named == {"occlusion_detected": "high"}, (
        f"a shed high occlusion_detected whose details name a sensor type and severity is named {named} in the "
        'alarm_flood summary (the first "type"/"severity" in its bytes, inside details)'
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"details": {"severity": "info"}, "type": "occlusion_detected"}, {"occlusion_detected": "high"}),
        ({"details": [{"type": "a"}, {"type": "b"}, {"type": "c"}, {"type": "d"}], "type": "air_in_line",
          "severity": "medium"}, {"air_in_line": "medium"}),  # past the raw matches tried: decoded in full
        ({"message": 'a "{" and a "[" in its text', "severity": "low", "type": "battery_low"}, {"battery_low": "low"}),
        ({"type": "occlusion_detected", "details": {"type": "pressure", "severity": "info"}, "severity": "high"},
         {"occlusion_detected": "high"}),
    ],
    ids=["nested-severity-only", "many-nested-types", "brackets-in-strings", "type-first"],
)  # fmt: skip
def test_only_the_alarms_own_fields_name_it(body, named):
    summary = ShedSummary()
    summary.add_message(message("NESTED", body, 0))
    assert summary.types.get("NESTED") == named, f"{body} shed was named {summary.types.get('NESTED')}, not {named}"


def test_a_second_flood_shedding_an_occlusion_with_typed_details_re_alerts_the_acknowledged_flood_alarm():
    make_device("NESTED")
    budgets = PumpBudgets(alarm=Budget(1, 2), report=OFF, max_active_alarms=0)
    noise = {"details": {"sensor": {"type": "pressure", "severity": "info"}}, "severity": "low", "type": "pressure"}
    with transaction.atomic():
        BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1), budgets).run(
            [message("NESTED", noise, n / 1000) for n in range(5)]
        )
    flood = Alarm.objects.get(device__device_id="NESTED", type="alarm_flood", state="active")
    alarm_acknowledge(alarm_id=flood.pk, user=make_user("nurse"), alerts=flood.alerts)
    second = [message("NESTED", noise, 1 + n / 1000) for n in range(4)] + [message("NESTED", OCCLUSION, 1.005)]
    with transaction.atomic():
        BatchIngest(ProgressFloodGuard(rate_per_s=0, burst=1), budgets).run(second)
    assert not Alarm.objects.filter(device__device_id="NESTED", type="occlusion_detected").exists(), (
        "precondition: the occlusion was shed"
    )
    flood.refresh_from_db()
    assert flood.acknowledged_at is None and "occlusion_detected" in flood.message, (
        "a second flood shed a high occlusion_detected (details first, with a sensor type and severity): the "
        f"acknowledged alarm_flood stays silent and does not name it: {flood.message!r}, "
        f"priorities {flood.details.get('alarmPriorities')}"
    )
