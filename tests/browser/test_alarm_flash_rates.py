"""An alarm's visual signal flashes at IEC 60601-1-8 Table 2's rate for its priority while nobody acknowledged it:
high 1.4-2.8 Hz (2 Hz here), medium 0.4-0.8 Hz (0.5 Hz), each lit half the time; low and acknowledged alarms steady;
nothing flashes for a computer set to reduce motion. High flashed at 1 Hz and medium not at all (2026-12-07)."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Alarm
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# How each element flashes: its animation's name, one cycle's length and its steps (lit half the cycle)
FLASHING = """(element) => {
  const style = getComputedStyle(element);
  return [style.animationName, style.animationDuration, style.animationTimingFunction];
}"""
STEADY = ["none", "0s", "ease"]


def alarm_on(device, priority: str, message: str, **fields) -> Alarm:
    return Alarm.objects.create(device=device, type=f"occlusion-{priority}", priority=priority, message=message,
                                source=AlarmSource.DEVICE, **fields)  # fmt: skip


def test_each_priority_flashes_at_its_rate_on_the_cards_and_the_monitor(open_page, stack):
    ward = make_ward("flash")
    nurse = make_user("flash-nurse", ward=ward)
    pumps = {name: make_device(f"FLASH_{name.upper()}", ward=ward, bed=str(bed))
             for bed, name in enumerate(("high", "medium", "low", "answered"), start=1)}  # fmt: skip
    alarm_on(pumps["high"], AlarmPriority.HIGH, "Line blocked")
    alarm_on(pumps["high"], AlarmPriority.MEDIUM, "Battery low")
    alarm_on(pumps["medium"], AlarmPriority.MEDIUM, "Battery low")
    alarm_on(pumps["low"], AlarmPriority.LOW, "Check the line")
    alarm_on(pumps["answered"], AlarmPriority.HIGH, "Line blocked", acknowledged_at=timezone.now(),
             acknowledged_by=nurse)  # fmt: skip
    expected = {
        "high": ["flash", "0.5s", "steps(1)"],
        "medium": ["flash", "2s", "steps(1)"],
        "low": STEADY,
        "answered": STEADY,
    }
    page = open_page(nurse, "/?ward=flash")
    expect(page.locator("#connection-banner")).to_have_text("Live")
    strips = {name: page.locator(f'.pump-card[data-device-id="{pump.device_id}"] .alarm-strip')
              for name, pump in pumps.items()}  # fmt: skip
    expect(strips["low"]).to_contain_text("Check the line")
    assert {name: strip.evaluate(FLASHING) for name, strip in strips.items()} == expected

    monitor = open_page(nurse, f"/devices/{pumps['high'].device_id}/")
    expect(monitor.locator("#connection-banner")).to_have_text("Live")
    rows = monitor.locator(".alarm")
    expect(rows).to_have_count(2)
    assert [row.evaluate(FLASHING) for row in rows.all()] == [expected["high"], expected["medium"]]

    for shown in (page, monitor):  # set to reduce motion: the colour and the words say it, nothing flashes
        shown.emulate_media(reduced_motion="reduce")
    assert {name: strip.evaluate(FLASHING) for name, strip in strips.items()} == dict.fromkeys(expected, STEADY)
    assert [row.evaluate(FLASHING) for row in rows.all()] == [STEADY, STEADY]
