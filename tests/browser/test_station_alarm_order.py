"""Which alarm the station puts first, and what its summary counts (review 32, findings 3, 5 and 6).

A pump's card shows one alarm and the banner and tab title one: they were the highest, then the newest, whether
anyone had answered it or not. A card whose newer high alarm was acknowledged read "(acknowledged)", outlined and
still, while its older high alarm sounded unanswered (3); any new high alarm took the banner and title from one
unanswered for minutes and escalated to the ward manager (5); and the summary counted each pump's top alarm only, so
a medium alarm the station sounded beside an acknowledged high one was counted nowhere (6). The order is now one rule
(`devices/alarm_order.py`, `static/js/alarm_order.js`, docs/clinical-rules.md "Which alarm comes first"), and each
test checks the page as the live feed keeps it and as the server renders it again.
"""

from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Alarm
from devices.services.alarms import alarm_acknowledge, alarm_raise
from devices.services.changes import device_lock
from devices.services.escalations import alarms_escalate
from devices.states import AlarmPriority, AlarmSource, AlarmState
from tests.factories import make_device, make_user, make_ward
from tests.support.browser import screenshot

HIGH = AlarmPriority.HIGH

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WALL = {"width": 1920, "height": 1080}


def raise_alarm(device_id: str, alarm_type: str, priority: str, message: str, *, now: datetime | None = None) -> Alarm:
    """An alarm raised as the bridge raises a pump's, in this process (Daphne publishes it from the change log)."""
    with transaction.atomic():
        return alarm_raise(device=device_lock(device_id=device_id), type=alarm_type, priority=priority,
                           source=AlarmSource.DEVICE, message=message, now=now)  # fmt: skip


def open_station(open_page, user):
    page = open_page(user, "/", viewport=WALL)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    return page


def test_a_card_shows_its_unanswered_high_alarm_before_an_acknowledged_one(open_page, stack, artifacts_dir):
    """Finding 3: Bed 7's older occlusion unanswered, its newer air alarm acknowledged at the bedside."""
    ward = make_ward("ord3")
    make_device("BRW_ORD_CARD", ward=ward, bed="7", has_presence=True)
    nurse = make_user("ord3-nurse", ward=ward)
    page = open_station(open_page, nurse)
    now = timezone.now()
    raise_alarm("BRW_ORD_CARD", "occlusion", HIGH, "Downstream occlusion", now=now - timedelta(seconds=20))
    air = raise_alarm("BRW_ORD_CARD", "air_in_line", HIGH, "Air in line", now=now - timedelta(seconds=5))
    expect(page.locator("#station-alarm-list li")).to_have_count(2, timeout=5_000)
    alarm_acknowledge(alarm_id=air.pk, user=nurse, alerts=air.alerts)
    expect(page.locator('#station-alarm-list li[data-acknowledged="true"]')).to_have_count(1, timeout=5_000)
    unanswered = Alarm.objects.filter(device__device_id="BRW_ORD_CARD", state=AlarmState.ACTIVE,
                                      acknowledged_at__isnull=True)  # fmt: skip
    assert [alarm.message for alarm in unanswered] == ["Downstream occlusion"]

    for shown in ("live", "rendered"):
        card = page.locator('.pump-card[data-device-id="BRW_ORD_CARD"]')
        expect(card, f"{shown}: a card must not look answered while one of its high alarms is not").to_have_attribute(
            "data-alarm-acknowledged", "false"
        )
        expect(card.locator('[data-field="alarm"]')).to_contain_text("HIGH: Downstream occlusion")
        expect(card.locator('[data-field="alarm"]')).to_contain_text("+1 more alarm")
        items = page.locator("#station-alarm-list li")
        expect(items.nth(0), f"{shown}: the unanswered alarm leads the list").to_contain_text("Downstream occlusion")
        expect(items.nth(1)).to_contain_text("Air in line · for")
        expect(items.nth(1)).to_contain_text("(acknowledged)")
        screenshot(page, artifacts_dir, f"station-card-unanswered-first-{shown}")
        page.reload()  # the page as the server renders it (the pumps' `alarms`, `topAlarm`)
        expect(page.locator("#connection-banner")).to_have_text("Live")


