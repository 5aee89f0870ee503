"""A pump's alarm message without spaces (a fault code and hex dump, as firmware writes them) stays inside the overview
card, the station's alarm banner and list, and the monitor's alarm row, with Acknowledge on screen (review 20).

An alarm text of 200 characters without a space is one unbreakable word: before `overflow-wrap: anywhere` on the alarm
boxes (static/css/pumpstream.css) it spilt across the neighbouring card and past the screen's edge, and what follows it
("for 27 s", "(acknowledged)", "ESCALATED", the Acknowledge button at x = 2,250 of 1,366) was drawn off screen.
"""

import pytest
from django.db import transaction
from playwright.sync_api import expect

from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.states import AlarmPriority, AlarmSource
from tests.factories import make_device, make_user, make_ward
from tests.support.browser import LAPTOP, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FAULT = "E042:PRESSURE_SENSOR_B_OUT_OF_RANGE;RAW=" + "0x1F3A9C7E" * 16  # 200 characters, no space

OVERFLOWS = """(selectors) => selectors.flatMap((selector) => [...document.querySelectorAll(selector)]
    .filter((el) => !el.hidden && el.offsetParent !== null)
    .filter((el) => el.scrollWidth > el.clientWidth + 1 || el.getBoundingClientRect().right > window.innerWidth + 1)
    .map((el) => `${selector}: ${el.scrollWidth}px of text in ${el.clientWidth}px, right edge at `
                 + `${Math.round(el.getBoundingClientRect().right)} of ${window.innerWidth}`))"""


def test_an_unbroken_alarm_message_stays_inside_its_card_banner_and_row(open_page, artifacts_dir):
    ward = make_ward("longalarm")
    nurse = make_user("longalarm-nurse", ward=ward)
    for device_id, bed in (("BRW_LONG_ALARM", "1"), ("BRW_LONG_NEXT", "2")):
        make_device(device_id, ward=ward, bed=bed, has_presence=True)
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id="BRW_LONG_ALARM"), type="sensor_fault", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE, message=FAULT)  # fmt: skip
    overview = open_page(nurse, "/?ward=longalarm", viewport=LAPTOP)
    expect(overview.locator("#station-alarm-banner")).to_be_visible(timeout=5_000)
    monitor = open_page(nurse, "/devices/BRW_LONG_ALARM/", viewport=LAPTOP)
    expect(monitor.locator(".alarm")).to_be_visible(timeout=5_000)
    found = overview.evaluate(OVERFLOWS, ['.pump-card [data-field="alarm"]', "#station-alarm-banner",
                                          "#station-alarm-list li"])  # fmt: skip
    found += monitor.evaluate(OVERFLOWS, [".alarm", ".alarm span"])
    screenshot(overview, artifacts_dir, "long-alarm-overview")
    screenshot(monitor, artifacts_dir, "long-alarm-monitor")
    assert not found, (
        "the alarm's text runs out of its box (the duration and state after it are off screen):\n" + "\n".join(found)
    )
