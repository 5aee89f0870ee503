"""The monitor's silence and a high alarm's alerts (review 7, A): a silence ends for a new alert of an alarm, never for
a repeat of it (docs/clinical-rules.md: "A repeat ... does not notify again"; "It alerts again ... and so the page's
sound").

What was found: alarm_audio.js keyed the high alarms a silence covers on `id:count`. `count` is the pump's repeat
counter, so an occlusion the pump sent again ended the nurse's silence at each repeat; and an acknowledged alarm that
alerted again with its count unchanged (the housekeeping's alarm_flood news) kept the key it had when silenced, so it
stayed silent for the rest of the two minutes.
"""

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from devices import payloads
from devices.models import Alarm
from devices.services.alarms import alarm_raise
from devices.services.changes import device_lock
from devices.services.protection import alarm_flood_raise, alarm_floods_news_signal
from devices.states import FLOOD_NEWS_DEFERRED, AlarmPriority, AlarmSource
from tests.browser.test_alarm_resent import silenced_monitor
from tests.support.bridge import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def occlusion(device_id: str) -> None:
    with transaction.atomic():
        alarm_raise(device=device_lock(device_id=device_id), type="occlusion", priority=AlarmPriority.HIGH,
                    source=AlarmSource.DEVICE, message="Line blocked")  # fmt: skip


def test_a_pump_repeating_its_high_alarm_does_not_end_the_silence(open_page):
    page, monitor = silenced_monitor(open_page, "BRW_SIL_REPEAT", "silrep", occlusion)
    occlusion("BRW_SIL_REPEAT")  # the pump sends the same occlusion again: count 2, the same alert
    expect(page.locator('.alarm[data-priority="high"]')).to_contain_text("×2", timeout=5_000)
    page.wait_for_timeout(300)
    assert monitor.get_attribute("data-audio") == "silenced", (
        f"the pump's repeat of the alarm the nurse silenced ended the silence ({monitor.get_attribute('data-audio')}):"
        " a repeat is no news"
    )


def flood(device_id: str) -> None:
    alarm_flood_raise(device_id=device_id, shed={"error": 40}, alarm_types={"E0001 garbage": "high"})


def test_an_acknowledged_high_alarm_alerting_again_ends_the_silence(open_page):
    page, monitor = silenced_monitor(open_page, "BRW_SIL_REALERT", "silrea", flood)
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0, timeout=5_000)
    # the button says "Acknowledging…" from the click on, before the server has it (its live event shows it): wait
    # for the acknowledgement itself (ci38: the news was signalled before it, to an alarm still sounding)
    wait_until(lambda: Alarm.objects.filter(device__device_id="BRW_SIL_REALERT", state="active",
                                            acknowledged_at__isnull=False).exists(),
               message="the acknowledgement never reached the server")  # fmt: skip
    # news beyond the types the flood alarm remembers waits since after the acknowledgement (as a broken pump's junk
    # past TYPES_REMEMBERED leaves it); the housekeeping signals it: the alarm alerts again, its count unchanged
    alarm = Alarm.objects.get(device__device_id="BRW_SIL_REALERT", state="active")
    waiting = {**alarm.details, FLOOD_NEWS_DEFERRED: payloads.iso(timezone.now())}
    Alarm.objects.filter(pk=alarm.pk).update(details=waiting)
    alarm_floods_news_signal()
    alarm.refresh_from_db()
    assert (alarm.alerts, alarm.count, alarm.acknowledged_at) == (2, 1, None), "precondition: a new alert, no repeat"
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(1, timeout=5_000)
    expect(monitor, "a new alert of a silenced high alarm must sound at once").to_have_attribute("data-audio", "high")