def test_an_escalated_alarm_keeps_the_banner_and_title_when_a_new_one_comes(open_page, stack, artifacts_dir):
    """Finding 5: Bed 3's occlusion unanswered for 3 minutes, escalated to tier 2; then a new high alarm on Bed 12."""
    ward = make_ward("ord5")
    make_device("BRW_ORD_ESC3", ward=ward, bed="3", has_presence=True)
    make_device("BRW_ORD_ESC12", ward=ward, bed="12", has_presence=True)
    page = open_station(open_page, make_user("ord5-nurse", ward=ward))
    banner = page.locator("#station-alarm-banner")
    occlusion = raise_alarm("BRW_ORD_ESC3", "occlusion", HIGH, "Downstream occlusion",
                            now=timezone.now() - timedelta(seconds=180))  # fmt: skip
    alarms_escalate()  # tier 1 (60 s), unless the bridge's housekeeping came first
    alarms_escalate()  # tier 2 (120 s)
    assert Alarm.objects.get(pk=occlusion.pk).escalation_level == 2
    expect(banner).to_contain_text("ESCALATED to tier 2", timeout=5_000)

    raise_alarm("BRW_ORD_ESC12", "air_in_line", HIGH, "Air in line")
    expect(page.locator("#station-alarm-list li")).to_have_count(2, timeout=5_000)
    for shown in ("live", "rendered"):
        expect(banner, f"{shown}: the unanswered, escalated alarm must keep the banner").to_contain_text(
            "High alarm · Bed 3 · Downstream occlusion"
        )
        expect(page).to_have_title("HIGH: Bed 3 · Ward overview · PumpStream")
        expect(page.locator("#station-alarm-list li").nth(1)).to_contain_text("Bed 12 · Air in line")
        screenshot(page, artifacts_dir, f"station-escalated-keeps-the-banner-{shown}")
        page.reload()
        expect(page.locator("#connection-banner")).to_have_text("Live")


def test_the_summary_counts_every_active_alarm_by_priority(open_page, stack, artifacts_dir):
    """Finding 6: Bed 7's high occlusion acknowledged, then a medium alarm on the same pump, unanswered."""
    ward = make_ward("ord6")
    make_device("BRW_ORD_SUM", ward=ward, bed="7", has_presence=True)
    nurse = make_user("ord6-nurse", ward=ward)
    page = open_station(open_page, nurse)
    occlusion = raise_alarm("BRW_ORD_SUM", "occlusion", HIGH, "Downstream occlusion")
    alarm_acknowledge(alarm_id=occlusion.pk, user=nurse, alerts=occlusion.alerts)
    raise_alarm("BRW_ORD_SUM", "low_battery", AlarmPriority.MEDIUM, "Battery low: 10 min left")
    expect(page.locator("#station-alarm-list li")).to_have_count(2, timeout=5_000)
    expect(page.locator("#station-alarm-banner")).to_contain_text("Medium alarm · Bed 7 · Battery low")
    expect(page.locator("#station")).to_have_attribute("data-audio", "medium")
    summary = page.locator("#ward-summary")
    for shown in ("live", "rendered"):
        expect(summary.locator('[data-kind="medium"]'), f"{shown}: the summary must count the medium alarm the "
                                                        "station sounds").to_have_text("1 medium alarm")  # fmt: skip
        expect(summary.locator('[data-kind="high"]')).to_have_text("1 high alarm")
        screenshot(page, artifacts_dir, f"station-summary-counts-every-alarm-{shown}")
        page.reload()
        expect(page.locator("#connection-banner")).to_have_text("Live")
