"""Review 32, finding 1: a screen's own silence ends when an alarm escalates. A view-only wall screen may silence only
itself, and a pump's monitor page silences only itself ("Silence 2 min"); the server breaks the ward's silence on an
escalation, never these. An escalation adds no alert (`alerts` is unchanged), so the sound saw nothing new and the
screen stayed silent up to 2 min while its list said "ESCALATED to tier 1" and the pager went off. A new tier is news,
as a new alert is (docs/clinical-rules.md: a silence never stops an escalation, an escalated alarm must be heard)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.escalations import alarms_escalate
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward
from tests.support.browser import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WALL = {"width": 1920, "height": 1080}
PAST_TIER_1 = timedelta(seconds=61)  # ESCALATION_HIGH_S=60,120: tier 1 is due 60 s after the alarm alerted


def raise_alarm(device_id: str, priority, message: str):
    with transaction.atomic():
        return alarm_raise(device=device_lock(device_id=device_id), type="occlusion", priority=priority,
                           source=AlarmSource.DEVICE, message=message)  # fmt: skip


def test_an_escalation_sounds_on_a_wall_screen_that_silenced_itself(open_page, stack, artifacts_dir):
    ward = make_ward("r32w")
    make_device("R32_WALL_1", ward=ward, bed="12", has_presence=True)
    page = open_page(make_user("r32w-wall", ward=ward, can_command=False), "/", viewport=WALL)
    expect(page.locator("#connection-banner")).to_have_text("Live")
    page.locator("#ward-heading").click()  # the gesture browsers want before sound
    station = page.locator("#station")

    raise_alarm("R32_WALL_1", AlarmPriority.HIGH, "Downstream occlusion")
    expect(station).to_have_attribute("data-audio", "high", timeout=5_000)
    page.get_by_role("button", name="Silence this screen 2 min").click()  # view-only: this screen only
    expect(station).to_have_attribute("data-audio", "silenced")

    assert alarms_escalate(now=timezone.now() + PAST_TIER_1) == 1  # nobody answered
    expect(page.locator("#station-alarm-list li").first).to_contain_text("ESCALATED to tier 1", timeout=10_000)
    expect(station, "an escalated alarm must be heard through this screen's own silence").to_have_attribute(
        "data-audio", "high", timeout=3_000
    )
    assert page.evaluate("!document.getElementById('station-audio-high').paused")
    screenshot(page, artifacts_dir, "wall-screen-silence-ended-by-escalation")


def test_an_escalation_sounds_on_a_monitor_page_that_was_silenced(open_page, stack):
    ward = make_ward("r32b")
    make_device("R32_BED_1", ward=ward, bed="15", has_presence=True)
    page = open_page(make_user("r32b-nurse", ward=ward), "/devices/R32_BED_1/")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    monitor = page.locator("#monitor")

    raise_alarm("R32_BED_1", AlarmPriority.HIGH, "Downstream occlusion")
    expect(page.locator(".alarm")).to_have_count(1, timeout=5_000)
    if monitor.get_attribute("data-audio") == "blocked":  # the browser's autoplay rule: one gesture allows it
        page.get_by_role("button", name="Enable alarm sound").click()
    expect(monitor).to_have_attribute("data-audio", "high", timeout=5_000)
    page.get_by_role("button", name="Silence 2 min").click()
    expect(monitor).to_have_attribute("data-audio", "silenced")

    assert alarms_escalate(now=timezone.now() + PAST_TIER_1) == 1
    expect(page.locator(".alarm").first).to_contain_text("ESCALATED to tier 1", timeout=10_000)
    expect(monitor, "an escalated alarm must be heard through this screen's own silence").to_have_attribute(
        "data-audio", "high", timeout=3_000
    )
