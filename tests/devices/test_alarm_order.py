"""Which alarm comes first (`devices/alarm_order.py`, docs/clinical-rules.md "Which alarm comes first").

The card shows a pump's first alarm, the banner and tab title the ward's first unanswered one: they were the highest,
then the newest, whether anyone had answered it or not (review 32, findings 3 and 5). Now: highest priority, then
unacknowledged, then the higher escalation tier, then the newest; `static/js/alarm_order.js` is the same rule, and
`tests/browser/test_station_alarm_order.py` shows it on the pages.
"""

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from devices.alarm_order import alarms_most_urgent_first
from devices.models import Alarm
from devices.selectors import alarms_active, alarms_active_by_device
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward
from tests.support.node import page_script_result

NOW = timezone.now()
HIGH, MEDIUM, LOW = AlarmPriority.HIGH, AlarmPriority.MEDIUM, AlarmPriority.LOW
ALARM_ORDER_JS = Path(__file__).resolve().parents[2] / "static" / "js" / "alarm_order.js"


def alarm(name: str, priority: str, *, age_s: float, acknowledged: bool = False, tier: int = 0, pk: int = 0) -> Alarm:
    """An alarm (unsaved: the order reads only its fields) raised `age_s` ago, named by its message."""
    return Alarm(pk=pk or None, message=name, priority=priority, raised_at=NOW - timedelta(seconds=age_s),
                 acknowledged_at=NOW if acknowledged else None, escalation_level=tier)  # fmt: skip


def order(*alarms: Alarm) -> list[str]:
    return [shown.message for shown in alarms_most_urgent_first(alarms)]


def test_the_highest_priority_comes_first_acknowledged_or_not():
    answered = alarm("high, acknowledged", HIGH, age_s=3, acknowledged=True)
    assert order(alarm("low", LOW, age_s=1), alarm("medium", MEDIUM, age_s=2), answered) == [
        "high, acknowledged",
        "medium",
        "low",
    ]


def test_within_a_priority_an_unanswered_alarm_comes_before_a_newer_acknowledged_one():
    """Finding 3: the card showed the newer acknowledged air alarm, outlined and still, over the older occlusion."""
    air = alarm("air, acknowledged", HIGH, age_s=5, acknowledged=True)
    occlusion = alarm("occlusion", HIGH, age_s=20)
    assert order(air, occlusion) == ["occlusion", "air, acknowledged"]


def test_among_unanswered_alarms_of_a_priority_the_higher_tier_comes_before_the_newer():
    """Finding 5: a new high alarm took the banner and title from one escalated to the ward manager."""
    escalated = alarm("escalated to tier 2", HIGH, age_s=180, tier=2)
    tier_1 = alarm("escalated to tier 1", HIGH, age_s=70, tier=1)
    new = alarm("new", HIGH, age_s=0)
    assert order(new, tier_1, escalated) == ["escalated to tier 2", "escalated to tier 1", "new"]


def test_an_escalated_alarm_never_rises_above_a_higher_priority():
    assert order(alarm("medium tier 1", MEDIUM, age_s=400, tier=1), alarm("high", HIGH, age_s=1)) == [
        "high",
        "medium tier 1",
    ]


def test_an_acknowledged_alarms_tier_counts_for_nothing_the_newest_comes_first():
    """Acknowledging stops escalation: a tier left on an acknowledged alarm does not lift it among the answered."""
    old = alarm("old, tier 2, acknowledged", HIGH, age_s=300, acknowledged=True, tier=2)
    new = alarm("new, acknowledged", HIGH, age_s=10, acknowledged=True)
    assert order(old, new) == ["new, acknowledged", "old, tier 2, acknowledged"]


def test_alarms_raised_together_are_ordered_by_row_so_every_screen_agrees():
    first, second = alarm("first", HIGH, age_s=1, pk=7), alarm("second", HIGH, age_s=1, pk=8)
    assert order(first, second) == order(second, first) == ["second", "first"]


def raise_alarm(device, alarm_type: str, priority: str, *, age_s: float) -> Alarm:
    with transaction.atomic():
        return alarm_raise(device=device_lock(device_id=device.device_id), type=alarm_type, priority=priority,
                           source=AlarmSource.DEVICE, message=alarm_type,
                           now=timezone.now() - timedelta(seconds=age_s))  # fmt: skip


@pytest.mark.django_db
def test_the_selectors_every_page_and_feed_reads_give_that_order():
    """`alarms_active_by_device` (the overview page, `ward:summary`: the card's `topAlarm` is the first) and
    `alarms_active` (the monitor page) order a pump's active alarms by the rule."""
    ward = make_ward("order")
    pump = make_device("ORDER_1", ward=ward, bed="7")
    nurse = make_user("order-nurse", ward=ward)
    raise_alarm(pump, "occlusion", HIGH, age_s=20)
    air = raise_alarm(pump, "air_in_line", HIGH, age_s=5)
    raise_alarm(pump, "low_battery", MEDIUM, age_s=1)
    alarm_acknowledge(alarm_id=air.pk, user=nurse, alerts=air.alerts)
    expected = ["occlusion", "air_in_line", "low_battery"]
    assert [shown.type for shown in alarms_active_by_device([pump])[pump.pk]] == expected
    assert [shown.type for shown in alarms_active(pump)] == expected


def wire(shown: Alarm) -> dict:
    """The fields of `topAlarm` (and of the monitor's alarms) the pages' order reads."""
    escalation = {"level": shown.escalation_level} if shown.escalation_level else None
    return {"id": shown.pk, "priority": shown.priority, "acknowledged": shown.acknowledged_at is not None,
            "escalation": escalation, "raisedAt": shown.raised_at.isoformat(), "message": shown.message}  # fmt: skip


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_the_pages_order_alarms_as_the_server_does():
    """alarm_order.js's `byUrgency` (the card, banner, title and lists re-sorted on each live change) gives the
    server's order, whatever order the alarms come in."""
    alarms = [
        alarm("high answered new", HIGH, age_s=2, acknowledged=True, pk=1),
        alarm("high answered old, tier 2 left", HIGH, age_s=400, acknowledged=True, tier=2, pk=2),
        alarm("high new", HIGH, age_s=1, pk=3),
        alarm("high tier 1", HIGH, age_s=90, tier=1, pk=4),
        alarm("high tier 2", HIGH, age_s=180, tier=2, pk=5),
        alarm("high new, same moment", HIGH, age_s=1, pk=6),
        alarm("medium tier 1", MEDIUM, age_s=400, tier=1, pk=7),
        alarm("medium answered", MEDIUM, age_s=3, acknowledged=True, pk=8),
        alarm("medium new", MEDIUM, age_s=0.5, pk=9),
        alarm("low", LOW, age_s=0.1, pk=10),
    ]
    given = [[wire(each) for each in alarms], [wire(each) for each in reversed(alarms)]]
    script = f"""const {{ byUrgency }} = await import({json.dumps(ALARM_ORDER_JS.as_uri())});
console.log(JSON.stringify({json.dumps(given)}.map((list) => list.sort(byUrgency).map((each) => each.message))));"""
    result = page_script_result(script)
    server = [each.message for each in alarms_most_urgent_first(alarms)]
    assert server[:4] == ["high tier 2", "high tier 1", "high new, same moment", "high new"]
    for pages in result:
        assert pages == server, f"the pages order {pages}, the server {server}"
